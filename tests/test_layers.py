"""The import rules of walkie's packages, checked by reading the source (``ast``), not importing it.

Layers, bottom to top:

* ``sfu``: the media plane. It stands alone so that anyone can embed it, and so that a media
  worker process loads nothing of signaling; it imports no other first-party package.
* ``signaling``: sessions, rooms, floor control, the page's server. It drives the media plane
  through ``sfu``'s API and serves ``www`` (the page, as package data).
* ``bench`` and ``walkie`` on top: the bench is a *client* (it speaks the signaling protocol
  over a WebSocket and reuses only sfu's protocol modules), and the ``walkie`` command line
  wires everything together. Nothing below imports them.
* ``tests`` may import anything; nothing imports tests.

Also: no import cycles between modules. Only imports that run when a module is loaded count
for cycles (module level, class bodies, top-level ``if``/``try``), not imports inside
functions and not ``if TYPE_CHECKING:`` blocks. The layer rules count every import.
Relative imports are resolved, so ``from ..signaling import x`` is caught like the absolute
form.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The first-party packages each package may import (besides itself). Every top-level
#: package of the repository must be listed: a new one needs its place in the layers.
ALLOWED: dict[str, frozenset[str]] = {
    "sfu": frozenset(),
    "www": frozenset(),
    "signaling": frozenset({"sfu", "www"}),
    "bench": frozenset({"sfu"}),
    "walkie": frozenset({"sfu", "signaling", "bench", "www"}),
    "tests": frozenset({"sfu", "signaling", "bench", "walkie", "www"}),
}

#: (module file, imported package) pairs allowed against the rules above, each with its reason.
EXEMPT: dict[tuple[str, str], str] = {}

_SKIP_DIRS = {".venv", "__pycache__", ".git", "node_modules"}


@dataclass(frozen=True)
class Import:
    """One first-party import: where it is, what it names, and whether it runs at load time."""

    path: str  # file, relative to the repository root
    line: int
    target: str  # the imported module, resolved to a dotted name from the repository root
    at_load: bool  # runs when the importing module is loaded (counts for cycles)


def top_level_packages(root: Path = ROOT) -> list[str]:
    """Every directory at the repository root that is a Python package."""
    return sorted(
        p.name for p in root.iterdir()
        if p.is_dir() and p.name not in _SKIP_DIRS and (p / "__init__.py").is_file()
    )


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of every first-party package."""
    modules: dict[str, Path] = {}
    for package in top_level_packages(root):
        for path in sorted((root / package).rglob("*.py")):
            if _SKIP_DIRS.intersection(path.relative_to(root).parts):
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(body: list[ast.stmt], at_load: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Every import statement in ``body``, with whether it runs when the module loads."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, at_load
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _walk(node.body, False)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(node.body, False)
            yield from _walk(node.orelse, at_load)
        else:  # if / try / with / for / while / match / class bodies run where they stand
            nested: list[ast.stmt] = []
            for field in ("body", "orelse", "finalbody"):
                nested += [c for c in getattr(node, field, None) or [] if isinstance(c, ast.stmt)]
            for handler in getattr(node, "handlers", None) or []:
                nested += handler.body
            for case in getattr(node, "cases", None) or []:
                nested += case.body
            yield from _walk(nested, at_load)


def imports_of(
    name: str, path: Path, modules: dict[str, Path], first_party: set[str], root: Path = ROOT
) -> list[Import]:
    """The first-party imports of module ``name`` (relative ones resolved)."""
    rel = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node, at_load in _walk(tree.body, True):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in first_party:
                    found.append(Import(rel, node.lineno, alias.name, at_load))
            continue
        assert isinstance(node, ast.ImportFrom)
        if node.level:
            parts = package.split(".") if package else []
            if node.level - 1 > len(parts):
                raise AssertionError(f"{rel}:{node.lineno}: relative import beyond the top level")
            base = ".".join(parts[: len(parts) - (node.level - 1)])
            module = ".".join(p for p in (base, node.module or "") if p)
        else:
            module = node.module or ""
            if module.split(".")[0] not in first_party:
                continue
        for alias in node.names:
            submodule = f"{module}.{alias.name}" if module else alias.name
            target = submodule if submodule in modules else module
            found.append(Import(rel, node.lineno, target, at_load))
    return found


def all_imports(root: Path = ROOT) -> dict[str, list[Import]]:
    """Module name -> its first-party imports, for every module of the repository at ``root``."""
    modules = module_files(root)
    first_party = set(top_level_packages(root)) | set(ALLOWED)
    return {
        name: imports_of(name, path, modules, first_party, root) for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that starts and ends at the same module, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


# --------------------------------------------------------------------------- the rules


def test_every_package_has_a_layer() -> None:
    missing = [p for p in top_level_packages() if p not in ALLOWED]
    assert not missing, f"add {missing} to ALLOWED in tests/test_layers.py (which layer?)"


def layer_violations(imports: dict[str, list[Import]]) -> list[str]:
    """Every import that ALLOWED (less EXEMPT) does not permit, as 'file:line imports X; ...'."""
    wrong = []
    for name, found in imports.items():
        package = name.split(".")[0]
        for imp in found:
            target = imp.target.split(".")[0]
            if target == package or target in ALLOWED.get(package, frozenset()):
                continue
            if (imp.path, target) in EXEMPT:
                continue
            allowed = sorted(ALLOWED.get(package, frozenset())) or "nothing first-party"
            wrong.append(f"{imp.path}:{imp.line} imports {imp.target}; {package} may import "
                         f"{allowed}")
    return wrong


def test_packages_import_only_the_layers_below() -> None:
    wrong = layer_violations(all_imports())
    assert not wrong, "import rules broken:\n" + "\n".join(wrong)


def test_exemptions_are_still_needed() -> None:
    """An exemption whose import is gone must go too, so the rules do not rot."""
    used = {(imp.path, imp.target.split(".")[0]) for found in all_imports().values()
            for imp in found}
    stale = [f"{path} -> {package}" for path, package in EXEMPT if (path, package) not in used]
    assert not stale, f"drop these from EXEMPT in tests/test_layers.py: {stale}"


def test_no_import_cycles() -> None:
    graph = {name: {imp.target for imp in found if imp.at_load and imp.target != name}
             for name, found in all_imports().items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# --------------------------------------------------------------------------- the checker itself


def _imports_in(tmp_path: Path, files: dict[str, str]) -> dict[str, list[Import]]:
    """Run the import reader on a made-up tree (the checker must be able to fail)."""
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return all_imports(tmp_path)


def test_checker_resolves_relative_and_absolute_imports(tmp_path: Path) -> None:
    found = _imports_in(tmp_path, {
        "sfu/__init__.py": "from .a import x\n",
        "sfu/a.py": "from ..signaling import hub\nimport bench.cli\n",
        "sfu/sub/__init__.py": "from .. import a\nfrom . import b\n",
        "sfu/sub/b.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from sfu import a\n"
            "def f():\n    from sfu.sub import b\n"
            "try:\n    import walkie\nexcept ImportError:\n    pass\n"
        ),
        "signaling/__init__.py": "",
        "signaling/hub.py": "",
        "bench/__init__.py": "",
        "bench/cli.py": "",
    })
    seen = {name: [(i.target, i.at_load) for i in imps] for name, imps in found.items()}
    assert seen["sfu"] == [("sfu.a", True)]
    assert seen["sfu.a"] == [("signaling.hub", True), ("bench.cli", True)]
    assert seen["sfu.sub"] == [("sfu.a", True), ("sfu.sub.b", True)]
    assert seen["sfu.sub.b"] == [("sfu.a", False), ("sfu.sub.b", False), ("walkie", True)]


def test_layer_violations_are_reported_with_file_and_line(tmp_path: Path) -> None:
    found = _imports_in(tmp_path, {
        "sfu/__init__.py": "",
        "sfu/rtp.py": "import os\n\nfrom signaling import hub\n",
        "signaling/__init__.py": "from sfu import rtp\n",
        "signaling/hub.py": "def f():\n    from tests import helpers\n",
        "signaling/cli.py": "import bench\n",
        "tests/__init__.py": "",
        "tests/helpers.py": "import sfu, signaling\n",
        "bench/__init__.py": "",
    })
    assert layer_violations(found) == [
        "sfu/rtp.py:3 imports signaling.hub; sfu may import nothing first-party",
        "signaling/cli.py:1 imports bench; signaling may import ['sfu', 'www']",
        "signaling/hub.py:2 imports tests.helpers; signaling may import ['sfu', 'www']",
    ]


def test_find_cycle_reports_the_path() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"y"}, "y": {"y2"}, "y2": {"y"}}) == ["y", "y2", "y"]
