"""The interactive report: one self-contained, offline HTML page to scrub through a run's training.

A step slider redraws the concept web (islands coloured, bridges and trunk edges highlighted,
leaves drawn as diamonds; hovering a node or an edge lists the problems whose correct paths
cross it) and moves a marker over the linked curves: the learning curve, the length of correct
rollouts, the frustration index F(t) and the web's <k> and islands, with the three candidates
of the maximally frustrated state. For an ablation, the arms of one seed are drawn side by side
on one slider. Plotly draws everything; its JavaScript bundle (from the `plotly` package) is
inlined, so the page needs no network when it is viewed.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from conceptweb.analysis.summary import SECTION_KEYS, RunAnalysis
from conceptweb.errors import ConceptwebError
from conceptweb.rundir import atomic_write_text

__all__ = [
    "interactive_html",
    "run_panel",
    "arm_panels",
    "write_ablation_interactive",
    "write_interactive_report",
]

MAX_WEBS = 80
MAX_DRAWN_NODES = 3000  # a spring layout of more nodes would take hours; the page skips it


def _finite_list(values: Any, digits: int = 5) -> list[float | None]:
    out: list[float | None] = []
    for v in np.asarray(values, dtype=float).tolist():
        out.append(round(v, digits) if math.isfinite(v) else None)
    return out


def _web_steps(steps: list[int], max_webs: int) -> list[int]:
    """At most max_webs checkpoint steps, evenly spread, always keeping the first and last."""
    if len(steps) <= max_webs:
        return steps
    idx = np.unique(np.linspace(0, len(steps) - 1, max_webs).round().astype(int))
    return [steps[i] for i in idx]


def _layout(webs: list[nx.DiGraph], seed: int = 0) -> dict[int, tuple[float, float]]:
    """One position per node for all steps (a spring layout of the union of the webs)."""
    union = nx.Graph()
    for w in webs:
        union.add_edges_from(w.to_undirected().edges())
    if union.number_of_nodes() == 0:
        return {}
    pos = nx.spring_layout(union, seed=seed, iterations=60)
    return {int(n): (round(float(x), 4), round(float(y), 4)) for n, (x, y) in pos.items()}


def _web_frame(web: nx.DiGraph, step: int, topology: Any) -> dict[str, Any]:
    """One step of the page: nodes [id, island, leaf, problems], edges [a, b, pi, kind, problems]."""
    topo = topology.to_dict()
    loads = {tuple(b): int(n) for b, n in zip(topo["bridges"], topo["bridge_load"], strict=True)}
    nodes = [
        [int(n), int(d["component"]), bool(d["leaf"]), list(map(int, d["problems"]))]
        for n, d in sorted(web.nodes(data=True))
    ]
    edges = []
    for a, b, d in sorted(web.edges(data=True)):
        load = loads.get((min(a, b), max(a, b)), 0)
        kind = "trunk" if d["bridge"] and load >= 2 else ("bridge" if d["bridge"] else "edge")
        edges.append(
            [int(a), int(b), round(float(d["pi"]), 3), kind, list(map(int, d["problems"]))]
        )
    keys = ("avg_degree", "n_components", "giant_fraction", "n_bridges", "n_trunk_bridges")
    return {
        "step": int(step),
        "nodes": nodes,
        "edges": edges,
        "topology": {k: _finite_list([topo[k]])[0] for k in (*keys, "n_leaves", "n_nodes")},
    }


Drawn = tuple[list[tuple[Any, nx.DiGraph]], str | None]  # (checkpoint web, annotated), note


def _drawn_webs(analysis: RunAnalysis, max_webs: int) -> Drawn:
    """The checkpoint webs the page draws (at most max_webs), or a note saying why none."""
    from conceptweb.analysis.topology import web_at_step
    from conceptweb.interfaces.notebook import annotated_web

    steps = _web_steps(analysis.run.checkpoint_steps(), max_webs)
    topo = analysis.topology
    if len(topo) and steps:
        largest = int(topo.loc[topo["step"].isin(steps), "n_nodes"].max())
        if largest > MAX_DRAWN_NODES:
            note = (
                f"webs of up to {largest} nodes are not drawn here (at most {MAX_DRAWN_NODES}); "
                "the report's figures and summary.json describe them"
            )
            return [], note
    cws = [web_at_step(analysis.run, s, analysis.tau) for s in steps]
    return [(cw, annotated_web(cw)) for cw in cws], None


def _webs(
    analysis: RunAnalysis,
    max_webs: int,
    drawn: Drawn | None = None,
    pos: dict[int, tuple[float, float]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The page's web frames and graph data; `pos` (one layout shared by several runs) or a
    layout of this run's webs."""
    webs, note = drawn if drawn is not None else _drawn_webs(analysis, max_webs)
    if note is not None:
        return [], {"note": note}
    if pos is None:
        pos = _layout([w for _, w in webs])
    frames = [_web_frame(w, cw.step, cw.topology) for cw, w in webs]
    problems = {}
    if webs:
        first = webs[0][0]
        problems = {
            "sources": list(map(int, first.sources)),
            "targets": list(map(int, first.targets)),
        }
    nodes = {int(n) for _, w in webs for n in w.nodes()}
    positions = {str(n): xy for n, xy in pos.items() if n in nodes}
    return frames, {"positions": positions, **problems}


def _summary_rows(summary: dict[str, Any]) -> list[list[Any]]:
    """(section.key, value) for every number of the stable sections and the candidates."""
    rows = []
    for section, keys in SECTION_KEYS.items():
        sec = summary.get(section)
        if sec:
            rows += [[f"{section}.{k}", sec.get(k)] for k in keys]
    for k, v in (summary.get("frustration_candidates") or {}).items():
        rows.append([f"frustration_candidates.{k}", v])
    return rows


def run_panel(
    analysis: RunAnalysis,
    label: str,
    max_webs: int = MAX_WEBS,
    drawn: Drawn | None = None,
    pos: dict[int, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """The data of one run for the page: curves, candidates, webs per checkpoint, summary
    (`drawn` and `pos`: its webs and a layout already made, see `arm_panels`)."""
    m = analysis.metrics
    fr = analysis.frustration
    webs, graph = _webs(analysis, max_webs, drawn, pos)
    topo = analysis.topology
    return {
        "label": label,
        "curves": {
            "steps": m["step"].astype(int).tolist(),
            "reward": _finite_list(m["reward_mean"]),
            "length": _finite_list(m["len_correct_mean"]) if "len_correct_mean" in m else [],
            "F_steps": analysis.accuracy.index.astype(int).tolist() if fr is not None else [],
            "F": _finite_list(fr.F) if fr is not None else [],
            "topo_steps": topo["step"].astype(int).tolist() if len(topo) else [],
            "avg_degree": _finite_list(topo["avg_degree"]) if len(topo) else [],
            "islands": topo["n_components"].astype(int).tolist() if len(topo) else [],
        },
        "candidates": {
            k: v
            for k, v in (analysis.summary.get("frustration_candidates") or {}).items()
            if k != "spread" and v is not None and math.isfinite(v)
        },
        "webs": webs,
        "graph": graph,
        "summary": _summary_rows(analysis.summary),
    }


def _plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ConceptwebError("the interactive report needs plotly (pip install plotly)") from None
    return get_plotlyjs()


def interactive_html(title: str, panels: list[dict[str, Any]]) -> str:
    """The page: inline plotly.js, the data as JSON, and the small app that wires them."""
    data = json.dumps({"title": title, "panels": panels}, separators=(",", ":"), allow_nan=False)
    data = data.replace("</", "<\\/")
    app_js = (Path(__file__).with_name("interactive.js")).read_text()
    return _PAGE.format(
        title=html.escape(title),
        plotly=_plotly_js().replace("</script", "<\\/script"),
        data=data,
        app=app_js,
    )


def write_interactive_report(
    analysis: RunAnalysis, path: str | Path | None = None, max_webs: int = MAX_WEBS
) -> Path:
    """Write RUN/interactive.html (or `path`) for one analysed run and return its path."""
    path = Path(path) if path is not None else analysis.run.path / "interactive.html"
    panel = run_panel(analysis, analysis.run.path.name, max_webs)
    atomic_write_text(path, interactive_html(f"conceptweb: {analysis.run.path.name}", [panel]))
    return path


def arm_panels(
    analyses: list[tuple[str, RunAnalysis]], max_webs: int = MAX_WEBS
) -> list[dict[str, Any]]:
    """Panels of runs on one world (an ablation's arms of one seed) with ONE layout of the
    union of all their webs: a concept sits at the same place in every arm, and one spring
    layout is made instead of one per arm."""
    drawn = [_drawn_webs(a, max_webs) for _, a in analyses]
    every = [w for webs, _ in drawn for _, w in webs]
    union = set().union(*(w.nodes() for w in every)) if every else set()
    # arms far apart on a large world: each its own layout, as a run's page would have
    pos = _layout(every) if len(union) <= MAX_DRAWN_NODES else None
    return [
        run_panel(a, label, max_webs, d, pos) for (label, a), d in zip(analyses, drawn, strict=True)
    ]


def write_ablation_interactive(
    abl: Any, seed: int | None = None, max_webs: int = 30, on_arm: Any = None
) -> Path:
    """ABLATION/interactive.html: the arms of one seed (the first by default) side by side.

    One slider moves every arm's web and the curves, which overlay the arms; each arm's run is
    analysed with the defaults of `conceptweb analyze`.
    """
    from conceptweb.analysis.summary import analyze

    seed = abl.seeds()[0] if seed is None else seed
    analyses = []
    for arm in abl.cfg.arms:
        path = abl.run_path(arm, seed)
        if (path / "run.json").is_file():
            analyses.append((arm, analyze(path)))
            if on_arm is not None:
                on_arm(arm)
    panels = arm_panels(analyses, max_webs)
    if not panels:
        raise ConceptwebError(f"{abl.out} has no finished run of seed {seed}")
    out = abl.out / "interactive.html"
    atomic_write_text(
        out, interactive_html(f"conceptweb ablation: {abl.out.name}, seed {seed}", panels)
    )
    return out


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1em 2em; color: #222; }}
h1 {{ font-size: 1.3em; }}
#cw-controls {{ position: sticky; top: 0; background: #fff; padding: .5em 0; z-index: 5;
  border-bottom: 1px solid #ddd; display: flex; gap: 1em; align-items: center; }}
#cw-step {{ width: 50%; }}
#cw-webs {{ display: flex; flex-wrap: wrap; gap: 1em; }}
.cw-panel {{ flex: 1 1 420px; min-width: 380px; }}
.cw-web {{ height: 460px; border: 1px solid #eee; }}
.cw-info {{ font-size: .9em; color: #444; min-height: 1.2em; }}
#cw-curves {{ display: grid; grid-template-columns: 1fr 1fr; gap: .5em; margin-top: 1em; }}
.cw-curve {{ height: 260px; }}
table {{ border-collapse: collapse; font-size: .9em; margin-top: 1em; }}
td, th {{ border: 1px solid #ddd; padding: 2px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; font-family: monospace; }}
.legend {{ font-size: .85em; color: #555; }}
</style>
<script>{plotly}</script>
</head><body>
<h1>{title}</h1>
<p class="legend">Drag the slider (or click a curve) to move through training. Web: edges with
pi &ge; tau; colours are islands (blue: the largest), orange edges are bridges, thick red ones
trunk bridges (crossed by two or more problems' correct paths), diamonds are leaves. Hover a
node or an edge's midpoint for the problems whose correct paths cross it. Dashed lines: the
three candidates of the maximally frustrated state.</p>
<div id="cw-controls"><label for="cw-step">step</label>
<input type="range" id="cw-step" min="0" max="0" value="0" step="1">
<span id="cw-step-label"></span></div>
<div id="cw-webs"></div>
<div id="cw-curves"></div>
<h2>Summary (summary.json)</h2>
<table id="cw-summary"></table>
<script type="application/json" id="cw-data">{data}</script>
<script>{app}</script>
</body></html>
"""
