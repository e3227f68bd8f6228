"""CLI commands that analyse run directories: `analyze` and `web`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the main app."""
