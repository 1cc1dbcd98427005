"""The shape of the package: layers that import one way, no cycles, short modules and functions.

Every ``import`` in src/knobsim is read from the source (function-level imports included)
and resolved to the knobsim module it names. The package's layers, bottom to top:

    errors  <  config  <  data, models, io  <  watch  <  core  <  scaling, zoo  <  cli

A module may import from its own package or from a lower layer, never from above or
from a sibling package of its own layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "knobsim"

LAYER = {"errors": 0, "config": 1, "data": 2, "models": 2, "io": 2, "watch": 3, "core": 4,
         "scaling": 5, "zoo": 5, "cli": 6, "__init__": 7, "__main__": 7}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    mods = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The knobsim modules ``name`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("knobsim")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("knobsim"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in MODULES else node.module)
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> tuple[str, int]:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return top, LAYER[top]


def test_every_module_belongs_to_a_layer():
    unknown = sorted(m for m in MODULES if (m.split(".") + ["__init__"])[1] not in LAYER)
    assert not unknown, f"modules outside the known layers (add them to LAYER): {unknown}"


def test_imports_go_down_the_layers():
    upward = []
    for mod, deps in GRAPH.items():
        top, rank = _layer(mod)
        for dep in deps:
            dtop, drank = _layer(dep)
            if dtop != top and drank >= rank:
                upward.append(f"{mod} -> {dep}")
    assert not upward, "imports that go up (or sideways between packages): " + ", ".join(sorted(upward))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = _cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_are_short(name):
    path = MODULES[name]
    text = path.read_text()
    n_lines = text.count("\n")
    assert n_lines <= MAX_MODULE_LINES, f"{path.relative_to(SRC)} has {n_lines} lines (> {MAX_MODULE_LINES}): split it"
    long = [f"{f.name} ({f.end_lineno - f.lineno + 1} lines)" for f in ast.walk(ast.parse(text))
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            and f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.relative_to(SRC)}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_public_api_resolves():
    import knobsim

    assert len(knobsim.__all__) == len(set(knobsim.__all__))
    for name in knobsim.__all__:
        assert getattr(knobsim, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        knobsim.nope  # noqa: B018
    assert set(knobsim.__all__) <= set(dir(knobsim))
