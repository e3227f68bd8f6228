"""The package's module import graph: no cycles, and lower layers never import higher ones."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

import conceptweb

ROOT = Path(conceptweb.__file__).resolve().parent
LAYERS = ["model", "algorithms", "analysis", "experiments", "interfaces"]


def _module_name(path: Path) -> str:
    parts = ["conceptweb", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> nx.DiGraph:
    """Edges module -> conceptweb module it imports (at any depth in the file, lazy or not)."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    g = nx.DiGraph()
    g.add_nodes_from(modules)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):
                    g.add_edge(name, t)
    return g


def test_graph_sees_known_imports() -> None:
    g = import_graph()
    assert g.has_edge("conceptweb.interfaces.cli", "conceptweb.interfaces.cli_train")
    assert g.has_edge("conceptweb.experiments.reproduce", "conceptweb.experiments.ablation")


def test_no_import_cycle_among_modules() -> None:
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_lower_layers_never_import_higher_ones() -> None:
    bad = []
    for a, b in import_graph().edges():
        la, lb = (a.split(".") + [""])[1], (b.split(".") + [""])[1]
        if la in LAYERS and lb in LAYERS and LAYERS.index(lb) > LAYERS.index(la):
            bad.append((a, b))
        if la == "llm" and lb in ("experiments", "interfaces"):
            bad.append((a, b))
    assert not bad, bad


@pytest.mark.parametrize("chosen, backend", [(None, "system"), ("mimalloc", "mimalloc")])
def test_arrow_allocator_is_the_system_one_unless_the_user_chose(chosen, backend):
    """conceptweb makes Arrow use the C allocator (mimalloc's arenas cost a training process
    about 10 MiB); an ARROW_DEFAULT_MEMORY_POOL the user set is kept."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    code = "import conceptweb, pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == backend, out.stderr
