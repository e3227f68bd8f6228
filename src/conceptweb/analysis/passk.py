"""pass@k at large sampling budgets: the unbiased estimator, vectorised, and curves over k.

With n samples of a problem of which c are correct, the unbiased estimator of the chance
that at least one of k draws is correct is 1 - C(n-c, k) / C(n, k), computed here with exact
integer binomials (Chen et al. 2021,
"Evaluating Large Language Models Trained on Code"). It needs k <= n; a run's final
evaluation draws `eval.final_G` samples per problem so that k can reach hundreds.
"""

from __future__ import annotations

from fractions import Fraction
from math import comb
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["pass_at_k_array", "default_ks", "pass_at_k_curve", "pass_at_k_section"]


def pass_at_k_array(n: Any, c: Any, k: Any) -> np.ndarray:
    """Unbiased pass@k for arrays of n (samples), c (correct) and k (broadcast together),
    exact up to the final rounding to float.

    Examples
    --------
    >>> float(pass_at_k_array(4, 1, 2))
    0.5
    """
    nb, cb, kb = np.broadcast_arrays(
        np.asarray(n, np.int64), np.asarray(c, np.int64), np.asarray(k, np.int64)
    )
    if np.any(cb < 0) or np.any(cb > nb) or np.any(kb < 1) or np.any(kb > nb):
        raise ValueError("pass@k needs 0 <= c <= n and 1 <= k <= n")
    cache: dict[tuple[int, int, int], float] = {}
    out = np.empty(nb.shape, dtype=np.float64)
    for idx in np.ndindex(nb.shape):
        n_, c_, k_ = int(nb[idx]), int(cb[idx]), int(kb[idx])
        if (n_, c_, k_) not in cache:  # exact integer binomials: no rounding until the division
            cache[(n_, c_, k_)] = float(1 - Fraction(comb(n_ - c_, k_), comb(n_, k_)))
        out[idx] = cache[(n_, c_, k_)]
    return out


def default_ks(n: int) -> list[int]:
    """Powers of two from 1 up to n, and n itself."""
    ks = [1 << i for i in range(int(np.log2(max(n, 1))) + 1)]
    return ks if ks[-1] == n else [*ks, n]


def pass_at_k_curve(eval_df: pd.DataFrame, ks: list[int] | None = None) -> pd.DataFrame:
    """Mean pass@k over problems per (step, split, k), for k up to each row group's G.

    eval_df has columns step, split, problem, n_correct, G (eval.parquet); returns columns
    step, split, k, pass_at_k, n_problems, G.
    """
    rows = []
    for (step, split), grp in eval_df.groupby(["step", "split"], sort=True):
        G = int(grp["G"].min())
        for k in ks or default_ks(G):
            if k > G:
                continue
            vals = pass_at_k_array(grp["G"].to_numpy(), grp["n_correct"].to_numpy(), k)
            rows.append(
                {
                    "step": int(step),
                    "split": str(split),
                    "k": int(k),
                    "pass_at_k": float(vals.mean()),
                    "n_problems": int(len(grp)),
                    "G": G,
                }
            )
    return pd.DataFrame(rows, columns=["step", "split", "k", "pass_at_k", "n_problems", "G"])


def pass_at_k_section(eval_df: pd.DataFrame | None) -> dict[str, Any] | None:
    """summary.json's `pass_at_k`: {step, G, train: {k: value}, heldout: {...}} at the last evaluation."""
    if eval_df is None or eval_df.empty or "n_correct" not in eval_df.columns:
        return None
    last = eval_df[eval_df["step"] == eval_df["step"].max()]
    curve = pass_at_k_curve(last)
    out: dict[str, Any] = {"step": int(last["step"].iloc[0]), "G": int(last["G"].min())}
    for split, grp in curve.groupby("split", sort=True):
        out[str(split)] = {
            str(k): float(v) for k, v in zip(grp["k"], grp["pass_at_k"], strict=True)
        }
    return out
