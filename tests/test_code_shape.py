"""The code's shape: no function in src/ is longer than a screen unless its docstring says why.

Length counts the lines of a function from its signature to its end, leaving out its
docstring (documentation and examples do not make a function harder to read).

A function may exceed MAX_LINES when its docstring has a line starting with "Long because"
that gives the reason. Functions written before this rule that are still long are listed in
KNOWN_LONG; the list only shrinks: a function that has been shortened (or removed) must
leave it, and no new one may join it.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "conceptweb"
MAX_LINES = 80
REASON = "long because"
# (path under src/conceptweb, qualified name): long functions awaiting a split by their owners
KNOWN_LONG = {
    ("interfaces/report.py", "build_blocks"),
}


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function and method, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from _functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the signature to the end, without the docstring (documentation is free)."""
    n = node.end_lineno - node.lineno + 1
    first = node.body[0]
    is_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if is_doc and isinstance(first.value.value, str) and len(node.body) > 1:
        n -= first.end_lineno - first.lineno + 1
    return n


def _justified(node: ast.AST) -> bool:
    doc = ast.get_docstring(node) or ""
    return any(line.strip().lower().startswith(REASON) for line in doc.splitlines())


def long_functions(src: Path = SRC) -> dict[tuple[str, str], int]:
    """Functions over MAX_LINES lines without a "Long because" line in their docstring."""
    out = {}
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        for name, node in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            n = _code_lines(node)
            if n > MAX_LINES and not _justified(node):
                out[(rel, name)] = n
    return out


def test_no_new_long_functions():
    found = long_functions()
    new = {k: n for k, n in found.items() if k not in KNOWN_LONG}
    assert not new, (
        f"functions over {MAX_LINES} lines: {new}; split them, or say in the docstring why "
        'they are long (a line starting "Long because ...")'
    )


def test_the_list_of_known_long_functions_only_shrinks():
    fixed = sorted(KNOWN_LONG - set(long_functions()))
    assert not fixed, f"no longer long (or gone): remove {fixed} from KNOWN_LONG"


def test_the_checker_sees_long_and_justified_functions(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    method = body.replace("    ", "        ")
    (tmp_path / "m.py").write_text(
        f"def long():\n{body}\n\n"
        f'class C:\n    def justified(self):\n        """Long because: a test."""\n{method}\n\n'
        f"def short():\n    return 1\n"
    )
    assert long_functions(tmp_path) == {("m.py", "long"): MAX_LINES + 1}
