"""Heating operators of Annealed-RLVR, the triggers that start them, and whom they heat.

`HEATING_OPERATORS` is the one list of operators: the config's `anneal.heat.operator` choices,
the ablation's arms and the records' `phase` values are its keys. An operator acts only on the
selected problems, with its own fresh Adam. Adding one is one registered class:

    @HEATING_OPERATORS.register("mine")
    class Mine(HeatingOperator):
        '''What it does, in one line (shown in the config's help).'''

        def update(self, heat: HeatStep) -> dict[str, float]:
            ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from conceptweb.algorithms.estimators import Estimator
from conceptweb.algorithms.grpo import grpo_update
from conceptweb.algorithms.optim import Adam
from conceptweb.algorithms.sft import SFTBatch, sft_update
from conceptweb.model.engines import RolloutEngine
from conceptweb.model.policy import softmax
from conceptweb.model.rollouts import Rollouts
from conceptweb.registry import Registry

# a conceptweb.config.RunConfig; not imported, because the config reads this module's registry
RunConfig = Any

RECENT_STEPS_FOR_SELECTION = 5
PAPER_HEATING = "sft"  # the paper's heating operator (the default)
CONTROL_HEATING = "rl_hard"  # the control: extra RL on the same problems


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


@dataclass
class HeatStep:
    """One heating step as an operator sees it; it records what the operator trained on.

    `walks()` and `batch(own)` build the selected problems' rollouts and SFT batch; the one an
    operator asks for is kept in `used_walks` / `used_batch` (for hooks that watch heating).
    """

    logits: np.ndarray  # the policy, updated in place
    temperature: float  # this step's sampling temperature
    problems: np.ndarray  # tracked problems being heated
    config: RunConfig
    optimizer: Adam  # heating's own Adam
    ref_log_probs: np.ndarray
    estimator: Estimator
    engine: RolloutEngine
    select_walks: Callable[[np.ndarray], Rollouts]  # the walks of given problems this step
    sft_batch: Callable[[np.ndarray, bool], SFTBatch]  # (problems, own) -> SFT batch
    used_walks: Rollouts | None = field(default=None, init=False)
    used_batch: SFTBatch | None = field(default=None, init=False)

    def walks(self) -> Rollouts:
        self.used_walks = self.select_walks(self.problems)
        return self.used_walks

    def batch(self, own: bool) -> SFTBatch:
        self.used_batch = self.sft_batch(self.problems, own)
        return self.used_batch


@dataclass
class HeatStart:
    """The moment the trigger fired, as an operator sees it (for one-shot actions)."""

    logits: np.ndarray  # the policy, changed in place by operators that act once
    problems: np.ndarray
    config: RunConfig
    neighbors: np.ndarray
    shortest_paths: Callable[[np.ndarray], list[np.ndarray]]


class HeatingOperator:
    """Base operator: GRPO on the selected problems' walks at the run's temperature."""

    uses_sft_lr = False  # heating Adam's learning rate: sft.lr if True, else grpo.lr

    def select(self, chosen: np.ndarray, own_paths: np.ndarray) -> np.ndarray:
        """The problems this operator can heat among those under the threshold."""
        return chosen

    def begin(self, start: HeatStart) -> dict[str, Any]:
        """One-shot action when heating starts; returns evidence for the metrics row."""
        return {}

    def temperature(self, T: float, config: RunConfig) -> float:
        """The sampling temperature during heating."""
        return T

    def entropy_coef(self, config: RunConfig) -> float:
        return 0.0

    def update(self, heat: HeatStep) -> dict[str, float]:
        """One heating step on heat.logits in place; returns loss statistics."""
        return grpo_update(
            heat.logits,
            heat.temperature,
            heat.walks(),
            heat.config.grpo,
            heat.optimizer,
            heat.ref_log_probs,
            self.entropy_coef(heat.config),
            engine=heat.engine,
            estimator=heat.estimator,
        )


HEATING_OPERATORS: Registry[type[HeatingOperator]] = Registry("heating operator")


@HEATING_OPERATORS.register(PAPER_HEATING)
class SFTHeating(HeatingOperator):
    """SFT on the selected problems' reference solutions (shortest paths): the paper's heating."""

    uses_sft_lr = True
    own = False

    def update(self, heat: HeatStep) -> dict[str, float]:
        return sft_update(
            heat.logits, heat.temperature, heat.batch(self.own), heat.optimizer, heat.engine
        )


@HEATING_OPERATORS.register("sft_own")
class OwnSFTHeating(SFTHeating):
    """SFT on the policy's own latest successful walk of each (solved once, then forgotten)."""

    own = True

    def select(self, chosen: np.ndarray, own_paths: np.ndarray) -> np.ndarray:
        return chosen[(own_paths[chosen] >= 0).sum(axis=1) >= 2]


@HEATING_OPERATORS.register("temperature")
class TemperatureHeating(HeatingOperator):
    """GRPO at a raised sampling temperature (x anneal.heat.temperature)."""

    def temperature(self, T: float, config: RunConfig) -> float:
        return T * config.anneal.heat.temperature


@HEATING_OPERATORS.register("reset")
class ResetHeating(HeatingOperator):
    """Shrink the logits of the most frustrated nodes towards zero once, then GRPO."""

    def begin(self, start: HeatStart) -> dict[str, Any]:
        heat = start.config.anneal.heat
        nodes = frustrated_nodes(
            start.logits,
            start.config.model.temperature,
            start.neighbors,
            start.shortest_paths(start.problems),
            heat.reset_nodes,
        )
        reset_logits(start.logits, nodes, heat.reset_frac)
        return {"det_n_reset_nodes": int(nodes.size)}


@HEATING_OPERATORS.register("entropy")
class EntropyHeating(HeatingOperator):
    """GRPO with an entropy bonus (anneal.heat.entropy_coef)."""

    def entropy_coef(self, config: RunConfig) -> float:
        return config.anneal.heat.entropy_coef


@HEATING_OPERATORS.register(CONTROL_HEATING)
class HardRLHeating(HeatingOperator):
    """Plain GRPO on the selected problems: the control 'just extra training on hard items'."""


def heating_help() -> str:
    """One line per operator, from their docstrings (the config's help text)."""
    docs = {
        n: (HEATING_OPERATORS.get(n).__doc__ or "").strip().rstrip(".") for n in HEATING_OPERATORS
    }
    return "; ".join(f"{n}: {d[:1].lower()}{d[1:]}" for n, d in docs.items())
