"""Rich progress bars for training runs and multi-run suites."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def _fmt(x: Any, spec: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


@contextmanager
def training_progress(
    total: int, start: int, label: str, n_problems: int, enabled: bool = True
) -> Iterator[Any]:
    """A progress bar showing step, phase, reward, length of correct rollouts and solved problems.

    Yields a callback taking a metrics row.
    """
    if not enabled:
        yield lambda row: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "{task.fields[phase]:>7} reward {task.fields[reward]} len✓ {task.fields[length]} "
            "solved {task.fields[solved]}"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(
            label,
            total=total,
            completed=start,
            phase="",
            reward="-",
            length="-",
            solved=f"-/{n_problems}",
        )

        def update(row: dict[str, Any]) -> None:
            progress.update(
                task,
                completed=row["step"],
                phase=row["phase"],
                reward=_fmt(row["reward_mean"]),
                length=_fmt(row["len_correct_mean"], ".1f"),
                solved=f"{row['n_solved']}/{n_problems}",
            )

        yield update


@contextmanager
def task_progress(total: int, label: str, enabled: bool = True) -> Iterator[Any]:
    """A plain progress bar over `total` units of work; yields advance(n=1, note='')."""
    if not enabled:
        yield lambda n=1, note="": None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task(label, total=total, note="")

        def advance(n: int = 1, note: str = "") -> None:
            progress.update(task, advance=n, note=note)

        yield advance
