"""The run format: today's code writes the same records as format 1 did, and reads format-1 runs."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conceptweb.analysis.summary import analyze_run
from conceptweb.config import resolve_config, validate_config
from conceptweb.errors import ConceptwebError
from conceptweb.experiments.runs import train_run
from conceptweb.rundir import RunDir, atomic_savez
from conceptweb.runformat import (
    CHECKPOINT_ARRAYS,
    CONET_METRIC_COLUMNS,
    CONET_PROBLEM_COLUMNS,
    DETECTOR_PREFIX,
    EVAL_COLUMNS,
    LLM_METRIC_COLUMNS,
    SHARED_METRIC_COLUMNS,
    Checkpoint,
    check_arrays,
)
from tests.data.runs_v1.make import RUNS

V1 = Path(__file__).parent / "data" / "runs_v1"


def _copy(name: str, tmp_path: Path) -> RunDir:
    shutil.copytree(V1 / name, tmp_path / name)
    return RunDir.open(tmp_path / name)


def _assert_same_records(a: RunDir, b: RunDir) -> None:
    """Every record equal, bit for bit, but the clock and the reported loss.

    The loss is summed in another order since the rollout engines landed (commit 94fc030: the
    engine's weighted log-likelihood multiplies weight and advantage first), so its last bits
    may differ from format 1's; the gradients, and so the policy and every other record, do not.
    """
    ma, mb = a.read_metrics(), b.read_metrics()
    pd.testing.assert_frame_equal(
        ma.drop(columns=["time_s", "loss"]), mb.drop(columns=["time_s", "loss"]), check_exact=True
    )
    np.testing.assert_allclose(ma["loss"], mb["loss"], rtol=1e-12, atol=1e-15)
    assert list(ma.columns) == list(mb.columns)
    pd.testing.assert_frame_equal(a.read_problems(), b.read_problems(), check_exact=True)
    pd.testing.assert_frame_equal(a.read_eval(), b.read_eval(), check_exact=True)


@pytest.mark.parametrize("name", list(RUNS))
def test_todays_code_writes_the_records_format_1_wrote(tmp_path, name):
    """The same config and seed give exactly the records the format-1 code wrote."""
    if name == "sft":
        _copy("plain", tmp_path)
    cfg = resolve_config(None, None, [*RUNS[name], "model.engine=numpy"])  # format 1's engine
    if cfg.init_from is not None:
        cfg = validate_config({**cfg.model_dump(), "init_from": str(tmp_path / cfg.init_from)})
    new = train_run(cfg, tmp_path / f"{name}-new")
    old = RunDir.open(V1 / name)
    _assert_same_records(old, new)
    assert old.checkpoint_steps() == new.checkpoint_steps()
    for step in old.checkpoint_steps():
        a, b = old.load_checkpoint(step), new.load_checkpoint(step)
        np.testing.assert_array_equal(a.logits, b.logits)
        assert a.L == b.L == cfg.model.L and a.schema_version == 1 and b.schema_version == 2


@pytest.mark.parametrize("name", list(RUNS))
def test_format_1_checkpoints_are_read_with_their_sizes(name):
    run = RunDir.open(V1 / name)
    assert run.read_meta()["format_version"] == 1
    L = run.read_config()["model"]["L"]
    for step in run.checkpoint_steps():
        ck = run.load_checkpoint(step)
        assert (ck.step, ck.N, ck.K, ck.L) == (step, 40, 4, L)
        assert ck.trainer is not None and ck.trainer.own_paths.shape[1] == L + 1


def test_a_format_1_run_resumes_mid_heating_exactly(tmp_path):
    run = _copy("heat-sft", tmp_path)
    for step in run.checkpoint_steps():
        if step > 8:  # step 8 is inside the heating (steps 6..10): its Adam state is saved
            run.checkpoint_path(step).unlink()
    assert run.load_checkpoint(8).trainer.heat_adam is not None
    run.update_meta(status="running", last_step=8)
    resumed = train_run(None, run.path, resume=True)
    _assert_same_records(RunDir.open(V1 / "heat-sft"), resumed)
    np.testing.assert_array_equal(
        RunDir.open(V1 / "heat-sft").load_checkpoint(20).logits, resumed.load_checkpoint(20).logits
    )


def test_a_finished_format_1_run_extends_like_a_longer_run(tmp_path):
    run = _copy("plain", tmp_path)
    extended = train_run(None, run.path, resume=True, steps=24)
    sets = [*RUNS["plain"], "steps=24", "model.engine=numpy"]
    longer = train_run(resolve_config(None, None, sets), tmp_path / "long")
    _assert_same_records(longer, extended)
    assert extended.read_meta()["status"] == "finished"


def test_format_1_runs_are_analysed(tmp_path):
    run = _copy("sft", tmp_path)
    summary = analyze_run(run.path)
    assert summary["web"]["final_avg_degree"] is not None
    assert summary["forgetting"] is not None


def test_unknown_versions_are_refused_with_the_version(tmp_path):
    run = _copy("plain", tmp_path)
    run.update_meta(format_version=3)
    with pytest.raises(ConceptwebError, match="run format 3"):
        RunDir.open(run.path)
    run.update_meta(format_version=1)
    with np.load(run.checkpoint_path(4)) as raw:
        arrays = {k: raw[k] for k in raw.files}
    atomic_savez(run.checkpoint_path(4), {**arrays, "schema_version": np.array(9)})
    with pytest.raises(ConceptwebError, match="schema version 9"):
        run.load_checkpoint(4)


def _arrays(run: RunDir, step: int) -> dict[str, np.ndarray]:
    return run.load_checkpoint(step).to_arrays()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda a: a.update(logits=a["logits"][:-1]), "logits has shape"),
        (lambda a: a.update(L=np.array(7)), "own_paths has shape"),
        (lambda a: a.update(sources=a["sources"].astype(float)), "sources has dtype"),
        (lambda a: a.update(extra=np.zeros(3)), "unknown arrays: extra"),
        (lambda a: a.pop("rng_state"), "partial trainer state"),
        (lambda a: a.pop("neighbors"), "lacks neighbors"),
    ],
)
def test_checkpoint_schema_is_checked(tmp_path, damage, message):
    arrays = _arrays(RunDir.open(V1 / "plain"), 4)
    damage(arrays)
    with pytest.raises(ConceptwebError, match=message):
        check_arrays(arrays, "under test")


def test_checkpoint_round_trip_and_schema_table():
    ck = RunDir.open(V1 / "heat-sft").load_checkpoint(8)
    arrays = ck.to_arrays()
    assert set(arrays) <= {s.name for s in CHECKPOINT_ARRAYS}
    again = Checkpoint.from_arrays(arrays, "round trip")
    assert again.to_arrays().keys() == arrays.keys()
    for k, v in arrays.items():
        np.testing.assert_array_equal(again.to_arrays()[k], v)


def test_checkpoint_files_deflate_only_what_shrinks_and_load_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "logits": rng.normal(size=(3000, 8)),  # a trained table: stored as it is
        "moments": np.zeros((3000, 8)),  # untouched: deflated
        "walks": np.full((500, 101), -1, dtype=np.int32),  # padded walks: deflated
        "flags": rng.random(40) < 0.5,
        "step": np.array(7),
    }
    path = tmp_path / "step_000007.npz"
    atomic_savez(path, arrays)
    with np.load(path, allow_pickle=False) as back:
        assert sorted(back.files) == sorted(arrays)
        for k, v in arrays.items():
            assert back[k].dtype == v.dtype and back[k].shape == v.shape
            np.testing.assert_array_equal(back[k], v)
    with zipfile.ZipFile(path) as zf:
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
    assert kinds["logits.npy"] == zipfile.ZIP_STORED
    assert kinds["moments.npy"] == kinds["walks.npy"] == zipfile.ZIP_DEFLATED
    assert path.stat().st_size < 3000 * 8 * 8 + 40_000  # the zeros and the padding shrank


def test_a_checkpoint_that_cannot_be_written_leaves_no_file(tmp_path):
    path = tmp_path / "step_000001.npz"
    with pytest.raises(ValueError):
        atomic_savez(path, {"logits": np.zeros((4, 2)), "bad": np.array([object()])})
    assert list(tmp_path.iterdir()) == []


def test_written_columns_are_the_defined_ones(tmp_path):
    run = RunDir.open(V1 / "heat-reset")
    m = run.read_metrics()
    extra = [c for c in m.columns if c not in CONET_METRIC_COLUMNS]
    assert extra and all(c.startswith(DETECTOR_PREFIX) for c in extra)
    assert tuple(run.read_problems().columns) == CONET_PROBLEM_COLUMNS
    assert tuple(run.read_eval().columns) == EVAL_COLUMNS
    assert set(SHARED_METRIC_COLUMNS) <= set(CONET_METRIC_COLUMNS)
    assert set(SHARED_METRIC_COLUMNS) <= set(LLM_METRIC_COLUMNS)


def test_json_of_a_finished_run_says_format_2(tmp_path):
    from tests.conftest import small_config

    run = train_run(small_config(steps=2), tmp_path / "r")
    meta = json.loads(run.meta_path.read_text())
    assert meta["format_version"] == 2 and meta["status"] == "finished"


def test_trainer_reports_a_frozen_result(tmp_path):
    from conceptweb.algorithms.trainer import Trainer
    from conceptweb.config import config_to_dict
    from tests.conftest import small_config

    cfg = small_config(steps=12, **{"anneal.mode": "at", "anneal.at_step": 4})
    cfg = validate_config(
        {
            **config_to_dict(cfg),
            "anneal": {**config_to_dict(cfg)["anneal"], "heat": {"steps": 3, "threshold": 1.0}},
        }
    )
    t = Trainer(cfg, RunDir.create(tmp_path / "r", config_to_dict(cfg)))
    t.start()
    assert t.run(stop_after=5).status == "running"
    result = t.run()
    d = result.to_dict()
    assert d["status"] == "finished" and d["steps_done"] == 12 and d["n_heats"] == 1
    assert d["heat_steps"] == [5, 7] and d["final_metrics"]["step"] == 12
    json.dumps(d)
    with pytest.raises(AttributeError):
        result.status = "x"  # frozen


def test_arrow_columns_built_without_pandas_equal_pyarrows():
    """Record columns built from buffers equal pyarrow's own conversion, nulls included."""
    import pyarrow as pa

    from conceptweb.rundir import arrow_array

    cases = [
        (np.array(["train", "new", ""]), None, pa.string()),
        (np.array(["a", "héllo", "x"], dtype=object), np.array([True, True, False]), pa.string()),
        (np.array([1.5, np.nan, 3.0]), np.array([True, False, True]), pa.float64()),
        (np.array([4, 5, 6]), None, pa.int64()),
        (np.array([True, False, True]), np.array([True, True, False]), pa.bool_()),
    ]
    for values, valid, kind in cases:
        mask = None if valid is None else ~valid
        expected = pa.array(values.tolist(), type=kind, mask=mask)
        assert arrow_array(values, valid).equals(expected), (values, valid)
    large = arrow_array(np.array(["rl", "sft"]), large=True)
    assert large.equals(pa.array(["rl", "sft"], type=pa.large_string()))


def test_text_columns_never_swallow_ctrl_c():
    """A SIGINT that arrives while a text column is encoded still raises KeyboardInterrupt
    (numpy's object-to-str conversion used to swallow it, and a Ctrl-C'd run went on).

    No time limit (a loaded machine may fire the timer late): after the signal is sent, the
    interrupt must come before the encoding has run three more times."""
    import os
    import signal
    import threading

    from conceptweb.parquet_writer import text_bytes

    text = ["train", "new", "holdout"] * 100_000

    def interrupt(sent: threading.Event) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        sent.set()

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for i in range(30):
            values = np.array(text, dtype=object if i % 2 else str)
            sent = threading.Event()
            timer = threading.Timer(0.002 * (i + 1), interrupt, (sent,))
            calls_after = 0
            with pytest.raises(KeyboardInterrupt):
                timer.start()
                while calls_after < 3:
                    text_bytes(values)
                    calls_after += sent.is_set()
            timer.join()
    finally:
        signal.signal(signal.SIGINT, previous)
