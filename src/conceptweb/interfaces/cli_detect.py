"""CLI command `detect`: replay the online frustration detector over recorded per-problem results."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from conceptweb.errors import ConceptwebError
from conceptweb.interfaces.cli_common import group, user_errors

app = group()
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def load_observations(path: Path) -> tuple[Any, Any, dict[str, Any], int | None]:
    """(observations, per-step metrics or None, detector settings of the run, problem count).

    A run directory gives problems.parquet (with `n` from the config's G for CoNet runs, whose
    records hold only accuracy), metrics.parquet and config.json; a CSV or parquet file gives a
    table with columns step, problem, n, n_correct.
    """
    import pandas as pd

    from conceptweb.analysis.events import read_observations
    from conceptweb.rundir import RunDir

    if path.is_dir():
        run = RunDir.open(path)
        config = run.read_config()
        problems = run.read_problems()
        if "n" not in problems.columns:
            G = (config.get("grpo") or {}).get("G")
            if G is None:
                raise ConceptwebError(f"{path}: problems.parquet has no n and config no grpo.G")
            problems = problems.assign(n=int(G))
        if "phase" in problems.columns:
            from conceptweb.analysis.events import OBSERVED_PHASES

            problems = problems[problems["phase"].isin(OBSERVED_PHASES)]
        metrics = run.read_table("metrics", required=False)
        if len(metrics) and "phase" in metrics.columns:
            metrics = metrics[metrics["phase"] == "rl"]
        detector = ((config.get("anneal") or {}).get("detector")) or {}
        n_problems = (config.get("problems") or {}).get("Q")
        obs = _checked(read_observations, problems, f"{path}/problems.parquet")
        return obs, metrics, detector, n_problems
    if not path.exists():
        raise ConceptwebError(f"{path} does not exist")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ConceptwebError(f"{path}: expected a run directory, a .csv or a .parquet table")
    try:
        table = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any reader error is the user's file
        raise ConceptwebError(f"cannot read {path}: {exc}") from None
    return _checked(read_observations, table, str(path)), None, {}, None


def _checked(fn: Any, table: Any, source: str) -> Any:
    try:
        return fn(table, source)
    except ValueError as exc:
        raise ConceptwebError(str(exc)) from None


def detect_report(result: dict[str, Any]) -> str:
    """The replay's verdict in a few lines."""
    ev = result["evidence"]
    d = result["detector"]

    def num(x: Any) -> str:
        return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3g}"

    head = f"fires at step {result['fire_step']}" if result["fired"] else "does not fire"
    return "\n".join(
        [
            f"detector ({d['signal']}, window {d['window']}, patience {d['patience']}, "
            f"min_forgetting {d['min_forgetting']}): {head}",
            f"records: steps {result['first_step']}..{result['last_step']} ({result['n_steps']}), "
            f"{result['n_observations']} observations of {result['n_problems']} problems",
            f"events: {result['n_forgetting_events']} forgetting, "
            f"{result['n_learning_events']} learning",
            f"evidence{' at firing' if result['fired'] else ' at the last step'}: "
            f"F {num(ev.get('F'))}, F peak {num(ev.get('F_peak'))} at step "
            f"{num(ev.get('F_peak_step'))}, noise floor {num(ev.get('F_floor'))}, "
            f"peak P-value {num(ev.get('F_peak_p'))}, knee {num(ev.get('knee'))}, "
            f"length {num(ev.get('length'))}",
        ]
    )


@app.command()
@user_errors
def detect(
    path: Annotated[
        Path,
        typer.Argument(
            help="a run directory, or a CSV/parquet table with columns step, problem, n, "
            "n_correct (one row per problem observed at a step, from any trainer)"
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    window: Annotated[int | None, typer.Option(help="detector window (steps)")] = None,
    patience: Annotated[int | None, typer.Option(help="steps past the peak to fire")] = None,
    min_steps: Annotated[int | None, typer.Option(help="never fire before this")] = None,
    min_forgetting: Annotated[
        float | None, typer.Option(help="F peak needed (events per step)")
    ] = None,
    confidence: Annotated[
        float | None, typer.Option(help="binomial level of solved/unsolved")
    ] = None,
    peak_p: Annotated[
        float | None, typer.Option(help="P-value the F peak must reach against its floor")
    ] = None,
) -> None:
    """Replay the online frustration detector over recorded per-problem results.

    Settings come from the run's config (anneal.detector) when PATH is a run directory,
    else the defaults; options override them. Says whether and when it fires, and why.
    """
    from pydantic import ValidationError

    from conceptweb.analysis.detector import FrustrationDetector, replay
    from conceptweb.config import DetectorConfig, format_validation_error
    from conceptweb.jsonable import to_jsonable

    obs, metrics, settings, n_problems = load_observations(path)
    given = {
        "window": window,
        "patience": patience,
        "min_steps": min_steps,
        "min_forgetting": min_forgetting,
        "confidence": confidence,
        "peak_p": peak_p,
    }
    settings = {**settings, **{k: v for k, v in given.items() if v is not None}}
    try:
        cfg = DetectorConfig(**settings)
    except ValidationError as exc:
        raise ConceptwebError(format_validation_error(exc)) from None
    if n_problems is not None and len(obs) and int(obs["problem"].max()) >= int(n_problems):
        n_problems = None  # ids beyond the config's count: size from the data
    result = replay(obs, FrustrationDetector.from_config(cfg), metrics, n_problems)
    if as_json:
        typer.echo(json.dumps(to_jsonable(result), indent=2))
    else:
        typer.echo(detect_report(result))
