// snas dashboard: polls the JSON API and draws the page with DOM calls and inline SVG.
// Text from the store (search names, trial ids, node ids, errors) only ever goes into
// textContent or attribute values through setAttribute; nothing is parsed as HTML.
"use strict";

const POLL_MS = 3000;
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2f6fde", "#e4572e", "#29a35a", "#9b5de5", "#f4a259", "#17becf",
                 "#d62780", "#8c564b", "#7f7f7f", "#bcbd22"];

const state = {
  selected: null,      // search name
  search: null,        // /api/search/<name> payload
  epochs: null,        // /api/search/<name>/epochs payload
  graphTrial: null,    // trial chosen for the wiring graph (null: the best with a graph)
  graphKey: null,      // what the drawn graph shows, to refetch only when it changes
  seen: {},            // endpoint -> last JSON text, to redraw only on change
};

// ---- DOM helpers -----------------------------------------------------------------------

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== false) node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function tip(node, text) {  // a hover tooltip on an SVG element
  node.append(svg("title", {}, text));
  return node;
}

function finite(v) { return typeof v === "number" && Number.isFinite(v); }

function fmt(v, digits = 4) { return finite(v) ? v.toFixed(digits) : "-"; }

function fmtG(v) { return finite(v) ? (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 && v !== 0
                                       ? v.toExponential(2) : v.toPrecision(3)) : "-"; }

function fmtInt(v) { return finite(v) ? Math.round(v).toLocaleString("en-US") : "-"; }

function api(...parts) { return "/api/" + parts.map(encodeURIComponent).join("/"); }

async function getJSON(url) {
  const response = await fetch(url, {cache: "no-store", headers: {Accept: "application/json"}});
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const err = new Error(body && body.error ? body.error : `${response.status} ${url}`);
    err.status = response.status;
    throw err;
  }
  return body;
}

// Returns the payload if it changed since the last call for this key, else null.
async function fetchChanged(key, url) {
  const data = await getJSON(url);
  const text = JSON.stringify(data);
  if (state.seen[key] === text) return null;
  state.seen[key] = text;
  return data;
}

function showError(message) {
  const p = $("error");
  p.textContent = message || "";
  p.hidden = !message;
}

// ---- Searches list ---------------------------------------------------------------------

function selectedFromHash() {
  const m = /^#search=(.*)$/.exec(window.location.hash);
  if (!m) return null;
  try { return decodeURIComponent(m[1]); } catch (e) { return null; }
}

function renderSearches(payload) {
  $("store").textContent = "store " + payload.store;
  const list = $("searches");
  list.replaceChildren();
  $("no-searches").hidden = payload.searches.length > 0;
  for (const s of payload.searches) {
    const counts = s.trial_counts || {};
    const done = (counts.terminated || 0) + (counts.stopped || 0) + (counts.error || 0);
    const a = el("a", {href: "#search=" + encodeURIComponent(s.name), "data-name": s.name},
                 el("span", {class: "name"}, s.name),
                 el("span", {class: "sub muted"},
                    `${s.status} · ${s.searcher} · ${done}/${s.num_samples} trials · best ` +
                    `${s.metric} ${fmt(s.best_value)}`));
    if (s.name === state.selected) a.classList.add("selected");
    list.append(el("li", {}, a));
  }
}

// ---- Charts ----------------------------------------------------------------------------

function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  return ticks;
}

function extent(values, pad = 0.05) {
  const v = values.filter(finite);
  if (!v.length) return [0, 1];
  let lo = Math.min(...v), hi = Math.max(...v);
  if (lo === hi) { const d = Math.abs(lo) * 0.05 || 0.5; lo -= d; hi += d; }
  const span = hi - lo;
  return [lo - span * pad, hi + span * pad];
}

// A plot frame with axes; returns {root, x, y} where x/y map data to pixels.
function frame(container, {width = 520, height = 300, xDomain, yDomain, xLog = false,
                           xLabel = "", yLabel = "", xFormat = fmtG, yFormat = fmtG}) {
  const m = {left: 58, right: 14, top: 12, bottom: 42};
  const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, role: "img"});
  const tx = xLog ? Math.log10 : (v) => v;
  const [x0, x1] = xDomain.map(tx);
  const [y0, y1] = yDomain;
  const x = (v) => m.left + (tx(v) - x0) / (x1 - x0) * (width - m.left - m.right);
  const y = (v) => height - m.bottom - (v - y0) / (y1 - y0) * (height - m.top - m.bottom);
  const grid = svg("g", {class: "grid"});
  const axis = svg("g", {class: "axis"});
  let xt = xLog ? logTicks(xDomain[0], xDomain[1]) : niceTicks(xDomain[0], xDomain[1]);
  xt = xt.filter((t) => t >= xDomain[0] && t <= xDomain[1]);
  for (const t of xt) {
    grid.append(svg("line", {x1: x(t), x2: x(t), y1: m.top, y2: height - m.bottom}));
    axis.append(svg("text", {x: x(t), y: height - m.bottom + 15, "text-anchor": "middle"},
                    xFormat(t)));
  }
  for (const t of niceTicks(y0, y1).filter((t) => t >= y0 && t <= y1)) {
    grid.append(svg("line", {x1: m.left, x2: width - m.right, y1: y(t), y2: y(t)}));
    axis.append(svg("text", {x: m.left - 6, y: y(t) + 4, "text-anchor": "end"}, yFormat(t)));
  }
  axis.append(svg("line", {x1: m.left, x2: width - m.right, y1: height - m.bottom,
                           y2: height - m.bottom}));
  axis.append(svg("line", {x1: m.left, x2: m.left, y1: m.top, y2: height - m.bottom}));
  axis.append(svg("text", {class: "label", x: (m.left + width - m.right) / 2, y: height - 6,
                           "text-anchor": "middle"}, xLabel));
  axis.append(svg("text", {class: "label", x: 12, y: (m.top + height - m.bottom) / 2,
                           "text-anchor": "middle",
                           transform: `rotate(-90 12 ${(m.top + height - m.bottom) / 2})`},
                  yLabel));
  root.append(grid, axis);
  container.replaceChildren(root);
  return {root, x, y, m, width, height};
}

function logTicks(lo, hi) {
  const ticks = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const f of [1, 2, 5]) ticks.push(f * Math.pow(10, e));
  }
  const inside = ticks.filter((t) => t >= lo && t <= hi);
  return inside.length >= 2 ? inside : niceTicks(lo, hi);
}

function emptyChart(container, message) {
  const root = svg("svg", {viewBox: "0 0 520 80", role: "img"});
  root.append(svg("text", {class: "empty", x: 260, y: 45, "text-anchor": "middle"}, message));
  container.replaceChildren(root);
}

function trialColor(trialId) {
  const trials = state.search ? state.search.trials : [];
  const order = trials.map((t) => t.trial_id).sort();
  const i = order.indexOf(trialId);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

function drawScatter(data) {
  const box = $("chart-scatter");
  const metric = data.metric;
  const yKey = /accuracy/.test(metric) ? metric : "val_accuracy";
  const pts = data.trials.filter((t) => finite(t.active_weights) && finite(t[yKey]));
  if (!pts.length) { emptyChart(box, "no trial has reported yet"); return; }
  const xs = pts.map((t) => t.active_weights);
  const xLog = Math.max(...xs) / Math.max(1, Math.min(...xs)) > 20;
  let xDomain = extent(xs, 0.08);
  if (xLog) xDomain = [Math.min(...xs) / 1.3, Math.max(...xs) * 1.3];
  const f = frame(box, {xDomain, yDomain: extent(pts.map((t) => t[yKey]), 0.1), xLog,
                        xLabel: "active weights" + (xLog ? " (log scale)" : ""),
                        yLabel: yKey, xFormat: (v) => (Number.isInteger(v) ? fmtInt(v) : fmtG(v)),
                        yFormat: (v) => v.toFixed(2)});
  const base = data.trials.find((t) => t.trial_id === data.baseline);
  if (base && finite(base[yKey])) {
    const yb = f.y(base[yKey]);
    f.root.append(svg("line", {x1: f.m.left, x2: f.width - f.m.right, y1: yb, y2: yb,
                               stroke: "#9a6700", "stroke-dasharray": "4 3"}));
    f.root.append(svg("text", {x: f.width - f.m.right - 4, y: yb - 4, "text-anchor": "end",
                               fill: "#9a6700"}, "dense baseline"));
  }
  const best = data.trials.find((t) => t.rank === 1);
  for (const t of pts) {
    const cx = f.x(t.active_weights), cy = f.y(t[yKey]);
    const label = `${t.trial_id}${t.is_baseline ? " (dense baseline)" : ""}\n` +
                  `${yKey} ${fmt(t[yKey])}, test ${fmt(t.test_accuracy)}\n` +
                  `active weights ${fmtInt(t.active_weights)}, ${t.status}, ${t.epochs} epochs`;
    let mark;
    if (t.is_baseline) {
      mark = svg("rect", {x: cx - 6, y: cy - 6, width: 12, height: 12, fill: "#f4a259",
                          stroke: "#9a6700", "stroke-width": 1.5, class: "baseline-point"});
    } else {
      mark = svg("circle", {cx, cy, r: t === best ? 7 : 5, fill: trialColor(t.trial_id),
                            "fill-opacity": t.status === "terminated" ? 0.9 : 0.45,
                            stroke: t === best ? "#111" : "#fff", "stroke-width": 1.5,
                            class: "trial-point"});
    }
    f.root.append(tip(mark, label));
  }
}

function densityColor(d) {  // 0 -> pale, 1 -> deep blue
  const v = finite(d) ? Math.max(0, Math.min(1, d)) : 0;
  const mix = (a, b) => Math.round(a + (b - a) * v);
  return `rgb(${mix(240, 23)},${mix(244, 63)},${mix(250, 160)})`;
}

function drawHeatmap(data) {
  const box = $("chart-heatmap");
  const ranked = data.trials.filter((t) => t.rank !== null && Array.isArray(t.density));
  const rows = ranked.slice(0, 8);
  const base = data.trials.find((t) => t.trial_id === data.baseline);
  if (base && !rows.includes(base) && Array.isArray(base.density)) rows.push(base);
  if (!rows.length) { emptyChart(box, "no ranked trial yet"); return; }
  const nLayers = Math.max(...rows.map((t) => t.density.length));
  const names = Array.from({length: nLayers}, (_, i) => data.layers[i] || `layer ${i}`);
  const left = 150, top = 16, cellH = 24, bottom = 110;
  const width = 520, cellW = Math.max(18, (width - left - 10) / nLayers);
  const height = top + rows.length * cellH + bottom;
  const root = svg("svg", {viewBox: `0 0 ${Math.max(width, left + nLayers * cellW + 10)} ${height}`,
                           role: "img"});
  rows.forEach((t, r) => {
    const y = top + r * cellH;
    const label = (t.rank ? `#${t.rank} ` : "") + t.trial_id + (t.is_baseline ? " (dense)" : "");
    root.append(svg("text", {x: left - 6, y: y + cellH / 2 + 4, "text-anchor": "end"},
                    label.length > 24 ? label.slice(0, 23) + "…" : label));
    for (let i = 0; i < nLayers; i++) {
      const d = t.density.length === 1 ? t.density[0] : t.density[i];
      const x = left + i * cellW;
      root.append(tip(svg("rect", {x, y, width: cellW - 1, height: cellH - 1,
                                   fill: densityColor(d), class: "cell"}),
                      `${t.trial_id}, ${names[i]}: density ${fmt(d, 3)}`));
      if (cellW >= 30) {
        root.append(svg("text", {x: x + cellW / 2, y: y + cellH / 2 + 4, "text-anchor": "middle",
                                 fill: finite(d) && d > 0.55 ? "#fff" : "#1d2330"},
                        fmt(d, 2)));
      }
    }
  });
  names.forEach((n, i) => {
    const x = left + i * cellW + cellW / 2, y = top + rows.length * cellH + 8;
    root.append(svg("text", {x, y, "text-anchor": "end", transform: `rotate(-40 ${x} ${y})`,
                             class: "label"}, n.length > 24 ? "…" + n.slice(-23) : n));
  });
  box.replaceChildren(root);
}

function drawCurves(boxId, data, epochs, key, label) {
  const box = $(boxId);
  const series = [];
  for (const t of data.trials) {
    const c = epochs.trials[t.trial_id];
    if (!c || !c.epoch || !c[key]) continue;
    const points = c.epoch.map((e, i) => [e, c[key][i]]).filter((p) => finite(p[0]) && finite(p[1]));
    if (points.length) series.push({t, points});
  }
  if (!series.length) { emptyChart(box, `no ${key} recorded yet`); return; }
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const f = frame(box, {xDomain: [Math.min(...xs, 1) - 0.2, Math.max(...xs, 2) + 0.2],
                        yDomain: extent(all.map((p) => p[1]), 0.08), xLabel: "epoch",
                        yLabel: label, xFormat: (v) => (Number.isInteger(v) ? String(v) : ""),
                        yFormat: key.startsWith("egf") ? fmtG : (v) => v.toFixed(2)});
  for (const {t, points} of series) {
    const chosen = t.trial_id === state.graphTrial || (state.graphTrial === null && t.rank === 1);
    const d = points.map((p, i) => `${i ? "L" : "M"}${f.x(p[0]).toFixed(1)},${f.y(p[1]).toFixed(1)}`)
      .join(" ");
    const line = svg("path", {d, fill: "none", stroke: t.is_baseline ? "#9a6700" : trialColor(t.trial_id),
                              "stroke-width": chosen ? 3 : 1.5,
                              "stroke-dasharray": t.is_baseline ? "5 3" : null,
                              "stroke-opacity": chosen || t.is_baseline ? 1 : 0.7,
                              class: "curve"});
    f.root.append(tip(line, `${t.trial_id}${t.is_baseline ? " (dense baseline)" : ""}: ` +
                            `${key} ${points.map((p) => fmtG(p[1])).join(", ")}`));
    const last = points[points.length - 1];
    f.root.append(tip(svg("circle", {cx: f.x(last[0]), cy: f.y(last[1]), r: 2.5,
                                     fill: t.is_baseline ? "#9a6700" : trialColor(t.trial_id)}),
                      t.trial_id));
  }
}

// ---- Wiring graph ----------------------------------------------------------------------

function graphTrialId() {
  const data = state.search;
  if (!data) return null;
  const withGraph = data.trials.filter((t) => t.has_graph);
  if (state.graphTrial && withGraph.some((t) => t.trial_id === state.graphTrial)) {
    return state.graphTrial;
  }
  return withGraph.length ? withGraph[0].trial_id : null;  // ranked: the best with a graph
}

function renderGraphChoice(data) {
  const select = $("graph-choice");
  const chosen = graphTrialId();
  select.replaceChildren();
  for (const t of data.trials.filter((t) => t.has_graph)) {
    const text = (t.rank ? `#${t.rank} ` : "") + t.trial_id + (t.is_baseline ? " (dense)" : "");
    const option = el("option", {value: t.trial_id}, text);
    option.selected = t.trial_id === chosen;
    select.append(option);
  }
  select.disabled = !select.options.length;
}

async function refreshGraph() {
  const name = state.selected;
  const trial = graphTrialId();
  const key = JSON.stringify([name, trial]);
  if (key === state.graphKey) return;
  state.graphKey = key;
  const box = $("chart-graph");
  if (!trial) {
    $("graph-note").textContent = "";
    emptyChart(box, "no trial has a wiring graph yet (written when a trial ends)");
    return;
  }
  try {
    const g = await getJSON(api("search", name, "graph", trial));
    if (state.graphKey !== key) return;  // the user chose another meanwhile
    drawGraph(box, g);
  } catch (e) {
    state.graphKey = null;
    emptyChart(box, "cannot load the graph: " + e.message);
  }
}

function drawGraph(box, g) {
  const s = g.statistics || {};
  const parts = [`${fmtInt(g.total_nodes)} nodes, ${fmtInt(g.total_edges)} edges`,
                 g.graph_level ? `${g.graph_level}-level` : null,
                 `columns by ${g.layout}`];
  if (finite(s.active_weights)) parts.push(`active weights ${fmtInt(s.active_weights)}`);
  if (finite(s.dead_neurons)) parts.push(`dead neurons ${fmtInt(s.dead_neurons)}`);
  if (g.capped) parts.push(`drawing ${fmtInt(g.drawn_edges)} of ${fmtInt(g.total_edges)} edges ` +
                           `(every ${Math.ceil(g.total_edges / Math.max(1, g.drawn_edges))}th)`);
  $("graph-note").textContent = "— " + parts.filter(Boolean).join("; ");
  if (!g.nodes.length) { emptyChart(box, "the graph is empty"); return; }
  const width = 1000, height = 420, m = {left: 40, right: 40, top: 20, bottom: 30};
  const cols = Math.max(1, g.columns - 1);
  const px = (n) => m.left + (g.columns > 1 ? n.x / cols : 0.5) * (width - m.left - m.right);
  const py = (n) => m.top + n.y * (height - m.top - m.bottom);
  const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", class: "graph"});
  const edges = svg("g", {stroke: "#2f6fde", "stroke-opacity": g.edges.length > 500 ? 0.12 : 0.35,
                          "stroke-width": g.edges.length > 500 ? 0.6 : 1.2});
  const labelled = g.edges.length <= 40;
  for (const [s0, t0, density] of g.edges) {
    const a = g.nodes[s0], b = g.nodes[t0];
    edges.append(svg("line", {x1: px(a).toFixed(1), y1: py(a).toFixed(1),
                              x2: px(b).toFixed(1), y2: py(b).toFixed(1)}));
    if (labelled && finite(density)) {
      root.append(svg("text", {x: (px(a) + px(b)) / 2, y: (py(a) + py(b)) / 2 - 6,
                               "text-anchor": "middle", class: "label"},
                      `density ${fmt(density, 3)}`));
    }
  }
  root.append(edges);
  const r = g.nodes.length > 600 ? 1.5 : g.nodes.length > 150 ? 2.5 : 5;
  const nodes = svg("g", {fill: "#1d2330"});
  for (const n of g.nodes) nodes.append(tip(svg("circle", {cx: px(n), cy: py(n), r}), n.id));
  root.append(nodes);
  (g.column_sizes || []).forEach((size, i) => {
    root.append(svg("text", {x: px({x: i}), y: height - 8, "text-anchor": "middle",
                             class: "label"}, `${size}`));
  });
  if (g.nodes.length <= 12) {
    for (const n of g.nodes) {
      root.append(svg("text", {x: px(n), y: py(n) - 9, "text-anchor": "middle"}, n.id));
    }
  }
  box.replaceChildren(root);
}

// ---- Trial table -----------------------------------------------------------------------

function densityBars(density) {
  const n = density.length, w = Math.min(10, Math.max(3, 90 / n)), h = 18;
  const root = svg("svg", {class: "density", width: n * w, height: h,
                           viewBox: `0 0 ${n * w} ${h}`});
  density.forEach((d, i) => {
    const bh = Math.max(1, (finite(d) ? d : 0) * h);
    root.append(svg("rect", {x: i * w, y: h - bh, width: w - 1, height: bh, fill: "#2f6fde"}));
  });
  return root;
}

function renderTable(data) {
  const metric = data.metric;
  const cols = [["rank", ""], ["trial", "text"], ["status", "text"], ["epochs", ""],
                [metric, ""], ["test_accuracy", ""], ["vs dense", ""], ["active weights", ""],
                ["egf_1", ""], ["egf_2", ""], ["density vector", "text"]];
  if (metric !== "val_accuracy") cols.splice(5, 0, ["val_accuracy", ""]);
  const confirmed = data.trials.some((t) => finite(t.confirmed_test_accuracy));
  if (confirmed) cols.splice(5, 0, ["confirmed test (mean ± sd)", ""]);
  const head = el("tr", {});
  for (const [c, cls] of cols) head.append(el("th", {class: cls || null, scope: "col"}, c));
  $("trials").tHead.replaceChildren(head);
  const base = data.trials.find((t) => t.trial_id === data.baseline);
  const baseValue = base ? base[metric] : null;
  const chosen = graphTrialId();
  const body = $("trials").tBodies[0];
  body.replaceChildren();
  for (const t of data.trials) {
    const delta = t.is_baseline ? "dense"
      : finite(t[metric]) && finite(baseValue) ? (t[metric] - baseValue >= 0 ? "+" : "") +
        (t[metric] - baseValue).toFixed(4) : "-";
    const density = Array.isArray(t.density) ? t.density : [];
    const cells = {
      "rank": t.rank === null ? "-" : t.rank,
      "trial": t.trial_id,
      "status": t.status,
      "epochs": t.epochs,
      [metric]: fmt(t[metric]) + (t.near_best ? " ~" : ""),
      "confirmed test (mean ± sd)": finite(t.confirmed_test_accuracy)
        ? fmt(t.confirmed_test_accuracy) + (finite(t.confirmed_sd) ? " ± " + fmt(t.confirmed_sd) : "")
        : "-",
      "val_accuracy": fmt(t.val_accuracy),
      "test_accuracy": fmt(t.test_accuracy),
      "vs dense": delta,
      "active weights": fmtInt(t.active_weights),
      "egf_1": fmtG(t.egf_1),
      "egf_2": fmtG(t.egf_2),
    };
    const tr = el("tr", {"data-trial": t.trial_id});
    if (t.is_baseline) tr.classList.add("baseline");
    if (t.rank === 1) tr.classList.add("best");
    if (t.trial_id === chosen) tr.classList.add("chosen");
    for (const [c, cls] of cols) {
      if (c === "density vector") {
        const text = density.map((d) => fmt(d, 2)).join(" ");
        tr.append(el("td", {class: "text", title: text},
                     density.length ? densityBars(density) : null, " ",
                     density.length > 8 ? text.slice(0, 40) + " …" : text || "-"));
      } else {
        const td = el("td", {class: [cls, c === "trial" ? "id" : null].filter(Boolean).join(" ") || null},
                      cells[c]);
        if (c === "trial") {
          td.title = t.trial_id;
          const swatch = svg("svg", {class: "swatch", width: 10, height: 10, viewBox: "0 0 10 10"});
          swatch.append(svg("rect", {width: 10, height: 10, rx: 2,
                                     fill: t.is_baseline ? "#9a6700" : trialColor(t.trial_id)}));
          td.prepend(swatch);
        }
        if (c === "status") {
          td.classList.add("status-" + String(t.status).replace(/[^a-z]/g, ""));
          if (t.error) td.title = t.error;
        }
        tr.append(td);
      }
    }
    tr.addEventListener("click", () => {
      state.graphTrial = t.has_graph ? t.trial_id : state.graphTrial;
      redrawSearch();
    });
    body.append(tr);
  }
}

// ---- Page ------------------------------------------------------------------------------

function redrawSearch() {
  const data = state.search;
  if (!data) return;
  const s = data.search;
  $("search-title").textContent = s.name;
  const counts = {};
  for (const t of data.trials) counts[t.status] = (counts[t.status] || 0) + 1;
  $("search-meta").textContent =
    `${s.status} · ${s.searcher} searcher · ${data.trials.length}/${s.num_samples} trials (` +
    Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ") +
    `) · ranked by ${data.ranked_by || data.metric} (${data.mode})` +
    (finite(data.standard_error) ? ` · standard error ±${data.standard_error.toFixed(4)}, ~ within 2 of the best` : "") +
    (data.verdict ? ` · confirmation: ${data.verdict}` : "") +
    ` · started ${s.created_at || "-"}`;
  renderTable(data);
  drawScatter(data);
  drawHeatmap(data);
  if (state.epochs) {
    drawCurves("chart-curves", data, state.epochs, "val_accuracy", "val_accuracy");
    const egf = $("egf-choice").value;
    drawCurves("chart-egf", data, state.epochs, egf, egf);
  }
  renderGraphChoice(data);
  refreshGraph();
}

async function refreshSearch() {
  const name = state.selected;
  if (!name) return;
  const [data, epochs] = await Promise.all([
    fetchChanged("search", api("search", name)),
    fetchChanged("epochs", api("search", name, "epochs")),
  ]);
  if (name !== state.selected) return;
  if (data) state.search = data;
  if (epochs) state.epochs = epochs;
  if (data || epochs) redrawSearch();
}

function select(name) {
  if (name === state.selected) return;
  state.selected = name;
  state.search = state.epochs = null;
  state.graphTrial = state.graphKey = null;
  delete state.seen.search;
  delete state.seen.epochs;
  for (const a of document.querySelectorAll("#searches a")) {
    a.classList.toggle("selected", a.getAttribute("data-name") === name);
  }
  $("placeholder").hidden = name !== null;
  $("search-view").hidden = name === null;
  for (const id of ["chart-scatter", "chart-heatmap", "chart-curves", "chart-egf",
                    "chart-graph"]) {
    $(id).replaceChildren();
  }
  $("trials").tBodies[0].replaceChildren();
  poll();
}

let polling = false, pollAgain = false;
async function poll() {
  if (polling) { pollAgain = true; return; }  // e.g. a search chosen mid-poll
  polling = true;
  pollAgain = false;
  try {
    const searches = await fetchChanged("searches", "/api/searches");
    if (searches) renderSearches(searches);
    await refreshSearch();
    showError(null);
    $("live").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    showError(e.status === 404 && state.selected !== null
      ? `search not found: ${state.selected}` : "cannot reach the dashboard: " + e.message);
    $("live").textContent = "retrying...";
  } finally {
    polling = false;
    if (pollAgain) poll();
  }
}

function start() {
  $("egf-choice").addEventListener("change", redrawSearch);
  $("graph-choice").addEventListener("change", (ev) => {
    state.graphTrial = ev.target.value;
    redrawSearch();
  });
  window.addEventListener("hashchange", () => select(selectedFromHash()));
  select(selectedFromHash());
  poll();
  setInterval(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
