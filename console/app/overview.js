// Overview (admins): the fleet, live. Asks for /v1/overview every second (any node answers
// for all of them) and draws throughput and latency over the last minutes.

import { get, call } from "./api.js";
import { h, fill, problem, since } from "./ui.js";
import { Chart } from "./chart.js";

const EVERY_MS = 1000;

export function render(main) {
  const tiles = h("div", { class: "tiles" });
  const throughputCanvas = h("canvas", { class: "chart", role: "img", "aria-label": "Tasks finished per second" });
  const latencyCanvas = h("canvas", { class: "chart", role: "img", "aria-label": "Latency p50 and p99" });
  const nodes = h("div", { class: "scroll" });
  const workers = h("div", { class: "scroll", "data-test": "workers" });
  const paused = h("div", { "data-test": "paused" });
  const what = h("select", { "aria-label": "Lane or kind" }, h("option", { value: "lane" }, "lane"), h("option", { value: "kind" }, "kind"));
  const name = h("input", { "aria-label": "Name", placeholder: "slow, sleep, …", required: true, size: 12 });
  const pauseForm = h("form", { class: "row", async onsubmit(e) {
    e.preventDefault();
    try {
      showPaused(await call("PUT", `/v1/paused/${what.value}/${encodeURIComponent(name.value.trim())}`));
      name.value = "";
    } catch (err) {
      fill(paused, problem(err));
    }
  } }, "Pause ", what, name, h("button", { type: "submit" }, "Pause"));
  const showPaused = (p) => fill(paused, p.paused.length === 0
    ? h("p", { class: "muted" }, "Nothing is paused.")
    : h("ul", {}, p.paused.map((target) => h("li", {}, h("span", { class: "badge s-paused" }, target), " ",
      h("button", { class: "quiet", async onclick() {
        const [w, n] = target.split(":");
        showPaused(await call("DELETE", `/v1/paused/${w}/${encodeURIComponent(n)}`));
      } }, "Resume")))));
  const status = h("div", { "aria-live": "polite" });
  fill(
    main,
    h("h1", {}, "Overview"),
    status,
    tiles,
    h("div", { class: "charts" },
      h("section", { class: "card" }, h("h2", {}, "Throughput"), throughputCanvas),
      h("section", { class: "card" }, h("h2", {}, "Latency, acceptance to outcome"), latencyCanvas)),
    h("section", { class: "card" }, h("h2", {}, "Nodes"), nodes),
    h("section", { class: "card" }, h("h2", {}, "Workers"), workers),
    h("section", { class: "card" }, h("h2", {}, "Paused lanes and kinds"), paused, pauseForm),
  );
  const throughput = new Chart(throughputCanvas, [
    { label: "finished/s", color: "--accent" },
    { label: "failed/s", color: "--bad" },
  ]);
  const latency = new Chart(latencyCanvas, [
    { label: "p50", color: "--accent" },
    { label: "p99", color: "--warn" },
  ], " ms");

  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      const o = await get("/v1/overview");
      if (stopped) return;
      fill(status);
      draw(o, tiles, nodes);
      drawWorkers(o, workers);
      showPaused(await get("/v1/paused"));
      const points = o.seconds.map((s) => ({ t: Date.parse(s.at), values: [s.finished, s.failed] }));
      throughput.set(points);
      latency.set(o.seconds.map((s) => ({ t: Date.parse(s.at), values: [s.p50_ms ?? null, s.p99_ms ?? null] })));
    } catch (err) {
      if (!stopped) fill(status, problem(err));
    }
    if (!stopped) timer = setTimeout(tick, EVERY_MS);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function tile(label, value, test, detail) {
  return h("div", { class: "tile" }, h("span", { class: "muted" }, label), h("strong", { "data-test": test }, value), detail && h("small", { class: "muted" }, detail));
}

function draw(o, tiles, nodes) {
  // The last 10 whole seconds (the current one is still being counted).
  const recent = o.seconds.slice(-11, -1);
  const finished = recent.reduce((a, s) => a + s.finished, 0);
  const rate = recent.length ? finished / recent.length : 0;
  const last = [...o.seconds].reverse().find((s) => s.p50_ms !== undefined);
  const failed = o.seconds.reduce((a, s) => a + s.failed, 0);
  const up = o.nodes.filter((n) => n.up);
  const inFlight = up.reduce((a, n) => a + n.in_flight, 0);
  const ms = (v) => (v === undefined ? "–" : v < 10 ? v.toFixed(2) + " ms" : Math.round(v) + " ms");
  fill(
    tiles,
    tile("Throughput", `${rate.toFixed(rate < 10 ? 1 : 0)}/s`, "throughput", "finished, last 10 s"),
    tile("Latency p50", ms(last?.p50_ms), "p50"),
    tile("Latency p99", ms(last?.p99_ms), "p99"),
    tile("In flight", inFlight, "in-flight"),
    tile("Failed", failed, "failed", "last 5 min"),
    ...o.queues.map((q) => tile(`Queue ${q.lane}`, q.ready, `queue-${q.lane}`, "waiting")),
    tile("Nodes up", `${up.length}/${o.nodes.length}`, "nodes-up"),
  );
  const check = (ok) => h("span", { class: ok ? "ok" : "bad" }, ok ? "up" : "down");
  fill(
    nodes,
    h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["Node", "State", "Broker", "Database", "Store", "Version", "Up for", "Workers busy", "In flight", "Connections", "Restarts"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, o.nodes.map((n) =>
        h("tr", { "data-node": n.name },
          h("th", { scope: "row" }, n.name, n.name === o.node ? h("small", { class: "muted" }, " (this one)") : null),
          h("td", {}, n.up ? (n.draining ? h("span", { class: "warn" }, "draining") : check(true)) : h("span", { class: "bad" }, `silent ${since(n.seen_at)}`)),
          h("td", {}, check(n.broker)),
          h("td", {}, check(n.database)),
          h("td", {}, check(n.store)),
          h("td", {}, n.version),
          h("td", {}, since(n.started_at)),
          h("td", {}, n.lanes.map((l) => `${l.lane} ${l.busy}/${l.workers}`).join(", ")),
          h("td", {}, n.in_flight),
          h("td", {}, n.connections),
          h("td", {}, n.restarts),
        )))));
}

// Workers of external kinds connected to each node that is up (WORK, or an HTTP poll while it
// holds tasks).
function drawWorkers(o, workers) {
  const rows = o.nodes.filter((n) => n.up).flatMap((n) => (n.workers ?? []).map((w) => ({ node: n.name, ...w })));
  if (rows.length === 0) {
    fill(workers, h("p", { class: "muted" }, "No worker is connected. Workers run the kinds no node builds in: see docs/workers.md."));
    return;
  }
  fill(
    workers,
    h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["Node", "Token", "Kinds", "Slots", "Busy", "Connected"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((w) =>
        h("tr", { "data-worker": w.node },
          h("td", {}, w.node),
          h("td", {}, w.who),
          h("td", { "data-field": "kinds" }, w.kinds.join(", ")),
          h("td", { "data-field": "slots" }, w.slots),
          h("td", { "data-field": "busy" }, w.busy),
          h("td", {}, since(w.since)),
        )))));
}
