"""Verifiable rewards: math-verify answers and CoNet walks written as text."""

from __future__ import annotations

import numpy as np
import pytest

from tests.llm.conftest import require_llm_packages

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.llm.rewards import MathTask, WalkTask  # noqa: E402


@pytest.mark.parametrize(
    "completion, answer, ok",
    [
        ("so the answer is \\boxed{42}", "42", True),
        ("12", "12", True),
        ("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", True),
        ("\\boxed{0.5}", "\\frac{1}{2}", True),
        ("\\boxed{41}", "42", False),
        ("I do not know", "42", False),
    ],
)
def test_math_verify(completion: str, answer: str, ok: bool) -> None:
    score = MathTask().score(completion, {"answer": answer})
    assert score.correct is ok and score.reward == float(ok)
    assert score.length is None  # the monitor then counts tokens


def test_math_answers_that_cannot_be_parsed() -> None:
    task = MathTask()
    assert task.check_answer("42") is None
    assert task.check_answer("}{") == "unparsable answer"


def test_walks_on_a_graph() -> None:
    # a ring 0-1-2-3-4-5-0 (each node's two neighbours)
    nb = np.array([[(i - 1) % 6, (i + 1) % 6] for i in range(6)])
    task = WalkTask(nb, max_walk=4)
    row = {"answer": "n3", "source": 0}
    good = task.score("n1 n2 n3", row)
    assert good.correct and good.length == 3 and good.key == "0 1 2 3"
    assert task.score("n5 n4 n3 n2", row).key == "0 5 4 3"  # tokens after the target ignored
    assert not task.score("n2 n3", row).correct  # 0 -> 2 is not an edge
    assert not task.score("n1 n0 n1 n0 n1 n2 n3", row).correct  # longer than max_walk
    assert not task.score("", row).correct
    assert task.check_answer("n3") is None and task.check_answer("n9") is not None
