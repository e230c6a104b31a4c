// Tokens (admins): make one (its secret is shown once), list them, revoke one.

import { get, post, del } from "./api.js";
import { h, fill, problem, time, confirm } from "./ui.js";

export async function render(main, _args, { me }) {
  const list = h("div", { class: "scroll" });
  const made = h("div", { "aria-live": "polite" });
  const field = (id, label, attrs = {}) => [h("label", { for: id }, label), h("input", { id, ...attrs })];
  const role = h("select", { id: "role" }, ["submit", "read", "admin"].map((r) => h("option", { value: r }, r)));
  const form = h("form", { class: "card grid", async onsubmit(e) {
    e.preventDefault();
    const value = (id) => form.querySelector("#" + id).value.trim();
    const number = (id) => (value(id) ? Number(value(id)) : undefined);
    try {
      const created = await post("/v1/tokens", {
        name: value("name"),
        role: role.value,
        max_inflight: number("max_inflight"),
        rate: number("rate"),
        max_payload: number("max_payload"),
      });
      const secret = h("code", { "data-test": "secret" }, created.secret);
      fill(made, h("div", { class: "card secret", role: "status" },
        h("p", {}, "Token ", h("strong", {}, created.token.name), " made. Its secret is shown this once:"),
        secret,
        h("button", { type: "button", class: "quiet", onclick: () => navigator.clipboard?.writeText(created.secret) }, "Copy")));
      form.reset();
      load();
    } catch (err) {
      fill(made, problem(err));
    }
  } },
    field("name", "Name", { required: true, pattern: "[A-Za-z0-9_.-]{1,64}", autocomplete: "off" }),
    h("label", { for: "role" }, "Role"), role,
    field("max_inflight", "Max in flight", { type: "number", min: 1 }),
    field("rate", "Rate (per second)", { type: "number", min: 0, step: "any" }),
    field("max_payload", "Max payload (bytes)", { type: "number", min: 1 }),
    h("div", {}, h("button", { type: "submit" }, "Create token")));
  fill(main, h("h1", {}, "Tokens"), h("h2", {}, "New token"), form, made, h("h2", {}, "All tokens"), list);

  async function load() {
    try {
      const { tokens } = await get("/v1/tokens");
      fill(list, h("table", { class: "list" },
        h("thead", {}, h("tr", {}, ["Name", "Role", "Max in flight", "Rate", "Max payload", "Created", "Revoked", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, tokens.map((t) => h("tr", { "data-token": t.name },
          h("th", { scope: "row" }, t.name),
          h("td", {}, t.role),
          h("td", {}, t.max_inflight ?? "–"),
          h("td", {}, t.rate ?? "–"),
          h("td", {}, t.max_payload ?? "–"),
          h("td", {}, time(t.created_at)),
          h("td", {}, t.revoked_at ? time(t.revoked_at) : "–"),
          h("td", {}, !t.revoked_at && t.name !== me.name ? h("button", { class: "quiet danger", async onclick() {
            if (!(await confirm(`Revoke ${t.name}? Every node refuses it within 2 s.`, "Revoke"))) return;
            try {
              await del(`/v1/tokens/${encodeURIComponent(t.name)}`);
              load();
            } catch (err) {
              list.prepend(problem(err));
            }
          } }, "Revoke") : null))))));
    } catch (err) {
      fill(list, problem(err));
    }
  }
  await load();
}
