"""Supervised fine-tuning of the walk policy on given correct paths (maximum likelihood)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conceptweb.algorithms.optim import Adam
from conceptweb.model.engines import RolloutEngine, get_engine
from conceptweb.model.graph import ConceptGraph


@dataclass(frozen=True)
class SFTBatch:
    """The (node, action) steps of a set of paths, with weights 1 / (n_paths * path_length)."""

    nodes: np.ndarray
    actions: np.ndarray
    weights: np.ndarray
    n_paths: int

    @classmethod
    def from_paths(cls, graph: ConceptGraph, paths: list[np.ndarray]) -> SFTBatch:
        """Paths are node sequences from a start to its answer (inclusive)."""
        nodes, actions, weights = [], [], []
        paths = [np.asarray(p) for p in paths if len(p) >= 2]
        for p in paths:
            nodes.append(p[:-1])
            actions.append(graph.action_index(p[:-1], p[1:]))
            weights.append(np.full(len(p) - 1, 1.0 / ((len(p) - 1) * len(paths))))
        if not paths:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, np.zeros(0), 0)
        return cls(
            np.concatenate(nodes).astype(np.int64),
            np.concatenate(actions).astype(np.int64),
            np.concatenate(weights),
            len(paths),
        )


def sft_loss_and_grad(
    logits: np.ndarray, temperature: float, batch: SFTBatch, engine: RolloutEngine | None = None
) -> tuple[float, np.ndarray]:
    """Mean per-path, length-normalised negative log-likelihood and its gradient."""
    engine = engine or get_engine("numpy")
    tokens = np.arange(batch.nodes.size)
    total, grad = engine.weighted_logprob(
        tokens, batch.nodes, batch.actions, batch.weights, logits, temperature
    )
    return -total, -grad


def sft_update(
    logits: np.ndarray,
    temperature: float,
    batch: SFTBatch,
    optimizer: Adam,
    engine: RolloutEngine | None = None,
) -> dict[str, float]:
    """One SFT step on `logits` in place."""
    if batch.n_paths == 0:
        return {"loss": 0.0, "grad_norm": 0.0}
    loss, grad = sft_loss_and_grad(logits, temperature, batch, engine)
    optimizer.step(logits, grad, engine)
    return {"loss": loss, "grad_norm": float(np.linalg.norm(grad))}
