"""Concept webs extracted from text: the graph/ files of an LLM run, and their topology.

`conceptweb llm graph` (in conceptweb.llm.graph) segments recorded completions into steps,
assigns each step a concept, and writes three files into RUN/graph/ (the format defined here,
used by writer and readers alike):

- steps.parquet: one row per reasoning step: `step` (the checkpoint), `record_step` (the GRPO
  step that sampled the completion), `problem`, `sample`, `position`, `correct`, `text`,
  `concept`, and `concept_k{K}` for the other numbers of concepts of the sensitivity sweep;
- edges.parquet: one row per (checkpoint, src, dst) with `count` (transitions between consecutive
  steps) and `prob` = P(dst | src) = count / counts out of src;
- meta.json: how the concepts were made (segmentation, representation, layer, codebook, sweep).

The web of a checkpoint is the set of edges with P >= tau (self-transitions dropped), as for
CoNet, out of the concepts with at least `min_count` outgoing transitions in that checkpoint
(the support threshold: P estimated from fewer transitions does not make an edge; 1 keeps every
concept); everything below is pure (frames in, numbers out) and needs no model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from conceptweb.analysis.topology import TOPOLOGY_COLUMNS, undirected_projection, web_topology
from conceptweb.errors import ConceptwebError
from conceptweb.rundir import RunDir

GRAPH_DIR = "graph"
STEPS_FILE = "steps.parquet"
EDGES_FILE = "edges.parquet"
META_FILE = "meta.json"
STEP_COLUMNS = [
    "step",
    "record_step",
    "problem",
    "sample",
    "position",
    "correct",
    "text",
    "concept",
]
EDGE_COLUMNS = ["step", "src", "dst", "count", "prob"]
REASONING_COLUMNS = [
    "n_cycles",
    "n_cycle_nodes",
    "diameter",
    "clustering",
    "small_world",
    "frac_dominant",
    "n_roots",
    "n_sinks",
    "n_merges",
    "max_in_degree",
    "mean_merge_inputs",
    "frac_in_trees",
]
DOMINANT = 0.5
DEFAULT_MIN_COUNT = 1  # support threshold of empirical webs (1: every concept that was left)


# -- linking ------------------------------------------------------------------------------------
def transition_counts(sequences: Iterable[Sequence[int]]) -> dict[tuple[int, int], int]:
    """Counts of c -> c' over consecutive steps of every sequence (self-transitions included)."""
    counts: dict[tuple[int, int], int] = {}
    for seq in sequences:
        s = [int(x) for x in seq]
        for a, b in zip(s[:-1], s[1:], strict=True):
            counts[(a, b)] = counts.get((a, b), 0) + 1
    return counts


def edges_frame(step: int, counts: dict[tuple[int, int], int]) -> pd.DataFrame:
    """Rows (step, src, dst, count, prob) with prob = P(dst | src), sorted by (src, dst)."""
    if not counts:
        return _typed_edges(pd.DataFrame(columns=EDGE_COLUMNS))
    keys = sorted(counts)
    src = np.array([k[0] for k in keys], dtype=np.int64)
    dst = np.array([k[1] for k in keys], dtype=np.int64)
    cnt = np.array([counts[k] for k in keys], dtype=np.int64)
    out = np.bincount(src, weights=cnt)
    frame = pd.DataFrame(
        {"step": np.int64(step), "src": src, "dst": dst, "count": cnt, "prob": cnt / out[src]}
    )
    return _typed_edges(frame)


def _typed_edges(frame: pd.DataFrame) -> pd.DataFrame:
    for c in ("step", "src", "dst", "count"):
        frame[c] = frame[c].astype(np.int64)
    frame["prob"] = frame["prob"].astype(np.float64)
    return frame[EDGE_COLUMNS]


def sequences_of(steps: pd.DataFrame, column: str = "concept") -> list[list[int]]:
    """Each completion's concepts in order (one list per (record_step, problem, sample))."""
    if not len(steps):
        return []
    ordered = steps.sort_values(["record_step", "problem", "sample", "position"], kind="stable")
    keys = ["record_step", "problem", "sample"]
    return [g[column].astype(int).tolist() for _, g in ordered.groupby(keys, sort=False)]


def supported(edges: pd.DataFrame, min_count: int) -> pd.Series:
    """Rows whose source has >= min_count outgoing transitions (all successors, self-loops
    included: the denominator of its prob) in the same checkpoint (`step`, where there is one)."""
    if min_count <= 1 or not len(edges):
        return pd.Series(True, index=edges.index)
    keys = ["step", "src"] if "step" in edges.columns else ["src"]
    return edges.groupby(keys)["count"].transform("sum") >= min_count


def web_from_edges(edges: pd.DataFrame, tau: float, min_count: int = 1) -> nx.DiGraph:
    """The directed web of edges with prob >= tau (no self-loops) out of concepts with at least
    `min_count` outgoing transitions (supported); edges carry "pi" and "count"."""
    keep = edges[
        (edges["prob"] >= tau) & (edges["src"] != edges["dst"]) & supported(edges, min_count)
    ]
    web = nx.DiGraph(tau=float(tau), min_count=int(min_count))
    for r in keep.itertuples(index=False):
        web.add_edge(int(r.src), int(r.dst), pi=float(r.prob), count=int(r.count))
    return web


# -- measures -----------------------------------------------------------------------------------
def reasoning_measures(web: nx.DiGraph, edges: pd.DataFrame, min_count: int = 1) -> dict[str, Any]:
    """Cycles, diameter, small-world index and the directed in-tree structure of a web.

    - n_cycles: independent cycles of the undirected projection (|E| - |V| + components);
      n_cycle_nodes: nodes on a directed cycle of the web;
    - diameter: the longest shortest path inside any island (undirected);
    - small_world: (C / C_rand) / (L / L_rand) on the giant island, with the clustering C and
      mean path length L against an Erdos-Renyi graph of the same size and <k>
      (C_rand = <k>/n, L_rand = ln n / ln <k>); NaN where undefined (a tree has C = 0);
    - frac_dominant: of the concepts with outgoing transitions (at least `min_count`), the
      fraction whose most likely successor has P >= 0.5 (one dominant successor); roots:
      web nodes without inputs; sinks: without outputs; merges: nodes with two or more inputs
      (max_in_degree, mean_merge_inputs);
      frac_in_trees: fraction of islands that are in-trees (acyclic, every node at most one
      successor, so all paths merge towards one sink).
    """
    g = undirected_projection(web)
    n, m = g.number_of_nodes(), g.number_of_edges()
    comps = list(nx.connected_components(g))
    out: dict[str, Any] = {c: math.nan for c in REASONING_COLUMNS}
    out["n_cycles"] = m - n + len(comps)
    cyc = [c for c in nx.strongly_connected_components(web) if len(c) > 1]
    out["n_cycle_nodes"] = int(sum(len(c) for c in cyc))
    out["diameter"] = max((nx.diameter(g.subgraph(c)) for c in comps), default=0)
    if comps:
        giant = g.subgraph(max(comps, key=len))
        out["clustering"] = float(nx.average_clustering(giant))
        out["small_world"] = _small_world(giant, out["clustering"])
    support = edges[supported(edges, min_count)]
    if len(support):
        best = support.groupby("src")["prob"].max()
        out["frac_dominant"] = float((best >= DOMINANT).mean())
    indeg, outdeg = dict(web.in_degree()), dict(web.out_degree())
    merges = [d for d in indeg.values() if d >= 2]
    out["n_roots"] = sum(1 for v in web if indeg[v] == 0)
    out["n_sinks"] = sum(1 for v in web if outdeg[v] == 0)
    out["n_merges"] = len(merges)
    out["max_in_degree"] = max(indeg.values(), default=0)
    out["mean_merge_inputs"] = float(np.mean(merges)) if merges else math.nan
    if comps:
        trees = 0
        for c in nx.weakly_connected_components(web):
            sub = web.subgraph(c)
            trees += int(
                nx.is_directed_acyclic_graph(sub) and max(d for _, d in sub.out_degree()) <= 1
            )
        out["frac_in_trees"] = trees / len(comps)
    return out


def _small_world(giant: nx.Graph, clustering: float) -> float:
    n = giant.number_of_nodes()
    k = 2.0 * giant.number_of_edges() / n if n else 0.0
    if n < 3 or k <= 1.0 or clustering <= 0:
        return math.nan
    L = nx.average_shortest_path_length(giant)
    return float((clustering / (k / n)) / (L / (math.log(n) / math.log(k))))


def modal_paths(steps: pd.DataFrame) -> list[list[int]]:
    """Per problem, its most frequent concept sequence (ties: shorter, then earlier)."""
    paths = []
    for _, g in steps.groupby("problem", sort=True):
        seqs = [tuple(s) for s in sequences_of(g)]
        if not seqs:
            continue
        uniq = sorted(set(seqs), key=lambda s: (-seqs.count(s), len(s), seqs.index(s)))
        paths.append(list(uniq[0]))
    return paths


def node_entropy_of(edges: pd.DataFrame, n_concepts: int) -> np.ndarray:
    """Entropy of P(. | c) for each concept (NaN for concepts without outgoing transitions)."""
    ent = np.full(n_concepts, np.nan)
    for src, g in edges.groupby("src"):
        p = g["prob"].to_numpy()
        ent[int(src)] = float(-(p * np.log(p)).sum()) + 0.0
    return ent


def checkpoint_topology(
    step: int,
    steps: pd.DataFrame,
    edges: pd.DataFrame,
    tau: float,
    n_concepts: int,
    min_count: int = 1,
) -> dict[str, Any]:
    """TOPOLOGY_COLUMNS (as for CoNet) plus REASONING_COLUMNS for one checkpoint's web.

    Bridge loads count the problems whose modal concept path crosses a bridge; geodesics are
    NaN (a problem's start and answer are not concepts); the traffic web is every transition
    the linked completions made (no threshold, no support).
    """
    web = web_from_edges(edges, tau, min_count)
    topo = web_topology(
        web, paths=modal_paths(steps), node_entropy=node_entropy_of(edges, n_concepts)
    ).to_dict()
    row: dict[str, Any] = {c: topo.get(c, math.nan) for c in TOPOLOGY_COLUMNS}
    row["step"] = int(step)
    traffic = undirected_projection(web_from_edges(edges, 0.0))
    row["traffic_n_nodes"] = traffic.number_of_nodes()
    row["traffic_n_edges"] = traffic.number_of_edges()
    row["traffic_avg_degree"] = (
        2.0 * traffic.number_of_edges() / traffic.number_of_nodes()
        if traffic.number_of_nodes()
        else math.nan
    )
    row["frac_problems_with_path"] = math.nan
    row.update(reasoning_measures(web, edges, min_count))
    row["n_completions"] = len(sequences_of(steps))
    row["n_steps"] = len(steps)
    return row


# -- <k> against the number of concepts and tau, with bootstrap intervals ----------------------
def avg_degree_of_sequences(
    seqs: list[np.ndarray],
    tau: float,
    n_concepts: int,
    weights: np.ndarray | None = None,
    min_count: int = 1,
) -> float:
    """<k> of the web (P >= tau, no self-loops, undirected) of transition sequences, out of
    concepts with >= min_count outgoing transitions (weighted: a resample's counts)."""
    pairs = [np.stack([s[:-1], s[1:]], axis=1) for s in seqs if len(s) > 1]
    if not pairs:
        return math.nan
    w = None
    if weights is not None:
        w = np.concatenate(
            [np.full(len(s) - 1, wi) for s, wi in zip(seqs, weights, strict=True) if len(s) > 1]
        )
    ab = np.concatenate(pairs)
    code = ab[:, 0] * n_concepts + ab[:, 1]
    cnt = np.bincount(code, weights=w, minlength=n_concepts * n_concepts).reshape(n_concepts, -1)
    out = cnt.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        prob = np.where(out > 0, cnt / out, 0.0)
    keep = (prob >= tau) & (cnt > 0) & (out >= min_count)
    np.fill_diagonal(keep, False)
    und = keep | keep.T
    n_edges = int(np.triu(und, 1).sum())
    n_nodes = int(und.any(axis=1).sum())
    return 2.0 * n_edges / n_nodes if n_nodes else math.nan


def degree_sensitivity(
    steps: pd.DataFrame,
    concept_columns: dict[int, str],
    taus: Sequence[float],
    *,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    min_count: int = 1,
) -> pd.DataFrame:
    """<k> of one checkpoint's web for each number of concepts and tau, with bootstrap intervals.

    concept_columns maps a number of concepts K to the steps column holding its concepts. The
    bootstrap resamples completions with replacement (n_boot times, seeded); the interval is
    the percentile interval at `level`; the support threshold `min_count` applies to the point
    and to every resample. Columns: n_concepts, tau, avg_degree, lo, hi.
    """
    rng = np.random.default_rng([seed, 11])
    rows = []
    n_comp = len(sequences_of(steps))
    draws = rng.multinomial(n_comp, np.full(n_comp, 1.0 / n_comp), size=n_boot) if n_comp else []
    for K, col in sorted(concept_columns.items()):
        seqs = [np.asarray(s, dtype=np.int64) for s in sequences_of(steps, col)]
        for tau in taus:
            point = avg_degree_of_sequences(seqs, tau, K, min_count=min_count)
            boot = np.array([avg_degree_of_sequences(seqs, tau, K, d, min_count) for d in draws])
            boot = boot[np.isfinite(boot)]
            a = (1 - level) / 2
            lo, hi = np.quantile(boot, [a, 1 - a]) if boot.size else (math.nan, math.nan)
            rows.append(
                {"n_concepts": K, "tau": float(tau), "avg_degree": point, "lo": lo, "hi": hi}
            )
    return pd.DataFrame(rows, columns=["n_concepts", "tau", "avg_degree", "lo", "hi"])


# -- reading a run's graph ---------------------------------------------------------------------
def graph_dir(run: RunDir) -> Path:
    return run.path / GRAPH_DIR


def has_graph(run: RunDir) -> bool:
    """True when `conceptweb llm graph` finished on this run (meta.json is written last)."""
    return (graph_dir(run) / META_FILE).is_file()


def load_graph(run: RunDir) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(steps, edges, meta) of a run's extracted graph; ConceptwebError if there is none."""
    d = graph_dir(run)
    if not has_graph(run):
        raise ConceptwebError(
            f"{run.path} has no concept graph; build it with `conceptweb llm graph {run.path}`"
        )
    try:
        meta = json.loads((d / META_FILE).read_text())
        steps = pd.read_parquet(d / STEPS_FILE)
        edges = pd.read_parquet(d / EDGES_FILE)
    except (OSError, ValueError) as exc:
        raise ConceptwebError(f"cannot read the concept graph in {d}: {exc}") from None
    return steps, edges, meta


def meta_min_count(meta: dict[str, Any], min_count: int | None = None) -> int:
    """The support threshold to use: `min_count` if given, else the graph's (meta.json; graphs
    built before it existed: 1)."""
    return int(min_count if min_count is not None else meta.get("min_count", DEFAULT_MIN_COUNT))


def sweep_columns(meta: dict[str, Any]) -> dict[int, str]:
    """Number of concepts -> steps column, for the chosen K and the sensitivity sweep."""
    cols = {int(meta["n_concepts"]): "concept"}
    for K in meta.get("sweep_concepts", []):
        cols.setdefault(int(K), f"concept_k{int(K)}")
    return cols


def graph_topology(
    steps: pd.DataFrame,
    edges: pd.DataFrame,
    meta: dict[str, Any],
    tau: float,
    min_count: int | None = None,
) -> pd.DataFrame:
    """One row per checkpoint: TOPOLOGY_COLUMNS, REASONING_COLUMNS, n_completions, n_steps.

    min_count: the support threshold (None: the graph's, meta_min_count)."""
    K, m = int(meta["n_concepts"]), meta_min_count(meta, min_count)
    rows = []
    for step in sorted(int(s) for s in edges["step"].unique()):
        s, e = steps[steps["step"] == step], edges[edges["step"] == step]
        rows.append(checkpoint_topology(step, s, e, tau, K, m))
    cols = [*TOPOLOGY_COLUMNS, *REASONING_COLUMNS, "n_completions", "n_steps"]
    return pd.DataFrame(rows, columns=cols)


SENSITIVITY_TAUS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def graph_web_at(
    steps: pd.DataFrame,
    edges: pd.DataFrame,
    meta: dict[str, Any],
    step: int,
    tau: float,
    min_count: int | None = None,
) -> tuple[nx.DiGraph, dict[str, Any]]:
    """The extracted web of one checkpoint and its web_topology dict (for drawings)."""
    e, s = edges[edges["step"] == step], steps[steps["step"] == step]
    web = web_from_edges(e, tau, meta_min_count(meta, min_count))
    topo = web_topology(
        web, paths=modal_paths(s), node_entropy=node_entropy_of(e, int(meta["n_concepts"]))
    ).to_dict()
    return web, topo


def extracted_web(
    run: RunDir,
    tau: float,
    *,
    taus: Sequence[float] = SENSITIVITY_TAUS,
    n_boot: int = 200,
    seed: int = 0,
    min_count: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(topology per checkpoint, <k> sensitivity at the last checkpoint, reasoning_graph section).

    The section holds the last checkpoint's reasoning-graph measures, how the graph was made
    (from meta.json), and <k> with its bootstrap interval for each number of concepts and tau.
    min_count: the support threshold (None: the graph's, from meta.json); the section's method
    says which was used.
    """
    steps, edges, meta = load_graph(run)
    m = meta_min_count(meta, min_count)
    topo = graph_topology(steps, edges, meta, tau, m)
    last = int(topo["step"].iloc[-1]) if len(topo) else None
    sens = (
        degree_sensitivity(
            steps[steps["step"] == last],
            sweep_columns(meta),
            sorted({*taus, tau}),
            n_boot=n_boot,
            seed=seed,
            min_count=m,
        )
        if last is not None
        else pd.DataFrame(columns=["n_concepts", "tau", "avg_degree", "lo", "hi"])
    )
    section: dict[str, Any] = {
        "method": {
            k: meta.get(k)
            for k in (
                "segment",
                "represent",
                "layer",
                "n_layers",
                "layer_criterion",
                "n_concepts",
                "concepts_criterion",
                "include",
                "window",
                "sweep_concepts",
            )
        },
        "final_step": last,
    }
    section["method"]["min_count"] = m
    if last is not None:
        row = topo.iloc[-1]
        section.update({f"final_{c}": row[c] for c in REASONING_COLUMNS})
        section["final_n_completions"] = int(row["n_completions"])
    section["degree_sensitivity"] = sens.to_dict("records")
    return topo, sens, section
