"""Experiment trackers (TensorBoard, Weights & Biases, trackio, MLflow) as views of a run's records.

The run directory stays the record; a tracker receives the same per-step numbers as
metrics.parquet while the run trains. Each backend is imported only when asked for, so none of
them is a dependency of the core (`pip install 'conceptweb[track]'` brings TensorBoard and
trackio; wandb and mlflow are installed by the user who wants them).

    trackers = open_trackers(["tensorboard"], "runs/x", config={"seed": 0})
    trackers.log({"reward_mean": 0.5}, step=1)
    trackers.close()
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conceptweb.errors import ConceptwebError

__all__ = ["TRACKERS", "TrackerSet", "check_trackers", "numeric_values", "open_trackers"]

# name -> (modules it needs, how to install them)
TRACKERS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboardX",), "pip install 'conceptweb[track]' (or tensorboardX)"),
    "trackio": (("trackio",), "pip install 'conceptweb[track]' (or trackio)"),
    "wandb": (("wandb",), "pip install wandb"),
    "mlflow": (("mlflow",), "pip install mlflow"),
}


def check_trackers(names: Iterable[str]) -> list[str]:
    """The distinct tracker names, checked: known, and their package installed (else a clear error)."""
    out: list[str] = []
    for name in names:
        if name not in TRACKERS:
            raise ConceptwebError(f"unknown tracker {name!r}; known: {', '.join(sorted(TRACKERS))}")
        modules, install = TRACKERS[name]
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            raise ConceptwebError(f"--log {name} needs {', '.join(missing)}: {install}")
        if name not in out:
            out.append(name)
    return out


def numeric_values(row: Mapping[str, Any], skip: Iterable[str] = ("step",)) -> dict[str, float]:
    """The finite numbers of a record (booleans as 0/1); strings, NaN and `skip` keys dropped."""
    out: dict[str, float] = {}
    skipped = set(skip)
    for key, value in row.items():
        if key in skipped or isinstance(value, str) or value is None:
            continue
        try:
            x = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x):
            out[key] = x
    return out


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


class _TensorBoard:
    def __init__(self, run_dir: Path, name: str, config: Mapping[str, Any]) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(run_dir / "tensorboard"))
        text = "\n".join(f"    {k} = {v}" for k, v in _flat(config).items())
        self.writer.add_text("config", text or "(empty)", 0)

    def log(self, values: Mapping[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class _Trackio:
    def __init__(self, run_dir: Path, name: str, config: Mapping[str, Any]) -> None:
        import trackio

        self.trackio = trackio
        trackio.init(
            project="conceptweb",
            name=name,
            config=_flat(config),
            resume="allow",
            auto_log_cpu=False,
            auto_log_gpu=False,
        )

    def log(self, values: Mapping[str, float], step: int) -> None:
        self.trackio.log(dict(values), step=step)

    def close(self) -> None:
        self.trackio.finish()


class _Wandb:
    def __init__(self, run_dir: Path, name: str, config: Mapping[str, Any]) -> None:
        import wandb

        self.run = wandb.init(
            project="conceptweb", name=name, dir=str(run_dir), config=dict(config), resume="allow"
        )

    def log(self, values: Mapping[str, float], step: int) -> None:
        self.run.log(dict(values), step=step)

    def close(self) -> None:
        self.run.finish()


class _MLflow:
    def __init__(self, run_dir: Path, name: str, config: Mapping[str, Any]) -> None:
        import mlflow

        self.mlflow = mlflow
        mlflow.set_experiment("conceptweb")
        mlflow.start_run(run_name=name)
        mlflow.log_params(_flat(config))

    def log(self, values: Mapping[str, float], step: int) -> None:
        self.mlflow.log_metrics(dict(values), step=step)

    def close(self) -> None:
        self.mlflow.end_run()


_BACKENDS = {"tensorboard": _TensorBoard, "trackio": _Trackio, "wandb": _Wandb, "mlflow": _MLflow}


class TrackerSet:
    """Several trackers behind one `log(values, step)`; also a training callback (`on_step(row)`)."""

    def __init__(self, trackers: list[Any]) -> None:
        self.trackers = trackers

    def log(self, values: Mapping[str, Any], step: int) -> None:
        numbers = numeric_values(values)
        if numbers:
            for t in self.trackers:
                t.log(numbers, int(step))

    def on_step(self, row: Mapping[str, Any]) -> None:
        """Log a metrics row of the training loop (its `step` is the x axis)."""
        self.log(row, int(row["step"]))

    def close(self) -> None:
        for t in self.trackers:
            t.close()


def open_trackers(
    names: Iterable[str], run_dir: str | Path, config: Mapping[str, Any] | None = None
) -> TrackerSet:
    """Open the named trackers for a run directory (its name is the tracker run's name).

    TensorBoard writes event files to RUN/tensorboard/; trackio, wandb and mlflow use their own
    stores and settings (TRACKIO_DIR, WANDB_MODE, MLFLOW_TRACKING_URI, ...), project or
    experiment "conceptweb".
    """
    run_dir = Path(run_dir)
    checked = check_trackers(names)
    return TrackerSet([_BACKENDS[n](run_dir, run_dir.name, config or {}) for n in checked])
