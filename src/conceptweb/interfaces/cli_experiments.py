"""CLI commands that run suites of experiments: `reproduce` and `ablate`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the experiment-suite commands to the main app."""
