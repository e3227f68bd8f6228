"""Two v3 measures over a run: do chains lengthen as the web integrates, and does frustration
precede collapse? Criteria are stated in docs/analysis.md ("v3 claims")."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from conceptweb.analysis.dynamics import default_smooth_window, smooth_series

__all__ = ["chains_section", "collapse_timing_section"]

MIN_CHECKPOINTS = 5
RISE_FRAC = 0.05
COLLAPSE_DROP = 0.2


def chains_section(metrics: pd.DataFrame, topology: pd.DataFrame) -> dict[str, Any] | None:
    """summary.json's `chains`: Spearman correlation between the giant component's size and the
    smoothed correct length over the checkpoints from the length minimum to the end.

    Keys: min_step, n_checkpoints, rho, rise_frac (end length / minimum - 1), lengthens
    (rho >= 0.5 and rise_frac >= 0.05 over at least 5 checkpoints; None with fewer).
    """
    if topology.empty or "len_correct_mean" not in metrics.columns:
        return None
    steps = metrics["step"].to_numpy(float)
    raw = metrics["len_correct_mean"].to_numpy(float)
    ok = np.isfinite(raw)
    if ok.sum() < 10:
        return None
    smooth = smooth_series(raw[ok], default_smooth_window(int(ok.sum())))
    t = steps[ok]
    i_min = int(np.argmin(smooth))
    ck = topology["step"].to_numpy(float)
    after = ck >= t[i_min]
    length_at = np.interp(ck[after], t, smooth)
    giant = (topology["giant_fraction"] * topology["n_nodes"]).to_numpy(float)[after]
    n = int(after.sum())
    rho = float(spearmanr(giant, length_at).statistic) if n >= 3 else math.nan
    rise = float(smooth[-1] / smooth[i_min] - 1) if smooth[i_min] > 0 else math.nan
    lengthens = None
    if n >= MIN_CHECKPOINTS and math.isfinite(rho):
        lengthens = bool(rho >= 0.5 and rise >= RISE_FRAC)
    return {
        "min_step": float(t[i_min]),
        "n_checkpoints": n,
        "rho": rho,
        "rise_frac": rise,
        "lengthens": lengthens,
    }


def collapse_timing_section(
    metrics: pd.DataFrame, forgetting_peak_step: float | None
) -> dict[str, Any] | None:
    """summary.json's `collapse_timing`: the collapse onset (first step after the diversity peak
    where the smoothed distinct correct paths per problem are >= 20% below the peak) and whether
    the peak of F(t) comes no later (`frustration_first`; False without a collapse)."""
    if "n_distinct_correct_mean" not in metrics.columns:
        return None
    steps = metrics["step"].to_numpy(float)
    div = metrics["n_distinct_correct_mean"].to_numpy(float)
    ok = np.isfinite(div)
    if ok.sum() < 10:
        return None
    smooth = smooth_series(div[ok], default_smooth_window(int(ok.sum())))
    t = steps[ok]
    i_peak = int(np.argmax(smooth))
    below = np.flatnonzero(smooth[i_peak:] <= (1 - COLLAPSE_DROP) * smooth[i_peak])
    onset = float(t[i_peak + below[0]]) if below.size else None
    peak_f = forgetting_peak_step if forgetting_peak_step is not None else math.nan
    first = bool(onset is not None and math.isfinite(peak_f) and peak_f <= onset)
    return {
        "diversity_peak_step": float(t[i_peak]),
        "onset_step": onset,
        "forgetting_peak_step": peak_f if math.isfinite(peak_f) else None,
        "frustration_first": first,
    }
