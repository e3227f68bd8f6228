"""The SFT forgetting experiment: what SFT on new problems unsolves, whether the lost problems sat
behind trunk edges that SFT cut, and how many steps of renewed RLVR bring them back.

An SFT run (config sft.steps = S > 0, usually made by `conceptweb sft --from RUN`) starts from a
trained policy (its step-0 checkpoint), does S SFT steps and then RLVR. "Accuracy of the policy
after s updates" is the evaluation at step s when eval.parquet has it (G_eval rollouts), else the
per-step records of step s + 1 (whose rollouts are sampled before update s + 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.analysis.dynamics import DEFAULT_EVENT_WINDOW, SOLVED_THRESHOLD, accuracy_matrix
from conceptweb.analysis.topology import (
    DEFAULT_ANALYSIS_G,
    DEFAULT_TAU,
    checkpoint_web,
    concept_web,
    path_edges,
    run_max_length,
    undirected_projection,
)
from conceptweb.errors import ConceptwebError
from conceptweb.rundir import RunDir

RECOVER_FRAC = 0.9

FORGETTING_KEYS = [
    "solved_before",
    "solved_after_sft",
    "lost_frac",
    "lost_downstream_of_cut_bridges_frac",
    "recovery_steps",
]


def sft_steps_of(run: RunDir) -> int:
    """S, the number of SFT steps at the start of a run (0 for a plain RLVR run)."""
    sft = run.read_config().get("sft")
    if not isinstance(sft, dict):
        return 0
    try:
        return int(sft.get("steps", 0) or 0)
    except (TypeError, ValueError):
        return 0


def policy_accuracy(
    run: RunDir,
    after_updates: int,
    split: str = "train",
    evals: pd.DataFrame | None = None,
    problems: pd.DataFrame | None = None,
) -> tuple[pd.Series, str]:
    """Per-problem accuracy of the policy after `after_updates` updates, and where it came from."""
    evals = run.read_eval() if evals is None else evals
    if len(evals) and {"step", "split", "problem", "accuracy"} <= set(evals.columns):
        e = evals[(evals["step"] == after_updates) & (evals["split"] == split)]
        if len(e):
            return e.set_index("problem")["accuracy"].sort_index().astype(float), "eval"
    problems = run.read_problems() if problems is None else problems
    p = problems[problems["step"] == after_updates + 1]
    if "split" in p.columns:
        p = p[p["split"] == split]
    if len(p):
        return p.set_index("problem")["accuracy"].sort_index().astype(float), "rollouts"
    raise ConceptwebError(
        f"{run.path} has no record of the policy after {after_updates} updates "
        f"(no eval at step {after_updates}, no rollouts at step {after_updates + 1})"
    )


def recovery_steps(
    steps: np.ndarray,
    acc: np.ndarray,
    lost: np.ndarray,
    start_step: int,
    threshold: float = SOLVED_THRESHOLD,
    window: int = DEFAULT_EVENT_WINDOW,
    recover_frac: float = RECOVER_FRAC,
) -> tuple[float, float]:
    """RL updates after `start_step` until `recover_frac` of the lost problems are solved again.

    acc is (steps x problems); rows with step > start_step are used, smoothed with a trailing
    mean over `window` rows. Returns (recovery_steps or NaN if never, fraction of the lost
    problems solved at the last row).
    """
    lost = np.asarray(lost, dtype=bool)
    if not lost.any():
        return 0.0, 1.0
    rows = np.asarray(steps) > start_step
    if not rows.any():
        return float("nan"), float("nan")
    sub = pd.DataFrame(np.asarray(acc, dtype=float)[rows][:, lost])
    sm = sub.rolling(max(int(window), 1), min_periods=1).mean().to_numpy()
    frac = (sm >= threshold).mean(axis=1)
    hit = np.flatnonzero(frac >= recover_frac)
    t = np.asarray(steps)[rows]
    # rollouts at step t were sampled after t - 1 updates, t - 1 - start_step of them RL
    rec = float(t[hit[0]] - 1 - start_step) if hit.size else float("nan")
    return rec, float(frac[-1])


def sft_forgetting(
    run: RunDir | str | Path,
    tau: float = DEFAULT_TAU,
    threshold: float = SOLVED_THRESHOLD,
    window: int = DEFAULT_EVENT_WINDOW,
    recover_frac: float = RECOVER_FRAC,
    G: int = DEFAULT_ANALYSIS_G,
    seed: int = 0,
) -> dict[str, Any]:
    """Forgetting of the training problems under the SFT phase of an SFT run, and its mechanism.

    solved_before / solved_after_sft: training problems with accuracy >= threshold before SFT
    (after 0 updates) and after the S SFT updates. lost_frac: the fraction of the solved ones
    that SFT unsolved. lost_downstream_of_cut_bridges_frac: among the lost problems, the
    fraction whose correct path in the pre-SFT web (their most frequent correct walk under the
    step-0 policy) crosses a bridge of the pre-SFT web that SFT cut (the edge is in neither
    direction >= tau after SFT). Extra keys compare the loss rate of problems crossing a cut
    bridge with the rest. recovery_steps: RL updates after SFT until recover_frac of the lost
    problems are solved again (NaN if not within the run).
    """
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    S = sft_steps_of(run)
    if S <= 0:
        raise ConceptwebError(f"{run.path} is not an SFT run (its config has sft.steps = 0)")
    evals = run.read_eval()
    problems = run.read_problems()
    before, src_before = policy_accuracy(run, 0, "train", evals, problems)
    after, src_after = policy_accuracy(run, S, "train", evals, problems)
    idx = before.index.intersection(after.index)
    before, after = before.loc[idx], after.loc[idx]
    solved_b = before.to_numpy() >= threshold
    solved_a = after.to_numpy() >= threshold
    lost = solved_b & ~solved_a
    n_b, n_lost = int(solved_b.sum()), int(lost.sum())
    out: dict[str, Any] = {
        "solved_before": n_b,
        "solved_after_sft": int(solved_a.sum()),
        "lost_frac": n_lost / n_b if n_b else float("nan"),
        "lost_downstream_of_cut_bridges_frac": float("nan"),
        "recovery_steps": float("nan"),
        "sft_steps": S,
        "n_problems": int(idx.size),
        "n_lost": n_lost,
        "accuracy_before": float(before.mean()) if idx.size else float("nan"),
        "accuracy_after_sft": float(after.mean()) if idx.size else float("nan"),
        "measured_from": src_before if src_before == src_after else f"{src_before}/{src_after}",
        "init_from": run.read_config().get("init_from"),
    }
    # new problems (what SFT taught)
    try:
        nb, _ = policy_accuracy(run, 0, "new", evals, problems)
        na, _ = policy_accuracy(run, S, "new", evals, problems)
        out["new_accuracy_before"] = float(nb.mean())
        out["new_accuracy_after_sft"] = float(na.mean())
    except ConceptwebError:
        pass
    # recovery under renewed RLVR
    A = accuracy_matrix(problems, "train")
    if len(A) and idx.size:
        A = A.reindex(columns=idx)
        rec, frac_end = recovery_steps(
            A.index.to_numpy(), A.to_numpy(), lost, S, threshold, window, recover_frac
        )
        out["recovery_steps"] = rec
        out["recovered_frac_end"] = frac_end
        out["rl_steps_after_sft"] = int((A.index.to_numpy() > S + 1).sum())
    # mechanism: cut bridges of the pre-SFT web
    ck_steps = run.checkpoint_steps()
    after_ck = [s for s in ck_steps if 0 < s <= S]
    if 0 in ck_steps and after_ck:
        s_after = after_ck[-1]
        pre = checkpoint_web(run.load_checkpoint(0), 0, tau, G=G, seed=seed, L=run_max_length(run))
        ck = run.load_checkpoint(s_after)
        T = float(ck["temperature"]) if "temperature" in ck else 1.0
        post = undirected_projection(concept_web(ck["logits"], ck["neighbors"], tau, T))
        pre_edges = {(min(a, b), max(a, b)) for a, b in undirected_projection(pre.web).edges()}
        post_edges = {(min(a, b), max(a, b)) for a, b in post.edges()}
        cut_edges = pre_edges - post_edges
        cut_bridges = set(pre.topology["bridges"]) & cut_edges
        crosses = np.zeros(idx.size, dtype=bool)
        crosses_any = np.zeros(idx.size, dtype=bool)
        paths = pre.sample.paths  # indexed like the checkpoint's training problems
        for j, q in enumerate(idx):
            path = paths[int(q)] if 0 <= int(q) < len(paths) else None
            if path is None:
                continue
            pe = path_edges(path)
            crosses[j] = bool(pe & cut_bridges)
            crosses_any[j] = bool(pe & cut_edges)
        out.update(
            {
                "lost_downstream_of_cut_bridges_frac": (
                    float((lost & crosses).sum() / n_lost) if n_lost else float("nan")
                ),
                "lost_across_any_cut_edge_frac": (
                    float((lost & crosses_any).sum() / n_lost) if n_lost else float("nan")
                ),
                "n_bridges_before": int(pre.topology["n_bridges"]),
                "n_cut_bridges": len(cut_bridges),
                "n_web_edges_before": len(pre_edges),
                "n_cut_edges": len(cut_edges),
                "lost_rate_crossing_cut_bridge": _rate(lost, solved_b & crosses),
                "lost_rate_elsewhere": _rate(lost, solved_b & ~crosses),
                "n_solved_crossing_cut_bridge": int((solved_b & crosses).sum()),
                "after_checkpoint_step": int(s_after),
            }
        )
    return out


def _rate(lost: np.ndarray, among: np.ndarray) -> float:
    n = int(among.sum())
    return float((lost & among).sum() / n) if n else float("nan")
