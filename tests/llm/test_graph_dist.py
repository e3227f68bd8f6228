"""`llm graph` across processes: each represents its share, the main process gathers and writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.llm.conftest import (
    launch_failure,
    require_llm_packages,
    require_two_gloo_processes,
    torchrun_two,
)

pytestmark = pytest.mark.llm
require_llm_packages()
pytest.importorskip("sklearn")

from conceptweb.errors import ConceptwebError  # noqa: E402
from conceptweb.llm import graph as graph_mod  # noqa: E402
from conceptweb.llm import runtime  # noqa: E402
from conceptweb.llm.graph import GraphSettings, build_graph, gather_rounds  # noqa: E402
from tests.llm.test_graph import N_NODES, make_run  # noqa: E402

HIDDEN, LOAD = graph_mod.hidden_step_vectors, graph_mod.load_checkpoint_model


class ScriptedRank:
    """Rank `rank` of 2, run alone: what the other rank would send comes from `other` (what it
    sent in an earlier run of its own); what this rank sends is recorded."""

    world = 2

    def __init__(
        self, rank: int, other: list[Any] | None = None, from_main: list[Any] | None = None
    ) -> None:
        self.rank = rank
        self.other, self.from_main = other or [], list(from_main or [])
        self.sent: list[Any] = []  # this rank's gather payloads, round by round
        self.reports: list[Any] = []  # what it told the others (None: fine)
        self.broadcasts: list[Any] = []
        self.other_reports: list[Any] = []  # what the other rank told, call by call

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_gather(self, obj: Any) -> list[Any]:
        self.reports.append(obj)
        i = len(self.reports) - 1
        theirs = self.other_reports[i] if i < len(self.other_reports) else None
        return [obj, theirs] if self.rank == 0 else [None, obj]

    def gather(self, obj: Any) -> list[Any] | None:
        self.sent.append(obj)
        return [obj, self.other[len(self.sent) - 1]] if self.rank == 0 else None

    def broadcast(self, obj: Any) -> Any:
        if self.rank == 0:
            self.broadcasts.append(obj)
            return obj
        return self.from_main.pop(0)


def as_rank(monkeypatch, comm: ScriptedRank) -> dict[str, list]:
    """Make build_graph run as `comm`; returns what it represented (completions, checkpoints)."""
    seen: dict[str, list] = {"items": [], "loaded": []}

    def spy_hidden(model, tok, items, *a):
        seen["items"] += [text for _, text, _ in items]
        return HIDDEN(model, tok, items, *a)

    def spy_load(path, *a):
        seen["loaded"].append(Path(path).name)
        return LOAD(path, *a)

    monkeypatch.setattr(runtime, "collectives", lambda: comm)
    monkeypatch.setattr(graph_mod, "hidden_step_vectors", spy_hidden)
    monkeypatch.setattr(graph_mod, "load_checkpoint_model", spy_load)
    return seen


def test_rounds_cover_every_completion_once_within_the_bound() -> None:
    sizes = [3, 5, 2, 9, 1, 4, 4, 30, 2]
    rounds = gather_rounds(sizes, 10)
    assert [j for r in rounds for j in r] == list(range(len(sizes)))
    assert all(sum(sizes[j] for j in r) <= 10 or len(r) == 1 for r in rounds)
    assert rounds == [[0, 1, 2], [3, 4], [5, 6], [7], [8]]
    assert gather_rounds([], 10) == []


def graph_files(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    g = path / "graph"
    meta = json.loads((g / "meta.json").read_text())
    return pd.read_parquet(g / "steps.parquet"), pd.read_parquet(g / "edges.parquet"), meta


def assert_same_graph(a: Path, b: Path) -> None:
    """Same steps, concepts and edges; meta the same but for paths and float round-off."""
    sa, ea, ma = graph_files(a)
    sb, eb, mb = graph_files(b)
    pd.testing.assert_frame_equal(sa, sb)
    pd.testing.assert_frame_equal(ea, eb)
    floats = [
        (m["codebook"].pop("inertia"), m.pop("layer_silhouette"), m.pop("checkpoints"))[:2]
        for m in (ma, mb)
    ]
    assert ma == mb
    assert floats[0][0] == pytest.approx(floats[1][0], rel=1e-5)
    assert floats[0][1] == pytest.approx(floats[1][1], rel=1e-5)


@pytest.mark.parametrize("layer", [None, "auto"])
def test_two_ranks_share_the_steps_and_the_main_one_writes_the_same_graph(
    tmp_path: Path, monkeypatch, layer
) -> None:
    path, _ = make_run(tmp_path)
    two = tmp_path / "two"
    shutil.copytree(path, two)
    s = GraphSettings(n_concepts=N_NODES, segment="token", layer=layer)
    build_graph(path, s)  # one process, as always
    monkeypatch.setattr(graph_mod, "GATHER_STEPS", 25)  # rounds of at most 4 walks of 6 steps
    rank1 = ScriptedRank(1, from_main=[[]])
    seen1 = as_rank(monkeypatch, rank1)
    build_graph(two, s)
    assert not (two / "graph").exists()  # the other rank writes nothing
    rank0 = ScriptedRank(0, other=rank1.sent)
    seen0 = as_rank(monkeypatch, rank0)
    build_graph(two, s)
    assert rank0.broadcasts == [[]]  # nothing was cached
    assert len(rank0.sent) == len(rank1.sent) >= 6  # several bounded rounds per checkpoint
    for mine, theirs in zip(rank0.sent, rank1.sent, strict=True):
        assert sum(len(v) for _, v in mine + theirs) <= 25
    n = len(seen0["items"]) + len(seen1["items"])
    assert n == 30 and abs(len(seen0["items"]) - len(seen1["items"])) <= 3  # 30 correct walks
    assert seen0["loaded"] == seen1["loaded"] == ["init", "checkpoint-4", "checkpoint-8"]
    assert_same_graph(path, two)
    assert sorted(p.name for p in (two / "graph" / "cache").iterdir()) == sorted(
        p.name for p in (path / "graph" / "cache").iterdir()
    )


def interrupted_at_8(path: Path, s: GraphSettings, monkeypatch) -> None:
    """A build stopped (Ctrl-C) while representing checkpoint 8: 0 and 4 are cached."""
    real = graph_mod.represent_checkpoint

    def stop_at_8(plan, step, rows):
        if step == 8:
            raise KeyboardInterrupt
        return real(plan, step, rows)

    with monkeypatch.context() as m:
        m.setattr(graph_mod, "represent_checkpoint", stop_at_8)
        with pytest.raises(KeyboardInterrupt):
            build_graph(path, s)


def test_two_ranks_resume_without_redoing_finished_checkpoints(tmp_path: Path, monkeypatch) -> None:
    path, _ = make_run(tmp_path)
    s = GraphSettings(n_concepts=N_NODES, segment="token")
    interrupted_at_8(path, s, monkeypatch)
    two = tmp_path / "two"
    shutil.copytree(path, two)
    build_graph(path, s)  # one process resumes
    rank1 = ScriptedRank(1, from_main=[[0, 4]])
    seen1 = as_rank(monkeypatch, rank1)
    build_graph(two, s)
    rank0 = ScriptedRank(0, other=rank1.sent)
    seen0 = as_rank(monkeypatch, rank0)
    build_graph(two, s)
    assert rank0.broadcasts == [[0, 4]]  # the main process tells which are cached
    assert seen0["loaded"] == seen1["loaded"] == ["checkpoint-8"]
    assert_same_graph(path, two)


def test_a_failing_rank_stops_every_rank_and_nothing_is_written(
    tmp_path: Path, monkeypatch
) -> None:
    path, _ = make_run(tmp_path)
    broken = tmp_path / "broken"  # rank 1 sees a damaged copy of checkpoint 8
    shutil.copytree(path, broken)
    (broken / "checkpoints" / "checkpoint-8" / "model.safetensors").write_bytes(b"broken")
    s = GraphSettings(n_concepts=N_NODES, segment="token")
    rank1 = ScriptedRank(1, from_main=[[]])
    as_rank(monkeypatch, rank1)
    with pytest.raises(ConceptwebError, match="cannot load the checkpoint"):
        build_graph(broken, s)  # its own error, after telling the others
    told = [r for r in rank1.reports if r is not None]
    assert len(told) == 1 and "cannot load the checkpoint" in told[0]
    rank0 = ScriptedRank(0, other=rank1.sent)
    rank0.other_reports = rank1.reports
    as_rank(monkeypatch, rank0)
    with pytest.raises(ConceptwebError, match="process 1 failed on the checkpoint of step 8"):
        build_graph(path, s)
    assert len(rank0.reports) == len(rank1.reports)  # it stopped in the same round
    assert not (path / "graph").exists() and not (broken / "graph").exists()


@pytest.mark.slow  # a 2-process launch: about a minute on a loaded 2-core machine
def test_torchrun_two_processes_give_the_one_process_graph(tmp_path: Path) -> None:
    """`llm graph` under torchrun (2 CPU processes, gloo) writes the graph one process writes."""
    require_two_gloo_processes(tmp_path)
    path, _ = make_run(tmp_path)
    two = tmp_path / "two"
    shutil.copytree(path, two)
    build_graph(path, GraphSettings(n_concepts=N_NODES, segment="token", layer="auto"))
    args = ["--segment", "token", "--concepts", str(N_NODES), "--layer", "auto"]
    res = torchrun_two(["-m", "conceptweb", "llm", "graph", str(two), *args])
    assert res.returncode == 0, launch_failure(res)
    assert res.stderr.count("concept graph written to") == 1  # one voice
    assert_same_graph(path, two)
