"""Gradients of token-level objectives for a tabular softmax policy, accumulated with bincount."""

from __future__ import annotations

import numpy as np


def logprob_grad(
    nodes: np.ndarray,
    actions: np.ndarray,
    weights: np.ndarray,
    probs: np.ndarray,
    temperature: float,
) -> np.ndarray:
    """Gradient w.r.t. the logits of sum_t weights[t] * log pi(actions[t] | nodes[t])."""
    N, K = probs.shape
    pair_w = np.bincount(nodes * K + actions, weights=weights, minlength=N * K).reshape(N, K)
    node_w = np.bincount(nodes, weights=weights, minlength=N)
    return (pair_w - node_w[:, None] * probs) / temperature


def kl_grad(
    node_weights: np.ndarray,
    probs: np.ndarray,
    log_probs: np.ndarray,
    ref_log_probs: np.ndarray,
    temperature: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of sum_i node_weights[i] * KL(pi(.|i) || ref(.|i)) and the per-node KL."""
    diff = log_probs - ref_log_probs
    kl = (probs * diff).sum(axis=1)
    grad = node_weights[:, None] * probs * (diff - kl[:, None]) / temperature
    return grad, kl


def entropy_grad(
    node_weights: np.ndarray, probs: np.ndarray, log_probs: np.ndarray, temperature: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of sum_i node_weights[i] * H(pi(.|i)) and the per-node entropy."""
    ent = -(probs * log_probs).sum(axis=1)
    grad = -node_weights[:, None] * probs * (log_probs + ent[:, None]) / temperature
    return grad, ent
