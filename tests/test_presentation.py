"""One way to show things: numbers, intervals, tables, progress, report blocks, claims rows."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
from rich.console import Console

from conceptweb.analysis.stats import seed_interval
from conceptweb.interfaces.blocks import (
    bullets,
    figure,
    h1,
    para,
    render_html,
    render_markdown,
    table,
)
from conceptweb.interfaces.numbers import MISSING, fmt, fmt_iv, pct
from conceptweb.interfaces.progress import task_progress, training_progress
from conceptweb.jsonable import to_jsonable

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_missing_values_are_shown_one_way():
    for x in (None, float("nan"), np.float64("inf"), np.nan):
        assert fmt(x) == MISSING and pct(x) == MISSING
    assert fmt(np.int64(7)) == "7" and fmt(0.12345) == "0.123" and pct(0.5) == "50%"


def test_intervals_of_fractions_and_steps_stay_in_range():
    acc = seed_interval(np.array([0.98, 1.0, 0.97]), bounds=(0.0, 1.0))
    assert acc.method == "bootstrap" and 0.97 <= acc.low <= acc.high <= 1.0
    steps = seed_interval(np.array([8.0, 381.0, 194.0]), bounds=(0.0, 600.0))
    assert steps.low >= 0.0 and steps.high <= 600.0
    two = seed_interval(np.array([0.4, 0.9]), bounds=(0.0, 1.0))
    assert two.method == "too few seeds" and fmt_iv(two) == "0.65 (too few seeds)"
    free = seed_interval(np.array([1.0, 2.0, 3.0, 4.0]))
    assert free.method == "t" and free.low < 1.0  # unbounded quantities keep the t-interval


def test_json_sanitiser():
    data = {"a": np.float64("nan"), "b": (np.int64(2), np.bool_(True)), "c": np.arange(2)}
    assert to_jsonable(data) == {"a": None, "b": [2, True], "c": [0, 1]}


def test_blocks_render_the_same_content_twice(tmp_path):
    blocks = [
        h1("Report"),
        para("a **bold** claim, see [the run](runs/x/report.md) and `code`"),
        table(["claim", "verdict"], [["x | y", "**reproduced**"]]),
        bullets(["one", "two"]),
        figure("missing.png", "a caption"),
    ]
    md = render_markdown(blocks)
    assert "| x \\| y | **reproduced** |" in md and "![a caption](missing.png)" in md
    html = render_html(blocks, tmp_path)
    assert "<strong>bold</strong>" in html and '<a href="runs/x/report.md">the run</a>' in html
    assert "<code>code</code>" in html and "<td>x | y</td>" in html


def _visible_lines(text: str) -> list[str]:
    return [ANSI.sub("", line) for line in re.split(r"[\r\n]", text) if ANSI.sub("", line).strip()]


def test_terminal_bar_fits_80_columns():
    buf = io.StringIO()
    target = Console(file=buf, force_terminal=True, width=80)
    row = {"step": 120, "phase": "temperature", "reward_mean": 0.8123, "len_correct_mean": 5.3}
    with training_progress(600, 0, "runs/a-rather-long-run-name-0", 128, target=target) as update:
        update({**row, "n_solved": 98})
    with task_progress(399, "suite runs", target=target) as advance:
        advance(1, "ablation frustrated entropy@auto seed 12")
    lines = _visible_lines(buf.getvalue())
    assert lines and max(len(line) for line in lines) <= 80
    assert any("120/600" in line for line in lines) and any("1/399" in line for line in lines)


def test_plain_progress_lines_when_output_is_not_a_terminal(tmp_path):
    env = {**os.environ, "CONCEPTWEB_PROGRESS_EVERY": "0"}
    args = ["train", "-p", "tiny", "-s", "steps=12", "-s", "model.N=60", "-s", "problems.Q=8"]
    args += ["-s", "problems.held_out=4", "--out", str(tmp_path / "r")]
    proc = subprocess.run(
        [sys.executable, "-m", "conceptweb", *args], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if re.search(r": \d+/12 \(", x)]
    assert len(lines) >= 10 and "12/12 (100%)" in lines[-1]
    assert "solved" in lines[-1] and "elapsed" in lines[-1]


def test_a_claim_is_one_row(monkeypatch):
    from conceptweb.experiments import reproduce as rp

    runs = pd.DataFrame(
        {
            "group": ["core"] * 3,
            "label": ["sparse"] * 3,
            "seed": [0, 1, 2],
            "web.final_avg_degree": [1.9, 2.0, 2.6],
        }
    )
    row = rp.ClaimSpec(
        "degree_below_3",
        "The web stays sparse",
        "<k> below 3",
        "sparse",
        lambda d, th, steps: rp._col(d, "web.final_avg_degree") < th,
        3.0,
        (rp.Measure("final <k>", "web.final_avg_degree", "count"),),
    )
    monkeypatch.setattr(rp, "CLAIMS", (*rp.CLAIMS, row))
    claims = {c.key: c for c in rp.evaluate_claims(runs, 100, {})}
    assert claims["degree_below_3"].verdict == "reproduced" and claims["degree_below_3"].n_met == 3
    assert claims["sparse_web"].n_met == 2 and claims["sparse_web"].verdict == "partly reproduced"


def test_quick_suite_marks_what_it_cannot_test():
    from conceptweb.experiments.reproduce import SuiteConfig, evaluate_claims

    runs = pd.DataFrame({"group": ["core"], "label": ["paper"], "seed": [0]})
    verdicts = {"sparse": {"verdict": "no significant difference", "n": 4, "measured": "x"}}
    claims = {c.key: c for c in evaluate_claims(runs, 300, verdicts, SuiteConfig.quick_version())}
    assert claims["published_sizes"].verdict.startswith("not tested at quick size")
    assert claims["annealing_sparse"].verdict.startswith("not tested at quick size")
    full = {c.key: c for c in evaluate_claims(runs, 300, verdicts, SuiteConfig())}
    assert full["published_sizes"].verdict == "not reproduced"


def test_figures_save_in_every_format_they_claim_and_reproducibly(tmp_path):
    from matplotlib.figure import Figure

    from conceptweb.interfaces.plotting import save_figure

    def draw() -> Figure:
        fig = Figure()
        fig.add_subplot().plot([0, 1, 2], [1, 0, 1])
        return fig

    heads = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}
    for suffix, head in heads.items():
        a = save_figure(draw(), tmp_path / f"a.{suffix}")
        b = save_figure(draw(), tmp_path / f"b.{suffix}")
        assert a.read_bytes().startswith(head)
        if suffix == "png":  # no time stamp: two saves of the same figure are the same bytes
            assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}.{f}" for n in "ab" for f in heads
    )


def test_web_layout_keeps_islands_apart_and_is_reproducible():
    import networkx as nx

    from conceptweb.interfaces.figures import SMALL_COMPONENT, web_layout

    web = nx.DiGraph()
    sizes = [2, 3, 3, 4, 7, 12, SMALL_COMPONENT, SMALL_COMPONENT + 10]  # webs have no lone nodes
    start = 0
    for n in sizes:  # a path of n nodes per island, and one star
        web.add_nodes_from(range(start, start + n))
        web.add_edges_from((i, i + 1) for i in range(start, start + n - 1))
        start += n
    web.add_edges_from((start, start + j) for j in range(1, 6))
    pos = web_layout(web, seed=3)
    assert set(pos) == set(web.nodes)
    assert all(np.isfinite(p).all() and p.shape == (2,) for p in pos.values())
    boxes = []
    for comp in nx.connected_components(web.to_undirected()):
        xy = np.array([pos[v] for v in comp])
        if len(comp) > 1:  # no island collapses to a point
            assert len({tuple(np.round(p, 9)) for p in xy}) == len(comp)
        boxes.append((xy.min(axis=0), xy.max(axis=0)))
    for i, (lo1, hi1) in enumerate(boxes):  # islands are drawn apart
        for lo2, hi2 in boxes[i + 1 :]:
            assert (hi1 < lo2).any() or (hi2 < lo1).any()
    again = web_layout(web, seed=3)
    assert all(np.array_equal(pos[v], again[v]) for v in pos)
