"""Sweeps and execution backends: grids of --set values, resume, one table; Ray on loopback."""

from __future__ import annotations

import socket
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from conceptweb.errors import ConceptwebError
from conceptweb.experiments.ablation import Ablation, AblationConfig
from conceptweb.experiments.executor import Backend, execute
from conceptweb.experiments.explore import Explore, ExploreConfig
from conceptweb.experiments.sweep import Sweep, grid_axes, sweep_config_from_options
from conceptweb.interfaces.cli import app

SMALL = [
    "steps=16",
    "model.N=40",
    "model.L=20",
    "problems.Q=8",
    "problems.held_out=4",
    "grpo.G=4",
    "eval.every=8",
    "checkpoint.every=8",
]


def _cfg(*axes: str):
    return sweep_config_from_options(None, None, [*SMALL, *axes])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_grid_axes_split_fixed_values_from_axes():
    fixed, axes = grid_axes(["steps=5", "model.K=4,8", "problems.n_starts=[1, 2]"])
    assert fixed == ["steps=5", "problems.n_starts=[1, 2]"]
    assert axes == ["model.K=4,8"]
    with pytest.raises(ConceptwebError, match="KEY=VALUE"):
        grid_axes(["model.K"])


def test_sweep_gathers_one_row_per_point_and_resumes(tmp_path):
    sw = Sweep.open_or_create(tmp_path / "sw", _cfg("model.K=4,6", "seed=0,1"))
    table = sw.run(workers=1)
    assert list(table["run"]) == [
        "model.K=4+seed=0",
        "model.K=4+seed=1",
        "model.K=6+seed=0",
        "model.K=6+seed=1",
    ]
    assert list(table["model.K"]) == [4, 4, 6, 6]  # typed grid values
    assert table["final_reward"].between(0, 1).all() and "two_stage.knee_step" in table
    assert sw.pending() == []
    metrics = tmp_path / "sw/runs/model.K=4+seed=0/metrics.parquet"
    stamp = metrics.stat().st_mtime_ns
    (tmp_path / "sw/results.parquet").unlink()  # lost results: runs are analysed, not retrained
    again = Sweep.open_or_create(tmp_path / "sw", None).run(workers=1)
    assert metrics.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again[["run", "final_reward"]], table[["run", "final_reward"]])
    with pytest.raises(ConceptwebError, match="another config"):
        Sweep.open_or_create(tmp_path / "sw", _cfg("model.K=4,8"))


def test_sweep_refuses_bad_points_before_writing(tmp_path):
    with pytest.raises(ConceptwebError):
        _cfg("model.K=4,41")  # K >= N
    with pytest.raises(ConceptwebError, match="nothing to sweep"):
        _cfg()
    with pytest.raises(ConceptwebError, match="distinct names"):
        _cfg("seed=0,1", "seed=2,3")


def test_process_pool_and_unknown_backend():
    results: dict = {}
    execute(abs, {i: -i for i in range(5)}, 2, results.__setitem__, str)
    assert results == {i: i for i in range(5)}
    with pytest.raises(ConceptwebError, match="unknown backend"):
        Backend("slurm")
    with pytest.raises(ConceptwebError, match="--address is for --backend ray"):
        Backend("process", "auto")


def test_sweep_on_a_local_ray_instance(tmp_path):
    """A real Ray instance on the loopback interface, started (and stopped) by the test."""
    ray = pytest.importorskip("ray")
    try:
        sw = Sweep.open_or_create(tmp_path / "sw", _cfg("seed=0,1"))
        table = sw.run(workers=2, backend=Backend("ray"))
        assert list(table["run"]) == ["seed=0", "seed=1"]
        assert ray.is_initialized()  # it ran on Ray, not on the pool
        # the same runs as in this process, seed for seed
        local = Sweep.open_or_create(tmp_path / "local", _cfg("seed=0,1")).run(workers=1)
        pd.testing.assert_frame_equal(
            table[["run", "final_reward"]], local[["run", "final_reward"]]
        )
        # batched replicas: one Ray task trains both seeds, with the same results
        batched = Sweep.open_or_create(tmp_path / "batched", _cfg("seed=0,1"))
        pd.testing.assert_frame_equal(batched.run(backend=Backend("ray"), batch=2), table)
        # the ablation and the map on the same instance: their own job functions ship too
        abl_cfg = AblationConfig(preset="tiny", sets=SMALL, seeds=2, arms=["plain"])
        abl = Ablation.open_or_create(tmp_path / "abl", abl_cfg).run(backend=Backend("ray"))
        assert sorted(abl["seed"]) == [0, 1]
        map_cfg = ExploreConfig(preset="tiny", sets=SMALL, axes=["problems.Q=6,8"], seeds=1)
        cells = Explore.open_or_create(tmp_path / "map", map_cfg).run(backend=Backend("ray"))
        assert sorted(cells["cell"]) == ["problems.Q=6", "problems.Q=8"]
    finally:
        ray.shutdown()


def test_sweep_command_writes_the_table_and_refuses_mistakes(tmp_path, monkeypatch):
    runner = CliRunner()
    args = ["sweep", "--out", str(tmp_path / "sw"), "--quiet"]
    sets = [x for s in [*SMALL, "steps=8", "grpo.lr=0.1,0.2"] for x in ("--set", s)]
    result = runner.invoke(app, args + sets)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "sw/results.csv")
    assert list(table["grpo.lr"]) == [0.1, 0.2]
    again = runner.invoke(app, ["sweep", "--out", str(tmp_path / "sw")])  # resume: nothing left
    assert again.exit_code == 0 and "0 of 2 runs left" in again.output
    x = str(tmp_path / "x")
    refusals = {
        "sweep point model.K=oops": ["sweep", "--out", x, "--set", "model.K=4,oops"],
        "unknown backend": [*args[:3], *sets, "--backend", "slurm"],
        "cannot reach the Ray cluster": [
            "sweep",
            "--out",
            x,
            *sets,
            "--backend",
            "ray",
            "--address",
            f"ray://127.0.0.1:{_closed_port()}",
        ],
    }
    for message, argv in refusals.items():
        bad = runner.invoke(app, argv)
        assert bad.exit_code == 2 and "error:" in bad.output and message in bad.output, bad.output
        assert not (tmp_path / "x").exists()
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    bad = runner.invoke(app, ["sweep", "--out", x, *sets, "--backend", "ray"])
    assert bad.exit_code == 2 and "pip install 'conceptweb[dist]'" in bad.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "name",
    [
        "conceptweb.experiments.executor",
        "conceptweb.experiments.sweep",
        "conceptweb.experiments.explore",
    ],
)
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def _engine_name(_job: int) -> str:
    from conceptweb.model.engines import get_engine

    return get_engine("auto").name


def test_a_pool_without_numba_says_so_once(monkeypatch, capfd):
    """On a core-only install the fallback note is printed by the parent, not by every worker."""
    from conceptweb.model import engines

    monkeypatch.setattr(engines, "numba_available", lambda: False)
    monkeypatch.delitem(engines._CACHE, "auto", raising=False)
    monkeypatch.delenv(engines.FALLBACK_NOTED, raising=False)
    results: dict = {}
    execute(_engine_name, {i: i for i in range(4)}, 2, results.__setitem__, str)
    assert set(results.values()) == {"numpy"}
    assert capfd.readouterr().err.count("numba is not installed") == 1


def test_workers_with_a_cluster_address_is_named_as_ignored(tmp_path):
    """--workers cannot apply to a cluster given by --address: the user is told, not ignored."""
    pytest.importorskip("ray")
    sets = [x for s in [*SMALL, "steps=8", "grpo.lr=0.1,0.2"] for x in ("--set", s)]
    argv = ["sweep", "--out", str(tmp_path / "x"), *sets, "--backend", "ray", "--workers", "2"]
    argv += ["--address", f"ray://127.0.0.1:{_closed_port()}"]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 2
    assert "--workers 2 is ignored with --address" in res.output
    assert not (tmp_path / "x").exists()
