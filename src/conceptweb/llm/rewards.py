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


def make_task(kind: str, graph: str | None = None, max_walk: int = 30) -> Task:
    """The task a config names."""
    if kind == "math":
        return MathTask()
    if kind == "conet_walk":
        if graph is None:
            raise ConceptwebError("task conet_walk needs a graph file")
        return WalkTask.from_file(graph, max_walk)
    raise ConceptwebError(f"unknown task {kind!r}")
