"""Directories of many runs (ablation, map, sweep): created with their config saved, or reopened.

A suite directory holds one JSON file naming what it is and how it was asked for; running
the same command again reopens it (a config given again must match the saved one), which is
how the experiments resume without redoing finished runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from conceptweb.errors import ConceptwebError
from conceptweb.rundir import atomic_write_json

M = TypeVar("M", bound=BaseModel)


def open_suite_dir(
    out: Path,
    filename: str,
    cfg: M | None,
    model: type[M],
    what: str,
    validate: Callable[[M], Any],
) -> M:
    """The config of the suite directory `out` (e.g. filename "ablation.json", what "an ablation").

    Saved already: the saved config, which a given `cfg` must equal. Otherwise `cfg` (required)
    is checked with `validate` before anything is written, then saved into a new or empty `out`.
    """
    saved_path = out / filename
    if saved_path.is_file():
        saved = model.model_validate(json.loads(saved_path.read_text()))
        if cfg is not None and cfg != saved:
            raise ConceptwebError(
                f"{out} holds {what} with another config; use a new --out or the same options"
            )
        return saved
    if cfg is None:
        raise ConceptwebError(f"{out} is not {what} directory (no {filename})")
    if out.exists() and any(out.iterdir()):
        raise ConceptwebError(f"{out} exists and is not {what} directory")
    validate(cfg)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(saved_path, cfg.model_dump(mode="json"))
    return cfg
