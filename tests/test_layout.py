"""The package layout: no module-level import cycles in sp_sync.

Walks the import statements with `ast`, so it needs no imports and names the cycle it finds.
Counted: imports executed when a module is imported (module level, including inside `try` and
`if` blocks). Not counted: imports inside functions (run later) and under `if TYPE_CHECKING:`
(never run), and the implicit import of a module's parent package.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, *, deferred: bool) -> list[ast.Import | ast.ImportFrom]:
    """Module-level imports; with `deferred`, also those inside functions and classes."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif deferred and isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            ):
                visit(node.body)
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With | ast.For | ast.While):
                visit(node.body)

    visit(tree.body)
    return found


def import_graph(package: str, root: Path = ROOT, *, deferred: bool = False) -> dict[str, set[str]]:
    """Module → the modules of `package` it imports at module level (with `deferred`: anywhere
    but under `if TYPE_CHECKING:`)."""
    files = {
        _module_name(p, root): p
        for p in sorted((root / package).rglob("*.py"))
        if "__pycache__" not in p.parts
    }
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8")), deferred=deferred):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from pkg import mod` imports the submodule; `from mod import name` the module.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                    for alias in node.names
                ]
            edges.update(t for t in targets if t in files and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, …, a], or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_level_import_cycles_in_sp_sync() -> None:
    graph = import_graph("sp_sync")
    assert graph.get("sp_sync.schema.loader")
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_checker_finds_a_cycle(tmp_path: Path) -> None:
    # The check must be able to fail: two modules importing each other are reported.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n"
        "def f():\n    import pkg.c\nfrom pkg.a import x\n"
    )
    (pkg / "c.py").write_text("import pkg.b\n")
    graph = import_graph("pkg", tmp_path)
    assert graph["pkg.b"] == {"pkg.a"}  # the deferred and TYPE_CHECKING imports do not count
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    assert import_graph("pkg", tmp_path, deferred=True)["pkg.b"] == {"pkg.a", "pkg.c"}


def test_the_schema_package_does_not_import_the_sync_package() -> None:
    # Rule kinds are a table in sp_sync.schema.rules; the schema stage depends on no later stage,
    # not even through an import deferred into a function (how the old cycle was hidden).
    graph = import_graph("sp_sync", deferred=True)
    for module, targets in graph.items():
        if module.startswith("sp_sync.schema"):
            later = {t for t in targets if t.startswith(("sp_sync.sync", "sp_sync.report"))}
            assert not later, f"{module} imports {sorted(later)}"
