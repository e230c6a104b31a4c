// Small helpers shared by the pages: building elements, formatting, previews, dialogs.

/** An element: `h("a", { href: "#" }, "text", child)`; `on*` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replace `el`'s children. */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== undefined && c !== null && c !== false));
  return el;
}

export function bytes(n) {
  if (n === undefined || n === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function time(at) {
  return at ? new Date(at).toLocaleString() : "–";
}

export function since(at, now = Date.now()) {
  if (!at) return "–";
  let s = Math.max(0, Math.round((now - new Date(at).getTime()) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d`;
}

/** Milliseconds between two times, or "–". */
export function between(a, b) {
  if (!a || !b) return "–";
  const ms = new Date(b) - new Date(a);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function badge(status) {
  return h("span", { class: `badge s-${status}` }, status);
}

/** Bytes as text when they are UTF-8 text, else as a hex dump; with whether more exists. */
export function preview(data, size) {
  let text = null;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(data);
    if (/[\u0000-\u0008\u000e-\u001f]/.test(text)) text = null;
  } catch {
    text = null;
  }
  const more = size > data.length ? `\n… ${bytes(size - data.length)} more` : "";
  if (text !== null) return h("pre", { class: "preview", "data-kind": "text" }, text + more);
  const lines = [];
  for (let i = 0; i < data.length; i += 16) {
    const row = Array.from(data.slice(i, i + 16));
    const hex = row.map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${i.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return h("pre", { class: "preview", "data-kind": "hex" }, lines.join("\n") + more);
}

/** An error box (role=alert, so screen readers say it). */
export function problem(err) {
  const code = err?.code ? `${err.code}: ` : "";
  return h("p", { class: "problem", role: "alert" }, code + (err?.message || String(err)));
}

/** Ask before doing something; resolves true when confirmed. */
export function confirm(question, action = "Confirm") {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm" },
      h("p", {}, question),
      h(
        "form",
        { method: "dialog" },
        h("button", { value: "no", class: "quiet" }, "Cancel"),
        h("button", { value: "yes", autofocus: true }, action),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "yes");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Save a Blob as a file. */
export function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
