"""Reports as blocks: every report (run, suite, ablation, CoNet demo) is a list of blocks
(headings, paragraphs, tables, lists, figures) rendered by the same two functions, to Markdown
with relative figure links and to one self-contained HTML page with the PNGs embedded.

Inline text may use **bold**, *italic*, `code` and [links](target); both renderers honour them.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conceptweb.rundir import atomic_write_text


@dataclass(frozen=True)
class Block:
    """One piece of a report. kind: h1 | h2 | h3 | p | table | list | figure.

    content: text (headings, p); (header, rows) for a table; items for a list;
    (relative path, caption) for a figure.
    """

    kind: str
    content: Any


def h1(text: str) -> Block:
    return Block("h1", text)


def h2(text: str) -> Block:
    return Block("h2", text)


def h3(text: str) -> Block:
    return Block("h3", text)


def para(text: str) -> Block:
    return Block("p", text)


def table(head: list[str], rows: list[list[str]]) -> Block:
    return Block("table", (list(head), [list(r) for r in rows]))


def bullets(items: list[str]) -> Block:
    return Block("list", list(items))


def figure(rel: str, caption: str) -> Block:
    return Block("figure", (rel, caption))


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[Block]) -> str:
    """Blocks as GitHub-flavoured Markdown."""
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(b.kind[1])} {b.content}\n")
        elif b.kind == "p":
            out.append(f"{b.content}\n")
        elif b.kind == "list":
            out.append("\n".join(f"- {x}" for x in b.content) + "\n")
        elif b.kind == "table":
            head, rows = b.content
            lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("\n".join(lines) + "\n")
        elif b.kind == "figure":
            rel, caption = b.content
            out.append(f"![{caption}]({rel})\n\n*{caption}*\n")
        else:
            raise ValueError(f"unknown block kind {b.kind!r}")
    return "\n".join(out)


def inline_html(text: str) -> str:
    """HTML-escape text and render its inline Markdown: **bold**, *italic*, `code`, [a](b)."""
    s = html.escape(str(text), quote=False)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"<em>\1</em>", s)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', s)


def _img_src(base: Path, rel: str) -> str:
    path = base / rel
    if path.is_file():
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return html.escape(rel)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:90%}"
    "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}"
    "th{background:#f3f3f3}img{max-width:100%}figure{margin:1.5em 0}"
    "figcaption{color:#555;font-size:90%}code{background:#f5f5f5;padding:0 2px}"
)


def render_html(blocks: list[Block], base: Path) -> str:
    """Blocks as one self-contained HTML page; figure paths are read relative to `base`."""
    body: list[str] = []
    title = "conceptweb report"
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            title = str(b.content) if b.kind == "h1" else title
            body.append(f"<{b.kind}>{inline_html(b.content)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{inline_html(b.content)}</p>")
        elif b.kind == "list":
            items = "".join(f"<li>{inline_html(x)}</li>" for x in b.content)
            body.append(f"<ul>{items}</ul>")
        elif b.kind == "table":
            head, rows = b.content
            th = "".join(f"<th>{inline_html(h)}</th>" for h in head)
            trs = "".join(
                "<tr>" + "".join(f"<td>{inline_html(c)}</td>" for c in r) + "</tr>" for r in rows
            )
            body.append(f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>")
        elif b.kind == "figure":
            rel, caption = b.content
            body.append(
                f'<figure><img src="{_img_src(base, rel)}" alt="{html.escape(caption)}">'
                f"<figcaption>{inline_html(caption)}</figcaption></figure>"
            )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(blocks: list[Block], directory: str | Path, stem: str = "report") -> Path:
    """Write DIR/STEM.md and DIR/STEM.html (figures inline) atomically; returns the .md path."""
    directory = Path(directory)
    md = directory / f"{stem}.md"
    atomic_write_text(md, render_markdown(blocks))
    atomic_write_text(directory / f"{stem}.html", render_html(blocks, directory))
    return md
