// The console: sign in, then one page at a time by the address's #fragment. Each page
// renders into <main> and returns what stops it (timers, streams) when another is shown.

import { session, get, whenUnauthorized } from "./api.js";
import { h, fill, problem } from "./ui.js";
import * as overview from "./overview.js";
import * as tasks from "./tasks.js";
import * as task from "./task.js";
import * as dead from "./dead.js";
import * as submit from "./submit.js";
import * as tokens from "./tokens.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let me = null; // { name, role, node }
let stop = () => {};

const pages = {
  overview: { page: overview, role: "admin" },
  tasks: { page: tasks },
  task: { page: task },
  dead: { page: dead },
  submit: { page: submit, role: "submit" },
  tokens: { page: tokens, role: "admin" },
};

/** Whether `me` may see a page needing `role`. */
function allowed(role) {
  if (!role) return true;
  if (role === "admin") return me.role === "admin";
  if (role === "submit") return me.role !== "read";
  return false;
}

function home() {
  return me.role === "admin" ? "overview" : "tasks";
}

async function show() {
  stop();
  stop = () => {};
  if (!session.token() || !me) return signIn();
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const entry = pages[name];
  if (!entry || !allowed(entry.role)) {
    location.replace("#/" + home());
    return;
  }
  for (const a of nav.querySelectorAll("a")) {
    a.toggleAttribute("aria-current", a.getAttribute("href") === "#/" + name);
  }
  fill(main);
  document.title = `${name} · tasknode`;
  try {
    stop = (await entry.page.render(main, rest.map(decodeURIComponent), { me })) || (() => {});
  } catch (err) {
    fill(main, problem(err));
  }
}

function signedIn(who) {
  me = who;
  for (const a of nav.querySelectorAll("a")) a.hidden = !allowed(a.dataset.role);
  nav.hidden = false;
  document.getElementById("signout").hidden = false;
  document.getElementById("who").textContent = `${who.name ?? "open node"} · ${who.role} · ${who.node}`;
}

function signedOut() {
  me = null;
  session.signOut();
  nav.hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("who").textContent = "";
}

function signIn(message) {
  stop();
  document.title = "Sign in · tasknode";
  const input = h("input", {
    id: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    placeholder: "tn_…",
    "aria-describedby": "token-help",
  });
  const status = h("div", { "aria-live": "polite" }, message && problem({ message }));
  const form = h(
    "form",
    {
      class: "card signin",
      async onsubmit(e) {
        e.preventDefault();
        session.signIn(input.value.trim());
        try {
          signedIn(await get("/v1/me"));
          if (!location.hash || location.hash === "#/signin") location.hash = "#/" + home();
          else show();
        } catch (err) {
          signedOut();
          fill(status, problem(err.status === 401 ? { code: "unauthenticated", message: "That token was refused." } : err));
          input.select();
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("label", { for: "token" }, "Token"),
    input,
    h("p", { id: "token-help", class: "muted" }, "A token made with ", h("code", {}, "taskctl token create"), ". It is kept in this tab only."),
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  fill(main, form);
  input.focus();
}

// A token refused later (revoked, or the node's database was reset) signs the tab out.
whenUnauthorized(() => {
  if (!me) return;
  signedOut();
  signIn("The node no longer accepts this token; sign in again.");
});

document.getElementById("signout").addEventListener("click", () => {
  signedOut();
  location.hash = "#/signin";
  signIn();
});

const theme = document.getElementById("theme");
const savedTheme = localStorage.getItem("tasknode.theme");
if (savedTheme) document.documentElement.dataset.theme = savedTheme;
theme.addEventListener("click", () => {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = dark ? "light" : "dark";
  localStorage.setItem("tasknode.theme", document.documentElement.dataset.theme);
});

window.addEventListener("hashchange", show);

(async () => {
  if (session.token()) {
    try {
      signedIn(await get("/v1/me"));
    } catch {
      signedOut();
    }
  }
  show();
})();
