"""The tabular walk policy: logits theta[i, k] over node i's k-th neighbour, pi = softmax(theta / T)."""

from __future__ import annotations

from dataclasses import dataclass

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


def entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row of a probability table."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(probs), 0.0)
    return -terms.sum(axis=-1)


@dataclass
class TabularPolicy:
    """Logits (N, K) and a softmax temperature; the walk samples neighbours from pi(.|i)."""

    logits: np.ndarray
    temperature: float = 1.0

    @classmethod
    def zeros(cls, N: int, K: int, temperature: float = 1.0) -> TabularPolicy:
        """The uniform random walk."""
        return cls(np.zeros((N, K)), temperature)

    @classmethod
    def prior(
        cls, N: int, K: int, std: float, rng: np.random.Generator, temperature: float = 1.0
    ) -> TabularPolicy:
        """Logits drawn from N(0, std^2): each node starts with a few dominant edges."""
        return cls(rng.normal(0.0, std, size=(N, K)), temperature)

    def probs(self, temperature_mult: float = 1.0) -> np.ndarray:
        return softmax(self.logits, self.temperature * temperature_mult)

    def log_probs(self) -> np.ndarray:
        return log_softmax(self.logits, self.temperature)

    def entropy(self) -> np.ndarray:
        """Entropy of pi(.|i) for every node i, shape (N,)."""
        return entropy(self.probs())
