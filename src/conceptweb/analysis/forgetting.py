"""The SFT forgetting experiment: what SFT on new problems unsolves, whether the lost problems sat
behind trunk edges that SFT cut, and how many steps of renewed RLVR bring them back.

An SFT run (config sft.steps = S > 0, usually made by `conceptweb sft --from RUN`) starts from a
trained policy (its step-0 checkpoint), does S SFT steps and then RLVR. "Accuracy of the policy
after s updates" is the evaluation at step s when eval.parquet has it (G_eval rollouts), else the
per-step records of step s + 1 (whose rollouts are sampled before update s + 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from conceptweb.analysis.dynamics import DEFAULT_EVENT_WINDOW, SOLVED_THRESHOLD, accuracy_matrix
from conceptweb.analysis.results import Result, optional
from conceptweb.analysis.topology import (
    DEFAULT_ANALYSIS_G,
    DEFAULT_TAU,
    PolicyArrays,
    compute_checkpoint_web,
    concept_web,
    load_policy,
    path_edges,
    undirected_projection,
)
from conceptweb.errors import ConceptwebError
from conceptweb.rundir import RunDir

__all__ = [
    "RECOVER_FRAC",
    "FORGETTING_KEYS",
    "sft_steps_of",
    "policy_accuracy",
    "recovery_steps",
    "ForgettingInputs",
    "SFTForgetting",
    "load_sft_forgetting",
    "compute_sft_forgetting",
    "sft_forgetting",
]

RECOVER_FRAC = 0.9

FORGETTING_KEYS = [
    "solved_before",
    "solved_after_sft",
    "lost_frac",
    "lost_downstream_of_cut_bridges_frac",
    "recovery_steps",
]


def sft_steps_of(run: RunDir) -> int:
    """S, the number of SFT steps at the start of a run (0 for a plain RLVR run or a bad value)."""
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
    """Per-problem accuracy of the policy after `after_updates` updates, and where it came from.

    The evaluation at that step when eval.parquet has it ("eval"), else the per-step records of
    step after_updates + 1 ("rollouts"; docs/analysis.md, D16).

    Raises ConceptwebError when the run has neither.
    """
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

    Definition: docs/analysis.md, D16.

    Parameters
    ----------
    steps : array (rows,)
        The step of each row of `acc`.
    acc : array (rows, problems)
        Per-step accuracy; rows with step > start_step are used, smoothed with a trailing mean
        over `window` rows.
    lost : bool array (problems,)
        The problems SFT unsolved.
    start_step : int
        S, the last SFT update.
    threshold, window, recover_frac : float, int, float
        Solved threshold (0.5), smoothing window (5) and the fraction to recover (0.9).

    Returns
    -------
    (recovery_steps, recovered_frac_end) : (float, float)
        NaN steps if never; (0, 1) when nothing was lost.

    Examples
    --------
    Problem 1 is lost at SFT's end (step 4) and solved again from step 7: rollouts of step 7
    were sampled after 6 updates, 2 of them RL.

    >>> acc = np.array([[1, 1], [1, 1], [1, 1], [1, 0], [1, 0], [1, 0], [1, 1], [1, 1.0]])
    >>> recovery_steps(np.arange(1, 9), acc, np.array([False, True]), start_step=4, window=1)
    (2.0, 1.0)
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


@dataclass(frozen=True, eq=False)
class ForgettingInputs:
    """What the SFT forgetting analysis reads from an SFT run (load_sft_forgetting).

    before / after: per-problem accuracy of the training problems after 0 and after
    sft_steps updates (indexed by problem); new_before / new_after: the same for the new
    problems SFT trains on (None if not recorded); accuracy: (steps x problems) per-step
    accuracy of the training problems; pre / post: the policies at checkpoint 0 and at the
    last checkpoint <= sft_steps (None without such checkpoints).
    """

    sft_steps: int
    before: pd.Series
    after: pd.Series
    measured_from: str
    accuracy: pd.DataFrame
    new_before: pd.Series | None = None
    new_after: pd.Series | None = None
    pre: PolicyArrays | None = None
    post: PolicyArrays | None = None
    init_from: str | None = None


@dataclass(frozen=True)
class SFTForgetting(Result):
    """What SFT unsolved, whether it sat behind cut trunk edges, and the recovery under RLVR.

    The first five fields are the stable keys of summary.json's forgetting section; the
    optional groups are present when the run records new problems, RLVR after SFT, and
    checkpoints before and after SFT (definitions: docs/analysis.md, "SFT forgetting").
    """

    solved_before: int
    solved_after_sft: int
    lost_frac: float
    lost_downstream_of_cut_bridges_frac: float
    recovery_steps: float
    sft_steps: int
    n_problems: int
    n_lost: int
    accuracy_before: float
    accuracy_after_sft: float
    measured_from: str
    init_from: str | None
    new_accuracy_before: float | None = optional()
    new_accuracy_after_sft: float | None = optional()
    recovered_frac_end: float | None = optional()
    rl_steps_after_sft: int | None = optional()
    lost_across_any_cut_edge_frac: float | None = optional()
    n_bridges_before: int | None = optional()
    n_cut_bridges: int | None = optional()
    n_web_edges_before: int | None = optional()
    n_cut_edges: int | None = optional()
    lost_rate_crossing_cut_bridge: float | None = optional()
    lost_rate_elsewhere: float | None = optional()
    n_solved_crossing_cut_bridge: int | None = optional()
    after_checkpoint_step: int | None = optional()


def load_sft_forgetting(run: RunDir | str | Path) -> ForgettingInputs:
    """Read what compute_sft_forgetting needs from an SFT run directory.

    Parameters
    ----------
    run : RunDir or path
        A run whose config has sft.steps = S > 0 (made by `conceptweb sft`).

    Returns
    -------
    ForgettingInputs
        Accuracy before and after SFT, the per-step accuracy table, and the policies at
        checkpoint 0 and at the last checkpoint <= S (when both exist).

    Raises
    ------
    ConceptwebError
        If the run is not an SFT run or has no record of the policy before or after SFT.
    """
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    S = sft_steps_of(run)
    if S <= 0:
        raise ConceptwebError(f"{run.path} is not an SFT run (its config has sft.steps = 0)")
    evals = run.read_eval()
    problems = run.read_problems()
    before, src_before = policy_accuracy(run, 0, "train", evals, problems)
    after, src_after = policy_accuracy(run, S, "train", evals, problems)
    try:
        new_before, _ = policy_accuracy(run, 0, "new", evals, problems)
        new_after, _ = policy_accuracy(run, S, "new", evals, problems)
    except ConceptwebError:
        new_before = new_after = None
    ck_steps = run.checkpoint_steps()
    after_ck = [s for s in ck_steps if 0 < s <= S]
    pre = post = None
    if 0 in ck_steps and after_ck:
        pre, post = load_policy(run, 0), load_policy(run, after_ck[-1])
    return ForgettingInputs(
        sft_steps=S,
        before=before,
        after=after,
        measured_from=src_before if src_before == src_after else f"{src_before}/{src_after}",
        accuracy=accuracy_matrix(problems, "train"),
        new_before=new_before,
        new_after=new_after,
        pre=pre,
        post=post,
        init_from=run.read_config().get("init_from"),
    )


def compute_sft_forgetting(
    inputs: ForgettingInputs,
    tau: float = DEFAULT_TAU,
    threshold: float = SOLVED_THRESHOLD,
    window: int = DEFAULT_EVENT_WINDOW,
    recover_frac: float = RECOVER_FRAC,
    G: int = DEFAULT_ANALYSIS_G,
    seed: int = 0,
) -> SFTForgetting:
    """Forgetting of the training problems under SFT, and its mechanism (pure; D16).

    solved_before / solved_after_sft: training problems with accuracy >= threshold before SFT
    (after 0 updates) and after the S SFT updates. lost_frac: the fraction of the solved ones
    that SFT unsolved. lost_downstream_of_cut_bridges_frac: among the lost problems, the
    fraction whose correct path in the pre-SFT web (their most frequent correct walk under the
    pre-SFT policy, G walks seeded by (seed, 7, step)) crosses a bridge of the pre-SFT web that
    SFT cut (the edge is in neither direction >= tau after SFT). recovery_steps: RL updates
    after SFT until recover_frac of the lost problems are solved again (NaN if not within the
    records).

    Parameters
    ----------
    inputs : ForgettingInputs
        From load_sft_forgetting, or built from arrays.
    tau, threshold, window, recover_frac, G, seed
        Web threshold, solved threshold, recovery smoothing window, fraction to recover, walks
        per problem and their seed.

    Returns
    -------
    SFTForgetting
        The five stable fields first; the mechanism's fields only when both policies are given.

    Examples
    --------
    Two problems, both solved before SFT; SFT unsolves the second.

    >>> inputs = ForgettingInputs(
    ...     sft_steps=3, before=pd.Series([1.0, 1.0]), after=pd.Series([1.0, 0.0]),
    ...     measured_from="eval", accuracy=pd.DataFrame([[1.0, 0.0], [1.0, 1.0]], index=[4, 5]))
    >>> r = compute_sft_forgetting(inputs, window=1)
    >>> r.solved_before, r.solved_after_sft, r.lost_frac, r.recovery_steps
    (2, 1, 0.5, 1.0)
    """
    idx = inputs.before.index.intersection(inputs.after.index)
    before, after = inputs.before.loc[idx], inputs.after.loc[idx]
    solved_b = before.to_numpy() >= threshold
    solved_a = after.to_numpy() >= threshold
    lost = solved_b & ~solved_a
    n_b, n_lost = int(solved_b.sum()), int(lost.sum())
    nan = float("nan")
    parts: dict = {}
    if inputs.new_before is not None and inputs.new_after is not None:
        parts["new_accuracy_before"] = float(inputs.new_before.mean())
        parts["new_accuracy_after_sft"] = float(inputs.new_after.mean())
    recovery = nan
    A = inputs.accuracy
    if len(A) and idx.size:
        A = A.reindex(columns=idx)
        steps = A.index.to_numpy()
        S = inputs.sft_steps
        recovery, frac_end = recovery_steps(
            steps, A.to_numpy(), lost, S, threshold, window, recover_frac
        )
        parts["recovered_frac_end"] = frac_end
        parts["rl_steps_after_sft"] = int((steps > S + 1).sum())
    if inputs.pre is not None and inputs.post is not None:
        parts.update(_cut_bridges(inputs.pre, inputs.post, idx, lost, solved_b, tau, G, seed))
    return SFTForgetting(
        solved_before=n_b,
        solved_after_sft=int(solved_a.sum()),
        lost_frac=n_lost / n_b if n_b else nan,
        lost_downstream_of_cut_bridges_frac=parts.pop("lost_downstream", nan),
        recovery_steps=recovery,
        sft_steps=inputs.sft_steps,
        n_problems=int(idx.size),
        n_lost=n_lost,
        accuracy_before=float(before.mean()) if idx.size else nan,
        accuracy_after_sft=float(after.mean()) if idx.size else nan,
        measured_from=inputs.measured_from,
        init_from=inputs.init_from,
        **parts,
    )


def _cut_bridges(
    pre: PolicyArrays,
    post: PolicyArrays,
    idx: pd.Index,
    lost: np.ndarray,
    solved_b: np.ndarray,
    tau: float,
    G: int,
    seed: int,
) -> dict[str, float | int]:
    """The mechanism: which bridges of the pre-SFT web SFT cut, and which lost problems crossed one."""
    n_lost = int(lost.sum())
    pre_web = compute_checkpoint_web(pre, tau, G=G, seed=seed)
    post_web = concept_web(post.logits, post.neighbors, tau, post.temperature)
    pre_edges = {(min(a, b), max(a, b)) for a, b in undirected_projection(pre_web.web).edges()}
    post_edges = {(min(a, b), max(a, b)) for a, b in undirected_projection(post_web).edges()}
    cut_edges = pre_edges - post_edges
    cut_bridges = set(pre_web.topology.bridges) & cut_edges
    crosses = np.zeros(idx.size, dtype=bool)
    crosses_any = np.zeros(idx.size, dtype=bool)
    paths = pre_web.sample.paths  # indexed like the checkpoint's training problems
    for j, q in enumerate(idx):
        path = paths[int(q)] if 0 <= int(q) < len(paths) else None
        if path is None:
            continue
        pe = path_edges(path)
        crosses[j] = bool(pe & cut_bridges)
        crosses_any[j] = bool(pe & cut_edges)
    return {
        "lost_downstream": float((lost & crosses).sum() / n_lost) if n_lost else float("nan"),
        "lost_across_any_cut_edge_frac": (
            float((lost & crosses_any).sum() / n_lost) if n_lost else float("nan")
        ),
        "n_bridges_before": int(pre_web.topology.n_bridges),
        "n_cut_bridges": len(cut_bridges),
        "n_web_edges_before": len(pre_edges),
        "n_cut_edges": len(cut_edges),
        "lost_rate_crossing_cut_bridge": _rate(lost, solved_b & crosses),
        "lost_rate_elsewhere": _rate(lost, solved_b & ~crosses),
        "n_solved_crossing_cut_bridge": int((solved_b & crosses).sum()),
        "after_checkpoint_step": int(post.step),
    }


def sft_forgetting(
    run: RunDir | str | Path,
    tau: float = DEFAULT_TAU,
    threshold: float = SOLVED_THRESHOLD,
    window: int = DEFAULT_EVENT_WINDOW,
    recover_frac: float = RECOVER_FRAC,
    G: int = DEFAULT_ANALYSIS_G,
    seed: int = 0,
) -> SFTForgetting:
    """The SFT forgetting analysis of a run directory: load_sft_forgetting, then
    compute_sft_forgetting. Raises ConceptwebError as load_sft_forgetting does.
    """
    inputs = load_sft_forgetting(run)
    return compute_sft_forgetting(inputs, tau, threshold, window, recover_frac, G, seed)


def _rate(lost: np.ndarray, among: np.ndarray) -> float:
    n = int(among.sum())
    return float((lost & among).sum() / n) if n else float("nan")
