// Submit: pick a kind, type a payload or drop a file (streamed up with a progress bar), then
// watch the task until its result arrives.

import { get, post, upload, follow, head } from "./api.js";
import { h, fill, problem, badge, bytes, preview } from "./ui.js";

export async function render(main) {
  const kinds = (await get("/v1/kinds")).kinds;
  const kind = h("select", { id: "kind", required: true }, kinds.map((k) => h("option", { value: k.name, title: k.about }, k.name)));
  const about = h("p", { class: "muted", id: "kind-about" }, kinds[0]?.about ?? "");
  kind.addEventListener("change", () => (about.textContent = kinds.find((k) => k.name === kind.value)?.about ?? ""));
  const text = h("textarea", { id: "payload", rows: 5, placeholder: "the payload, as text" });
  const fileInput = h("input", { type: "file", id: "file" });
  const chosen = h("span", { class: "muted", "aria-live": "polite" }, "");
  let file = null;
  const pick = (f) => {
    file = f;
    chosen.textContent = f ? `${f.name}, ${bytes(f.size)} (sent instead of the text)` : "";
  };
  fileInput.addEventListener("change", () => pick(fileInput.files[0] || null));
  const drop = h("div", { class: "drop", tabindex: "0", role: "button", "aria-label": "Drop a file here or choose one" },
    "Drop a file here, or ", h("label", { for: "file", class: "link" }, "choose one"), fileInput, " ", chosen);
  drop.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && fileInput.click());
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    pick(e.dataTransfer.files[0] || null);
  });
  const key = h("input", { id: "key", placeholder: "optional: the same key gives back the same task" });
  const delay = h("input", { id: "delay", type: "number", min: 0, step: 1, placeholder: "seconds" });
  const priority = h("input", { id: "priority", type: "number", min: 0, max: 9, value: 0 });
  const options = () => {
    const o = {};
    if (key.value.trim()) o.key = key.value.trim();
    if (delay.value) o.delay_ms = Math.round(Number(delay.value) * 1000);
    if (Number(priority.value) > 0) o.priority = Number(priority.value);
    return o;
  };
  const progress = h("progress", { id: "progress", max: 1, value: 0, hidden: true });
  const out = h("div", { id: "outcome", "aria-live": "polite" });
  const stop = new AbortController();
  const button = h("button", { type: "submit" }, "Submit");
  fill(
    main,
    h("h1", {}, "Submit a task"),
    h("form", { class: "card stack", async onsubmit(e) {
      e.preventDefault();
      button.disabled = true;
      fill(out);
      try {
        let view;
        if (file) {
          progress.hidden = false;
          progress.value = 0;
          view = await upload(kind.value, file, options(), (sent, total) => {
            progress.max = total || 1;
            progress.value = sent;
          });
        } else {
          view = await post("/v1/tasks", { kind: kind.value, payload: text.value, ...options() });
        }
        watch(view);
      } catch (err) {
        fill(out, problem(err));
      } finally {
        button.disabled = false;
      }
    } },
      h("label", { for: "kind" }, "Kind"), kind, about,
      h("label", { for: "payload" }, "Payload"), text,
      drop,
      h("div", { class: "row" },
        h("label", {}, "Key ", key),
        h("label", {}, "Run in ", delay),
        h("label", {}, "Priority ", priority)),
      progress, h("div", { class: "row" }, button)),
    out,
  );

  function watch(view) {
    const state = h("p", {}, "Task ", h("a", { href: "#/task/" + view.id, class: "mono", "data-test": "task-id" }, view.id), " ", badge(view.status));
    const result = h("div", { "data-test": "result" });
    fill(out, h("section", { class: "card" }, state, result));
    const show = async (t) => {
      fill(state, "Task ", h("a", { href: "#/task/" + t.id, class: "mono", "data-test": "task-id" }, t.id), " ", badge(t.status));
      if (t.status === "succeeded") {
        const { bytes: data, size } = await head(t.id, "result", 4096);
        fill(result, h("h2", {}, "Result"), preview(data, size));
      } else if (t.message) {
        fill(result, problem({ code: t.error, message: t.message }));
      }
    };
    show(view);
    follow(view.id, show, stop.signal).catch((err) => err.name !== "AbortError" && out.append(problem(err)));
  }
  return () => stop.abort();
}
