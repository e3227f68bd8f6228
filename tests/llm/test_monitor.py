"""The monitor's bookkeeping: per-problem and per-step records, the trigger's history."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.llm.conftest import require_llm_packages

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.llm.monitor import (  # noqa: E402
    Completion,
    RecordBook,
    step_metrics,
    summarize_problems,
)
from conceptweb.rundir import RunDir  # noqa: E402


def C(q: int, ok: bool, n: int, key: str = "") -> Completion:
    return Completion(q, float(ok), ok, n, key or f"{q}-{n}")


def test_per_problem_accuracy_lengths_and_diversity() -> None:
    comps = [
        C(7, True, 3, "a"),
        C(7, True, 5, "b"),
        C(7, True, 3, "a"),
        C(7, False, 9),
        C(2, False, 4),
        C(2, False, 6),
    ]
    pp = summarize_problems(comps).set_index("problem")
    assert pp.loc[7, "accuracy"] == 0.75 and pp.loc[2, "accuracy"] == 0.0
    assert pp.loc[7, "len_correct_mean"] == pytest.approx(11 / 3)
    assert pp.loc[7, "len_mean"] == 5.0
    assert pp.loc[7, "n_distinct_correct"] == 2
    p = np.array([2 / 3, 1 / 3])
    assert pp.loc[7, "path_entropy"] == pytest.approx(-(p * np.log(p)).sum())
    assert math.isnan(pp.loc[2, "path_entropy"]) and math.isnan(pp.loc[2, "len_correct_mean"])
    m = step_metrics(comps, summarize_problems(comps))
    assert m["reward_mean"] == 0.5
    assert m["len_correct_mean"] == pytest.approx(11 / 3)  # pooled over correct completions
    assert m["n_solved"] == 1 and m["n_sampled"] == 2 and m["n_completions"] == 6


def test_history_keeps_unsampled_problems_unchanged() -> None:
    book = RecordBook(n_problems=4)
    book.add_rl_step(1, [C(0, True, 2), C(0, False, 2), C(1, False, 2), C(1, False, 2)])
    book.add_rl_step(2, [C(2, True, 2), C(2, True, 2), C(0, False, 2), C(0, False, 2)])
    recent = book.history.recent_accuracy(recent=2)
    np.testing.assert_allclose(recent, [0.25, 0.0, 1.0, np.nan])
    assert list(book.history.steps) == [1, 2] and list(book.history.reward) == [0.25, 0.5]
    assert not hasattr(book.history, "accuracy")  # no dense steps x problems array


def test_history_counts_events_between_observations() -> None:
    book = RecordBook(n_problems=3)
    solved = [C(0, True, 2)] * 8 + [C(1, False, 2)] * 8
    book.add_rl_step(1, solved)
    for step in range(2, 6):  # problems 0 and 1 not sampled: no events, whatever the gap
        book.add_rl_step(step, [C(2, True, 2)] * 8)
    book.add_rl_step(6, [C(0, False, 2)] * 8 + [C(1, True, 2)] * 8)
    # one event each, found at step 6, spread over the gap 2..6 since the last observation
    np.testing.assert_allclose(book.history.forgetting, [0, 0.2, 0.2, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(book.history.learning, [0, 0.2, 0.2, 0.2, 0.2, 0.2])
    f, lr = book.history.tracker.events_at(book.history.steps)
    assert list(f) == [0, 0, 0, 0, 0, 1] and list(lr) == [0, 0, 0, 0, 0, 1]


def test_records_round_trip_and_truncate(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "r", {"x": 1}, kind="llm")
    book = RecordBook(n_problems=3)
    for step in (1, 2, 3):
        book.add_rl_step(step, [C(step % 3, step != 2, step), C(step % 3, False, 1)])
    book.add_sft_step(4, 2, loss=1.5)
    book.write(run)
    metrics, problems = run.read_metrics(), run.read_problems()
    assert list(metrics["step"]) == [1, 2, 3, 4]
    assert list(metrics["phase"]) == ["rl", "rl", "rl", "sft"]
    for col in (
        "step",
        "problem",
        "split",
        "accuracy",
        "len_correct_mean",
        "len_mean",
        "n_distinct_correct",
        "path_entropy",
    ):
        assert col in problems.columns
    assert problems["step"].dtype == np.int64 and set(problems["split"]) == {"train"}
    back = RecordBook.from_run(run, 3, up_to=2)
    assert [r["step"] for r in back.metrics] == [1, 2]
    assert list(back.history.steps) == [1, 2]
    np.testing.assert_array_equal(back.history.forgetting, book.history.forgetting[:2])
    np.testing.assert_allclose(back.history.recent_accuracy(3), [np.nan, 0.5, 0.0])
