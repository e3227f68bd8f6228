"""Directories of many runs (ablation, map, sweep): created with their config saved, or reopened.

A suite directory holds one JSON file naming what it is and how it was asked for; running
the same command again reopens it (a config given again must match the saved one), which is
how the experiments resume without redoing finished runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import pandas as pd
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


class SuiteDir:
    """Base of the directories of many runs: `out`, its saved config `cfg`, results.parquet.

    A subclass names its config file (FILE), what it is in messages (WHAT), its config model
    (CONFIG) and how a config is checked before anything is written (`check`).
    """

    FILE: ClassVar[str]
    WHAT: ClassVar[str]
    CONFIG: ClassVar[type[BaseModel]]

    def __init__(self, out: str | Path, cfg: Any) -> None:
        self.out = Path(out)
        self.cfg = cfg

    @classmethod
    def open_or_create(cls, out: str | Path, cfg: Any = None) -> Self:
        """Create the directory, or reopen it (its saved config must match a given one)."""
        out = Path(out)
        return cls(out, open_suite_dir(out, cls.FILE, cfg, cls.CONFIG, cls.WHAT, cls.check))

    @staticmethod
    def check(cfg: Any) -> None:
        """Raise ConceptwebError if `cfg` cannot be run (every run's config is valid)."""

    @property
    def results_path(self) -> Path:
        return self.out / "results.parquet"

    def read_results(self) -> pd.DataFrame:
        """One row per finished run (empty before the first)."""
        return pd.read_parquet(self.results_path) if self.results_path.is_file() else pd.DataFrame()
