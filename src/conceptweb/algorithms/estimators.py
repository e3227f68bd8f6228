"""Advantage and loss estimators of the policy-gradient update (GRPO and the RLVR variants).

An estimator says how the rewards of a batch of walks become (1) one advantage per walk, (2) one
loss weight per walk (every token of a walk carries it), and (3) the PPO clip range; it may
(4) refill the batch before the update (DAPO's dynamic sampling) and (5) keep a running state
that checkpoints save (REINFORCE's baseline). The update step (`grpo.grpo_update`) does the
rest: ratios, clipping, KL and entropy terms, Adam. The config key `grpo.estimator` selects one
from `ESTIMATORS`; adding one is one registered class:

    @ESTIMATORS.register("mine")
    class Mine(GRPOEstimator):
        def advantages(self, rollouts, cfg):
            ...

A batch is Q consecutive groups of G walks, one group per problem. With M = Q * G walks, |w|
a walk's length and L the walk budget (model.L):

| name | advantage of walk i of group q | weight of each token of walk i | clip |
|---|---|---|---|
| `grpo` | (r - mean_q) / (std_q + eps) | 1 / (M |w_i|) (length_norm) | 1 +- clip_eps |
| `dr_grpo` | r - mean_q (no std) | 1 / (M L): a constant, no length norm | 1 +- clip_eps |
| `dapo` | GRPO's | 1 / (tokens of the informative groups); 0 in uniform groups | [1 - clip_eps, 1 + clip_eps_high] |
| `rloo` | r - mean of the other G - 1 rewards of q | GRPO's | 1 +- clip_eps |
| `reinforce_pp` | (r - batch mean) / (batch std + eps) | 1 / (tokens of the batch) | 1 +- clip_eps |
| `reinforce_pp_baseline` | r - mean_q, then normalised over the batch | 1 / (tokens of the batch) | 1 +- clip_eps |
| `reinforce` | r - b_q, b_q a running mean of q's reward | 1 / M (log-prob summed over the walk) | 1 +- clip_eps |

DAPO's dynamic sampling in CoNet: every problem is in every batch, so instead of drawing new
prompts until the batch is full, each group whose G rewards are all equal (all right or all
wrong) is resampled (G fresh walks of the same problem from the same policy), up to
`grpo.resample_rounds` rounds; a resampled group that is informative replaces the uniform one,
groups still uniform after the cap stay in the batch with weight 0. Only the update sees the
refilled batch; the step's metrics come from the first sample, as for every estimator.
DAPO's overlong reward shaping is not used (a walk that reaches L simply fails).

REINFORCE's baseline: b_q is an exponential moving average (decay `BASELINE_DECAY`) of problem
q's group-mean reward over the earlier steps, started at q's first group mean (so the first
step's advantages are r - mean_q); it is saved in checkpoints and resumes exactly. Problems are
keyed by their position in the batch; a batch of another number of problems (a heated subset)
uses its own group means and leaves the baseline alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from conceptweb.model.rollouts import Rollouts, problem_of_walks
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
    clip_eps_high: float
    resample_rounds: int


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

    def refill(self, rollouts: Rollouts, resample: Resample, cfg: GRPOSettings) -> Rollouts:
        """The batch the update trains on (the sampled one, or one with groups resampled)."""
        ...

    def state(self) -> np.ndarray | None:
        """The running state a checkpoint must keep (None: the estimator has none)."""
        ...

    def load_state(self, state: np.ndarray | None) -> None:
        """Restore what `state()` returned."""
        ...


Resample = Callable[[np.ndarray], Rollouts]  # problem indices -> G fresh walks of each


ESTIMATORS: Registry[type[Estimator]] = Registry("estimator")


def group_advantages(rewards: np.ndarray, G: int, eps: float = 1e-4) -> np.ndarray:
    """(r - group mean) / (group std + eps) for rewards laid out as consecutive groups of G.

    The std has Bessel's correction, as in TRL's GRPOTrainer. A group whose rollouts all
    succeed (or all fail) gets exactly zero advantage.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, G)
    # r.mean(axis=1) and r.std(axis=1, ddof=1), step by step as numpy computes them (same bits)
    mean = np.add.reduce(r, axis=1, keepdims=True) / G
    centred = r - mean
    square = np.multiply(centred, centred)
    std = np.sqrt(np.add.reduce(square, axis=1, keepdims=True) / (G - 1))
    return (centred / (std + eps)).ravel()


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

    def refill(self, rollouts: Rollouts, resample: Resample, cfg: GRPOSettings) -> Rollouts:
        return rollouts

    def state(self) -> np.ndarray | None:
        return None

    def load_state(self, state: np.ndarray | None) -> None:
        return None


BASELINE_DECAY = 0.9  # REINFORCE's running baseline: b <- decay * b + (1 - decay) * group mean


def _groups(rollouts: Rollouts) -> np.ndarray:
    """Rewards as (problems, G)."""
    return rollouts.rewards.reshape(-1, rollouts.G)


def _per_token(rollouts: Rollouts, keep: np.ndarray | None = None) -> np.ndarray:
    """Walk weights of token-level averaging: 1 / (tokens of the kept walks), 0 elsewhere."""
    keep = np.ones(rollouts.lengths.size, dtype=bool) if keep is None else keep
    n_tokens = int(rollouts.lengths[keep].sum())
    return np.where(keep, 1.0 / max(n_tokens, 1), 0.0)


def informative_groups(rollouts: Rollouts) -> np.ndarray:
    """Per problem: do its G rewards differ (some right, some wrong)?"""
    r = _groups(rollouts)
    return r.min(axis=1) != r.max(axis=1)


def replace_groups(rollouts: Rollouts, problems: np.ndarray, new: Rollouts) -> Rollouts:
    """`rollouts` with the groups of `problems` replaced by the groups of `new`, in order."""
    G = rollouts.G
    idx = (np.asarray(problems, dtype=np.int64)[:, None] * G + np.arange(G)).ravel()
    nodes, actions = rollouts.nodes.copy(), rollouts.actions.copy()
    lengths, success = rollouts.lengths.copy(), rollouts.success.copy()
    L_new = new.nodes.shape[1]
    nodes[idx, :L_new], actions[idx, :L_new] = new.nodes, new.actions
    lengths[idx], success[idx] = new.lengths, new.success
    return Rollouts(rollouts.problem, nodes, actions, lengths, success, rollouts.n_problems, G)


@ESTIMATORS.register("dr_grpo")
class DrGRPOEstimator(GRPOEstimator):
    """Dr. GRPO (Liu et al. 2025): r - group mean, no std; token losses over the constant M * L."""

    def advantages(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        r = _groups(rollouts)
        return (r - r.mean(axis=1, keepdims=True)).ravel()

    def walk_weights(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        M, L = rollouts.nodes.shape
        return np.full(M, 1.0 / (M * L))


@ESTIMATORS.register("dapo")
class DAPOEstimator(GRPOEstimator):
    """DAPO (Yu et al. 2025): clip-higher, token-level averaging, dynamic sampling of groups."""

    def walk_weights(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        return _per_token(rollouts, np.repeat(informative_groups(rollouts), rollouts.G))

    def clip_range(self, cfg: GRPOSettings) -> tuple[float, float]:
        return 1 - cfg.clip_eps, 1 + cfg.clip_eps_high

    def refill(self, rollouts: Rollouts, resample: Resample, cfg: GRPOSettings) -> Rollouts:
        """Resample uniform groups up to cfg.resample_rounds times; keep informative ones."""
        for _ in range(cfg.resample_rounds):
            uniform = np.flatnonzero(~informative_groups(rollouts))
            if uniform.size == 0:
                break
            new = resample(uniform)
            better = informative_groups(new)
            if better.any():
                rollouts = replace_groups(
                    rollouts, uniform[better], select_groups(new, np.flatnonzero(better))
                )
        return rollouts


@ESTIMATORS.register("rloo")
class RLOOEstimator(GRPOEstimator):
    """RLOO (Ahmadian et al. 2024): r minus the mean of the other G - 1 rewards of its group."""

    def advantages(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        r = _groups(rollouts)
        G = r.shape[1]
        return (r - (r.sum(axis=1, keepdims=True) - r) / (G - 1)).ravel()


@ESTIMATORS.register("reinforce_pp")
class ReinforcePPEstimator(GRPOEstimator):
    """REINFORCE++ (Hu 2025): rewards normalised over the whole batch; token-level averaging."""

    def advantages(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        r = rollouts.rewards
        return (r - r.mean()) / (r.std() + cfg.adv_eps)

    def walk_weights(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        return _per_token(rollouts)


@ESTIMATORS.register("reinforce_pp_baseline")
class ReinforcePPBaselineEstimator(ReinforcePPEstimator):
    """REINFORCE++-baseline: r - group mean, then normalised over the whole batch."""

    def advantages(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        r = _groups(rollouts)
        a = (r - r.mean(axis=1, keepdims=True)).ravel()
        return (a - a.mean()) / (a.std() + cfg.adv_eps)


@ESTIMATORS.register("reinforce")
class ReinforceEstimator(GRPOEstimator):
    """REINFORCE with a running per-problem baseline; the walk's log-prob summed, over M walks."""

    def __init__(self) -> None:
        self.baseline: np.ndarray | None = None

    def advantages(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        r = _groups(rollouts)
        means = r.mean(axis=1)
        if self.baseline is None:
            self.baseline = means.copy()
        if self.baseline.size != means.size:
            return (r - means[:, None]).ravel()
        adv = (r - self.baseline[:, None]).ravel()
        self.baseline = BASELINE_DECAY * self.baseline + (1 - BASELINE_DECAY) * means
        return adv

    def walk_weights(self, rollouts: Rollouts, cfg: GRPOSettings) -> np.ndarray:
        M = rollouts.lengths.size
        return np.full(M, 1.0 / M)

    def state(self) -> np.ndarray | None:
        return None if self.baseline is None else self.baseline.copy()

    def load_state(self, state: np.ndarray | None) -> None:
        self.baseline = None if state is None else np.array(state, dtype=np.float64)


def select_groups(rollouts: Rollouts, problems: np.ndarray) -> Rollouts:
    """The groups of the given problems only, renumbered 0..len(problems)-1."""
    G = rollouts.G
    problems = np.asarray(problems, dtype=np.int64)
    idx = (problems[:, None] * G + np.arange(G)[None, :]).ravel()
    return Rollouts(
        problem_of_walks(problems.size, G),
        rollouts.nodes[idx],
        rollouts.actions[idx],
        rollouts.lengths[idx],
        rollouts.success[idx],
        int(problems.size),
        G,
    )


def make_estimator(name: str) -> Estimator:
    """An instance of the estimator registered as `name` (a one-line error if there is none)."""
    return ESTIMATORS.get(name)()
