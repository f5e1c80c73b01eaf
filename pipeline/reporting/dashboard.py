"""The dashboard: one self-contained HTML page (inline CSS, JS and SVG; no CDN,
works offline) with the closed-loop numbers at a glance.

The page carries its data as JSON (every `<` escaped, so no text from a lead
can close the script element) and draws the charts with a few lines of plain
JavaScript; labels are set as text, never as HTML.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from pipeline.adapters.warehouse.clickhouse import Warehouse
from pipeline.reporting.experiments import PROPORTIONS, experiment_report
from pipeline.reporting.reports import ReportInputs, ReportParams, Rows, run_report
from schemas.envelope import utcnow

PANELS: dict[str, tuple[str, str]] = {
    "funnel": ("funnel", "all"),
    "volume": ("sources", "channel"),
    "speed": ("speed-histogram", "all"),
    "speed_total": ("speed", "all"),
    "roi": ("money", "campaign"),
    "attribution": ("attribution", "channel"),
    "load": ("fairness", "queue"),
}
"""Dashboard panel → (report, --by)."""


def dashboard_data(
    warehouse: Warehouse, params: ReportParams, inputs: ReportInputs
) -> dict[str, Rows]:
    data = {
        panel: run_report(warehouse, report, ReportParams(by=by, since=params.since), inputs)
        for panel, (report, by) in PANELS.items()
    }
    data["experiments"] = experiment_rows(warehouse, inputs, utcnow())
    return data


def experiment_rows(warehouse: Warehouse, inputs: ReportInputs, now: datetime) -> Rows:
    """Every experiment that has started, each variant on each measure against the
    control (`leadflow experiments report`'s rows, the experiment named on each)."""
    shares = {measure for measure, *_ in PROPORTIONS}
    return [
        {"experiment": experiment.name, "share": row["measure"] in shares, **row}
        for experiment in inputs.experiments.experiments
        if experiment.start <= now
        for row in experiment_report(warehouse, experiment, inputs.answer_target_s)
    ]


def render_dashboard(data: dict[str, Rows], generated_at: datetime) -> str:
    payload = orjson.dumps({"generated_at": generated_at.isoformat(), **data}, default=str)
    safe = payload.decode().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return PAGE.replace("__DATA__", safe)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Leadflow – closed-loop dashboard</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1d2430; }
  header { padding: 16px 24px; background: #1d2430; color: #fff; }
  header h1 { margin: 0; font-size: 20px; }
  header p { margin: 4px 0 0; opacity: .7; }
  .tiles { display: flex; gap: 12px; padding: 16px 24px 0; flex-wrap: wrap; }
  .tile { background: #fff; border-radius: 8px; padding: 12px 16px; min-width: 150px;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  .tile b { display: block; font-size: 22px; }
  main { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr));
         gap: 16px; padding: 16px 24px 24px; }
  figure { margin: 0; background: #fff; border-radius: 8px; padding: 12px 16px;
           box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  figcaption { font-weight: 600; margin-bottom: 8px; }
  svg { width: 100%; height: auto; }
  svg text { font-size: 11px; fill: #1d2430; }
  .empty { color: #777; font-style: italic; }
  table { border-collapse: collapse; width: 100%; font-size: 12px; }
  th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #e4e7ec; }
</style>
</head>
<body>
<header>
  <h1>Leadflow – closed-loop dashboard</h1>
  <p id="generated"></p>
</header>
<section class="tiles" id="tiles"></section>
<main>
  <figure id="chart-funnel"><figcaption>Funnel: lead → won</figcaption></figure>
  <figure id="chart-volume"><figcaption>Leads by channel per day</figcaption></figure>
  <figure id="chart-speed"><figcaption>Speed to lead: inquiry → first contact</figcaption></figure>
  <figure id="chart-roi">
    <figcaption>ROI by lead-creating campaign ((revenue − cost) / cost)</figcaption>
  </figure>
  <figure id="chart-attribution">
    <figcaption>
      Won revenue by channel: seven rule-based and two data-driven attribution models (EUR)
    </figcaption>
  </figure>
  <figure id="chart-load">
    <figcaption>Rep load: share of leads against share of capacity</figcaption>
  </figure>
  <figure id="table-experiments">
    <figcaption>Experiments: each variant against the control (95 % intervals)</figcaption>
  </figure>
</main>
<script type="application/json" id="dashboard-data">__DATA__</script>
<script>
"use strict";
window.addEventListener("error", (e) => {
  document.body.dataset.errors = (document.body.dataset.errors || "") + e.message + "\\n";
});
const DATA = JSON.parse(document.getElementById("dashboard-data").textContent);
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2f6fed", "#f28c28", "#2bb673", "#d64545", "#8e5cd9", "#1fb5c9", "#c9a21f",
                "#7a8699", "#b0487a"];

function node(tag, attrs, parent, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  if (parent) parent.appendChild(el);
  return el;
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en");
  return String(Math.round(v * 100) / 100);
}

function empty(figure) {
  const p = document.createElement("p");
  p.className = "empty";
  p.textContent = "no data yet";
  figure.appendChild(p);
}

// Horizontal bars: one group per row, one bar per series (negative values go left).
function hbars(id, rows, series, format) {
  const figure = document.getElementById(id);
  if (!rows.length) return empty(figure);
  const W = 640, left = 200, right = 70, bar = 12, gap = 10;
  const legend = series.length > 1 ? 4 + 16 * Math.ceil(series.length / 5) : 0;  // rows of 5
  const groupH = series.length * bar + gap;
  const H = legend + rows.length * groupH + 4;
  const values = rows.flatMap((r) => r.values.map((v) => v || 0));
  const lo = Math.min(0, ...values), hi = Math.max(0, ...values);
  const span = hi - lo || 1;
  const x = (v) => left + ((v - lo) / span) * (W - left - right);
  const svg = node("svg", {viewBox: `0 0 ${W} ${H}`, "data-chart": id, role: "img"}, figure);
  if (legend) {
    series.forEach((s, i) => {
      const lx = 10 + (i % 5) * 125, ly = 4 + Math.floor(i / 5) * 16;
      node("rect", {x: lx, y: ly, width: 10, height: 10, fill: COLORS[i % COLORS.length]}, svg);
      node("text", {x: lx + 14, y: ly + 9}, svg, s);
    });
  }
  node("line", {x1: x(0), x2: x(0), y1: legend, y2: H, stroke: "#bbb"}, svg);
  rows.forEach((r, g) => {
    const top = legend + g * groupH;
    const label = r.label.length > 32 ? r.label.slice(0, 31) + "…" : r.label;
    node("text", {x: left - 6, y: top + groupH / 2, "text-anchor": "end"}, svg, label);
    r.values.forEach((v, i) => {
      const val = v || 0, y = top + i * bar;
      node("rect", {x: Math.min(x(0), x(val)), y: y, width: Math.max(Math.abs(x(val) - x(0)), 1),
                    height: bar - 2, fill: COLORS[i % COLORS.length], class: "bar"}, svg);
      node("text", {x: Math.max(x(0), x(val)) + 4, y: y + bar - 3}, svg, format(v));
    });
  });
}

// Vertical stacked bars over time: one stack per period, one colour per channel.
function stacked(id, rows) {
  const figure = document.getElementById(id);
  if (!rows.length) return empty(figure);
  const periods = [...new Set(rows.map((r) => r.period))].sort();
  const channels = [...new Set(rows.map((r) => r.channel))].sort();
  const count = {};
  rows.forEach((r) => { count[r.period + "|" + r.channel] = r.leads; });
  const totals = periods.map((p) => channels.reduce((t, c) => t + (count[p + "|" + c] || 0), 0));
  const W = 640, H = 260, left = 40, bottom = 40, top = 24 + 14 * Math.ceil(channels.length / 4);
  const max = Math.max(...totals, 1);
  const step = (W - left - 10) / periods.length;
  const y = (v) => H - bottom - (v / max) * (H - bottom - top);
  const svg = node("svg", {viewBox: `0 0 ${W} ${H}`, "data-chart": id, role: "img"}, figure);
  channels.forEach((c, i) => {
    const lx = left + (i % 4) * 150, ly = 6 + Math.floor(i / 4) * 14;
    node("rect", {x: lx, y: ly, width: 10, height: 10, fill: COLORS[i % 8]}, svg);
    node("text", {x: lx + 14, y: ly + 9}, svg, c);
  });
  node("text", {x: left - 6, y: y(max) + 4, "text-anchor": "end"}, svg, fmt(max));
  node("line", {x1: left, x2: W - 10, y1: y(0), y2: y(0), stroke: "#bbb"}, svg);
  periods.forEach((p, i) => {
    let base = 0;
    channels.forEach((c, k) => {
      const n = count[p + "|" + c] || 0;
      if (!n) return;
      node("rect", {x: left + i * step + 2, y: y(base + n), width: Math.max(step - 4, 1),
                    height: y(base) - y(base + n), fill: COLORS[k % 8], class: "bar"}, svg);
      base += n;
    });
    if (periods.length <= 31 && (periods.length <= 10 || i % 2 === 0)) {
      node("text", {x: left + i * step + step / 2, y: H - bottom + 14, "text-anchor": "middle"},
           svg, p.slice(5));
    }
  });
}

// A table of text cells (set as text, never as HTML).
function table(id, rows, columns) {
  const figure = document.getElementById(id);
  if (!rows.length) return empty(figure);
  const t = document.createElement("table");
  t.dataset.table = id;
  const head = t.createTHead().insertRow();
  columns.forEach(([label]) => {
    const th = document.createElement("th");
    th.textContent = label;
    head.appendChild(th);
  });
  const body = t.createTBody();
  rows.forEach((r) => {
    const tr = body.insertRow();
    columns.forEach(([, value]) => { tr.insertCell().textContent = value(r); });
  });
  figure.appendChild(t);
}

function tile(label, value) {
  const div = document.createElement("div");
  div.className = "tile";
  const b = document.createElement("b");
  b.textContent = value;
  div.appendChild(b);
  div.appendChild(document.createTextNode(label));
  document.getElementById("tiles").appendChild(div);
}

document.getElementById("generated").textContent = "generated " + DATA.generated_at;
const total = DATA.funnel[0] || {};
const speed = DATA.speed_total[0] || {};
const revenue = DATA.roi.reduce((t, r) => t + (r.revenue_eur || 0), 0);
const cost = DATA.roi.reduce((t, r) => t + (r.cost_eur || 0), 0);
tile("leads", fmt(total.lead || 0));
tile("won deals", fmt(total.won || 0));
tile("revenue won (EUR)", fmt(revenue));
tile("ROI", cost ? fmt((revenue - cost) / cost) : "–");
tile("contacted within 5 min", speed.contacted_within_5_min === undefined ? "–"
     : Math.round(speed.contacted_within_5_min * 100) + " %");
tile("median minutes to contact", fmt(speed.median_minutes_to_contact));

const STAGES = ["lead", "mql", "sql", "routed", "contacted", "opportunity", "won"];
hbars("chart-funnel", DATA.funnel.length ? STAGES.map((s) => ({label: s, values: [total[s]]})) : [],
      ["leads"], fmt);
stacked("chart-volume", DATA.volume);
hbars("chart-speed", DATA.speed.map((r) => ({label: r.bucket, values: [r.leads]})),
      ["routed leads"], fmt);
hbars("chart-roi", DATA.roi.map((r) => ({label: r.channel + " / " + r.campaign, values: [r.roi]})),
      ["ROI"], (v) => (v === null || v === undefined ? "no cost" : fmt(v)));
const MODELS = ["first_touch", "lead_creation", "last_touch", "linear", "u_shaped", "w_shaped",
                "time_decay", "markov", "shapley"];
hbars("chart-attribution",
      DATA.attribution.map((r) => ({label: r.channel, values: MODELS.map((m) => r[m])})),
      MODELS, fmt);
hbars("chart-load",
      DATA.load.map((r) => ({label: r.queue + " / " + r.rep,
                             values: [r.share_of_leads, r.share_of_capacity]})),
      ["share of leads", "share of capacity"], (v) => Math.round((v || 0) * 100) + " %");
const measured = (r, v) => (v === null || v === undefined ? "–"
                           : r.share ? Math.round(v * 1000) / 10 + " %" : fmt(v));
const interval = (r, lo, hi) => (lo === null || lo === undefined ? ""
                                 : " (" + measured(r, lo) + " – " + measured(r, hi) + ")");
table("table-experiments", DATA.experiments, [
  ["experiment", (r) => r.experiment],
  ["measure", (r) => r.label],
  ["variant", (r) => r.variant],
  ["leads", (r) => fmt(r.leads)],
  ["value", (r) => measured(r, r.value) + interval(r, r.ci_low, r.ci_high)],
  ["difference", (r) => r.difference === null ? "" : (r.share
      ? Math.round(r.difference * 1000) / 10 + " points" : fmt(r.difference))],
  ["", (r) => r.statement],
]);
document.body.dataset.rendered = document.querySelectorAll("svg[data-chart]").length;
</script>
</body>
</html>
"""
