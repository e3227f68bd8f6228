"""Math problems by name (DeepScaleR, MATH-500, Minerva, AIME 24/25) or local JSONL."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptweb.errors import ConceptwebError


@dataclass(frozen=True)
class DatasetSpec:
    """Where a named dataset lives and which of its fields mean what."""

    hub: str
    split: str
    question: str
    answer: str | None
    solution: str | None
    subset: str | None = None
    note: str = ""


DATASETS: dict[str, DatasetSpec] = {
    "deepscaler": DatasetSpec(
        "agentica-org/DeepScaleR-Preview-Dataset",
        "train",
        "problem",
        "answer",
        "solution",
        note="40.3k problems (AIME 1984-2023, AMC, Omni-MATH, STILL); training set of the paper",
    ),
    "math500": DatasetSpec(
        "HuggingFaceH4/MATH-500",
        "test",
        "problem",
        "answer",
        "solution",
        note="500 MATH test problems",
    ),
    "minerva": DatasetSpec(
        "knoveleng/Minerva-Math",
        "train",
        "problem",
        None,
        "solution",
        note="272 problems; the answer is the last \\boxed{} of the solution",
    ),
    "aime24": DatasetSpec(
        "HuggingFaceH4/aime_2024",
        "train",
        "problem",
        "answer",
        "solution",
        note="30 AIME 2024 problems",
    ),
    "aime25": DatasetSpec(
        "yentinglin/aime_2025",
        "train",
        "problem",
        "answer",
        "solution",
        note="30 AIME 2025 problems",
    ),
}
SYNTHETIC = {
    "synthetic-arith": "100 one-digit additions 'a + b =' generated locally (no download)",
    "synthetic-chain": "200 chains of 2-4 operations mod 10 written as sentences, generated locally",
}
CHAIN_OPS = ("add", "subtract", "double", "square")
CHAIN_CONCEPTS = ("start", *CHAIN_OPS, "answer")
CHAIN_DOMINANT = {"start": "add", "add": "double", "double": "square", "square": "subtract"}
CHAIN_DOMINANT["subtract"] = "add"
ALIASES = {
    "math-500": "math500",
    "aime2024": "aime24",
    "aime2025": "aime25",
    "minerva_math": "minerva",
}
LOCAL_QUESTION_FIELDS = ("problem", "question")


@dataclass
class Problem:
    """One usable problem: a stable integer id, the question, the answer and maybe a solution."""

    id: int
    question: str
    answer: str
    solution: str | None
    source_index: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedProblems:
    """Problems loaded from one source, with what was skipped and why."""

    name: str
    problems: list[Problem]
    n_rows: int
    skipped: dict[str, int]
    skipped_examples: dict[str, list[int]]

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def report(self) -> str:
        """One line: how many rows were usable, and the skip reasons with counts."""
        line = f"{self.name}: {len(self.problems)} problems from {self.n_rows} rows"
        if self.skipped:
            reasons = ", ".join(
                f"{n} {why} (rows {', '.join(map(str, self.skipped_examples[why]))}"
                f"{', ...' if n > len(self.skipped_examples[why]) else ''})"
                for why, n in sorted(self.skipped.items())
            )
            line += f"; skipped {self.n_skipped}: {reasons}"
        return line

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_rows": self.n_rows,
            "n_problems": len(self.problems),
            "n_skipped": self.n_skipped,
            "skipped": dict(self.skipped),
            "n_with_solution": sum(p.solution is not None for p in self.problems),
        }


def known_names() -> list[str]:
    return sorted([*DATASETS, *SYNTHETIC])


def canonical_name(name: str) -> str:
    return ALIASES.get(name.lower(), name.lower())


def is_local(source: str) -> bool:
    return source.endswith((".jsonl", ".json"))


def check_source(source: str) -> None:
    """Fail early on an unknown dataset name or a missing local file."""
    if is_local(source):
        if not Path(source).is_file():
            raise ConceptwebError(f"dataset file not found: {source}")
        return
    if canonical_name(source) not in DATASETS and canonical_name(source) not in SYNTHETIC:
        raise ConceptwebError(
            f"unknown dataset {source!r}; known: {', '.join(known_names())}, or a local .jsonl file"
        )


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}) in text, braces balanced."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    if not starts:
        return None
    i = starts[-1]
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


def _rows_from_jsonl(path: Path) -> list[dict[str, Any] | None]:
    """Rows of a JSONL file; None for a line that is not a JSON object (reported later)."""
    rows: list[dict[str, Any] | None] = []
    with path.open() as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = None
            rows.append(obj if isinstance(obj, dict) else None)
    return rows


def _rows_from_hub(spec: DatasetSpec, name: str) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - the [llm] extra installs it
        raise ConceptwebError(f"loading {name} needs the datasets library ({exc})") from None
    try:
        ds = datasets.load_dataset(spec.hub, spec.subset, split=spec.split)
    except Exception as exc:  # network, auth, missing cache: all user-fixable
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConceptwebError(
            f"cannot load dataset {name!r} ({spec.hub}, split {spec.split}): {first.rstrip('.')}. "
            "Download it first, or pass a local .jsonl file"
        ) from None
    return list(ds)


def synthetic_arith() -> list[dict[str, Any]]:
    """'a + b =' for one-digit a, b; answer and reference solution are the sum."""
    return [
        {"problem": f"{a} + {b} =", "answer": str(a + b), "solution": str(a + b)}
        for a in range(10)
        for b in range(10)
    ]


def chain_apply(op: str, x: int, k: int) -> int:
    """One operation of `synthetic-chain`, mod 10."""
    return {"add": x + k, "subtract": x - k, "double": 2 * x, "square": x * x}[op] % 10


def synthetic_chain(n: int = 200, seed: int = 0, p_dominant: float = 0.7) -> list[dict[str, Any]]:
    """Chained arithmetic mod 10: 'start 3 , add 4 , double .' and its worked solution.

    Solution: 'start 3 . add 4 gives 7 . double gives 4 . answer 4 .': one sentence per step,
    whose first word is its concept (start, an operation, answer). 2 to 4 operations; each is
    the previous one's dominant successor (CHAIN_DOMINANT) with probability p_dominant, else
    one of the others, so the true concept web has structure. Seeded; no download.
    """
    rng = np.random.default_rng([seed, 31])
    rows = []
    for _ in range(n):
        x, prev = int(rng.integers(10)), "start"
        question, steps = [f"start {x}"], [f"start {x} ."]
        for _ in range(int(rng.integers(2, 5))):
            others = [o for o in CHAIN_OPS if o not in (CHAIN_DOMINANT[prev], prev)]
            op = CHAIN_DOMINANT[prev] if rng.random() < p_dominant else str(rng.choice(others))
            k = int(rng.integers(1, 10)) if op in ("add", "subtract") else 0
            x = chain_apply(op, x, k)
            arg = f" {k}" if k else ""
            question.append(f"{op}{arg}")
            steps.append(f"{op}{arg} gives {x} .")
            prev = op
        steps.append(f"answer {x} .")
        rows.append(
            {"problem": " , ".join(question) + " :", "answer": str(x), "solution": " ".join(steps)}
        )
    return rows


def load_problems(
    source: str,
    *,
    check_answer: Callable[[str], str | None] | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    solution_field: str | None = None,
    max_problems: int | None = None,
    seed: int = 0,
    required_fields: tuple[str, ...] = (),
) -> LoadedProblems:
    """Load and validate problems from a dataset name or a local JSONL file.

    Every source maps onto one record: problem (the question), answer (what the reward
    checks), solution (a reference solution for SFT heating; may be missing). Rows that
    cannot be used (no question, no answer, an answer the task cannot parse, not JSON) are
    skipped, counted by reason and reported, never dropped silently.

    check_answer(answer) returns a reason when the task cannot use the answer (then the row
    is skipped). A field override that the data lacks is an error, before any training.
    """
    check_source(source)
    if is_local(source):
        rows: list[dict[str, Any] | None] = list(_rows_from_jsonl(Path(source)))
        present = {k for r in rows if r for k in r}
        q_field = question_field or next(
            (f for f in LOCAL_QUESTION_FIELDS if f in present), "problem"
        )
        a_field, s_field, from_solution = (
            answer_field or "answer",
            solution_field or "solution",
            False,
        )
        name = Path(source).name
    else:
        name = canonical_name(source)
        rows = (
            synthetic_chain()
            if name == "synthetic-chain"
            else synthetic_arith()
            if name in SYNTHETIC
            else _rows_from_hub(DATASETS[name], name)
        )
        spec = DATASETS.get(name, DatasetSpec("", "", "problem", "answer", "solution"))
        q_field = question_field or spec.question
        a_field = answer_field or spec.answer or "answer"
        s_field = solution_field or spec.solution or "solution"
        from_solution = spec.answer is None and answer_field is None
        present = {k for r in rows if r for k in r}
    _check_fields(name, present, q_field, a_field, s_field, from_solution, solution_field)
    for f in required_fields:
        if f not in present:
            raise ConceptwebError(f"dataset {name} has no field {f!r}, which the task needs")
    return _validate(
        name, rows, q_field, a_field, s_field, from_solution, check_answer, max_problems, seed
    )


def load_training_problems(data_cfg: Any, task: Any, seed: int) -> LoadedProblems:
    """The training problems a run's `data` section names, checked by its task."""
    return load_problems(
        data_cfg.train,
        check_answer=task.check_answer,
        question_field=data_cfg.question_field,
        answer_field=data_cfg.answer_field,
        solution_field=data_cfg.solution_field,
        max_problems=data_cfg.max_problems,
        seed=seed,
        required_fields=task.required_fields,
    )


def _check_fields(
    name: str,
    present: set[str],
    q_field: str,
    a_field: str,
    s_field: str,
    from_solution: bool,
    solution_override: str | None,
) -> None:
    if not present:
        raise ConceptwebError(f"dataset {name} has no rows")
    have = ", ".join(sorted(present))
    if q_field not in present:
        raise ConceptwebError(f"dataset {name} has no question field {q_field!r} (fields: {have})")
    if not from_solution and a_field not in present:
        raise ConceptwebError(
            f"dataset {name} has no answer field {a_field!r}, which the reward needs "
            f"(fields: {have}); set data.answer_field"
        )
    if from_solution and s_field not in present and a_field not in present:
        raise ConceptwebError(
            f"dataset {name} has neither an answer field nor a solution to take it from "
            f"(fields: {have})"
        )
    if solution_override is not None and solution_override not in present:
        raise ConceptwebError(f"dataset {name} has no solution field {solution_override!r}")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(int(value)) if float(value).is_integer() else str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _validate(
    name: str,
    rows: list[dict[str, Any] | None],
    q_field: str,
    a_field: str,
    s_field: str,
    from_solution: bool,
    check_answer: Callable[[str], str | None] | None,
    max_problems: int | None,
    seed: int,
) -> LoadedProblems:
    skipped: Counter[str] = Counter()
    examples: dict[str, list[int]] = {}
    kept: list[Problem] = []
    known = {q_field, a_field, s_field}
    for i, row in enumerate(rows):
        reason = None
        if row is None:
            reason = "not a JSON object"
        else:
            question = _text(row.get(q_field))
            solution = _text(row.get(s_field))
            answer = _text(row.get(a_field))
            if answer is None and from_solution and solution is not None:
                answer = last_boxed(solution)
            if question is None:
                reason = "no question"
            elif answer is None:
                reason = "no answer"
            elif check_answer is not None:
                reason = check_answer(answer)
        if reason is not None:
            skipped[reason] += 1
            examples.setdefault(reason, [])
            if len(examples[reason]) < 5:
                examples[reason].append(i)
            continue
        assert row is not None and question is not None and answer is not None
        extra = {k: v for k, v in row.items() if k not in known}
        kept.append(Problem(len(kept), question, answer, solution, i, extra))
    if not kept:
        raise ConceptwebError(
            f"dataset {name}: none of its {len(rows)} rows is usable "
            f"({', '.join(f'{n} {w}' for w, n in skipped.items())})"
        )
    if max_problems is not None and max_problems < len(kept):
        pick = np.sort(np.random.default_rng([seed, 7]).choice(len(kept), max_problems, False))
        kept = [kept[i] for i in pick]
        for new_id, p in enumerate(kept):
            p.id = new_id
    return LoadedProblems(name, kept, len(rows), dict(skipped), examples)


def format_prompt(
    question: str, template: str, chat: bool, system_prompt: str | None
) -> str | list[dict[str, str]]:
    """The prompt TRL sees: a string, or a chat (list of messages) when chat is true."""
    text = template.replace("{question}", question)
    if not chat:
        return text
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*messages, {"role": "user", "content": text}]


def to_rows(
    problems: Iterable[Problem], template: str, chat: bool, system_prompt: str | None
) -> list[dict[str, Any]]:
    """Dataset rows for TRL: prompt, problem_id, answer, has_solution and extra fields."""
    out = []
    for p in problems:
        row = {
            "prompt": format_prompt(p.question, template, chat, system_prompt),
            "problem_id": p.id,
            "answer": p.answer,
        }
        row.update({k: v for k, v in p.extra.items() if k not in row})
        out.append(row)
    return out
