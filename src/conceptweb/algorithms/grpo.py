"""GRPO on the tabular walk policy: group-normalised advantages, clipped policy gradient, Adam."""

from __future__ import annotations

import numpy as np

from conceptweb.algorithms.grads import entropy_grad, kl_grad
from conceptweb.algorithms.optim import Adam
from conceptweb.config import GRPOConfig
from conceptweb.model.engines import RolloutEngine, get_engine
from conceptweb.model.policy import log_softmax, softmax
from conceptweb.model.rollouts import Rollouts


def group_advantages(rewards: np.ndarray, G: int, eps: float = 1e-4) -> np.ndarray:
    """(r - group mean) / (group std + eps) for rewards laid out as consecutive groups of G.

    The std has Bessel's correction, as in TRL's GRPOTrainer. A group whose rollouts all
    succeed (or all fail) gets exactly zero advantage.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, G)
    mean = r.mean(axis=1, keepdims=True)
    std = r.std(axis=1, ddof=1, keepdims=True)
    return ((r - mean) / (std + eps)).ravel()


def grpo_loss_and_grad(
    logits: np.ndarray,
    temperature: float,
    rollouts: Rollouts,
    advantages: np.ndarray,
    cfg: GRPOConfig,
    old_token_logp: np.ndarray | None = None,
    ref_log_probs: np.ndarray | None = None,
    entropy_coef: float = 0.0,
    engine: RolloutEngine | None = None,
) -> tuple[float, np.ndarray, dict[str, float]]:
    """The GRPO loss at `logits` and its gradient; old_token_logp (per token) turns on clipping.

    `engine` accumulates the scatter-add gradient (numpy unless given).
    """
    engine = engine or get_engine("numpy")
    walk, node, action = rollouts.tokens()
    M = rollouts.lengths.size
    if cfg.length_norm:
        walk_w = 1.0 / (M * rollouts.lengths.astype(np.float64))
    else:
        walk_w = np.full(M, 1.0 / max(walk.size, 1))
    stats: dict[str, float] = {"clip_frac": 0.0}
    if old_token_logp is None:
        # on-policy: the REINFORCE form, whose gradient equals the ratio form's at ratio 1
        total, grad = engine.weighted_logprob(
            walk, node, action, walk_w * advantages, logits, temperature
        )
        loss, grad = -total, -grad
    else:
        loss, grad, stats = _clipped_loss_and_grad(
            logits,
            temperature,
            node,
            action,
            walk_w[walk],
            advantages[walk],
            old_token_logp,
            cfg.clip_eps,
            engine,
        )
    if (cfg.kl_coef > 0 and ref_log_probs is not None) or entropy_coef + cfg.entropy_coef > 0:
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
    clip_eps: float,
    engine: RolloutEngine,
) -> tuple[float, np.ndarray, dict[str, float]]:
    """The PPO-clipped surrogate (per-token weights w, advantages adv) and its gradient."""
    probs = softmax(logits, temperature)
    token_logp = log_softmax(logits, temperature)[node, action]
    ratio = np.exp(token_logp - old_token_logp)
    clipped_ratio = np.clip(ratio, 1 - clip_eps, 1 + clip_eps)
    surrogate = np.minimum(ratio * adv, clipped_ratio * adv)
    is_clipped = ((adv > 0) & (ratio > 1 + clip_eps)) | ((adv < 0) & (ratio < 1 - clip_eps))
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
    cfg: GRPOConfig,
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
    cfg: GRPOConfig,
    optimizer: Adam,
    ref_log_probs: np.ndarray | None = None,
    entropy_coef: float = 0.0,
    engine: RolloutEngine | None = None,
) -> dict[str, float]:
    """One GRPO step (cfg.epochs inner epochs) on `logits` in place; returns loss statistics."""
    advantages = group_advantages(rollouts.rewards, rollouts.G, cfg.adv_eps)
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
        )
        stats["loss"] = loss
        stats["grad_norm"] = float(np.linalg.norm(grad))
        optimizer.step(logits, grad)
    stats["adv_nonzero_frac"] = float((np.abs(advantages) > 0).mean())
    return stats
