"""Data loading: local JSONL, field mapping, bad rows reported and skipped with a count."""

from __future__ import annotations

from pathlib import Path

import pytest

from conceptweb.errors import ConceptwebError
from conceptweb.llm.data import DATASETS, last_boxed, load_problems, to_rows
from tests.llm.conftest import require_llm_packages, write_jsonl

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.llm.rewards import MathTask  # noqa: E402


def test_bad_rows_are_skipped_counted_and_reported(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"problem": "1 + 1 =", "answer": "2", "solution": "2"},
            {"problem": "2 + 2 =", "answer": ""},  # no answer
            {"problem": "3 + 3 =", "answer": "}{"},  # math-verify cannot parse it
            "this line is not json",
            {"problem": "", "answer": "5"},  # no question
            {"problem": "4 + 4 =", "answer": 8},  # a numeric answer is fine
        ],
    )
    data = load_problems(str(path), check_answer=MathTask().check_answer)
    assert [p.question for p in data.problems] == ["1 + 1 =", "4 + 4 ="]
    assert [p.answer for p in data.problems] == ["2", "8"]
    assert [p.id for p in data.problems] == [0, 1]
    assert data.n_rows == 6
    assert data.skipped == {
        "no answer": 1,
        "unparsable answer": 1,
        "not a JSON object": 1,
        "no question": 1,
    }
    report = data.report()
    assert "2 problems from 6 rows" in report and "skipped 4" in report
    assert "1 unparsable answer (rows 2)" in report


def test_question_field_alias(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "1 + 2 =", "answer": "3"}])
    assert load_problems(str(path)).problems[0].question == "1 + 2 ="


def test_missing_answer_field_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem": "1 + 1 =", "result": "2"}])
    with pytest.raises(ConceptwebError, match="no answer field 'answer'.*reward needs"):
        load_problems(str(path))
    data = load_problems(str(path), answer_field="result")
    assert data.problems[0].answer == "2"


def test_unknown_dataset_and_missing_file() -> None:
    with pytest.raises(ConceptwebError, match="unknown dataset 'nope'; known: aime24"):
        load_problems("nope")
    with pytest.raises(ConceptwebError, match="dataset file not found"):
        load_problems("missing/file.jsonl")


def test_synthetic_data_and_fixed_subsample() -> None:
    full = load_problems("synthetic-arith")
    assert len(full.problems) == 100 and full.n_skipped == 0
    a = load_problems("synthetic-arith", max_problems=10, seed=3)
    b = load_problems("synthetic-arith", max_problems=10, seed=3)
    assert [p.question for p in a.problems] == [p.question for p in b.problems]
    assert [p.id for p in a.problems] == list(range(10))


def test_registry_field_mapping() -> None:
    assert DATASETS["deepscaler"].hub == "agentica-org/DeepScaleR-Preview-Dataset"
    assert DATASETS["minerva"].answer is None  # taken from the solution's last \boxed{}
    assert last_boxed(r"so $x = \boxed{\frac{1}{2}}$, i.e. \boxed{0.5}") == "0.5"
    assert last_boxed(r"\boxed{\frac{a}{b}}") == r"\frac{a}{b}"
    assert last_boxed("no box") is None


def test_rows_for_trl_carry_id_answer_and_prompt() -> None:
    data = load_problems("synthetic-arith", max_problems=3)
    rows = to_rows(data.problems, "Q: {question}", chat=False, system_prompt=None)
    assert rows[0]["prompt"] == "Q: " + data.problems[0].question
    assert [r["problem_id"] for r in rows] == [0, 1, 2]
    chat = to_rows(data.problems, "{question}", chat=True, system_prompt="be brief")
    assert chat[0]["prompt"][0] == {"role": "system", "content": "be brief"}
    assert chat[0]["prompt"][1]["role"] == "user"
