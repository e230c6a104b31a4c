// Dead letters: tasks that used up their attempts. Select some or all, retry them (after a
// confirmation), and watch them go back to work.

import { get, post, follow, query } from "./api.js";
import { h, fill, problem, badge, confirm } from "./ui.js";
import { table } from "./tasks.js";

const PAGE = 100;
/** Retries sent at once. */
const AT_ONCE = 4;

export async function render(main, _args, { me }) {
  const list = h("div", { class: "scroll" });
  const status = h("div", { "aria-live": "polite" });
  const selected = new Set();
  const stop = new AbortController();
  const retryButton = h("button", { disabled: true, onclick: retrySelected }, "Retry selected");
  const all = h("input", { type: "checkbox", id: "select-all", "aria-label": "Select all" });
  fill(main, h("h1", {}, "Dead letters"), h("div", { class: "row" }, retryButton, h("button", { class: "quiet", onclick: load }, "Refresh")), status, list);
  if (me.role === "read") retryButton.title = "A read token may not retry";

  let tasks = [];
  function count() {
    retryButton.disabled = !selected.size || me.role === "read";
    retryButton.textContent = selected.size ? `Retry ${selected.size} selected` : "Retry selected";
    all.checked = tasks.length > 0 && selected.size === tasks.length;
  }
  all.addEventListener("change", () => {
    for (const t of tasks) all.checked ? selected.add(t.id) : selected.delete(t.id);
    for (const box of list.querySelectorAll("input[data-pick]")) box.checked = all.checked;
    count();
  });

  async function load() {
    selected.clear();
    try {
      tasks = (await get("/v1/tasks" + query({ status: "dead", limit: PAGE }))).tasks;
      fill(list, tasks.length ? table(tasks, {
        head: h("th", { scope: "col" }, all),
        cell: (t) => h("td", {}, h("input", { type: "checkbox", "data-pick": t.id, "aria-label": `Select ${t.id}`, onchange(e) {
          e.target.checked ? selected.add(t.id) : selected.delete(t.id);
          count();
        } })),
      }) : h("p", { class: "muted" }, "No dead tasks."));
      fill(status, tasks.length === PAGE ? h("p", { class: "muted" }, `The newest ${PAGE}; retry these to see older ones.`) : null);
    } catch (err) {
      fill(list, problem(err));
    }
    count();
  }

  async function retrySelected() {
    const ids = [...selected];
    if (!(await confirm(`Retry ${ids.length} dead task${ids.length === 1 ? "" : "s"}? Each runs again from its first attempt.`, "Retry"))) return;
    retryButton.disabled = true;
    let done = 0;
    const failures = [];
    const queue = [...ids];
    const worker = async () => {
      for (let id; (id = queue.shift()); ) {
        try {
          const view = await post(`/v1/tasks/${id}/retry`);
          watch(view);
        } catch (err) {
          failures.push(`${id}: ${err.message}`);
        }
        done++;
        fill(status, h("p", {}, `Retried ${done} of ${ids.length}`));
      }
    };
    await Promise.all(Array.from({ length: AT_ONCE }, worker));
    fill(status, h("p", {}, `Retried ${ids.length - failures.length} of ${ids.length}.`), failures.map((f) => problem({ message: f })));
    selected.clear();
    count();
  }

  /** Follow a retried task's row until it is final. */
  function watch(view) {
    const row = list.querySelector(`tr[data-id="${view.id}"]`);
    const show = (t) => {
      if (!row) return;
      fill(row.querySelector(".status"), badge(t.status));
      const box = row.querySelector("input[data-pick]");
      if (box) box.disabled = true;
    };
    show(view);
    follow(view.id, show, stop.signal).catch(() => {});
  }

  await load();
  return () => stop.abort();
}
