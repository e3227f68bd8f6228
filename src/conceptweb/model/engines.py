"""Rollout engines: the numpy reference and a compiled (numba) engine, chosen by `model.engine`.

An engine samples walks, summarises them per problem and accumulates the scatter-add gradient
of a token-level log-likelihood. Both engines return the same `Rollouts` and statistics; they
draw different random numbers, so they agree in distribution, not walk by walk. Each is
deterministic given its seed.

`ENGINES` is the registry of engines; its names (and `auto`) are the config's choices. Adding
an engine is one class registered with `@ENGINES.register("name")` that implements
`RolloutEngine` (import heavy compilers inside it, not at module level).

>>> engine = get_engine("numpy")
>>> engine.name
'numpy'
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Protocol

import numpy as np

from conceptweb.errors import ConceptwebError
from conceptweb.model import policy
from conceptweb.model.policy import log_softmax, softmax
from conceptweb.model.rollouts import Rollouts, problem_of_walks, problem_stats, sample_rollouts
from conceptweb.registry import Registry


class RolloutEngine(Protocol):
    """What the trainer needs from an engine."""

    name: str

    def softmax(self, logits: np.ndarray, temperature: float) -> np.ndarray:
        """The policy's table pi (N, K) at `temperature`: conceptweb.model.policy.softmax."""
        ...

    def entropy(self, probs: np.ndarray) -> np.ndarray:
        """The entropy of each row of probs, shape (N,): conceptweb.model.policy.entropy."""
        ...

    def sample(
        self,
        neighbors: np.ndarray,
        probs: np.ndarray,
        sources: np.ndarray,
        targets: np.ndarray,
        G: int,
        L: int,
        rng: np.random.Generator,
    ) -> Rollouts:
        """G walks per (source, target) under probs (N, K), at most L steps each."""
        ...

    def stats(self, rollouts: Rollouts) -> dict[str, np.ndarray]:
        """Per-problem accuracy, lengths and diversity of correct paths (see problem_stats)."""
        ...

    def visits(self, rollouts: Rollouts, n_walks: int, N: int) -> np.ndarray:
        """Steps taken from each of the N nodes by walks 0 .. n_walks-1, shape (N,)."""
        ...

    def entropy_means(
        self, probs: np.ndarray, rollouts: Rollouts, n_walks: int
    ) -> tuple[float, float]:
        """The mean entropy of the rows of probs, and its mean over the steps that walks
        0 .. n_walks-1 took (each step counts the entropy of the node it left)."""
        ...

    def keep_walks(
        self, rollouts: Rollouts, walk_of_row: np.ndarray, last_nodes: np.ndarray, out: np.ndarray
    ) -> None:
        """out[r] = the nodes of walk walk_of_row[r], then last_nodes[r], then -1, for the rows
        r whose walk index is not negative (the others are left alone)."""
        ...

    def adam_step(
        self,
        params: np.ndarray,
        grad: np.ndarray,
        m: np.ndarray,
        v: np.ndarray,
        lr: float,
        betas: tuple[float, float],
        eps: float,
        t: int,
    ) -> None:
        """Adam's t-th step on params in place, updating its moments m and v (all (N, K))."""
        ...

    def walk_logprob(
        self, rollouts: Rollouts, walk_weight: np.ndarray, logits: np.ndarray, temperature: float
    ) -> tuple[float, np.ndarray]:
        """sum over every step of walk m of walk_weight[m] * log pi(action | node), and its
        gradient w.r.t. the logits (weighted_logprob over the walks' tokens)."""
        ...

    def logprob_grad(
        self,
        nodes: np.ndarray,
        actions: np.ndarray,
        weights: np.ndarray,
        probs: np.ndarray,
        temperature: float,
    ) -> np.ndarray:
        """Gradient w.r.t. the logits of sum_t weights[t] * log pi(actions[t] | nodes[t])."""
        ...

    def weighted_logprob(
        self,
        walk: np.ndarray,
        nodes: np.ndarray,
        actions: np.ndarray,
        walk_weight: np.ndarray,
        logits: np.ndarray,
        temperature: float,
    ) -> tuple[float, np.ndarray]:
        """sum_t walk_weight[walk[t]] * log pi(actions[t] | nodes[t]) and its logits gradient."""
        ...


ENGINES: Registry[type[RolloutEngine]] = Registry("rollout engine")


@ENGINES.register("numpy")
class NumpyEngine:
    """The readable reference: all walkers advance together in vectorised numpy."""

    name = "numpy"

    def __init__(self) -> None:
        self._adam_scratch: tuple[np.ndarray, np.ndarray] | None = None

    def _scratch(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Two work tables of `shape` for Adam, kept between steps (no allocation per step)."""
        if self._adam_scratch is None or self._adam_scratch[0].shape != shape:
            self._adam_scratch = (np.empty(shape), np.empty(shape))
        return self._adam_scratch

    def softmax(self, logits: np.ndarray, temperature: float) -> np.ndarray:  # noqa: D102
        return policy.softmax(logits, temperature)

    def entropy(self, probs: np.ndarray) -> np.ndarray:  # noqa: D102
        return policy.entropy(probs)

    def sample(self, neighbors, probs, sources, targets, G, L, rng) -> Rollouts:  # noqa: D102
        return sample_rollouts(neighbors, probs, sources, targets, G, L, rng)

    def stats(self, rollouts: Rollouts) -> dict[str, np.ndarray]:  # noqa: D102
        return problem_stats(rollouts)

    def visits(self, rollouts: Rollouts, n_walks: int, N: int) -> np.ndarray:  # noqa: D102
        walk, node, _ = rollouts.tokens()
        return np.bincount(node[walk < n_walks], minlength=N)

    def entropy_means(self, probs, rollouts, n_walks) -> tuple[float, float]:  # noqa: D102
        node_entropy = self.entropy(probs)
        visits = self.visits(rollouts, n_walks, node_entropy.size)
        mean = float(np.add.reduce(node_entropy)) / node_entropy.size
        return mean, float((visits * node_entropy).sum() / max(visits.sum(), 1))

    def keep_walks(self, rollouts, walk_of_row, last_nodes, out) -> None:  # noqa: D102
        rows = np.flatnonzero(walk_of_row >= 0)
        if rows.size == 0:
            return
        first = walk_of_row[rows]
        n = rollouts.lengths[first].astype(np.int64)
        L = rollouts.nodes.shape[1]
        out[rows, :L] = rollouts.nodes[first]  # -1 past each walk's end
        out[rows, L:] = -1
        out[rows, n] = last_nodes[rows]

    def adam_step(self, params, grad, m, v, lr, betas, eps, t) -> None:  # noqa: D102
        # params -= lr * m_hat / (sqrt(v_hat) + eps), each operation in place in two scratch
        # arrays (the same numbers as the expression, without its temporaries)
        beta1, beta2 = betas
        a, b = self._scratch(grad.shape)
        m *= beta1
        m += np.multiply(grad, 1 - beta1, out=a)
        v *= beta2
        v += np.multiply(np.multiply(grad, 1 - beta2, out=a), grad, out=a)
        step = np.multiply(np.divide(m, 1 - beta1**t, out=a), lr, out=a)
        scale = np.sqrt(np.divide(v, 1 - beta2**t, out=b), out=b)
        scale += eps
        params -= np.divide(step, scale, out=a)

    def walk_logprob(  # noqa: D102
        self, rollouts, walk_weight, logits, temperature
    ) -> tuple[float, np.ndarray]:
        walk, node, action = rollouts.tokens()
        return self.weighted_logprob(walk, node, action, walk_weight, logits, temperature)

    def logprob_grad(self, nodes, actions, weights, probs, temperature) -> np.ndarray:  # noqa: D102
        N, K = probs.shape
        pair_w = np.bincount(nodes * K + actions, weights=weights, minlength=N * K).reshape(N, K)
        node_w = np.bincount(nodes, weights=weights, minlength=N)
        return (pair_w - node_w[:, None] * probs) / temperature

    def weighted_logprob(  # noqa: D102
        self, walk, nodes, actions, walk_weight, logits, temperature
    ) -> tuple[float, np.ndarray]:
        weights = walk_weight[walk]
        logp = log_softmax(logits, temperature)[nodes, actions]
        grad = self.logprob_grad(nodes, actions, weights, softmax(logits, temperature), temperature)
        return float((weights * logp).sum()), grad


@ENGINES.register("numba")
class NumbaEngine:
    """Compiled loops (conceptweb.model.numba_kernels): one walk at a time, no temporaries.

    The kernels come ahead-of-time compiled from the on-disk cache when they can
    (`conceptweb.model.numba_aot`: no numba import in this process), else JIT-compiled here;
    both are the same code and give the same numbers.
    """

    name = "numba"

    def __init__(self) -> None:
        from conceptweb.model import numba_aot

        self.k = numba_aot.load()
        self.compiled_ahead = self.k is not None
        if self.k is None:
            from conceptweb.model import numba_kernels

            self.k = numba_kernels

    def softmax(self, logits: np.ndarray, temperature: float) -> np.ndarray:  # noqa: D102
        if logits.shape[1] > KERNEL_ROW_MAX:
            return policy.softmax(logits, temperature)
        probs = np.empty(logits.shape)
        self.k.softmax(_c(logits, np.float64), float(temperature), probs)
        return probs

    def entropy(self, probs: np.ndarray) -> np.ndarray:  # noqa: D102
        if probs.shape[1] > KERNEL_ROW_MAX:
            return policy.entropy(probs)
        out = np.empty(probs.shape[0])
        self.k.entropy(_c(probs, np.float64), out)
        return out

    def sample(self, neighbors, probs, sources, targets, G, L, rng) -> Rollouts:  # noqa: D102
        P = len(sources)
        M = P * G
        cdf = np.empty(probs.shape)
        self.k.cumsum_rows(_c(probs, np.float64), cdf)
        nodes = np.empty((M, L), dtype=np.int32)  # the kernel writes every entry
        actions = np.empty((M, L), dtype=np.int16)
        lengths = np.empty(M, dtype=np.int32)
        success = np.empty(M, dtype=bool)
        seed = int(rng.integers(0, 2**63))
        walks = self.k.walks
        if M * L >= PARALLEL_WALK_STEPS and (os.cpu_count() or 1) > 1:
            from conceptweb.model import numba_kernels  # large batches: every core (JIT)

            walks = numba_kernels.walks_parallel
        walks(
            cdf,
            _c(neighbors, np.int32),
            _c(sources, np.int64),
            _c(targets, np.int64),
            G,
            L,
            seed,
            nodes,
            actions,
            lengths,
            success,
        )
        return Rollouts(problem_of_walks(P, G), nodes, actions, lengths, success, P, G)

    def stats(self, rollouts: Rollouts) -> dict[str, np.ndarray]:  # noqa: D102
        P = rollouts.n_problems
        out = {k: np.empty(P) for k in _STAT_KEYS}
        shortest = np.empty(P, dtype=np.int64)
        self.k.problem_stats(
            _c(rollouts.actions, np.int16),
            _c(rollouts.lengths, np.int32),
            _c(rollouts.success, np.bool_),
            rollouts.G,
            *(out[k] for k in _STAT_KEYS),
            shortest,
        )
        out["accuracy"] = out["n_correct"] / rollouts.G
        out["shortest_success"] = shortest
        return out

    def visits(self, rollouts: Rollouts, n_walks: int, N: int) -> np.ndarray:  # noqa: D102
        counts = np.zeros(N, dtype=np.int64)
        self.k.visit_counts(
            _c(rollouts.nodes, np.int32), _c(rollouts.lengths, np.int32), n_walks, counts
        )
        return counts

    def entropy_means(self, probs, rollouts, n_walks) -> tuple[float, float]:  # noqa: D102
        N, K = probs.shape
        if K > KERNEL_ROW_MAX:
            return _NUMPY.entropy_means(probs, rollouts, n_walks)
        counts = np.zeros(N, dtype=np.int64)
        sums = np.empty(2)
        steps = self.k.entropy_visits(
            _c(probs, np.float64),
            _c(rollouts.nodes, np.int32),
            _c(rollouts.lengths, np.int32),
            n_walks,
            np.empty(N),
            counts,
            sums,
        )
        return float(sums[0]) / N, float(sums[1] / max(steps, 1))

    def keep_walks(self, rollouts, walk_of_row, last_nodes, out) -> None:  # noqa: D102
        if out.dtype != np.int32 or not out.flags.c_contiguous:
            return _NUMPY.keep_walks(rollouts, walk_of_row, last_nodes, out)
        self.k.keep_walks(
            _c(rollouts.nodes, np.int32),
            _c(rollouts.lengths, np.int32),
            _c(walk_of_row, np.int64),
            _c(last_nodes, np.int64),
            out,
        )

    def adam_step(self, params, grad, m, v, lr, betas, eps, t) -> None:  # noqa: D102
        if not all(_is_c_float64(a) for a in (params, m, v)):
            return _NUMPY.adam_step(params, grad, m, v, lr, betas, eps, t)
        beta1, beta2 = betas
        c1, c2 = 1 - beta1**t, 1 - beta2**t  # Python's power, as the numpy engine's
        g = _c(grad, np.float64)
        self.k.adam_step(params, g, m, v, float(lr), beta1, beta2, float(eps), c1, c2)

    def walk_logprob(  # noqa: D102
        self, rollouts, walk_weight, logits, temperature
    ) -> tuple[float, np.ndarray]:
        grad = np.empty(logits.shape)
        total = self.k.walk_logprob(
            _c(rollouts.nodes, np.int32),
            _c(rollouts.actions, np.int16),
            _c(rollouts.lengths, np.int32),
            _c(walk_weight, np.float64),
            _c(logits, np.float64),
            float(temperature),
            grad,
        )
        return float(total), grad

    def logprob_grad(self, nodes, actions, weights, probs, temperature) -> np.ndarray:  # noqa: D102
        return self.k.logprob_grad(
            _c(nodes, np.int64),
            _c(actions, np.int64),
            _c(weights, np.float64),
            _c(probs, np.float64),
            float(temperature),
        )

    def weighted_logprob(  # noqa: D102
        self, walk, nodes, actions, walk_weight, logits, temperature
    ) -> tuple[float, np.ndarray]:
        total, grad = self.k.weighted_logprob(
            _c(walk, np.int64),
            _c(nodes, np.int64),
            _c(actions, np.int64),
            _c(walk_weight, np.float64),
            _c(logits, np.float64),
            float(temperature),
        )
        return float(total), grad


_NUMPY = NumpyEngine()  # the numba engine's fallback where a kernel does not apply

# from this many walk-step slots (M * L) on, walks run on every core (the JIT-compiled parallel
# kernel; same numbers): at N=100k, Q=10k, G=16, L=200 a step samples 32M walker-steps
PARALLEL_WALK_STEPS = 2**24

# the softmax and entropy kernels sum rows of up to this many entries in numpy's order, so they
# give numpy's numbers bit for bit (numba_kernels.PAIRWISE_BLOCK; wider rows use numpy)
KERNEL_ROW_MAX = 128

# the per-problem statistics the numba kernel writes, in its argument order
_STAT_KEYS = ("n_correct", "len_mean", "len_correct_mean", "n_distinct_correct", "path_entropy")


def _is_c_float64(a: np.ndarray) -> bool:
    """Whether a kernel can write into `a` in place (a C-contiguous 2-D float64 array)."""
    return a.dtype == np.float64 and a.ndim == 2 and a.flags.c_contiguous and a.flags.writeable


def _c(a: np.ndarray, dtype: type) -> np.ndarray:
    """`a` as a C-contiguous array of `dtype` (no copy when it already is one)."""
    return np.ascontiguousarray(a, dtype=dtype)


def numba_available() -> bool:
    """Whether numba is installed (the `fast` extra), without importing it."""
    return importlib.util.find_spec("numba") is not None


AUTO = "auto"  # numba when installed, else numpy
FALLBACK_NOTED = (
    "CONCEPTWEB_ENGINE_NOTED"  # set once the fallback is announced: children stay quiet
)
_CACHE: dict[str, RolloutEngine] = {}


def note_fallback() -> None:
    """Say, once for this process and the processes it starts afterwards (a pool's workers),
    that the numpy engine stands in for a missing numba."""
    if numba_available() or os.environ.get(FALLBACK_NOTED):
        return
    print(
        "note: numba is not installed, using the numpy engine "
        "(pip install 'conceptweb[fast]' for the compiled one)",
        file=sys.stderr,
    )
    os.environ[FALLBACK_NOTED] = "1"


def engine_names() -> tuple[str, ...]:
    """The values `model.engine` accepts: auto and every registered engine."""
    return (AUTO, *ENGINES.names())


def get_engine(name: str = "auto") -> RolloutEngine:
    """The engine called `name`; 'auto' is numba when installed, else numpy (saying so once)."""
    if name not in engine_names():
        known = ", ".join(engine_names())
        raise ConceptwebError(f"unknown engine {name!r}; choose one of {known}")
    if name == "auto":
        name = "numba" if numba_available() else "numpy"
        if name == "numpy" and "auto" not in _CACHE:
            note_fallback()
            _CACHE["auto"] = NumpyEngine()
    if name == "numba" and not numba_available():
        raise ConceptwebError("engine 'numba' needs numba: pip install 'conceptweb[fast]'")
    if name not in _CACHE:
        _CACHE[name] = ENGINES.get(name)()
    return _CACHE[name]
