"""`conceptweb llm graph`: the concept web of each checkpoint of an LLM run, from its completions.

Segment each recorded completion into reasoning steps; represent each step (the checkpoint
model's hidden states averaged over the step's tokens at one layer, or normalised text); fit ONE
codebook (k-means) over the steps of all checkpoints so a concept keeps its identity through
training; link consecutive steps into transition counts and P(c'|c). Writes RUN/graph/ (format:
conceptweb.analysis.reasoning). Representations are cached per checkpoint in RUN/graph/cache/,
so an interrupted build resumes without redoing finished checkpoints.

Under torchrun or `accelerate launch`, each process loads the checkpoint model (on its own GPU
where there is one) and represents its share of the completions; the vectors are gathered to the
main process in bounded rounds, which alone reads and writes the cache, fits the codebook, links
and writes RUN/graph/. On one process the build is the same without any collective.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from conceptweb.analysis.reasoning import (
    EDGES_FILE,
    GRAPH_DIR,
    META_FILE,
    STEP_COLUMNS,
    STEPS_FILE,
    edges_frame,
    sequences_of,
    transition_counts,
)
from conceptweb.errors import ConceptwebError
from conceptweb.llm.recorder import HOW_TO_RECORD, read_completions
from conceptweb.llm.runtime import Collectives
from conceptweb.rundir import RunDir, atomic_path, atomic_savez, atomic_write_json

Segmentation = Literal["auto", "line", "paragraph", "sentence", "token", "regex"]
Representation = Literal["hidden", "text"]
PATTERNS = {
    "line": r"[^\n]+",
    "paragraph": r"(?:[^\n]|\n(?![ \t]*\n))+",
    "sentence": r"(?:[^.!?\n]|\.(?=\d))+[.!?]*",
    "token": r"\S+",
}
DEFAULT_LAYER_FRACTION = 0.9
AUTO_LAYER_FRACTIONS = (0.25, 0.5, 0.75, 0.9)
CACHE_VERSION = 2
SILHOUETTE_SAMPLE = 3000
GATHER_STEPS = 8192  # steps whose vectors one gather round brings to the main process (at most)


@dataclass
class GraphSettings:
    """The knobs of `conceptweb llm graph` (every one is written to meta.json)."""

    segment: Segmentation = "auto"
    pattern: str | None = None
    represent: Representation = "hidden"
    layer: int | Literal["auto"] | None = None
    n_concepts: int | None = None
    sweep: list[int] | None = None
    tau: float = 0.5
    min_count: int = 1  # support: outgoing transitions a concept needs for its edges to count
    include: Literal["correct", "all"] = "correct"
    window: int | None = None
    steps: list[int] | None = None
    batch_size: int = 16
    fit_max: int = 20000
    n_init: int = 16
    normalize: bool = True
    seed: int = 0
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# -- segmentation -------------------------------------------------------------------------------
def resolve_segmentation(settings: GraphSettings, task_kind: str) -> tuple[str, str]:
    """(mode, regex): auto is `token` for CoNet walks written as text, `paragraph` otherwise."""
    mode = settings.segment
    if mode == "auto":
        mode = "token" if task_kind == "conet_walk" else "paragraph"
    if mode == "regex":
        if not settings.pattern:
            raise ConceptwebError("--segment regex needs --pattern")
        try:
            re.compile(settings.pattern)
        except re.error as exc:
            raise ConceptwebError(f"--pattern is not a valid regular expression: {exc}") from None
        return mode, settings.pattern
    return mode, PATTERNS[mode]


def segment(text: str, pattern: str) -> list[tuple[int, int]]:
    """Character spans of the steps of `text`: the matches of `pattern`, stripped, non-empty."""
    spans = []
    for m in re.finditer(pattern, text):
        a, b = m.span()
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            spans.append((a, b))
    return spans


def normalise_text(text: str) -> str:
    """Lower case, whitespace collapsed, surrounding punctuation stripped."""
    return " ".join(text.lower().split()).strip(" .,;:!?")


# -- checkpoints --------------------------------------------------------------------------------
def run_checkpoints(run: RunDir) -> dict[int, Path]:
    """Run step -> model directory: the initial model (step 0), TRL checkpoints, the final model.

    A TRL checkpoint-N holds the policy after N GRPO steps; its run step adds the heating steps
    done before it. Heated checkpoints (heat/) are left out.
    """
    import json

    cfg = run.read_config()
    out: dict[int, Path] = {}
    init = run.path / "init"
    src = (cfg.get("model") or {}).get("name_or_path")
    if (init / "config.json").is_file():
        out[0] = init
    elif src and (Path(src) / "config.json").is_file():
        out[0] = Path(src)
    state = run.path / "llm_state.json"
    heats = json.loads(state.read_text()).get("heats", []) if state.is_file() else []
    root = run.path / "checkpoints"
    if root.is_dir():
        for p in root.iterdir():
            name = p.name.removeprefix("checkpoint-")
            if p.is_dir() and name.isdigit():
                n = int(name)
                offset = sum(int(h.get("sft_steps", 0)) for h in heats if h.get("trl_step", n) < n)
                out[n + offset] = p
    meta = run.read_meta()
    last = int(meta.get("last_step", 0))
    if (run.path / "final" / "config.json").is_file() and last not in out:
        out[last] = run.path / "final"
    return dict(sorted(out.items()))


def assign_windows(record_steps: np.ndarray, ck_steps: list[int], window: int | None) -> np.ndarray:
    """For each recorded step s (sampled by the policy after s-1 updates) its checkpoint, or -1.

    Checkpoint c takes the completions sampled by the policies after c-W+1 .. c updates; W is
    `window`, or (None) the gap since the previous checkpoint, so every completion is used once.
    Step 0 holds the initial model's extra sample (`record_initial`): the policy after 0 updates.
    """
    out = np.full(record_steps.shape, -1, dtype=np.int64)
    gen = np.maximum(record_steps - 1, 0)
    prev = -1
    for c in ck_steps:
        lo = prev if window is None else c - window
        out[(gen > lo) & (gen <= c)] = c
        prev = c
    return out


# -- representations ----------------------------------------------------------------------------
def hidden_step_vectors(
    model: Any,
    tokenizer: Any,
    items: list[tuple[str, str, list[tuple[int, int]]]],
    layers: list[int],
    batch_size: int,
) -> list[np.ndarray]:
    """Per completion (prompt, text, step spans): the mean hidden state of each step's tokens.

    One array per completion, (steps, len(layers), hidden size): one forward pass gives all layers.

    The prompt and the completion are tokenised separately (no special tokens) and concatenated,
    as GRPO generated them; a step's tokens are those whose characters overlap its span.
    """
    import torch

    if not getattr(tokenizer, "is_fast", False):
        raise ConceptwebError("hidden-state representation needs a fast tokenizer (offsets)")
    max_len = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
    out: list[np.ndarray] = []
    for b in range(0, len(items), batch_size):
        batch = items[b : b + batch_size]
        seqs, owners = [], []
        for prompt, text, spans in batch:
            p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            ids, offs = enc["input_ids"], enc["offset_mapping"]
            owner = np.full(len(ids), -1, dtype=np.int64)
            for j, (a, z) in enumerate(spans):
                for t, (oa, oz) in enumerate(offs):
                    if oa < z and oz > a:
                        owner[t] = j if owner[t] < 0 else owner[t]
            seq = list(p_ids) + list(ids)
            pad = np.full(len(p_ids), -1, dtype=np.int64)
            own = np.concatenate([pad, owner])
            if max_len is not None and len(seq) > max_len:
                seq, own = seq[:max_len], own[:max_len]
            seqs.append(seq)
            owners.append(own)
        width = max(len(s) for s in seqs)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids_t = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids_t[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        with torch.inference_mode():
            hs = model(
                input_ids=ids_t.to(model.device),
                attention_mask=mask.to(model.device),
                output_hidden_states=True,
            )
        h = np.stack([hs.hidden_states[x].float().cpu().numpy() for x in layers], axis=2)
        for i, (_, _, spans) in enumerate(batch):
            own = owners[i]
            vecs = np.full((len(spans), *h.shape[2:]), np.nan, dtype=np.float32)
            for j in range(len(spans)):
                idx = np.flatnonzero(own == j)
                if idx.size:
                    vecs[j] = h[i, idx].mean(axis=0)
            out.append(vecs)
    return out


def load_checkpoint_model(path: Path, device: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a checkpoint directory, in eval mode on `device` (default: where it
    loads, the CPU); one-line error if unloadable."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - any failure to load is the user's checkpoint
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConceptwebError(f"cannot load the checkpoint {path}: {first}") from None
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


def model_depth(path: Path) -> int:
    """Number of transformer layers of a checkpoint (from its config), with a one-line error."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConceptwebError(f"cannot load the checkpoint {path}: {first}") from None
    n = getattr(cfg, "num_hidden_layers", None)
    if not isinstance(n, int):
        raise ConceptwebError(f"{path}: cannot tell the model's number of layers")
    return n


# -- the codebook -------------------------------------------------------------------------------
def fit_codebook(X: np.ndarray, K: int, seed: int, fit_max: int, n_init: int = 16) -> Any:
    """k-means (scikit-learn, k-means++, best of n_init) with K concepts on <= fit_max rows of X."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng([seed, 3])
    n = X.shape[0]
    rows = np.sort(rng.choice(n, fit_max, replace=False)) if n > fit_max else None
    fit = X if rows is None else X[rows]
    return KMeans(n_clusters=K, n_init=n_init, random_state=seed).fit(fit)


def silhouette_sample(X: np.ndarray, seed: int) -> np.ndarray:
    """A seeded sample of at most SILHOUETTE_SAMPLE rows (silhouettes cost n^2)."""
    n = X.shape[0]
    rng = np.random.default_rng([seed, 5])
    return X[rng.choice(n, SILHOUETTE_SAMPLE, replace=False)] if n > SILHOUETTE_SAMPLE else X


def silhouette_at(sub: np.ndarray, K: int, seed: int, n_init: int = 16) -> float | None:
    """Silhouette (scikit-learn) of a K-concept codebook fitted on `sub`; None if degenerate."""
    from sklearn.metrics import silhouette_score

    if sub.shape[0] <= K:
        return None
    labels = fit_codebook(sub, K, seed, sub.shape[0], n_init).labels_
    if len(set(labels.tolist())) < 2:
        return None
    return float(silhouette_score(sub, labels, random_state=seed))


def choose_n_concepts(
    X: np.ndarray, seed: int, max_k: int = 200, n_init: int = 16
) -> tuple[int, dict[int, float]]:
    """The number of concepts with the best silhouette over a grid from 2 to min(max_k, n/5).

    Silhouette on a seeded sample of at most 3000 steps; ties go to fewer concepts.
    """
    n = X.shape[0]
    top = max(2, min(max_k, n // 5))
    grid = sorted({int(round(x)) for x in np.geomspace(2, top, 12)})
    sub = silhouette_sample(X, seed)
    scores = {}
    for k in grid:
        score = silhouette_at(sub, k, seed, n_init)
        if score is not None:
            scores[k] = score
    if not scores:
        raise ConceptwebError("too few distinct steps to choose a number of concepts")
    best = max(scores, key=lambda k: (scores[k], -k))
    return best, scores


def auto_layers(n_layers: int) -> list[int]:
    """Candidate layers of `--layer auto`: about 1/4, 1/2, 3/4 and 0.9 of the depth (never 0)."""
    return sorted({min(n_layers, max(1, round(f * n_layers))) for f in AUTO_LAYER_FRACTIONS})


def choose_layer(
    X: np.ndarray, layers: list[int], K: int | None, s: GraphSettings
) -> tuple[int, dict[int, float]]:
    """The candidate layer whose steps cluster best: highest silhouette at K concepts.

    X is (steps, layers, size). With K not given, each layer's silhouette is the best over the
    grid of choose_n_concepts. Ties go to the deeper layer. Never reads the step texts.
    """
    scores: dict[int, float] = {}
    for i, layer in enumerate(layers):
        Xl = prepare_matrix(X[:, i], s.normalize)
        if K is None:
            scores[layer] = max(choose_n_concepts(Xl, s.seed, n_init=s.n_init)[1].values())
        else:
            score = silhouette_at(silhouette_sample(Xl, s.seed), K, s.seed, s.n_init)
            scores[layer] = -1.0 if score is None else score
    best = max(scores, key=lambda x: (scores[x], x))
    return best, scores


def prepare_matrix(vectors: np.ndarray, normalize: bool) -> np.ndarray:
    X = np.asarray(vectors, dtype=np.float32)
    if normalize:
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    return X


# -- the build ----------------------------------------------------------------------------------
@dataclass
class Plan:
    """What will be built: the selected completions, their steps, and the checkpoints to use."""

    run: RunDir
    settings: GraphSettings
    mode: str
    pattern: str
    steps: pd.DataFrame
    checkpoints: dict[int, Path]
    layer: int | None  # None with --layer auto until the layer is chosen
    n_layers: int | None
    layers: list[int] = field(default_factory=list)  # the layers represented (candidates)
    layer_scores: dict[int, float] = field(default_factory=dict)


def plan_graph(run: RunDir, s: GraphSettings) -> Plan:
    """Check every input before anything is written; raise ConceptwebError (one line) if bad."""
    if run.kind != "llm":
        raise ConceptwebError(f"{run.path} is a {run.kind} run; `llm graph` needs an LLM run")
    if isinstance(s.min_count, bool) or not isinstance(s.min_count, int) or s.min_count < 1:
        raise ConceptwebError(f"--min-count must be an integer of at least 1, got {s.min_count}")
    comps = read_completions(run)
    if not len(comps):
        raise ConceptwebError(f"{run.path} has no recorded completions; {HOW_TO_RECORD}")
    if s.include == "correct":
        comps = comps[comps["correct"]]
        if not len(comps):
            raise ConceptwebError(
                f"{run.path} has no correct recorded completion (use --all to link all of them)"
            )
    task_kind = (run.read_config().get("task") or {}).get("kind", "math")
    mode, pattern = resolve_segmentation(s, task_kind)
    cks = run_checkpoints(run) if s.represent == "hidden" else {}
    if s.represent == "text":
        cks = run_checkpoints(run) or {int(comps["step"].max()): run.path}
    if s.steps is not None:
        missing = [x for x in s.steps if x not in cks]
        if missing:
            have = ", ".join(map(str, cks)) or "none"
            raise ConceptwebError(f"no checkpoint at step(s) {missing} (available: {have})")
        cks = {k: v for k, v in cks.items() if k in set(s.steps)}
    if not cks:
        raise ConceptwebError(
            f"{run.path} has no checkpoints to represent steps with (init/, checkpoints/, final/)"
        )
    steps = steps_of(comps, pattern, list(cks), s.window)
    if not len(steps):
        raise ConceptwebError(
            f"the segmentation {mode!r} found no steps in the completions of the chosen checkpoints"
        )
    cks = {c: p for c, p in cks.items() if c in set(steps["step"].tolist())}
    layer = n_layers = None
    layers: list[int] = []
    if s.represent == "hidden":
        depths = {c: model_depth(p) for c, p in cks.items()}
        n_layers = min(depths.values())
        if s.layer == "auto":
            layers = auto_layers(n_layers)
        else:
            layer = (
                s.layer if s.layer is not None else max(1, round(DEFAULT_LAYER_FRACTION * n_layers))
            )
            if not 0 <= layer <= n_layers:
                raise ConceptwebError(
                    f"--layer {layer} is out of range: the model has 0..{n_layers}"
                )
            layers = [layer]
    K = s.n_concepts
    if K is not None and len(steps) < K:
        raise ConceptwebError(f"{K} concepts asked for, but there are only {len(steps)} steps")
    if K is not None and K < 2:
        raise ConceptwebError("--concepts must be at least 2")
    return Plan(run, s, mode, pattern, steps, cks, layer, n_layers, layers)


def steps_of(
    comps: pd.DataFrame, pattern: str, ck_steps: list[int], window: int | None
) -> pd.DataFrame:
    """One row per step of every completion that falls in a checkpoint's window."""
    owner = assign_windows(comps["step"].to_numpy(), sorted(ck_steps), window)
    rows = []
    for c, r in zip(owner.tolist(), comps.itertuples(index=False), strict=True):
        if c < 0:
            continue
        for pos, (a, b) in enumerate(segment(str(r.text), pattern)):
            rows.append(
                {
                    "step": c,
                    "record_step": int(r.step),
                    "problem": int(r.problem),
                    "sample": int(r.sample),
                    "position": pos,
                    "correct": bool(r.correct),
                    "text": str(r.text)[a:b],
                    "start": a,
                    "end": b,
                    "prompt": str(r.prompt),
                    "full": str(r.text),
                }
            )
    return pd.DataFrame(rows)


def cache_key(plan: Plan) -> dict[str, Any]:
    s = plan.settings
    return {
        "version": CACHE_VERSION,
        "represent": s.represent,
        "layers": plan.layers,
        "pattern": plan.pattern,
        "include": s.include,
        "window": s.window,
    }


def completion_items(
    rows: pd.DataFrame,
) -> tuple[list[tuple[str, str, list[tuple[int, int]]]], list[list[int]]]:
    """The completions of one checkpoint's steps as (prompt, text, step spans), and for each the
    positions in `rows` of its steps (in step order)."""
    at = {idx: i for i, idx in enumerate(rows.index.tolist())}
    items, where = [], []
    for _, g in rows.groupby(["record_step", "problem", "sample"], sort=False):
        g = g.sort_values("position")
        items.append(
            (g["prompt"].iloc[0], g["full"].iloc[0], list(zip(g["start"], g["end"], strict=True)))
        )
        where.append([at[idx] for idx in g.index.tolist()])
    return items, where


def represent_checkpoint(plan: Plan, step: int, rows: pd.DataFrame) -> np.ndarray:
    """Hidden-state vectors (steps, layers, size) of one checkpoint's steps, in `rows` order."""
    model, tok = load_checkpoint_model(plan.checkpoints[step], _device())
    items, where = completion_items(rows)
    vecs = hidden_step_vectors(model, tok, items, plan.layers, plan.settings.batch_size)
    out = np.zeros((len(rows), *vecs[0].shape[1:]), dtype=np.float32)
    for w, v in zip(where, vecs, strict=True):
        out[w] = v
    return out


def gather_rounds(sizes: list[int], max_steps: int) -> list[list[int]]:
    """Completions (by their numbers of steps) cut into rounds of consecutive ones whose steps
    add up to at most `max_steps` (a longer completion is a round of its own)."""
    rounds: list[list[int]] = []
    total = 0
    for j, n in enumerate(sizes):
        if not rounds or total + n > max_steps:
            rounds.append([])
            total = 0
        rounds[-1].append(j)
        total += n
    return rounds


def represent_sharded(
    plan: Plan, step: int, rows: pd.DataFrame, comm: Collectives
) -> np.ndarray | None:
    """represent_checkpoint across processes: in each round of completions (gather_rounds) the
    process of rank r represents the r-th, (r + world)-th, ... of them, and the vectors are
    gathered to the main process, which returns them all in `rows` order; the others get None.

    Every process takes part in every round, so a process that fails says so to the others
    before anyone waits on it: all raise (the failing one its own error).
    """
    items, where = completion_items(rows)
    model = tok = None
    out = None
    for rnd in gather_rounds([len(w) for w in where], GATHER_STEPS):
        mine = rnd[comm.rank :: comm.world]
        failure, vecs = None, []
        try:
            if mine and model is None:
                model, tok = load_checkpoint_model(plan.checkpoints[step], _device())
            if mine:
                batch = [items[j] for j in mine]
                vecs = hidden_step_vectors(model, tok, batch, plan.layers, plan.settings.batch_size)
        except Exception as exc:  # noqa: BLE001 - re-raised below, after telling the others
            failure = exc
        reports = comm.all_gather(None if failure is None else _one_line(failure))
        if failure is not None:
            raise failure
        bad = [(r, msg) for r, msg in enumerate(reports) if msg is not None]
        if bad:
            r, msg = bad[0]
            raise ConceptwebError(f"process {r} failed on the checkpoint of step {step}: {msg}")
        parts = comm.gather(list(zip(mine, vecs, strict=True)))
        for j, v in (pair for part in parts or [] for pair in part):
            if out is None:
                out = np.zeros((len(rows), *v.shape[1:]), dtype=np.float32)
            out[where[j]] = v
    return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return first if isinstance(exc, ConceptwebError) else f"{type(exc).__name__}: {first}"


def _device() -> Any:
    """This process's device: its GPU under accelerate where there is one, else the CPU."""
    from conceptweb.llm.runtime import distributed_state

    return distributed_state().device


def cached_vectors(
    plan: Plan,
    written: list[Path],
    on_progress: Callable[[str, int, int], None] | None = None,
    comm: Collectives | None = None,
) -> np.ndarray | None:
    """Representations (steps, layers, size) of every step in plan.steps order, cached per checkpoint.

    Cache files this call writes are appended to `written` (so a failed build can remove them).
    On several processes (`comm`) the main process alone reads and writes the cache and gets the
    vectors; it tells the others which checkpoints are cached, and they return None.
    """
    import json

    comm = comm or Collectives()
    cache = plan.run.path / GRAPH_DIR / "cache"
    steps = plan.steps
    cks = list(plan.checkpoints)
    rows_of = {c: steps[steps["step"] == c] for c in cks}
    done: list[int] = []
    if comm.is_main:
        key = cache_key(plan)
        key_file = cache / "key.json"
        if key_file.is_file() and json.loads(key_file.read_text()) != key:
            shutil.rmtree(cache)
        if not key_file.is_file():
            atomic_write_json(key_file, key)
            written.append(key_file)
        done = [c for c in cks if _cache_holds(_cache_file(cache, c), rows_of[c])]
    done = comm.broadcast(done)
    out: np.ndarray | None = None
    for i, c in enumerate(cks):
        rows, f = rows_of[c], _cache_file(cache, c)
        vecs = None
        if c in done:
            if comm.is_main:
                with np.load(f) as data:
                    vecs = data["vectors"]
        elif comm.world == 1:
            vecs = represent_checkpoint(plan, c, rows)
        else:
            vecs = represent_sharded(plan, c, rows, comm)
        if not comm.is_main or vecs is None:
            continue
        if c not in done:
            atomic_savez(f, {"vectors": vecs.astype(np.float16), "ids": _row_ids(rows)})
            written.append(f)
        if out is None:
            out = np.zeros((len(steps), *vecs.shape[1:]), dtype=np.float32)
        out[steps.index.get_indexer(rows.index)] = vecs
        if on_progress is not None:
            on_progress("representing steps", i + 1, len(cks))
    assert out is not None or not comm.is_main
    return out


def _cache_file(cache: Path, step: int) -> Path:
    return cache / f"step_{step:06d}.npz"


def _cache_holds(f: Path, rows: pd.DataFrame) -> bool:
    """Whether the cache file `f` exists and holds the vectors of exactly these steps."""
    if not f.is_file():
        return False
    with np.load(f) as data:
        return bool(np.array_equal(data["ids"], _row_ids(rows)))


def _row_ids(rows: pd.DataFrame) -> np.ndarray:
    return rows[["record_step", "problem", "sample", "position"]].to_numpy(dtype=np.int64)


def text_vectors(steps: pd.DataFrame) -> Any:
    """TF-IDF vectors (scikit-learn) of the normalised step texts (sparse)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(token_pattern=r"\S+", lowercase=False, preprocessor=normalise_text)
    return vec.fit_transform(steps["text"].tolist())


def build_graph(
    run_dir: str | Path,
    settings: GraphSettings,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Build RUN/graph/ (steps, edges, meta); see the module docstring. Returns the directory.

    Under torchrun or `accelerate launch` every process must call it; only the main one writes.
    """
    from conceptweb.llm.runtime import collectives, quiet_libraries

    quiet_libraries(settings.threads)
    comm = collectives()
    run = RunDir.open(run_dir)
    plan = plan_graph(run, settings)
    gdir = run.path / GRAPH_DIR
    existed = gdir.exists()
    written: list[Path] = []
    try:
        if settings.represent == "hidden":
            X = cached_vectors(plan, written, on_progress, comm)
            if X is None:  # not the main process: its share is gathered; it writes nothing
                return gdir
            nan_rows = ~np.isfinite(X).all(axis=(1, 2))
            if nan_rows.any():  # steps cut off by the model's context
                plan.steps = plan.steps[~nan_rows].reset_index(drop=True)
                X = X[~nan_rows]
            if plan.layer is None:
                plan.layer, plan.layer_scores = choose_layer(
                    X, plan.layers, settings.n_concepts, settings
                )
            X = prepare_matrix(X[:, plan.layers.index(plan.layer)], settings.normalize)
        elif not comm.is_main:
            return gdir
        else:
            X = text_vectors(plan.steps)
        return write_graph(plan, X, on_progress)
    except ConceptwebError:  # bad input found late (an unloadable checkpoint): leave no trace;
        # an interruption (Ctrl-C, a kill) keeps the cache of finished checkpoints for resuming
        for f in written:
            f.unlink(missing_ok=True)
        gone = not existed and gdir.exists() and not any(p.is_file() for p in gdir.rglob("*"))
        if gone and comm.is_main:
            shutil.rmtree(gdir)
        raise


def write_graph(
    plan: Plan, X: Any, on_progress: Callable[[str, int, int], None] | None = None
) -> Path:
    """Fit the codebook (and the sweep), link, and write steps, edges and meta atomically."""
    s, steps = plan.settings, plan.steps
    n = X.shape[0]
    scores: dict[int, float] = {}
    if s.n_concepts is None:
        K, scores = choose_n_concepts(X, s.seed, n_init=s.n_init)
        criterion = "silhouette"
    else:
        K, criterion = s.n_concepts, "given"
    if n < K:
        raise ConceptwebError(f"{K} concepts asked for, but there are only {n} steps")
    sweep = s.sweep if s.sweep is not None else [max(2, K // 2), 2 * K]
    sweep = sorted({k for k in sweep if 2 <= k <= n and k != K})
    out = steps[["step", "record_step", "problem", "sample", "position", "correct", "text"]].copy()
    codebook = fit_codebook(X, K, s.seed, s.fit_max, s.n_init)
    out["concept"] = codebook.predict(X).astype(np.int64)
    for i, k in enumerate(sweep):
        book = fit_codebook(X, k, s.seed, s.fit_max, s.n_init)
        out[f"concept_k{k}"] = book.predict(X).astype(np.int64)
        if on_progress is not None:
            on_progress("concept sweep", i + 1, len(sweep))
    edges = pd.concat(
        [
            edges_frame(c, transition_counts(sequences_of(out[out["step"] == c])))
            for c in sorted(plan.checkpoints)
        ],
        ignore_index=True,
    )
    meta = graph_meta(plan, out, K, criterion, scores, sweep, codebook, n)
    gdir = plan.run.path / GRAPH_DIR
    with atomic_path(gdir / STEPS_FILE) as t1, atomic_path(gdir / EDGES_FILE) as t2:
        out[[*STEP_COLUMNS, *(f"concept_k{k}" for k in sweep)]].to_parquet(t1, index=False)
        edges.to_parquet(t2, index=False)
        (gdir / META_FILE).unlink(missing_ok=True)
    atomic_write_json(gdir / META_FILE, meta)
    return gdir


def graph_meta(
    plan: Plan,
    steps: pd.DataFrame,
    K: int,
    criterion: str,
    scores: dict[int, float],
    sweep: list[int],
    codebook: Any,
    n: int,
) -> dict[str, Any]:
    """meta.json: every setting, how the codebook was fitted, and example texts per concept."""
    s = plan.settings
    examples = {}
    for c, g in steps.groupby("concept"):
        top = g["text"].map(normalise_text).value_counts().head(3)
        examples[str(int(c))] = [{"text": t[:80], "count": int(k)} for t, k in top.items()]
    return {
        "format": "conceptweb-graph",
        "format_version": 1,
        "segment": plan.mode,
        "pattern": plan.pattern,
        "represent": s.represent,
        "layer": plan.layer,
        "n_layers": plan.n_layers,
        "layer_criterion": (
            None
            if s.represent != "hidden"
            else "silhouette over candidate layers"
            if s.layer == "auto"
            else "given"
            if s.layer is not None
            else f"default round({DEFAULT_LAYER_FRACTION} x depth)"
        ),
        "layer_silhouette": {str(k): v for k, v in plan.layer_scores.items()},
        "normalize": s.normalize if s.represent == "hidden" else None,
        "n_concepts": int(K),
        "concepts_criterion": criterion,
        "silhouette": {str(k): v for k, v in scores.items()},
        "sweep_concepts": sweep,
        "tau": s.tau,
        "min_count": int(s.min_count),
        "include": s.include,
        "window": s.window,
        "codebook": {
            "method": f"sklearn KMeans (k-means++, n_init={s.n_init}), one codebook over the "
            "steps of all checkpoints",
            "n_steps": int(n),
            "n_fit": int(min(n, s.fit_max)),
            "inertia": float(codebook.inertia_),
            "seed": s.seed,
        },
        "checkpoints": {str(c): str(p) for c, p in plan.checkpoints.items()},
        "n_completions": len(sequences_of(steps)),
        "concept_examples": examples,
        "settings": {k: v for k, v in asdict(s).items() if k != "extra"},
    }
