// conceptweb interactive report: a step slider over the concept web and its linked curves.
// Reads the JSON in #cw-data (written by conceptweb.interfaces.interactive); draws with Plotly.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("cw-data").textContent);
  const panels = D.panels;
  const COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];
  const ARM = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"];
  const CAND = { forgetting_peak_step: ["#d62728", "F peak"], v_bottom_step: ["#2ca02c", "V bottom"],
                 knee_step: ["#9467bd", "knee"] };
  const CFG = { displaylogo: false, responsive: true };

  // every checkpoint step of any panel, sorted: the slider's positions
  const stepSet = new Set();
  panels.forEach(p => p.webs.forEach(w => stepSet.add(w.step)));
  const steps = Array.from(stepSet).sort((a, b) => a - b);
  if (steps.length === 0) {
    panels.forEach(p => p.curves.steps.forEach(s => stepSet.add(s)));
    Array.from(stepSet).sort((a, b) => a - b).forEach(s => steps.push(s));
  }

  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return String(v);
    return String(Number(v.toPrecision(4)));
  }

  function problemText(p, qs) {
    if (!qs.length) return "no problem's correct path";
    const g = p.graph;
    const shown = qs.slice(0, 12).map(q => g.sources ? `q${q} (${g.sources[q]}→${g.targets[q]})` : `q${q}`);
    return `${qs.length} problem(s): ${shown.join(", ")}${qs.length > 12 ? ", …" : ""}`;
  }

  function webAt(p, step) {  // the panel's last web at or before step (else its first)
    let best = null;
    for (const w of p.webs) if (w.step <= step) best = w;
    return best || p.webs[0] || null;
  }

  function webTraces(p, w) {
    const pos = p.graph.positions;
    const lines = { edge: [[], []], bridge: [[], []], trunk: [[], []] };
    const mid = { x: [], y: [], text: [] };
    for (const [a, b, pi, kind, qs] of w.edges) {
      const A = pos[a], B = pos[b];
      if (!A || !B) continue;
      lines[kind][0].push(A[0], B[0], null);
      lines[kind][1].push(A[1], B[1], null);
      mid.x.push((A[0] + B[0]) / 2); mid.y.push((A[1] + B[1]) / 2);
      mid.text.push(`edge ${a}→${b}, pi ${pi}${kind === "edge" ? "" : ", " + kind + " bridge"}<br>` +
                    problemText(p, qs));
    }
    const style = { edge: ["#aaaaaa", 1], bridge: ["#ff7f0e", 2], trunk: ["#d62728", 4] };
    const traces = Object.keys(lines).map(k => ({
      type: "scatter", mode: "lines", x: lines[k][0], y: lines[k][1], name: k,
      hoverinfo: "skip", line: { color: style[k][0], width: style[k][1] },
    }));
    traces.push({ type: "scatter", mode: "markers", x: mid.x, y: mid.y, text: mid.text,
                  hoverinfo: "text", name: "edge info", showlegend: false,
                  marker: { size: 5, color: "#777", opacity: 0.25 } });
    const nx = [], ny = [], col = [], sym = [], txt = [];
    for (const [n, comp, leaf, qs] of w.nodes) {
      const P = pos[n];
      if (!P) continue;
      nx.push(P[0]); ny.push(P[1]);
      col.push(comp < 0 ? "#999" : COLOURS[comp % COLOURS.length]);
      sym.push(leaf ? "diamond" : "circle");
      txt.push(`node ${n}, island ${comp}${leaf ? ", leaf" : ""}<br>` + problemText(p, qs));
    }
    traces.push({ type: "scatter", mode: "markers", x: nx, y: ny, text: txt, hoverinfo: "text",
                  name: "nodes", showlegend: false,
                  marker: { size: 8, color: col, symbol: sym, line: { width: 0.5, color: "#333" } } });
    return traces;
  }

  const webLayout = {
    margin: { l: 5, r: 5, t: 5, b: 5 }, showlegend: false, hovermode: "closest",
    xaxis: { visible: false }, yaxis: { visible: false, scaleanchor: "x" },
  };

  function drawWebs(step) {
    panels.forEach((p, i) => {
      const div = document.getElementById(`cw-web-${i}`);
      const info = document.getElementById(`cw-info-${i}`);
      const w = webAt(p, step);
      if (!w) { info.textContent = p.graph.note || "no checkpoints: no web (an LLM run?)"; return; }
      Plotly.react(div, webTraces(p, w), webLayout, CFG);
      const t = w.topology;
      info.textContent = `web at step ${w.step}: ${t.n_nodes} nodes, <k> ${fmt(t.avg_degree)}, ` +
        `${t.n_components} islands (giant ${fmt(t.giant_fraction)}), ${t.n_bridges} bridges ` +
        `(${t.n_trunk_bridges} trunk), ${t.n_leaves} leaves`;
      div.dataset.step = String(w.step);
      div.dataset.edges = String(w.edges.length);
    });
  }

  const CURVES = [
    ["reward", "mean reward (learning curve)", p => [p.curves.steps, p.curves.reward]],
    ["length", "mean length of correct rollouts", p => [p.curves.steps, p.curves.length]],
    ["F", "frustration index F(t)", p => [p.curves.F_steps, p.curves.F]],
    ["degree", "web <k> (solid) and islands (dotted, right)", p => [p.curves.topo_steps, p.curves.avg_degree]],
  ];

  function candidateShapes() {
    const shapes = [];
    panels.forEach((p, i) => {
      for (const [k, v] of Object.entries(p.candidates)) {
        shapes.push({ type: "line", xref: "x", yref: "paper", x0: v, x1: v, y0: 0, y1: 1,
                      line: { color: CAND[k][0], dash: "dash", width: 1 }, name: CAND[k][1] });
      }
    });
    return shapes;
  }

  function drawCurves() {
    const host = document.getElementById("cw-curves");
    CURVES.forEach(([key, title, get]) => {
      const div = document.createElement("div");
      div.className = "cw-curve"; div.id = `cw-curve-${key}`;
      host.appendChild(div);
      const traces = panels.map((p, i) => {
        const [x, y] = get(p);
        return { type: "scatter", mode: "lines", x: x, y: y, name: p.label,
                 line: { color: ARM[i % ARM.length], width: 1.5 } };
      });
      if (key === "degree") {
        panels.forEach((p, i) => traces.push({
          type: "scatter", mode: "lines", x: p.curves.topo_steps, y: p.curves.islands, yaxis: "y2",
          name: p.label + " islands", line: { color: ARM[i % ARM.length], dash: "dot", width: 1 } }));
      }
      const layout = {
        title: { text: title, font: { size: 13 } }, margin: { l: 45, r: 40, t: 30, b: 30 },
        showlegend: panels.length > 1 && key === "reward", hovermode: "x",
        shapes: [{ type: "line", xref: "x", yref: "paper", x0: 0, x1: 0, y0: 0, y1: 1,
                   line: { color: "#000", width: 1.5 } }].concat(candidateShapes()),
        yaxis2: { overlaying: "y", side: "right", showgrid: false },
      };
      Plotly.newPlot(div, traces, layout, CFG);
      div.on("plotly_click", ev => { if (ev.points.length) setStep(nearestIndex(ev.points[0].x)); });
    });
  }

  function moveMarkers(step) {
    CURVES.forEach(([key]) => {
      Plotly.relayout(`cw-curve-${key}`, { "shapes[0].x0": step, "shapes[0].x1": step });
    });
  }

  function nearestIndex(x) {
    let best = 0;
    steps.forEach((s, i) => { if (Math.abs(s - x) < Math.abs(steps[best] - x)) best = i; });
    return best;
  }

  const slider = document.getElementById("cw-step");
  const label = document.getElementById("cw-step-label");
  function setStep(i) {
    slider.value = String(i);
    const step = steps[i];
    label.textContent = `${step} (of ${steps[steps.length - 1]})`;
    drawWebs(step);
    moveMarkers(step);
  }

  function buildPanels() {
    const host = document.getElementById("cw-webs");
    panels.forEach((p, i) => {
      const div = document.createElement("div");
      div.className = "cw-panel";
      const h = document.createElement("h3"); h.textContent = p.label;
      const info = document.createElement("div"); info.className = "cw-info"; info.id = `cw-info-${i}`;
      const web = document.createElement("div"); web.className = "cw-web"; web.id = `cw-web-${i}`;
      div.append(h, info, web);
      host.appendChild(div);
    });
  }

  function buildSummary() {
    const table = document.getElementById("cw-summary");
    const head = document.createElement("tr");
    ["key"].concat(panels.map(p => p.label)).forEach(t => {
      const th = document.createElement("th"); th.textContent = t; head.appendChild(th);
    });
    table.appendChild(head);
    const keys = [];
    panels.forEach(p => p.summary.forEach(([k]) => { if (!keys.includes(k)) keys.push(k); }));
    for (const k of keys) {
      const tr = document.createElement("tr");
      const th = document.createElement("td"); th.textContent = k; tr.appendChild(th);
      panels.forEach((p, i) => {
        const row = p.summary.find(r => r[0] === k);
        const td = document.createElement("td");
        td.textContent = row ? fmt(row[1]) : "";
        td.dataset.key = k; td.dataset.panel = String(i);
        tr.appendChild(td);
      });
      table.appendChild(tr);
    }
  }

  buildPanels();
  drawCurves();
  buildSummary();
  slider.max = String(Math.max(steps.length - 1, 0));
  slider.addEventListener("input", () => setStep(Number(slider.value)));
  setStep(steps.length - 1);
  document.body.dataset.ready = "1";
})();
