"""Heating operators of Annealed-RLVR: which problems to heat, and the one-shot logit reset."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from conceptweb.model.policy import softmax


class History(Protocol):
    """What a trigger may see: per-step records up to the current step, nothing later."""

    steps: np.ndarray  # (S,) steps recorded so far
    reward: np.ndarray  # (S,) mean reward of the training problems
    len_correct: np.ndarray  # (S,) mean length of correct rollouts
    accuracy: np.ndarray  # (S, Q) per-problem accuracy


class Trigger(Protocol):
    """Decides, from the past alone, whether to start heating now."""

    def decide(self, history: History) -> tuple[bool, dict[str, float]]:
        """(fire now?, evidence to log in the metrics)."""
        ...


class FixedStepTrigger:
    """Fires once the run has completed `at_step` steps."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def decide(self, history: History) -> tuple[bool, dict[str, float]]:
        step = int(history.steps[-1]) if len(history.steps) else 0
        return step >= self.at_step, {}


def select_hard_problems(recent_accuracy: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of problems whose mean accuracy over the recent steps is below `threshold`.

    recent_accuracy: (S_recent, Q), the last few steps' per-problem accuracy.
    """
    acc = np.asarray(recent_accuracy, dtype=np.float64)
    if acc.ndim == 1:
        acc = acc[None, :]
    return np.flatnonzero(acc.mean(axis=0) < threshold)


def frustrated_nodes(
    logits: np.ndarray,
    temperature: float,
    neighbors: np.ndarray,
    paths: list[np.ndarray],
    n_nodes: int,
) -> np.ndarray:
    """Nodes where the hard problems' reference paths most often disagree with the policy.

    A node scores one point for each hard problem whose reference path leaves it along an
    edge that the policy gives probability below 0.5: the node points elsewhere, most likely
    towards another problem's answer (the contention the paper calls frustration).
    """
    probs = softmax(logits, temperature)
    score = np.zeros(logits.shape[0])
    for path in paths:
        if len(path) < 2:
            continue
        src, dst = path[:-1], path[1:]
        k = (neighbors[src] == dst[:, None]).argmax(axis=1)
        low = probs[src, k] < 0.5
        np.add.at(score, src[low], 1.0)
    order = np.lexsort((np.arange(score.size), -score))
    chosen = order[: min(n_nodes, int((score > 0).sum()))]
    return np.sort(chosen)


def reset_logits(logits: np.ndarray, nodes: np.ndarray, frac: float) -> None:
    """Shrink the chosen nodes' logits towards zero by `frac` (1.0: back to a uniform walk)."""
    logits[nodes] *= 1.0 - frac
