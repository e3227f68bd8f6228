"""The tabular walk policy's maths: pi(.|i) = softmax(theta[i] / T) over node i's neighbours.

The policy itself is the (N, K) logits array; these functions turn it into probabilities.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature."""
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise log-softmax of logits / temperature."""
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


MASKED_LOGIT = -1e9  # exp(MASKED_LOGIT - max) is exactly 0 in float64: the slot is never taken


def mask_logits(logits: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Logits with padding slots (valid False) set to MASKED_LOGIT, so pi gives them 0.

    Their gradients are then exactly 0 under GRPO, SFT, KL and entropy terms, so Adam never
    moves them and the mask survives training, checkpoints and resume.
    """
    return np.where(valid, logits, MASKED_LOGIT)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row of a probability table."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(probs), 0.0)
    return -terms.sum(axis=-1)
