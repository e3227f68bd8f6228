"""Advantage and loss estimators of the policy-gradient update (GRPO and its variants).

An estimator says how the rewards of a batch of walks become (1) one advantage per walk, (2) one
loss weight per walk (every token of a walk carries it), and (3) the PPO clip range. The update
step (`grpo.grpo_update`) does the rest: ratios, clipping, KL and entropy terms, Adam. The
config key `grpo.estimator` selects one from `ESTIMATORS`; adding one is one registered class:

    @ESTIMATORS.register("mine")
    class Mine(GRPOEstimator):
        def advantages(self, rollouts, cfg):
            ...
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from conceptweb.model.rollouts import Rollouts
from conceptweb.registry import Registry


class GRPOSettings(Protocol):
    """The `grpo` config values the update reads (`conceptweb.config.GRPOConfig` has them; it is
    not imported here because the config reads this module's registry for its choices)."""

    estimator: str
    epochs: int
    clip_eps: float
    kl_coef: float
    adv_eps: float
    length_norm: bool
    entropy_coef: float


class Estimator(Protocol):
    """Rewards -> advantages and token weights of the policy-gradient loss."""

    def advantages(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        """One advantage per walk, shape (M,)."""
        ...

    def walk_weights(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        """The loss weight of each token of each walk, shape (M,)."""
        ...

    def clip_range(self, cfg: GRPOSettings) -> tuple[float, float]:
        """(low, high) bounds of the probability ratio when clipping applies."""
        ...


ESTIMATORS: Registry[type[Estimator]] = Registry("estimator")


def group_advantages(rewards: np.ndarray, G: int, eps: float = 1e-4) -> np.ndarray:
    """(r - group mean) / (group std + eps) for rewards laid out as consecutive groups of G.

    The std has Bessel's correction, as in TRL's GRPOTrainer. A group whose rollouts all
    succeed (or all fail) gets exactly zero advantage.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, G)
    mean = r.mean(axis=1, keepdims=True)
    std = r.std(axis=1, ddof=1, keepdims=True)
    return ((r - mean) / (std + eps)).ravel()


@ESTIMATORS.register("grpo")
class GRPOEstimator:
    """GRPO (Shao et al. 2024): group-normalised advantages, per-walk length normalisation.

    With `grpo.length_norm` each walk's token weights are 1 / (M * its length), so every walk
    counts equally; without it every token of the batch weighs 1 / (number of tokens).
    """

    def advantages(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        return group_advantages(rollouts.rewards, rollouts.G, cfg.adv_eps)

    def walk_weights(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        M = rollouts.lengths.size
        if cfg.length_norm:
            return 1.0 / (M * rollouts.lengths.astype(np.float64))
        n_tokens = rollouts.tokens()[0].size
        return np.full(M, 1.0 / max(n_tokens, 1))

    def clip_range(self, cfg: GRPOSettings) -> tuple[float, float]:
        return 1 - cfg.clip_eps, 1 + cfg.clip_eps


def make_estimator(name: str) -> Estimator:
    """An instance of the estimator registered as `name` (a one-line error if there is none)."""
    return ESTIMATORS.get(name)()
