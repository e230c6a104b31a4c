// One task: its state, timings, error, payload and result (previews and downloads), live
// until it is final (its events stream); a task that has not ended can be cancelled.

import { get, post, follow, head, blob } from "./api.js";
import { h, fill, problem, badge, time, between, bytes, preview, save, confirm } from "./ui.js";

const PREVIEW = 4096;

export async function render(main, [id]) {
  const view = h("div");
  fill(main, h("h1", {}, "Task ", h("span", { class: "mono" }, id)), view);
  const stop = new AbortController();
  let task;
  try {
    task = await get(`/v1/tasks/${encodeURIComponent(id)}`);
  } catch (err) {
    fill(view, problem(err));
    return;
  }
  await show(view, task);
  if (!final(task)) {
    follow(id, (t) => show(view, t), stop.signal).catch((err) => {
      if (err.name !== "AbortError") view.append(problem(err));
    });
  }
  return () => stop.abort();
}

// A worker's last word on how far it got (external kinds), as a bar and its note.
function progress(t) {
  if (t.progress === undefined || t.progress === null) return "–";
  return [h("progress", { max: 100, value: t.progress, "aria-label": "Progress" }), ` ${t.progress}%`, t.progress_note ? h("span", { class: "muted" }, ` ${t.progress_note}`) : null];
}

function final(t) {
  return ["succeeded", "failed", "dead", "cancelled"].includes(t.status);
}

async function show(view, t) {
  const status = t.paused ? [badge(t.status), " ", h("span", { class: "badge s-paused", "data-test": "paused" }, "paused")] : badge(t.status);
  const rows = [
    ["Kind", t.kind],
    ["Status", status],
    ["Priority", t.priority ?? 0],
    ["Key", t.key ?? "–"],
    ["Runs at", time(t.run_at)],
    ["Attempts", t.attempts ?? "–"],
    ["Progress", progress(t)],
    ["Node", t.node ?? "–"],
    ["Accepted", time(t.created_at)],
    ["Started", time(t.started_at)],
    ["Finished", time(t.finished_at)],
    ["Waited", between(t.created_at, t.started_at)],
    ["Ran", between(t.started_at, t.finished_at)],
    ["Payload", bytes(t.payload_size)],
    ["Result", t.result_size !== undefined ? bytes(t.result_size) : "–"],
  ];
  const parts = [
    h("dl", { class: "card facts", "data-status": t.status }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k.toLowerCase() }, v)])),
  ];
  if (!final(t)) {
    parts.push(h("div", { class: "row" }, h("button", { class: "danger", "data-test": "cancel", async onclick() {
      if (!(await confirm(`Cancel task ${t.id}? A running task is stopped.`, "Cancel task"))) return;
      try {
        await show(view, await post(`/v1/tasks/${encodeURIComponent(t.id)}/cancel`, {}));
      } catch (err) {
        view.append(problem(err));
      }
    } }, "Cancel")));
  }
  if (t.message) parts.push(h("section", { class: "card" }, h("h2", {}, t.status === "queued" ? "Last run failed" : "Error"), h("pre", { class: "preview error" }, `${t.error ?? ""} ${t.message}`)));
  parts.push(await bytesCard(t, "payload", "Payload", t.payload_size));
  if (t.status === "succeeded") parts.push(await bytesCard(t, "result", "Result", t.result_size));
  fill(view, parts);
}

async function bytesCard(t, what, title, size) {
  const card = h("section", { class: "card", "data-bytes": what }, h("h2", {}, title));
  try {
    const { bytes: data, size: total } = await head(t.id, what, PREVIEW);
    card.append(preview(data, total ?? size ?? data.length));
    card.append(h("button", { class: "quiet", async onclick() { save(await blob(t.id, what), `${t.id}.${what}`); } }, `Download ${title.toLowerCase()}`));
  } catch (err) {
    card.append(problem(err));
  }
  return card;
}
