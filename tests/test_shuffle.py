"""World building's shuffles: compiled, they give Python's and numpy's permutations and leave
the generators in the same state, so a seed's graph and problems do not depend on the engine."""

from __future__ import annotations

import random

import numpy as np
import pytest

from conceptweb.model import shuffle

pytest.importorskip("numba")

SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 1000, 4097, 65_536, 65_537, 300_001]


def _kernel_modules():
    """The in-process JIT kernels and, where a C compiler built it, the ahead-of-time module."""
    from conceptweb.model import numba_aot, numba_kernels

    aot = numba_aot.load()
    return [numba_kernels] if aot is None else [numba_kernels, aot]


@pytest.mark.parametrize("module", range(2))
def test_compiled_generator_shuffle_is_numpys(module, monkeypatch):
    """Every size (several powers of two and their neighbours), fresh generators and ones with
    half a 64-bit draw kept back: the same order, the same state, the same next draws."""
    kernels = _kernel_modules()
    if module >= len(kernels):
        pytest.skip("no ahead-of-time module")
    monkeypatch.setattr(shuffle, "kernels", lambda: kernels[module])
    for seed, n in enumerate(SIZES):
        for odd in (False, True):
            ref, got = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 1])
            if odd:  # numpy keeps the second half of a 64-bit draw for the next 32-bit one
                for rng in (ref, got):
                    rng.shuffle(np.arange(2))
                assert got.bit_generator.state["has_uint32"] == 1
            a = np.arange(n, dtype=np.int32)
            b = a.copy()
            ref.shuffle(a)
            shuffle.generator_shuffle(got, b)
            np.testing.assert_array_equal(b, a, err_msg=f"n={n}")
            assert got.bit_generator.state == ref.bit_generator.state, n
            assert got.integers(0, 2**32, 3).tolist() == ref.integers(0, 2**32, 3).tolist()
            c = np.arange(9, dtype=np.int32)
            d = c.copy()
            ref.shuffle(c)  # a shuffle after a shuffle uses the kept half-draws the same way
            shuffle.generator_shuffle(got, d)
            np.testing.assert_array_equal(d, c)


@pytest.mark.parametrize("module", range(2))
def test_compiled_python_shuffle_is_pythons(module, monkeypatch):
    """Call after call on one generator (as the graph's pairing rounds shuffle), every size."""
    kernels = _kernel_modules()
    if module >= len(kernels):
        pytest.skip("no ahead-of-time module")
    monkeypatch.setattr(shuffle, "kernels", lambda: kernels[module])
    for seed in (0, 7, 2**40 + 3):
        ref, got = random.Random(seed), shuffle.PythonShuffle(seed)
        assert got.k is kernels[module]
        for n in SIZES:
            items = np.arange(n, dtype=np.int64) * 3
            expected = items.tolist()
            ref.shuffle(expected)
            out = got(items)
            assert out.tolist() == expected, n
            assert out.dtype == items.dtype


def test_world_is_the_same_with_and_without_kernels(monkeypatch):
    """A random regular graph and its problems, built with the compiled shuffles and without."""
    from conceptweb.model import numba_kernels
    from conceptweb.model.graph import random_regular_graph
    from conceptweb.model.problems import sample_problems

    worlds = []
    for k in (None, numba_kernels):
        monkeypatch.setattr(shuffle, "kernels", lambda k=k: k)
        g = random_regular_graph(300, 6, seed=4)
        train, held = sample_problems(g, 50, 20, np.random.default_rng([4, 1]), min_dist=2)
        worlds.append((g.neighbors, train.sources, train.targets, held.sources, held.targets))
    for a, b in zip(*worlds, strict=True):
        np.testing.assert_array_equal(a, b)
