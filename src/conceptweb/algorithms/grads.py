"""Gradients of per-node KL and entropy terms for a tabular softmax policy.

The token-level log-likelihood gradient is a scatter-add that each rollout engine implements
(`conceptweb.model.engines`).
"""

from __future__ import annotations

import numpy as np


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
