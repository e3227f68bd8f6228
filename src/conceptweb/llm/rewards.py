"""Verifiable rewards: math-verify answer checking, and walks on a CoNet graph written as text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from conceptweb.errors import ConceptwebError


@dataclass(frozen=True)
class Score:
    """What one completion earned: reward, correctness, length and the identity of its solution.

    length None means "the completion's token count"; key None means "the completion's text"
    (two correct completions with the same key count as one distinct solution).
    """

    reward: float
    correct: bool
    length: int | None = None
    key: str | None = None


class Task(Protocol):
    """Scores completions against a dataset row (the row holds 'answer' and any extra fields)."""

    name: str
    required_fields: tuple[str, ...]

    def check_answer(self, answer: str) -> str | None:
        """Why this answer cannot be used (the row is then skipped), or None."""
        ...

    def score(self, completion: str, row: dict[str, Any]) -> Score: ...


@lru_cache(maxsize=65536)
def _parse_gold(answer: str) -> tuple[Any, ...]:
    from math_verify import parse

    text = answer if "\\boxed" in answer else "\\boxed{" + answer + "}"
    return tuple(parse(text))


class MathTask:
    """Reward 1 when math-verify finds the completion's final answer equal to the gold answer."""

    name = "math"
    required_fields: tuple[str, ...] = ()

    def check_answer(self, answer: str) -> str | None:
        try:
            gold = _parse_gold(answer)
        except Exception:  # math-verify raises on pathological input
            return "unparsable answer"
        return None if gold else "unparsable answer"

    def score(self, completion: str, row: dict[str, Any]) -> Score:
        from math_verify import parse, verify

        gold = list(_parse_gold(str(row["answer"])))
        try:
            pred = parse(completion)
            ok = bool(gold) and bool(pred) and bool(verify(gold, pred))
        except Exception:
            ok = False
        return Score(1.0 if ok else 0.0, ok)


THINK_END = "</think>"
REWARDS = ("auto", "deepscaler", "loose")


def deepscaler_verdict(completion: str, answer: str) -> tuple[bool, str]:
    """(correct?, why) by DeepScaleR's rule: thinking closed by </think>, then a boxed answer.

    A completion without </think> (truncated, or thinking never closed) scores 0 whatever it
    ends with; so does one with no \\boxed{} after </think>. The boxed answer is then checked
    with math-verify (DeepScaleR graded with its own normaliser and sympy: a departure).
    """
    from math_verify import parse, verify

    from conceptweb.llm.data import last_boxed

    if THINK_END not in completion:
        return False, "no </think>: thinking not closed (truncated?)"
    boxed = last_boxed(completion.split(THINK_END, 1)[1])
    if boxed is None:
        return False, "no \\boxed{} answer after </think>"
    gold = list(_parse_gold(str(answer)))
    try:
        ok = bool(gold) and bool(verify(gold, parse("\\boxed{" + boxed + "}")))
    except Exception:  # math-verify raises on pathological input
        ok = False
    return ok, f"boxed answer {boxed!r} " + ("matches" if ok else "does not match")


class DeepScaleRMathTask(MathTask):
    """DeepScaleR's math reward for thinking models: see deepscaler_verdict."""

    name = "math_deepscaler"

    def score(self, completion: str, row: dict[str, Any]) -> Score:
        ok, _ = deepscaler_verdict(completion, str(row["answer"]))
        return Score(1.0 if ok else 0.0, ok)


def loose_verdict(completion: str, answer: str) -> tuple[bool, str]:
    """(correct?, why) by the loose rule: math-verify over the whole completion."""
    ok = MathTask().score(completion, {"answer": answer}).correct
    return ok, "the completion's final answer " + ("matches" if ok else "does not match")


def is_thinking_tokenizer(tokenizer: Any) -> bool:
    """Whether the chat template opens a <think> block (R1-style thinking models)."""
    return "<think>" in str(getattr(tokenizer, "chat_template", None) or "")


def resolve_reward(reward: str, tokenizer: Any = None) -> str:
    """auto: deepscaler for a thinking model's tokenizer, else loose."""
    if reward != "auto":
        return reward
    return "deepscaler" if tokenizer is not None and is_thinking_tokenizer(tokenizer) else "loose"


NODE_RE = re.compile(r"^n(\d+)$")


def node_token(i: int) -> str:
    return f"n{i}"


class WalkTask:
    """A CoNet problem as text: the completion is a walk 'n3 n17 ... nT' from the row's source.

    The row's answer is the target node token ('n17'), its 'source' field the start node.

    The walk is read token by token from the source node; it stops at the first token that is
    not a neighbour of the current node, at the target (correct, reward 1) or after max_walk
    steps. Length of a correct completion = its number of steps, as in CoNet.
    """

    name = "conet_walk"
    required_fields: tuple[str, ...] = ("source",)

    def __init__(self, neighbors: np.ndarray, max_walk: int) -> None:
        self.neighbors = np.asarray(neighbors)
        self.max_walk = max_walk
        self._adj = [set(map(int, row)) for row in self.neighbors]

    @classmethod
    def from_file(cls, path: str | Path, max_walk: int) -> WalkTask:
        path = Path(path)
        if not path.is_file():
            raise ConceptwebError(f"graph file not found: {path}")
        with np.load(path) as data:
            if "neighbors" not in data.files:
                raise ConceptwebError(f"{path} has no 'neighbors' array")
            return cls(data["neighbors"], max_walk)

    def check_answer(self, answer: str) -> str | None:
        m = NODE_RE.match(answer.strip())
        if m is None or int(m.group(1)) >= len(self._adj):
            return "answer is not a node of the graph"
        return None

    def score(self, completion: str, row: dict[str, Any]) -> Score:
        source, target = int(row["source"]), int(str(row["answer"]).strip()[1:])
        pos, path = source, [source]
        for tok in completion.split()[: self.max_walk]:
            m = NODE_RE.match(tok)
            if m is None or int(m.group(1)) not in self._adj[pos]:
                break
            pos = int(m.group(1))
            path.append(pos)
            if pos == target:
                key = " ".join(map(str, path))
                return Score(1.0, True, len(path) - 1, key)
        return Score(0.0, False)


def make_task(
    kind: str, graph: str | None = None, max_walk: int = 30, reward: str = "loose"
) -> Task:
    """The task a config names (math: the reward `deepscaler` or `loose`; auto counts as loose
    until the tokenizer is known, see resolve_reward)."""
    if kind == "math":
        return DeepScaleRMathTask() if reward == "deepscaler" else MathTask()
    if kind == "conet_walk":
        if graph is None:
            raise ConceptwebError("task conet_walk needs a graph file")
        return WalkTask.from_file(graph, max_walk)
    raise ConceptwebError(f"unknown task {kind!r}")
