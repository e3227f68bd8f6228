"""Ground truth for the extractor: CoNet walks written as text, where each step's node is known.

With token segmentation, a step's text is its node ("n17"), which the extractor never looks at
(it clusters hidden states). These functions compare its concepts and webs with the nodes':
cluster purity, edge-set F1 of the webs (concepts mapped to their majority node), and <k>.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.analysis.reasoning import (
    edges_frame,
    sequences_of,
    transition_counts,
    web_from_edges,
)
from conceptweb.analysis.topology import undirected_projection

NODE = re.compile(r"^n(\d+)$")


def true_nodes(texts: pd.Series) -> np.ndarray:
    """The node of each step text ('n17' -> 17; anything else -> -1)."""
    return np.array(
        [int(m.group(1)) if (m := NODE.match(str(t).strip())) else -1 for t in texts],
        dtype=np.int64,
    )


def chain_concepts(texts: pd.Series) -> np.ndarray:
    """The concept of each `synthetic-chain` sentence: its first word's index in CHAIN_CONCEPTS
    (start, add, subtract, double, square, answer); anything else -> -1."""
    from conceptweb.llm.data import CHAIN_CONCEPTS

    index = {w: i for i, w in enumerate(CHAIN_CONCEPTS)}
    return np.array([index.get((str(t).split() or [""])[0], -1) for t in texts], dtype=np.int64)


Labeler = Callable[[pd.Series], np.ndarray]


def purity(concepts: np.ndarray, labels: np.ndarray) -> tuple[float, dict[int, int]]:
    """Fraction of steps whose concept's majority label is their own; and concept -> majority."""
    frame = pd.DataFrame({"c": concepts, "y": labels})
    counts = frame.groupby(["c", "y"]).size().reset_index(name="n")
    top = counts.sort_values(["c", "n", "y"], ascending=[True, False, True]).drop_duplicates("c")
    majority = dict(zip(top["c"].astype(int), top["y"].astype(int), strict=True))
    return float(top["n"].sum() / len(frame)) if len(frame) else math.nan, majority


def avg_degree(web: Any) -> float:
    g = undirected_projection(web)
    n = g.number_of_nodes()
    return 2.0 * g.number_of_edges() / n if n else math.nan


def edge_f1(found: set[tuple[int, int]], true: set[tuple[int, int]]) -> float:
    if not found and not true:
        return 1.0
    tp = len(found & true)
    if tp == 0:
        return 0.0
    p, r = tp / len(found), tp / len(true)
    return 2 * p * r / (p + r)


def score_checkpoint(
    steps: pd.DataFrame,
    edges: pd.DataFrame,
    tau: float,
    column: str = "concept",
    labeler: Labeler = true_nodes,
    min_count: int = 1,
) -> dict[str, Any]:
    """Purity, edge F1 and <k> of one checkpoint's extracted web against the true labels' web.

    `labeler` gives each step text its true concept (CoNet nodes by default; -1 = other). Both
    webs are estimated from the same completions, so the support threshold `min_count` applies
    to both. `vacuous`: both webs are empty (F1 = 1 by convention, <k> undefined).
    """
    labels = labeler(steps["text"])
    other = int(labels.max()) + 1 if len(labels) else 0  # non-node tokens: one class of their own
    labels = np.where(labels < 0, other, labels)  # the same class in both webs
    pur, majority = purity(steps[column].to_numpy(), labels)
    if column == "concept":
        web = web_from_edges(edges, tau, min_count)
    else:
        counts = transition_counts(sequences_of(steps, column))
        web = web_from_edges(edges_frame(0, counts), tau, min_count)
    mapped = {(majority[a], majority[b]) for a, b in web.edges()}
    mapped = {(a, b) for a, b in mapped if a != b}
    truth = steps.assign(node=labels)
    true_counts = transition_counts(sequences_of(truth, "node"))
    true_web = web_from_edges(edges_frame(0, true_counts), tau, min_count)
    k_found, k_true = avg_degree(web), avg_degree(true_web)
    per_node = pd.Series(list(majority.values())).value_counts()
    return {
        "purity": pur,
        "edge_f1": edge_f1(mapped, set(true_web.edges())),
        "k_extracted": k_found,
        "k_true": k_true,
        "k_diff": k_found - k_true,
        "n_nodes": int(len(set(labels.tolist()))),
        "n_concepts": int(steps[column].nunique()),
        "nodes_split": int((per_node >= 2).sum()),
        "n_true_edges": true_web.number_of_edges(),
        "n_extracted_edges": len(mapped),
        "vacuous": not web.number_of_edges() and not true_web.number_of_edges(),
        "n_steps": len(steps),
    }


def score_token_graph(
    steps: pd.DataFrame,
    edges: pd.DataFrame,
    tau: float = 0.5,
    column: str = "concept",
    labeler: Labeler = true_nodes,
    min_count: int = 1,
) -> pd.DataFrame:
    """One row per checkpoint: step, purity, edge_f1, k_extracted, k_true, k_diff, ..."""
    rows = []
    for step in sorted(int(s) for s in steps["step"].unique()):
        row = {"step": step}
        row.update(
            score_checkpoint(
                steps[steps["step"] == step],
                edges[edges["step"] == step],
                tau,
                column,
                labeler,
                min_count,
            )
        )
        rows.append(row)
    return pd.DataFrame(rows)


def per_checkpoint(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Over seeds, per group: mean and min purity and F1, mean and max |<k> - true <k>|."""
    return (
        table.assign(abs_k_diff=table["k_diff"].abs())
        .groupby(by, sort=False)
        .agg(
            purity_mean=("purity", "mean"),
            purity_min=("purity", "min"),
            f1_mean=("edge_f1", "mean"),
            f1_min=("edge_f1", "min"),
            k_diff_mean=("abs_k_diff", "mean"),
            k_diff_max=("abs_k_diff", "max"),
            true_edges=("n_true_edges", "mean"),
        )
    )


def _cond_entropy(a: np.ndarray, given: np.ndarray) -> float:
    """H(a | given) in nats, from counts."""
    frame = pd.DataFrame({"a": a, "g": given})
    joint = frame.groupby(["g", "a"]).size()
    marg = frame.groupby("g").size()
    p_joint = joint / len(frame)
    p_cond = joint / marg.reindex(joint.index.get_level_values(0)).to_numpy()
    return float(-(p_joint * np.log(p_cond)).sum())


def split_information(
    steps: pd.DataFrame, column: str, seed: int = 0, n_perm: int = 20
) -> dict[str, float]:
    """Do concepts that split one node carry the problem (whose target the prompt shows)?

    Returns H(C | node) (how much a node is split into states), the information the concept
    carries about the problem beyond the node, I(C; problem | node) = H(C|node) - H(C|node,
    problem), and the same under a permutation of problems within each node (its chance level).
    """
    y = true_nodes(steps["text"])
    c = steps[column].to_numpy()
    q = steps["problem"].to_numpy()
    h_c_y = _cond_entropy(c, y)

    def info(qq: np.ndarray) -> float:
        return h_c_y - _cond_entropy(c, y * (int(qq.max()) + 1) + qq)

    rng = np.random.default_rng([seed, 13])
    perm = []
    for _ in range(n_perm):
        qq = q.copy()
        for node in np.unique(y):
            idx = np.flatnonzero(y == node)
            qq[idx] = rng.permutation(qq[idx])
        perm.append(info(qq))
    return {
        "H_concept_given_node": h_c_y,
        "I_concept_problem_given_node": info(q),
        "I_chance": float(np.mean(perm)),
    }
