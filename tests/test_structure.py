"""The shape of the code: no import cycles, short functions where the loop lives, one place for the task."""
import ast
import importlib
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "latentwire"
MODULES = sorted(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
                 for p in PACKAGE.rglob("*.py"))


def _module_path(name: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def _imports(module: str, source: str | None = None) -> set[str]:
    """The latentwire modules `module` (or `source` in its place) imports anywhere (inside functions too;
    not under TYPE_CHECKING), with the packages each one's import runs first."""
    path = _module_path(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if _module_path(f"{base}.{a.name}"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source if source is not None else path.read_text()))
    out = set()
    for name in found:
        if name.split(".")[0] != "latentwire":
            continue
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(2, len(parts) + 1) if _module_path(".".join(parts[:i])))
    ancestors = {".".join(module.split(".")[:i]) for i in range(1, len(module.split(".")) + 1)}
    return out - ancestors   # a package is already running when its submodules import through it


def test_import_graph_has_no_cycle():
    graph = {m: _imports(m) for m in MODULES}
    state: dict[str, str] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                walk(nxt, trail + [nxt])
        state[node] = "done"

    for module in MODULES:
        if module not in state:
            walk(module, [module])
    assert graph["latentwire.system"] and "latentwire.train.trainer" in graph["latentwire.cli"]


def test_imports_hidden_in_functions_count_and_type_checking_ones_do_not():
    """The kind of import that once tied train/load to train/trainer is seen; a TYPE_CHECKING one never runs."""
    hidden = "def f():\n    from latentwire.train.trainer import train\n"
    assert "latentwire.train.trainer" in _imports("latentwire.train.load", hidden)
    typing_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from latentwire.config import Config\n"
    assert "latentwire.config" not in _imports("latentwire.prompt", typing_only)
    assert {"latentwire.eval", "latentwire.eval.harness"} <= _imports("latentwire.cli", "from latentwire.eval import harness")


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module):
    importlib.import_module(module)


def _functions(folder: str):
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path, node


@pytest.mark.parametrize("folder", ["train", "eval"])
def test_no_function_over_60_lines_in_the_training_and_evaluation_code(folder):
    long = [f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, node in _functions(folder) if node.end_lineno - node.lineno + 1 > 60]
    assert list(_functions(folder)) and not long, long


def test_the_objective_is_tested_only_in_the_task_registry():
    pattern = re.compile(r"objective *(==|!=)|objective +(not +)?in ")
    hits = [f"{path.relative_to(PACKAGE)}:{n}" for path in PACKAGE.rglob("*.py") if path.name != "tasks.py"
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits
    assert pattern.search((PACKAGE / "config.py").read_text()) is None
