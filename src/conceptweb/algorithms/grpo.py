"""The policy-gradient update on the tabular walk policy: clipped surrogate, KL, entropy, Adam.

How rewards become advantages, per-walk loss weights and the clip range is the estimator's job
(`conceptweb.algorithms.estimators`, `grpo.estimator`, GRPO by default); the gradient's
scatter-add is the engine's (`conceptweb.model.engines`).
"""

from __future__ import annotations

import numpy as np

from conceptweb.algorithms.estimators import (
    Estimator,
    GRPOSettings,
    group_advantages,
    make_estimator,
)
from conceptweb.algorithms.grads import entropy_grad, kl_grad
from conceptweb.algorithms.optim import Adam
from conceptweb.model.engines import RolloutEngine, get_engine
from conceptweb.model.policy import log_softmax, softmax
from conceptweb.model.rollouts import Rollouts

__all__ = ["group_advantages", "grpo_loss_and_grad", "grpo_update"]


def grpo_loss_and_grad(
    logits: np.ndarray,
    temperature: float,
    rollouts: Rollouts,
    advantages: np.ndarray,
    cfg: GRPOSettings,
    old_token_logp: np.ndarray | None = None,
    ref_log_probs: np.ndarray | None = None,
    entropy_coef: float = 0.0,
    engine: RolloutEngine | None = None,
    estimator: Estimator | None = None,
) -> tuple[float, np.ndarray, dict[str, float]]:
    """The loss at `logits` and its gradient; old_token_logp (per token) turns on clipping.

    `engine` accumulates the scatter-add gradient (numpy unless given); `estimator` gives the
    walks' loss weights and the clip range (cfg.estimator unless given).
    """
    engine = engine or get_engine("numpy")
    estimator = estimator or make_estimator(cfg.estimator)
    walk_w = estimator.walk_weights(rollouts, cfg)
    stats: dict[str, float] = {"clip_frac": 0.0}
    regularised = (cfg.kl_coef > 0 and ref_log_probs is not None) or (
        entropy_coef + cfg.entropy_coef > 0
    )
    if old_token_logp is None:
        # on-policy: the REINFORCE form, whose gradient equals the ratio form's at ratio 1
        total, grad = engine.walk_logprob(rollouts, walk_w * advantages, logits, temperature)
        loss, grad = -total, -grad
    if old_token_logp is not None or regularised:
        walk, node, action = rollouts.tokens()  # per-token terms need the flat tokens
    if old_token_logp is not None:
        loss, grad, stats = _clipped_loss_and_grad(
            logits,
            temperature,
            node,
            action,
            walk_w[walk],
            advantages[walk],
            old_token_logp,
            estimator.clip_range(cfg),
            engine,
        )
    if regularised:
        loss, grad = _regularised(
            loss,
            grad,
            logits,
            temperature,
            node,
            walk_w[walk],
            ref_log_probs,
            cfg,
            entropy_coef,
            stats,
        )
    return loss, grad, stats


def _clipped_loss_and_grad(
    logits: np.ndarray,
    temperature: float,
    node: np.ndarray,
    action: np.ndarray,
    w: np.ndarray,
    adv: np.ndarray,
    old_token_logp: np.ndarray,
    clip: tuple[float, float],
    engine: RolloutEngine,
) -> tuple[float, np.ndarray, dict[str, float]]:
    """The PPO-clipped surrogate (per-token weights w, advantages adv) and its gradient."""
    low, high = clip
    probs = softmax(logits, temperature)
    token_logp = log_softmax(logits, temperature)[node, action]
    ratio = np.exp(token_logp - old_token_logp)
    clipped_ratio = np.clip(ratio, low, high)
    surrogate = np.minimum(ratio * adv, clipped_ratio * adv)
    is_clipped = ((adv > 0) & (ratio > high)) | ((adv < 0) & (ratio < low))
    loss = -float((w * surrogate).sum())
    grad = -engine.logprob_grad(node, action, w * adv * ratio * ~is_clipped, probs, temperature)
    return loss, grad, {"clip_frac": float(is_clipped.mean()) if is_clipped.size else 0.0}


def _regularised(
    loss: float,
    grad: np.ndarray,
    logits: np.ndarray,
    temperature: float,
    node: np.ndarray,
    w: np.ndarray,
    ref_log_probs: np.ndarray | None,
    cfg: GRPOSettings,
    entropy_coef: float,
    stats: dict[str, float],
) -> tuple[float, np.ndarray]:
    """Add the KL to the reference policy and the entropy bonus, on the visited nodes."""
    probs = softmax(logits, temperature)
    logp = log_softmax(logits, temperature)
    N = logits.shape[0]
    node_w = np.bincount(node, weights=w, minlength=N)
    if cfg.kl_coef > 0 and ref_log_probs is not None:
        g_kl, kl = kl_grad(node_w, probs, logp, ref_log_probs, temperature)
        grad += cfg.kl_coef * g_kl
        kl_value = float((node_w * kl).sum())
        loss += cfg.kl_coef * kl_value
        stats["kl"] = kl_value
    coef = entropy_coef + cfg.entropy_coef
    if coef > 0:
        g_ent, ent = entropy_grad(node_w, probs, logp, temperature)
        grad -= coef * g_ent
        loss -= coef * float((node_w * ent).sum())
    return loss, grad


def grpo_update(
    logits: np.ndarray,
    temperature: float,
    rollouts: Rollouts,
    cfg: GRPOSettings,
    optimizer: Adam,
    ref_log_probs: np.ndarray | None = None,
    entropy_coef: float = 0.0,
    engine: RolloutEngine | None = None,
    estimator: Estimator | None = None,
) -> dict[str, float]:
    """One update (cfg.epochs inner epochs) on `logits` in place; returns loss statistics."""
    estimator = estimator or make_estimator(cfg.estimator)
    advantages = estimator.advantages(rollouts, cfg)
    old_token_logp = None
    if cfg.epochs > 1:
        _, node, action = rollouts.tokens()
        old_token_logp = log_softmax(logits, temperature)[node, action]
    stats: dict[str, float] = {}
    for _ in range(cfg.epochs):
        loss, grad, stats = grpo_loss_and_grad(
            logits,
            temperature,
            rollouts,
            advantages,
            cfg,
            old_token_logp,
            ref_log_probs,
            entropy_coef,
            engine,
            estimator,
        )
        stats["loss"] = loss
        stats["grad_norm"] = float(np.linalg.norm(grad))
        optimizer.step(logits, grad, engine)
    stats["adv_nonzero_frac"] = np.count_nonzero(np.abs(advantages) > 0) / advantages.size
    return stats
