"""What scripts/bench and scripts/bench-scaling share: where the CPU went during a run (from
/proc), each run's figures, and SVG charts (no plotting library needed).

    python3 scripts/benchlib.py cpu RUN_DIR   # one CPU snapshot as JSON (before/after a run)
    python3 scripts/benchlib.py rss RUN_DIR   # each node's resident memory (MiB) as JSON
"""

import glob
import json
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count()
COMPONENTS = ("nodes", "rabbitmq", "postgres")


def _node_pids(run_dir):
    pids = {}
    for path in sorted(glob.glob(f"{run_dir}/node*.pid")):
        try:
            pids[os.path.basename(path)[:-4]] = int(open(path).read())
        except (OSError, ValueError):
            pass
    return pids


def _cpu_seconds(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return 0.0


def cpu_snapshot(run_dir):
    """CPU seconds used so far by the nodes, RabbitMQ and PostgreSQL, and the machine's busy
    time (user, nice, system, irq, softirq, steal)."""
    groups = dict.fromkeys(COMPONENTS, 0.0)
    nodes = set(_node_pids(run_dir).values())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = open(f"/proc/{pid}/comm").read().strip()
        except OSError:
            continue
        if int(pid) in nodes:
            groups["nodes"] += _cpu_seconds(pid)
        elif comm == "beam.smp":
            groups["rabbitmq"] += _cpu_seconds(pid)
        elif comm == "postgres":
            groups["postgres"] += _cpu_seconds(pid)
    f = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    groups["machine"] = (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / TICK
    return groups


def node_rss_mib(run_dir):
    """Each node's resident set (MiB)."""
    out = {}
    for name, pid in _node_pids(run_dir).items():
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    out[name] = int(line.split()[1]) / 1024
        except OSError:
            pass
    return out


def load_run(data, name):
    """A run's figures (`NAME.json` from `taskctl --json bench`) with the CPU it cost
    (`NAME.cpu0`/`NAME.cpu1` snapshots): µs per task per component, and how busy the machine
    was (% of all cores)."""
    r = json.load(open(f"{data}/{name}.json"))
    try:
        a = json.load(open(f"{data}/{name}.cpu0"))
        b = json.load(open(f"{data}/{name}.cpu1"))
    except OSError:
        a = b = None
    tasks = max(r["completed"], 1)
    run = {"throughput_per_s": r["throughput_per_s"], "p50_ms": r["latency_ms"]["p50"],
           "p99_ms": r["latency_ms"]["p99"], "errors": r["errors"],
           "first_error": r.get("first_error")}
    if a and b:
        run["cpu_us_per_task"] = {k: (b[k] - a[k]) / tasks * 1e6 for k in COMPONENTS}
        run["busy_percent"] = (b["machine"] - a["machine"]) / r["seconds"] / CORES * 100
    return run


def _ticks(most):
    """A round step (1, 2 or 5 times a power of ten) and how many steps cover `most`."""
    most = max(most, 1e-9) * 1.05
    base = 10 ** len(str(int(most / 6))) / 10
    step = next(m * base for m in (1, 2, 5, 10) if m * base * 6 >= most)
    return step, -int(-most // step)


def _fmt(v):
    return f"{v:,.0f}" if v >= 10 else f"{v:g}"


def svg_bars(title, groups, series, line=None, w=640, h=360):
    """Grouped bars: `groups` (labels), `series` [(label, color, values)], an optional
    dashed horizontal `line` (label, value)."""
    L, B, T = 70, 50, 40
    values = [v for _, _, vs in series for v in vs] + ([line[1]] if line else [])
    step, n = _ticks(max(values))
    top = step * n
    y = lambda v: h - B - (h - B - T) * v / top
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w/2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    for i in range(n + 1):
        v = step * i
        svg.append(f'<line x1="{L}" x2="{w-10}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{L-6}" y="{y(v)+4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    group = (w - L - 20) / len(groups)
    bar = group * 0.8 / len(series)
    for gi, label in enumerate(groups):
        x0 = L + 10 + gi * group
        for si, (_, color, vs) in enumerate(series):
            v = vs[gi]
            svg.append(f'<rect x="{x0 + si*bar:.1f}" y="{y(v):.1f}" width="{bar-2:.1f}" height="{h-B-y(v):.1f}" fill="{color}"/>')
        svg.append(f'<text x="{x0 + group*0.4:.1f}" y="{h-B+16}" text-anchor="middle">{label}</text>')
    legend = [(label, color, False) for label, color, _ in series]
    if line:
        yl = y(line[1])
        svg.append(f'<line x1="{L}" x2="{w-10}" y1="{yl:.1f}" y2="{yl:.1f}" stroke="#c33" stroke-dasharray="6,4"/>')
        legend.append((line[0], "#c33", True))
    svg += _legend(legend, L, h - 22, w)
    svg.append("</svg>")
    return "\n".join(svg)


def svg_lines(title, xs, series, y_label, w=640, h=360, log_y=False):
    """Lines over a log-scaled x axis (`xs`, e.g. concurrencies): `series`
    [(label, color, dashed, values)]; with `log_y` the y axis is logarithmic too."""
    import math
    L, B, T, R = 80, 50, 40, 20
    values = [v for *_, vs in series for v in vs if v and v > 0]
    if log_y:
        lo = 10 ** math.floor(math.log10(min(values)))
        hi = 10 ** math.ceil(math.log10(max(values)))
        ticks = []
        v = lo
        while v <= hi * 1.0001:
            ticks.append(v)
            v *= 10
        fy = lambda v: (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    else:
        step, n = _ticks(max(values))
        ticks = [step * i for i in range(n + 1)]
        fy = lambda v: v / (step * n)
    y = lambda v: h - B - (h - B - T) * fy(v)
    lx = [math.log10(x) for x in xs]
    x = lambda i: L + 10 + (w - L - R - 20) * (lx[i] - lx[0]) / max(lx[-1] - lx[0], 1e-9)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w/2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<text x="14" y="{(h-B+T)/2:.0f}" text-anchor="middle" transform="rotate(-90 14 {(h-B+T)/2:.0f})">{y_label}</text>']
    for v in ticks:
        svg.append(f'<line x1="{L}" x2="{w-R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{L-6}" y="{y(v)+4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    for i, c in enumerate(xs):
        svg.append(f'<text x="{x(i):.1f}" y="{h-B+16}" text-anchor="middle">c={c}</text>')
    for label, color, dashed, vs in series:
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs) if v and v > 0)
        dash = ' stroke-dasharray="6,4"' if dashed else ""
        svg.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for i, v in enumerate(vs):
            if v and v > 0:
                svg.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"/>')
    svg += _legend([(label, color, dashed) for label, color, dashed, _ in series], L, h - 22, w)
    svg.append("</svg>")
    return "\n".join(svg)


def _legend(entries, x0, y0, w=640):
    out = []
    # Each entry as wide as its label (about 7 px a character at 12 px), spread evenly.
    widths = [22 + 7 * len(label) for label, _, _ in entries]
    gap = max(10, (w - x0 - 10 - sum(widths)) / max(len(entries) - 1, 1))
    x = x0
    for (label, color, dashed), width in zip(entries, widths):
        if dashed:
            out.append(f'<line x1="{x}" x2="{x+18}" y1="{y0+6}" y2="{y0+6}" stroke="{color}" stroke-width="2" stroke-dasharray="6,4"/>')
        else:
            out.append(f'<rect x="{x}" y="{y0}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{x+22}" y="{y0+10}">{label}</text>')
        x += width + gap
    return out


if __name__ == "__main__":
    what, run_dir = sys.argv[1], sys.argv[2]
    if what == "cpu":
        print(json.dumps(cpu_snapshot(run_dir)))
    elif what == "rss":
        print(json.dumps(node_rss_mib(run_dir)))
    else:
        sys.exit(f"usage: {sys.argv[0]} cpu|rss RUN_DIR")
