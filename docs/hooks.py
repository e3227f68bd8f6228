"""MkDocs hook: generate the command and config references from the code at build time.

A page that contains `<!-- cli-reference -->` gets the `--help` text of every command of the
`conceptweb` command line (walked through click); `<!-- config-reference -->` gets a table of
every field of `conceptweb.config.RunConfig` with its default and description, and
`<!-- presets-reference -->` the presets. The references cannot drift from the code.
"""

from __future__ import annotations

from typing import Any, get_origin


def _commands(cmd: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    """Every (command path, click command) under `cmd`, depth first."""
    out = [(path, cmd)]
    if hasattr(cmd, "list_commands"):
        ctx = cmd.context_class(cmd, info_name=path[-1])
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not getattr(sub, "hidden", False):
                out += _commands(sub, [*path, name])
    return out


def _help_text(app: Any, path: list[str]) -> str:
    from typer.testing import CliRunner

    env = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    result = CliRunner().invoke(app, [*path[1:], "--help"], env=env, prog_name=path[0])
    return "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())


def cli_reference() -> str:
    import typer

    from conceptweb.interfaces.cli import app

    root = typer.main.get_command(app)
    parts = []
    for path, _cmd in _commands(root, ["conceptweb"]):
        level = "##" if len(path) <= 2 else "###"
        parts.append(f"{level} `{' '.join(path)}`\n\n```text\n{_help_text(app, path)}\n```\n")
    return "\n".join(parts)


def _fields(model: type, prefix: str) -> list[tuple[str, str, str, str]]:
    from pydantic import BaseModel

    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        key = f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += _fields(ann, key + ".")
            continue
        default = field.get_default(call_default_factory=True)
        type_name = str(ann).replace("typing.", "") if get_origin(ann) else ann.__name__
        rows.append((key, type_name, repr(default), field.description or ""))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_reference() -> str:
    from conceptweb.config import RunConfig

    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, type_name, default, desc in _fields(RunConfig, ""):
        lines.append(f"| `{key}` | `{_cell(type_name)}` | `{_cell(default)}` | {_cell(desc)} |")
    return "\n".join(lines)


def presets_reference() -> str:
    import json

    from conceptweb.config import PRESETS

    lines = ["| preset | what it is | overrides of the defaults |", "|---|---|---|"]
    for name, (desc, over) in PRESETS.items():
        lines.append(f"| `{name}` | {_cell(desc)} | `{_cell(json.dumps(over))}` |")
    return "\n".join(lines)


MARKERS = {
    "<!-- cli-reference -->": cli_reference,
    "<!-- config-reference -->": config_reference,
    "<!-- presets-reference -->": presets_reference,
}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
