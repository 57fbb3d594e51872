"""The emulator's shape (issue 10 item 7): one errors module, no import cycles, one route style."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import sp_emulator
from sp_emulator import urls

PACKAGE = Path(sp_emulator.__file__).parent
# An HRESULT as SharePoint writes it in error codes ("-2147024809, …") or in hex.
HRESULT = re.compile(r"-21\d{8}|0x8[0-9A-Fa-f]{7}")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _module_level_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of the package imported when `name` is imported (TYPE_CHECKING blocks excluded)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                pkg = name.split(".")[: -node.level or None]
                if path.name == "__init__.py":
                    pkg = name.split(".")[: len(name.split(".")) - node.level + 1]
                base = ".".join([*pkg, node.module])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in modules and m != name}


def test_no_module_level_import_cycles() -> None:
    modules = _modules()
    graph = {name: _module_level_imports(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_hresults_appear_only_in_the_errors_module() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{lineno}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "errors.py"
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if HRESULT.search(line)
    ]
    assert offenders == []


def test_every_route_row_names_an_existing_handler() -> None:
    with sp_emulator.SharePointEmulator(sites=["x"]) as emu:
        app = emu.app
        names = {r.name for r in app.router.routes} | {r.name for r in app.admin_router.routes}
    # The Graph stand-in (sp_emulator/graph.py) adds its own route table to both routers.
    from sp_emulator.graph import GRAPH_ADMIN_ROUTES, GRAPH_ROUTES

    assert len(app.router.routes) == len(urls.SHAREPOINT_ROUTES) + len(GRAPH_ROUTES)
    assert len(app.admin_router.routes) == len(urls.ADMIN_ROUTES) + len(GRAPH_ADMIN_ROUTES)
    rows = urls.SHAREPOINT_ROUTES + urls.ADMIN_ROUTES + GRAPH_ROUTES + GRAPH_ADMIN_ROUTES
    assert {row[3] for row in rows} == names
    assert urls.READ_ONLY_POSTS.issubset(names)
