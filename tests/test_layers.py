"""The structure the code keeps: no import circle (function-level and type-checking imports
included), layers that only import downwards, Hydra only in experiments/, W&B only in
lth/tracking."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# Bottom to top: a package of lth may import only from its own layer's packages or lower ones.
LAYERS = [
    {"lth", "lth.errors", "lth.faults", "lth.files", "lth.kernels"},
    {"lth.data"},
    {"lth.pruning"},
    {"lth.models"},
    {"lth.train"},
    {"lth.measure", "lth.tracking", "lth.store", "lth.permute"},
    {"lth.lottery"},
    {"lth.export", "lth.analysis", "lth.tickets"},
]


def modules() -> dict[str, Path]:
    out = {}
    for base in ("lth", "experiments", "scripts"):
        for f in (ROOT / base).rglob("*.py"):
            name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = f
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of the project ``name`` imports, wherever the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            for a in node.names:
                full = f"{base}.{a.name}"
                found |= {full} if full in known else ({base} if base in known else set())
    return found - {name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports(m, p, known) for m, p in known.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def layer(module: str) -> int | None:
    package = ".".join(module.split(".")[:2])
    for i, names in enumerate(LAYERS):
        if package in names or module in names:
            return i
    return None


def test_no_import_circle_anywhere() -> None:
    assert cycles(graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_lth_packages_import_only_downwards() -> None:
    g = graph()
    upward = [(a, b) for a, targets in g.items() if a.startswith("lth")
              for b in targets if layer(a) is not None and (layer(b) or 0) > layer(a)]
    assert upward == []
    assert all(layer(m) is not None for m in g if m.startswith("lth.")), "a package without a layer"
    assert not [(a, b) for a, t in g.items() if a.startswith("lth") for b in t
                if b.startswith(("experiments", "scripts"))]


def third_party(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_hydra_only_in_experiments_and_wandb_only_in_tracking() -> None:
    for name, path in modules().items():
        used = third_party(path)
        if name.startswith("lth"):
            assert not used & {"hydra", "omegaconf"}, name
            if not name.startswith("lth.tracking"):
                assert "wandb" not in used, name
