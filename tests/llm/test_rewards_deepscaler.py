"""DeepScaleR's math reward: thinking closed by </think>, a boxed answer after it, truncation 0."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.llm.conftest import require_llm_packages

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.interfaces.cli import app  # noqa: E402
from conceptweb.llm.rewards import (  # noqa: E402
    DeepScaleRMathTask,
    MathTask,
    make_task,
    resolve_reward,
)

TRUNCATED = "Let me think. 3 + 4 is 7, so the answer is 7"  # cut off mid-thought, ends on 7
CLOSED = "3 + 4 = 7.</think>\nThe answer is \\boxed{7}."


def test_truncated_completion_without_boxed_scores_zero() -> None:
    row = {"answer": "7"}
    assert MathTask().score(TRUNCATED, row).reward == 1.0  # the loose reward is fooled
    task = DeepScaleRMathTask()
    assert task.score(TRUNCATED, row).reward == 0.0
    assert task.score(CLOSED, row).reward == 1.0
    assert task.score("7 </think> the answer is 7", row).reward == 0.0  # no boxed after
    assert task.score("\\boxed{7} </think> so 8", row).reward == 0.0  # boxed only inside
    assert task.score(CLOSED.replace("{7}", "{8}"), row).reward == 0.0


def test_reward_by_name_and_auto_for_thinking_templates() -> None:
    class Tok:
        chat_template = "{% if add_generation_prompt %}<|Assistant|><think>\n{% endif %}"

    assert resolve_reward("auto", Tok()) == "deepscaler"
    assert resolve_reward("auto", object()) == "loose"
    assert resolve_reward("loose", Tok()) == "loose"
    assert isinstance(make_task("math", reward="deepscaler"), DeepScaleRMathTask)
    assert type(make_task("math", reward="loose")) is MathTask


def test_llm_score_command() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["llm", "score", TRUNCATED, "--answer", "7"])
    assert out.exit_code == 0 and out.output.startswith("0.0 (deepscaler: no </think>")
    out = runner.invoke(app, ["llm", "score", TRUNCATED, "--answer", "7", "--reward", "loose"])
    assert out.exit_code == 0 and out.output.startswith("1.0 (loose")
    out = runner.invoke(app, ["llm", "score", CLOSED, "-a", "7"])
    assert out.output.startswith("1.0 (deepscaler: boxed answer '7' matches")
    bad = runner.invoke(app, ["llm", "score", "x", "-a", "7", "--reward", "strict"])
    assert bad.exit_code == 2 and bad.output.startswith("error: ")
