"""Shuffles that draw what Python's `random.shuffle` and numpy's `Generator.shuffle` draw.

World building shuffles up to millions of items (the random regular graph's stubs, the list
of valid problem pairs). Where this process has the compiled kernels at hand already (the
numba engine loaded them), the shuffles run compiled (`numba_kernels.fisher_yates`) from the
same generators' raw draws, giving the same permutations and leaving the generators in the same
state; elsewhere (the numpy engine, no numba) they are Python's and numpy's own. Tests compare
the two on many sizes and seeds.
"""

from __future__ import annotations

import random
import sys
from types import ModuleType

import numpy as np

CHUNK = 2**16  # raw draws taken from a generator at a time (512 KiB)


def kernels() -> ModuleType | None:
    """The compiled kernels if this process has them loaded (never loads or builds them)."""
    aot = sys.modules.get("conceptweb.model.numba_aot")
    loaded = aot.loaded() if aot is not None else None
    return loaded or sys.modules.get("conceptweb.model.numba_kernels")


def generator_shuffle(rng: np.random.Generator, x: np.ndarray) -> None:
    """`rng.shuffle(x)` of a 1-d array, compiled when it can be (an int32 array, numpy's
    default PCG64 generator): the same order, and `rng` left where numpy's shuffle leaves it."""
    k = kernels()
    bits = rng.bit_generator
    if (
        k is None
        or type(bits) is not np.random.PCG64
        or x.dtype != np.int32
        or x.ndim != 1
        or not x.flags.c_contiguous
        or not 2 <= x.size < 2**32
    ):
        rng.shuffle(x)
        return
    saved = bits.state
    draws = np.array([saved["uinteger"]] if saved["has_uint32"] else [], dtype=np.uint32)
    head = draws.size  # a 32-bit half-draw numpy kept back: the first one it uses
    state = np.array([x.size - 1, 0], dtype=np.int64)
    taken = 0  # 32-bit draws used before the current buffer
    while state[0] >= 1:
        taken += int(state[1])
        draws = np.concatenate([draws[state[1] :], _halves(bits.random_raw(CHUNK))])
        state[1] = 0
        k.fisher_yates(x, draws, state, False)
    from_raw = taken + int(state[1]) - head  # 32-bit draws used of new 64-bit ones
    n_raw = (from_raw + 1) // 2
    bits.state = saved
    last = 0
    if n_raw:
        if n_raw > 1:
            bits.advance(n_raw - 1)
        last = int(bits.random_raw())
    after = bits.state
    after["has_uint32"] = from_raw % 2  # the high half of the last one is kept back
    after["uinteger"] = last >> 32 if n_raw else saved["uinteger"]
    bits.state = after


def _halves(raw: np.ndarray) -> np.ndarray:
    """The 32-bit draws numpy makes of 64-bit ones: the low half, then the high half."""
    if sys.byteorder == "little":
        return raw.view(np.uint32)
    out = np.empty((raw.size, 2), dtype=np.uint32)
    out[:, 0] = raw & np.uint64(0xFFFFFFFF)
    out[:, 1] = raw >> np.uint64(32)
    return out.ravel()


class PythonShuffle:
    """`random.Random(seed).shuffle`, call after call, on arrays of integers below 2**31 (a
    shuffled copy): compiled from the same Mersenne Twister draws when the kernels are at hand
    as the instance is made, else Python's own."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.k = kernels()
        if self.k is not None:
            key = self.rng.getstate()[1]  # Python's generator state is numpy's MT19937 state
            self.bits = np.random.MT19937()
            self.bits.state = {
                "bit_generator": "MT19937",
                "state": {"key": np.array(key[:624], dtype=np.uint32), "pos": key[624]},
            }
            self.draws = np.zeros(0, dtype=np.uint32)  # drawn, not used yet
            self.used = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.k is None:
            order = x.tolist()
            self.rng.shuffle(order)
            return np.array(order, dtype=x.dtype)
        out = np.array(x, dtype=np.int32)
        state = np.array([out.size - 1, self.used], dtype=np.int64)
        self.k.fisher_yates(out, self.draws, state, True)
        while state[0] >= 1:
            fresh = self.bits.random_raw(CHUNK).astype(np.uint32)
            self.draws = np.concatenate([self.draws[state[1] :], fresh])
            state[1] = 0
            self.k.fisher_yates(out, self.draws, state, True)
        self.used = int(state[1])
        return out.astype(x.dtype, copy=False)
