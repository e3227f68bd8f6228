"""Adam on a numpy parameter array, with a state that can be saved and restored exactly."""

from __future__ import annotations

import numpy as np

from conceptweb.model.engines import RolloutEngine, get_engine
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

    def step(
        self, params: np.ndarray, grad: np.ndarray, engine: RolloutEngine | None = None
    ) -> None:
        """One descent step on `params` along `grad` (the gradient of a loss), run by `engine`
        (numpy unless given; every engine gives the same numbers)."""
        self.t += 1
        engine = engine or get_engine("numpy")
        betas = (self.beta1, self.beta2)
        engine.adam_step(params, grad, self.m, self.v, self.lr, betas, self.eps, self.t)

    def state(self, with_lr: bool = False) -> AdamState:
        """The moments and step count (and the learning rate if asked), for a checkpoint."""
        return AdamState(self.m, self.v, self.t, self.lr if with_lr else None)

    def load_state(self, state: AdamState) -> None:
        """Continue from a checkpoint's state."""
        self.m = np.array(state.m, dtype=np.float64)
        self.v = np.array(state.v, dtype=np.float64)
        self.t = int(state.t)
