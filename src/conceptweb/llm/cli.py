"""CLI commands of the LLM side: `conceptweb llm train` and `conceptweb llm eval`."""

from __future__ import annotations

import typer

llm_app = typer.Typer(
    help="RLVR diagnostics and Annealed-RLVR for real language models (needs conceptweb[llm]).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `llm` command group to the main app."""
    app.add_typer(llm_app, name="llm")
