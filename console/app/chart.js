// A small line chart on a canvas: a few series over time, with a y axis and a legend. Sized
// to its box (and the screen's pixel ratio); colours from the page's CSS variables.

export class Chart {
  /** `series`: [{ label, color (a CSS variable name) }]; `unit`: text after y labels. */
  constructor(canvas, series, unit = "") {
    this.canvas = canvas;
    this.series = series;
    this.unit = unit;
    this.points = []; // [{ t (ms), values: [number | null] }]
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  set(points) {
    this.points = points;
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = c.clientWidth;
    const height = c.clientHeight;
    if (!width || !height) return;
    c.width = width * ratio;
    c.height = height * ratio;
    const g = c.getContext("2d");
    g.scale(ratio, ratio);
    const css = getComputedStyle(c);
    const color = (name) => css.getPropertyValue(name).trim() || "#888";
    g.font = "11px system-ui, sans-serif";
    const pad = { left: 48, right: 8, top: 18, bottom: 18 };
    const w = width - pad.left - pad.right;
    const hgt = height - pad.top - pad.bottom;
    const pts = this.points;
    let max = 0;
    for (const p of pts) for (const v of p.values) if (v !== null && v > max) max = v;
    max = nice(max || 1);
    const t0 = pts.length ? pts[0].t : 0;
    const t1 = pts.length ? pts[pts.length - 1].t : 1;
    const x = (t) => pad.left + (t1 > t0 ? ((t - t0) / (t1 - t0)) * w : w);
    const y = (v) => pad.top + hgt - (v / max) * hgt;
    // Grid and y labels.
    g.strokeStyle = color("--grid");
    g.fillStyle = color("--muted");
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      g.beginPath();
      g.moveTo(pad.left, y(v) + 0.5);
      g.lineTo(pad.left + w, y(v) + 0.5);
      g.stroke();
      g.fillText(label(v) + this.unit, 4, y(v) + 4);
    }
    if (pts.length) {
      const span = Math.round((t1 - t0) / 60000);
      g.fillText(span ? `last ${span} min` : "now", pad.left, height - 4);
    }
    // Lines.
    this.series.forEach((s, i) => {
      g.strokeStyle = color(s.color);
      g.lineWidth = 1.75;
      g.beginPath();
      let open = false;
      for (const p of pts) {
        const v = p.values[i];
        if (v === null || v === undefined) {
          open = false;
          continue;
        }
        if (open) g.lineTo(x(p.t), y(v));
        else g.moveTo(x(p.t), y(v));
        open = true;
      }
      g.stroke();
    });
    // Legend.
    let lx = pad.left;
    for (const s of this.series) {
      g.fillStyle = color(s.color);
      g.fillRect(lx, 5, 10, 3);
      g.fillStyle = color("--fg");
      g.fillText(s.label, lx + 14, 11);
      lx += g.measureText(s.label).width + 30;
    }
  }
}

/** A round number at or above `v`. */
function nice(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function label(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(v >= 1e4 ? 0 : 1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
