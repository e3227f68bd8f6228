"""Adam on a numpy parameter array, with a state that can be saved and restored exactly."""

from __future__ import annotations

import numpy as np

from conceptweb.runformat import AdamState


class Adam:
    """Adam (Kingma & Ba) with bias correction, updating parameters in place."""

    def __init__(
        self,
        shape: tuple[int, ...],
        lr: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = np.zeros(shape)
        self.v = np.zeros(shape)
        self.t = 0
        self._scratch: tuple[np.ndarray, np.ndarray] | None = None

    def step(self, params: np.ndarray, grad: np.ndarray) -> None:
        """One descent step on `params` along `grad` (the gradient of a loss).

        params -= lr * m_hat / (sqrt(v_hat) + eps), each operation in place in two scratch
        arrays (the same numbers as the expression, without its temporaries).
        """
        self.t += 1
        if self._scratch is None or self._scratch[0].shape != grad.shape:
            self._scratch = (np.empty(grad.shape), np.empty(grad.shape))
        a, b = self._scratch
        self.m *= self.beta1
        self.m += np.multiply(grad, 1 - self.beta1, out=a)
        self.v *= self.beta2
        self.v += np.multiply(np.multiply(grad, 1 - self.beta2, out=a), grad, out=a)
        step = np.multiply(np.divide(self.m, 1 - self.beta1**self.t, out=a), self.lr, out=a)
        scale = np.sqrt(np.divide(self.v, 1 - self.beta2**self.t, out=b), out=b)
        scale += self.eps
        params -= np.divide(step, scale, out=a)

    def state(self, with_lr: bool = False) -> AdamState:
        """The moments and step count (and the learning rate if asked), for a checkpoint."""
        return AdamState(self.m, self.v, self.t, self.lr if with_lr else None)

    def load_state(self, state: AdamState) -> None:
        """Continue from a checkpoint's state."""
        self.m = np.array(state.m, dtype=np.float64)
        self.v = np.array(state.v, dtype=np.float64)
        self.t = int(state.t)
