"""The sentinel set inside `llm train`, and per-problem truncation rates in the records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.llm.conftest import require_llm_packages, tiny_config

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.llm.monitor import Completion, Monitor, RecordBook, summarize_problems  # noqa: E402
from conceptweb.llm.rewards import MathTask  # noqa: E402
from conceptweb.llm.train import train_llm  # noqa: E402
from conceptweb.rundir import RunDir  # noqa: E402


@pytest.fixture(scope="module")
def sentinel_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sentinel") / "run"
    cfg = tiny_config(
        steps=5, save_steps=5, record_completions=32, sentinel={"problems": 10, "every": 2, "k": 6}
    )
    train_llm(cfg, out, echo=lambda m: None)
    return out


def test_sentinel_set_is_evaluated_every_n_steps_and_recorded(sentinel_run: Path) -> None:
    run = RunDir.open(sentinel_run)
    p, m = run.read_problems(), run.read_metrics().set_index("step")
    s = p[p["phase"] == "sentinel"]
    assert sorted(s["step"].unique()) == [0, 2, 4]  # a baseline, then every 2 GRPO steps of 5
    for step, g in s.groupby("step"):
        assert len(g) == 10 and set(g["n"]) == {6} and g["problem"].is_unique
        if step > 0:
            assert m.loc[step, "sentinel_accuracy"] == pytest.approx(g["accuracy"].mean())
    assert 0 not in m.index  # the baseline has per-problem rows only
    # the same fixed set every time, and not the training batch of the step
    sets = [tuple(g["problem"]) for _, g in s.groupby("step")]
    assert sets[0] == sets[1] == sets[2]
    assert np.isnan(m.loc[[1, 3, 5], "sentinel_accuracy"]).all()
    assert len(p[p["phase"] == "rl"]) == 5 * 8


def test_detect_counts_sentinel_observations(sentinel_run: Path) -> None:
    from conceptweb.analysis.detector import FrustrationDetector, replay
    from conceptweb.interfaces.cli_detect import load_observations

    obs, metrics, _, _ = load_observations(sentinel_run)
    result = replay(obs, FrustrationDetector(), metrics, 100)
    p = RunDir.open(sentinel_run).read_problems()
    assert result["n_observations"] == len(p) == 5 * 8 + 3 * 10  # training + sentinel rows
    assert len(obs) == len(p)
    assert result["first_step"] == 0 and result["n_steps"] == 6  # the baseline, 5 updates


def test_online_and_resumed_histories_count_the_same_events(sentinel_run: Path) -> None:
    """The monitor's history (online) and one rebuilt from the files (resume) agree."""
    run = RunDir.open(sentinel_run)
    p = run.read_problems()
    online = RecordBook(100)
    base = p[(p["step"] == 0) & (p["phase"] == "sentinel")]
    online.add_sentinel_baseline(
        0,
        [
            Completion(int(q), 1.0, j < c, 1, str(j))
            for q, n, c in base[["problem", "n", "n_correct"]].itertuples(index=False)
            for j in range(int(n))
        ],
    )
    for step in range(1, 6):
        g = p[p["step"] == step]

        def comps(phase: str, g=g) -> list[Completion]:
            rows = g[g["phase"] == phase]
            return [
                Completion(int(q), 1.0, j < c, 1, str(j))
                for q, n, c in rows[["problem", "n", "n_correct"]].itertuples(index=False)
                for j in range(int(n))
            ]

        online.add_rl_step(step, comps("rl"), comps("sentinel"))
    rebuilt = RecordBook.from_run(run, 100, up_to=5)
    assert online.history.tracker.counts == rebuilt.history.tracker.counts
    assert online.history.steps.tolist() == rebuilt.history.steps.tolist() == list(range(6))
    assert np.isnan(online.history.reward[0]) and np.isnan(rebuilt.history.reward[0])
    # and `conceptweb detect` replays the same history: same events at the same steps
    from conceptweb.analysis.detector import FrustrationDetector, replay
    from conceptweb.interfaces.cli_detect import load_observations

    obs, metrics, _, _ = load_observations(sentinel_run)
    replayed = replay(obs, FrustrationDetector(), metrics, 100)
    f, lr = online.history.tracker.events_at(online.history.steps)
    assert (replayed["n_forgetting_events"], replayed["n_learning_events"]) == (f.sum(), lr.sum())


def test_sentinel_baseline_is_the_model_before_the_first_update(sentinel_run: Path) -> None:
    """The step-0 sentinel rows are samples of the initial model (run/init), drawn with the
    sentinel's own seed and settings: the state every later check is compared against."""
    from conceptweb.llm.config import validate_llm_config
    from conceptweb.llm.data import load_training_problems
    from conceptweb.llm.models import load_pretrained
    from conceptweb.llm.sentinel import make_sentinel

    run = RunDir.open(sentinel_run)
    cfg = validate_llm_config(run.read_config())
    model, tok = load_pretrained(cfg.model, str(sentinel_run / "init"))
    data = load_training_problems(cfg.data, MathTask(), cfg.seed)
    sentinel = make_sentinel(cfg, data, MathTask(), model, tok)
    assert sentinel is not None
    fresh = summarize_problems(sentinel.evaluate(0)).set_index("problem")
    p = run.read_problems()
    base = p[(p["step"] == 0) & (p["phase"] == "sentinel")].set_index("problem")
    assert sorted(base.index) == sorted(fresh.index)
    assert base["n_correct"].to_dict() == fresh["n_correct"].to_dict()
    assert base["len_mean"].to_dict() == pytest.approx(fresh["len_mean"].to_dict())


def test_sentinel_baseline_runs_once() -> None:
    """Not again when the records hold it (a resume before the first checkpoint), nor after
    a resume from a checkpoint (TRL's step > 0)."""
    from types import SimpleNamespace

    class Fake:
        calls = 0

        def evaluate(self, trl_step: int) -> list[Completion]:
            Fake.calls += 1
            return [Completion(0, 1.0, True, 1, "a"), Completion(1, 0.0, False, 1, "b")]

    mon = Monitor(RecordBook(3), MathTask())
    mon.sentinel = Fake()
    state = SimpleNamespace(global_step=0, is_world_process_zero=True)
    mon._sentinel_baseline(state)
    assert Fake.calls == 1 and mon.book.history.steps.tolist() == [0]
    assert mon.book.history.tracker.counts[0][2] == 2
    mon._sentinel_baseline(state)  # the records already hold step 0
    mon._sentinel_baseline(SimpleNamespace(global_step=4, is_world_process_zero=True))
    assert Fake.calls == 1


def test_resumed_history_includes_sentinel_observations(sentinel_run: Path) -> None:
    run = RunDir.open(sentinel_run)
    book = RecordBook.from_run(run, 100, up_to=5)
    p = run.read_problems()
    both = p[p["step"] == 2]["problem"].nunique()  # a problem in both is one observation
    assert book.history.tracker.counts[2][2] == both > 10
    assert book.history.tracker.counts[3][2] == 8


def test_truncation_rate_per_problem_agrees_with_the_recorded_completions(
    sentinel_run: Path,
) -> None:
    run = RunDir.open(sentinel_run)
    p = run.read_problems()
    rl = p[p["phase"] == "rl"].set_index(["step", "problem"])
    comp = run.read_table("completions")  # all 8 x 4 completions of each step recorded
    assert len(comp) == 5 * 32
    rate = comp.groupby(["step", "problem"])["truncated"].mean()
    assert rl["truncated_rate"].between(0, 1).all()
    np.testing.assert_allclose(rl.loc[rate.index, "truncated_rate"], rate.to_numpy())
    m = run.read_metrics().set_index("step")
    np.testing.assert_allclose(m["truncated_rate"], comp.groupby("step")["truncated"].mean())


def test_truncated_needs_the_limit_and_no_end_token() -> None:
    mon = Monitor(RecordBook(3), MathTask())
    mon._end_ids, mon._max_len = {0}, 4
    assert mon.truncated([5, 6, 7, 8]) and not mon.truncated([5, 6, 7, 0])
    assert not mon.truncated([5, 6]) and not mon.truncated([])
    mon._end_ids, mon._max_len = set(), None  # nothing known: never claimed
    assert not mon.truncated([5, 6, 7, 8])
    comps = [Completion(0, 0.0, False, 4, "a", True), Completion(0, 1.0, True, 2, "b", False)]
    assert summarize_problems(comps)["truncated_rate"].tolist() == [0.5]


@pytest.mark.slow  # two `llm train` processes: 40 s of CPU, minutes on a loaded machine
def test_killed_run_resumes_with_whole_parts_and_no_duplicate_rows(tmp_path: Path) -> None:
    """SIGKILL `llm train` mid-run (after its checkpoint at step 4), then --resume: every part
    is readable, the rows after the checkpoint are redone once, none is duplicated."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.llm.conftest import tiny_config_dict

    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(tiny_config_dict(steps=12, save_steps=4, record_completions=4)))
    out = tmp_path / "run"
    parts = out / "problems.parts"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "conceptweb", "llm", "train", "-q"]
    proc = subprocess.Popen([*cmd, "--config", str(cfg), "--out", str(out)], env=env)
    deadline = time.monotonic() + 300
    while proc.poll() is None and not (parts.is_dir() and len(list(parts.glob("part-*"))) >= 6):
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = RunDir.open(out)
    assert run.read_meta()["status"] == "running"
    assert (out / "checkpoints" / "checkpoint-4").is_dir()
    resumed = subprocess.run([*cmd, "--out", str(out), "--resume"], env=env, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    p = run.read_problems()
    assert sorted(p["step"].unique()) == list(range(1, 13))
    assert not p.duplicated(["step", "problem", "phase"]).any() and len(p) == 12 * 8
    c = run.read_table("completions")
    assert c.groupby("step").size().tolist() == [4] * 12
    assert run.read_metrics()["step"].tolist() == list(range(1, 13))


def test_heating_on_own_correct_completions(tmp_path: Path) -> None:
    """targets: own heats the hard problems the model solved before, on its latest correct
    completion of each, recorded as it was generated."""
    import json

    from conceptweb.llm.rewards import MathTask

    out = tmp_path / "run"
    heat = {"steps": 1, "threshold": 1.0, "recent": 8, "probe": False, "targets": "own"}
    cfg = tiny_config(steps=7, save_steps=7, anneal={"mode": "at", "at_step": 5, "heat": heat})
    train_llm(cfg, out, echo=lambda m: None)
    run = RunDir.open(out)
    own = run.read_table("own_completions")
    assert len(own) and own["step"].max() == 7
    problems = run.read_problems()
    rl = problems[(problems["phase"] == "rl") & (problems["step"] <= 5)]
    solved = set(rl.loc[rl["n_correct"] > 0, "problem"])
    assert set(own.loc[own["step"] <= 5, "problem"]) == solved  # every correct one is kept
    assert not own.duplicated(["step", "problem"]).any()
    data = json.loads((out / "heat" / "heat-1" / "sft_data.json").read_text())
    recent = rl.groupby("problem")["accuracy"].mean()
    expected = sorted(q for q in solved if recent[q] < 1.0)
    assert data["problems"] == expected and data["targets"] == "own"
    latest = (
        own[own["step"] <= 5].sort_values("step").groupby("problem").tail(1).set_index("problem")
    )
    from conceptweb.llm.data import load_problems

    gold = load_problems("synthetic-arith").problems
    for q, row in zip(data["problems"], data["rows"], strict=True):
        assert row["source"] == "own" and row["completion"] == latest.loc[q, "text"]
        assert row["own_step"] == latest.loc[q, "step"]
        assert MathTask().score(row["completion"], {"answer": gold[q].answer}).correct
        assert row["problem"] == q
