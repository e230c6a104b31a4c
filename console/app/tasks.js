// Tasks: find one by id; list the caller's (an admin: everyone's) by status, kind and time,
// newest first, a page at a time by cursor.

import { get, query } from "./api.js";
import { h, fill, problem, badge, time } from "./ui.js";

const filters = { status: "", kind: "", since: "", until: "" };
const STATUSES = ["scheduled", "queued", "running", "succeeded", "failed", "dead", "cancelled"];

export async function render(main) {
  const kinds = (await get("/v1/kinds")).kinds.map((k) => k.name);
  const results = h("div", { class: "scroll", "aria-live": "polite" });
  const find = h("input", { id: "find", placeholder: "a task id", autocomplete: "off", spellcheck: "false" });
  const select = (id, label, values) =>
    h("label", { for: id }, label,
      h("select", { id, onchange: (e) => { filters[id] = e.target.value; list(); } },
        h("option", { value: "" }, "any"),
        values.map((v) => h("option", { value: v, selected: filters[id] === v }, v))));
  const when = (id, label) =>
    h("label", { for: id }, label,
      h("input", { id, type: "datetime-local", value: filters[id], onchange: (e) => { filters[id] = e.target.value; list(); } }));
  fill(
    main,
    h("h1", {}, "Tasks"),
    h("form", { class: "card row", role: "search", onsubmit(e) {
      e.preventDefault();
      const id = find.value.trim();
      if (id) location.hash = "#/task/" + encodeURIComponent(id);
    } }, h("label", { for: "find" }, "Find by id"), find, h("button", { type: "submit" }, "Open")),
    h("div", { class: "card row filters" }, select("status", "Status", STATUSES), select("kind", "Kind", kinds), when("since", "From"), when("until", "Until")),
    results,
  );

  // Cursors of the pages shown so far: the last is this page's.
  let cursors = [""];
  async function list(cursor = "") {
    if (!cursor) cursors = [""];
    const iso = (v) => (v ? new Date(v).toISOString() : "");
    try {
      const page = await get("/v1/tasks" + query({ ...filters, since: iso(filters.since), until: iso(filters.until), cursor, limit: 25 }));
      fill(results, table(page.tasks), pager(page.next_cursor));
    } catch (err) {
      fill(results, problem(err));
    }
  }
  function pager(next) {
    return h("div", { class: "row pager" },
      h("button", { class: "quiet", disabled: cursors.length < 2, onclick() { cursors.pop(); list(cursors[cursors.length - 1]); } }, "← Newer"),
      h("button", { class: "quiet", disabled: !next, onclick() { cursors.push(next); list(next); } }, "Older →"));
  }
  await list();
}

export function table(tasks, extra) {
  if (!tasks.length) return h("p", { class: "muted" }, "No tasks.");
  return h("table", { class: "list" },
    h("thead", {}, h("tr", {}, extra?.head, ["Id", "Kind", "Status", "Attempts", "Node", "Accepted"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, tasks.map((t) =>
      h("tr", { "data-id": t.id },
        extra?.cell?.(t),
        h("td", {}, h("a", { href: "#/task/" + t.id, class: "mono" }, t.id)),
        h("td", {}, t.kind),
        h("td", { class: "status" }, badge(t.status)),
        h("td", {}, t.attempts ?? "–"),
        h("td", {}, t.node ?? "–"),
        h("td", {}, time(t.created_at))))));
}
