"""Directed web analysis after the paper's v3: inverse trees, per-node freezing, and run phases.

With tau >= 0.5 a node has at most one successor j with pi(j|i) >= tau, its *dominant
successor*, so the directed web is a functional graph: each weakly connected component
is either an in-tree (many inputs merging towards one root, a node without a dominant
successor, typically an answer node, where walks stop and the policy is never trained)
or a component holding exactly one directed cycle. Definitions, thresholds and rules
are stated in docs/analysis.md ("Inverse trees and freezing"); every function takes
plain arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.analysis.topology import DEFAULT_TAU
from conceptweb.model.policy import entropy, softmax
from conceptweb.rundir import RunDir

__all__ = [
    "FREEZE_ENTROPY",
    "FREEZING_KEYS",
    "TREE_COLUMNS",
    "dominant_successors",
    "tree_structure",
    "greedy_paths",
    "tree_stats",
    "freezing_steps",
    "run_phases",
    "TreeSeries",
    "trees_over_training",
    "trees_sections",
]

FREEZE_ENTROPY = 0.3  # nats: a node is frozen once its entropy stays below this
FROZEN_FRAC_FOR_PHASE = 0.5  # the freezing phase starts when half the final web has frozen
FREEZING_KEYS = [
    "entropy_threshold",
    "n_nodes",
    "n_frozen",
    "frozen_frac",
    "median_step",
    "q10_step",
    "q90_step",
    "nucleation_end",
    "freezing_start",
    "phases_ordered",
]
TREE_COLUMNS = [
    "step",
    "n_web_nodes",
    "n_web_edges",
    "n_trees",
    "n_cyclic",
    "tree_fraction",
    "largest_tree",
    "n_roots_at_answers",
    "max_in_degree",
    "n_merge_nodes",
    "n_multi_input_trees",
    "merged_problems_frac",
    "greedy_solved_frac",
]


def dominant_successors(probs: np.ndarray, neighbors: np.ndarray, tau: float) -> np.ndarray:
    """(N,) successor node j of each node i with max pi(j|i) >= tau, else -1.

    Examples
    --------
    >>> dominant_successors(np.array([[0.9, 0.1], [0.5, 0.5]]), np.array([[1, 0], [0, 1]]), 0.6)
    array([ 1, -1])
    """
    k = probs.argmax(axis=1)
    rows = np.arange(probs.shape[0])
    return np.where(probs[rows, k] >= tau, np.asarray(neighbors)[rows, k], -1).astype(np.int64)


def tree_structure(succ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Component label (-1 off the web) and whether each label's component holds a cycle.

    The web's nodes are nodes with a successor and the successors themselves; components are
    those of the functional graph i -> succ[i]. Returns (label per node, has_cycle per label).
    """
    N = succ.size
    on_web = succ >= 0
    on_web[succ[succ >= 0]] = True
    parent = np.arange(N)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i in np.flatnonzero(succ >= 0):
        a, b = find(int(i)), find(int(succ[i]))
        if a != b:
            parent[a] = b
    roots = np.array([find(i) for i in range(N)])
    uniq, label = np.unique(np.where(on_web, roots, -1), return_inverse=True)
    label = label - (1 if uniq[0] == -1 else 0)
    label[~on_web] = -1
    n_comp = int(label.max()) + 1
    # an acyclic functional component has exactly one node without a successor (its root)
    n_rootless = np.bincount(label[on_web & (succ < 0)], minlength=n_comp)
    return label, n_rootless == 0


def greedy_paths(
    succ: np.ndarray, sources: np.ndarray, targets: np.ndarray, L: int
) -> list[list[int]]:
    """Each problem's path along dominant successors from its start: up to its answer, a node
    without a successor, a repeat, or L steps."""
    paths = []
    for s, t in zip(np.asarray(sources).tolist(), np.asarray(targets).tolist(), strict=True):
        path, seen = [s], {s}
        while len(path) <= L and path[-1] != t and succ[path[-1]] >= 0:
            nxt = int(succ[path[-1]])
            if nxt in seen:
                break
            path.append(nxt)
            seen.add(nxt)
        paths.append(path)
    return paths


def tree_stats(
    succ: np.ndarray, sources: np.ndarray, targets: np.ndarray, L: int = 100
) -> dict[str, Any]:
    """In-tree statistics of one directed web (the TREE_COLUMNS but step)."""
    label, cyclic = tree_structure(succ)
    on_web = label >= 0
    n_web = int(on_web.sum())
    indeg = np.bincount(succ[succ >= 0], minlength=succ.size)
    sizes = np.bincount(label[on_web], minlength=cyclic.size)
    tree_nodes = int(sizes[~cyclic].sum())
    answers = set(np.asarray(targets).tolist())
    roots = np.flatnonzero(on_web & (succ < 0))
    paths = greedy_paths(succ, sources, targets, L)
    solved = [p[-1] == t for p, t in zip(paths, np.asarray(targets).tolist(), strict=True)]
    # problems whose greedy path (before its last node) shares a node with another's
    owners: dict[int, set[int]] = {}
    for q, p in enumerate(paths):
        for node in p[:-1] if solved[q] else p:
            owners.setdefault(node, set()).add(q)
    merged = {q for qs in owners.values() if len(qs) > 1 for q in qs}
    per_tree: dict[int, set[int]] = {}
    for q, p in enumerate(paths):
        if solved[q] and label[p[-1]] >= 0 and not cyclic[label[p[-1]]]:
            per_tree.setdefault(int(label[p[-1]]), set()).add(int(np.asarray(sources)[q]))
    return {
        "n_web_nodes": n_web,
        "n_web_edges": int((succ >= 0).sum()),
        "n_trees": int((~cyclic).sum()),
        "n_cyclic": int(cyclic.sum()),
        "tree_fraction": tree_nodes / n_web if n_web else float("nan"),
        "largest_tree": int(sizes[~cyclic].max()) if (~cyclic).any() else 0,
        "n_roots_at_answers": int(sum(int(r) in answers for r in roots)),
        "max_in_degree": int(indeg.max()) if indeg.size else 0,
        "n_merge_nodes": int((indeg >= 2).sum()),
        "n_multi_input_trees": int(sum(len(s) >= 2 for s in per_tree.values())),
        "merged_problems_frac": len(merged) / len(paths) if paths else float("nan"),
        "greedy_solved_frac": float(np.mean(solved)) if paths else float("nan"),
    }


def freezing_steps(
    steps: Sequence[int],
    dominant: np.ndarray,
    entropies: np.ndarray,
    threshold: float = FREEZE_ENTROPY,
) -> np.ndarray:
    """Per node, the first checkpoint step from which its dominant successor never changes again
    and its entropy stays below `threshold` up to the last checkpoint; NaN if never.

    dominant and entropies are (checkpoints, N): the argmax successor and the entropy of pi.
    """
    steps = np.asarray(steps, dtype=float)
    C, N = dominant.shape
    ok = (entropies < threshold) & (dominant == dominant[-1][None, :])
    # length of the run of True at the end of each column
    bad = ~ok[::-1]
    good_tail = np.where(bad.any(axis=0), bad.argmax(axis=0), C)
    out = np.full(N, np.nan)
    frozen = good_tail > 0
    out[frozen] = steps[C - good_tail[frozen]]
    return out


def run_phases(
    steps: Sequence[int], n_trees: Sequence[float], freeze_at: np.ndarray
) -> dict[str, Any]:
    """Nucleation, growth and freezing phases from the web's tree count and the freezing steps.

    Rules: nucleation lasts until the number of in-trees peaks (trees appear); growth lasts
    from there until half of the nodes in freeze_at (the final web; NaN: never frozen) have
    frozen (trees merge and grow); freezing follows. `ordered` says whether nucleation ends before freezing starts.
    """
    steps = np.asarray(steps, dtype=float)
    trees = np.asarray(n_trees, dtype=float)
    nucleation_end = (
        float(steps[int(np.nanargmax(trees))])
        if trees.size and np.nanmax(trees) > 0
        else float("nan")
    )
    freezing_start = float("nan")
    if freeze_at.size:
        frac = np.array([(freeze_at <= t).sum() / freeze_at.size for t in steps])
        reached = np.flatnonzero(frac >= FROZEN_FRAC_FOR_PHASE)
        freezing_start = float(steps[reached[0]]) if reached.size else float("nan")
    return {
        "nucleation_end": nucleation_end,
        "freezing_start": freezing_start,
        "ordered": bool(nucleation_end < freezing_start)
        if np.isfinite(nucleation_end) and np.isfinite(freezing_start)
        else None,
    }


@dataclass(frozen=True)
class TreeSeries:
    """A run's directed webs over checkpoints: the table of TREE_COLUMNS, the (checkpoints, N)
    argmax successors and entropies, and the final web's dominant successors (-1: none)."""

    table: pd.DataFrame
    dominant: np.ndarray
    entropies: np.ndarray
    final_succ: np.ndarray

    def final_web_freezing(self, threshold: float = FREEZE_ENTROPY) -> np.ndarray:
        """Freezing step of each node of the final web (NaN: not frozen at the end)."""
        steps = self.table["step"].to_numpy()
        return freezing_steps(steps, self.dominant, self.entropies, threshold)[self.final_succ >= 0]


def trees_over_training(
    run: RunDir | str | Path,
    tau: float = DEFAULT_TAU,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> TreeSeries:
    """The directed web of every checkpoint of a run (see TreeSeries)."""
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    L = int(run.read_config().get("model", {}).get("L", 100))
    rows, dom, ent = [], [], []
    succ = np.zeros(0, dtype=np.int64)
    steps = run.checkpoint_steps()
    for i, s in enumerate(steps):
        ck = run.load_checkpoint(s)
        probs = softmax(np.asarray(ck.logits, float), float(ck.temperature))
        nb = np.asarray(ck.neighbors)
        succ = dominant_successors(probs, nb, tau)
        rows.append({"step": int(s), **tree_stats(succ, ck.sources, ck.targets, L)})
        dom.append(nb[np.arange(nb.shape[0]), probs.argmax(axis=1)])
        ent.append(entropy(probs))
        if on_progress is not None:
            on_progress(i + 1, len(steps))
    table = pd.DataFrame(rows, columns=TREE_COLUMNS)
    shape = (len(rows), succ.size)
    return TreeSeries(table, np.array(dom).reshape(shape), np.array(ent).reshape(shape), succ)


def trees_sections(
    series: TreeSeries, tau: float = DEFAULT_TAU, threshold: float = FREEZE_ENTROPY
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """summary.json's `trees` and `freezing` sections (None without checkpoints).

    Freezing is measured on the final web's nodes (those with a dominant successor at the
    last checkpoint); a node that is not frozen at the end has no freezing step.
    """
    table = series.table
    if table.empty:
        return None, None
    last = table.to_dict("records")[-1]
    trees = {k: last[k].item() if hasattr(last[k], "item") else last[k] for k in TREE_COLUMNS}
    trees["peak_n_trees_step"] = int(
        table["step"].iloc[int(np.argmax(table["n_trees"].to_numpy()))]
    )
    trees["tau"] = float(tau)
    steps = table["step"].to_numpy()
    final_web = series.final_succ >= 0
    freeze = series.final_web_freezing(threshold)
    phases = run_phases(steps, table["n_trees"].to_numpy(), freeze)
    fin = freeze[np.isfinite(freeze)]
    freezing = {
        "entropy_threshold": float(threshold),
        "n_nodes": int(final_web.sum()),
        "n_frozen": int(fin.size),
        "frozen_frac": float(fin.size / final_web.sum()) if final_web.sum() else None,
        "median_step": float(np.median(fin)) if fin.size else None,
        "q10_step": float(np.quantile(fin, 0.1)) if fin.size else None,
        "q90_step": float(np.quantile(fin, 0.9)) if fin.size else None,
        "nucleation_end": phases["nucleation_end"],
        "freezing_start": phases["freezing_start"],
        "phases_ordered": phases["ordered"],
    }
    return trees, freezing
