"""Architecture rules checked on the source text (pure `ast`; the package is never imported).

Why: import cycles make import order matter (a half-initialised module fails at a distance) and make any module
drag in the whole package; an import of the package root from inside it is a cycle through `prompthone/__init__.py`,
which imports everything; long modules and functions are where responsibilities hide. The allowlists below record
today's offenders so that the rules hold for all new code; each list must only shrink, and the tests fail when an
entry no longer offends, so that the lists stay exact.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "prompthone"

# Import cycles tolerated today, each one strongly connected component of the import graph. This list must only
# shrink: remove an entry when its cycle is broken (the test fails until you do).
ALLOWED_CYCLES: frozenset[frozenset[str]] = frozenset()

# Modules that import the package root today (outside the root itself, `__main__` and cli*.py). This list must only
# shrink: remove an entry when it imports from the defining module instead (the test fails until you do).
ALLOWED_ROOT_IMPORTS: frozenset[str] = frozenset()

# Functions ("module:qualname") over MAX_FUNCTION_LINES and modules over MAX_MODULE_LINES in SIZE_CHECKED_PACKAGES,
# tolerated today. This list must only shrink: remove an entry when it is split (the test fails until you do).
ALLOWED_LONG: frozenset[str] = frozenset()

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
SIZE_CHECKED_PACKAGES = ("run", "optimizers", "models", "evaluation")


@dataclass(frozen=True)
class Module:
    """One module of the package: its dotted name, its file and whether it is a package's `__init__`."""

    name: str
    path: Path
    is_package: bool


def package_modules() -> dict[str, Module]:
    """Every module under src/prompthone by dotted name (`prompthone.store` for store/__init__.py)."""
    modules: dict[str, Module] = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = Module(".".join(parts), path, is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that runs at some point (module or function level), skipping `if TYPE_CHECKING:`."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _runtime_imports(node.orelse)
        else:
            yield from _runtime_imports(ast.iter_child_nodes(node))


def _resolve(name: str, modules: dict[str, Module]) -> str | None:
    """The module `import name` executes last: the longest prefix of `name` that is a module of the package."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(module: Module, modules: dict[str, Module]) -> set[str]:
    """The package's modules that `module` imports at run time.

    `import a.b` is an edge to a.b (not to its parents: those are package `__init__`s, and counting them would
    make everything a cycle through the root); `from a import b` is an edge to a.b when b is a submodule, else to a.
    """
    tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_imports([tree]):
        if isinstance(node, ast.Import):
            targets = [_resolve(alias.name, modules) for alias in node.names]
        else:
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            targets = []
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.append(submodule if submodule in modules else _resolve(base, modules))
        found.update(t for t in targets if t is not None and t != module.name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports."""
    modules = package_modules()
    return {name: imports_of(module, modules) for name, module in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's strongly connected components with more than one module (a module never imports itself here)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def shortest_cycle(graph: dict[str, set[str]], component: frozenset[str]) -> list[str]:
    """One shortest cycle inside `component` (breadth first from its first module), for a readable message."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if w not in parents:
                    parents[w] = v
                    following.append(w)
        frontier = following
    return [start]  # unreachable: a strongly connected component of two or more modules has a cycle through start


def _describe(graph: dict[str, set[str]], components: list[frozenset[str]]) -> str:
    return "\n".join(f"  {sorted(c)}\n    e.g. {' -> '.join(shortest_cycle(graph, c))}" for c in components)


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = strongly_connected(graph)
    new = [c for c in cycles if c not in ALLOWED_CYCLES]
    gone = [c for c in ALLOWED_CYCLES if c not in cycles]
    assert not new, f"import cycles (break them; a type-only import can go under `if TYPE_CHECKING:`):\n" \
                    f"{_describe(graph, new)}"
    assert not gone, "ALLOWED_CYCLES lists cycles that no longer exist (or changed; remove them):\n" + \
                     "\n".join(f"  {sorted(c)}" for c in gone)


def _may_import_root(name: str) -> bool:
    """The package root itself, `__main__` and the CLI entry modules (cli*.py) may import `prompthone`."""
    last = name.rpartition(".")[2]
    return name == ROOT or last == "__main__" or (name.count(".") == 1 and last.startswith("cli"))


def test_no_imports_of_the_package_root() -> None:
    graph = import_graph()
    upward = {name for name, targets in graph.items() if ROOT in targets and not _may_import_root(name)}
    new = sorted(upward - ALLOWED_ROOT_IMPORTS)
    gone = sorted(ALLOWED_ROOT_IMPORTS - upward)
    assert not new, f"modules that import the package root `{ROOT}` (import from the defining module instead, " \
                    f"e.g. prompthone._version): {new}"
    assert not gone, f"ALLOWED_ROOT_IMPORTS lists modules that no longer import the package root (remove them): {gone}"


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method with its qualname (`Class.method`, `outer.<locals>.inner`)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            qualname = f"{prefix}{child.name}"
            yield qualname, child
            yield from _functions(child, f"{qualname}.<locals>.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def long_code() -> dict[str, int]:
    """Modules ("module") and functions ("module:qualname") over the limits in SIZE_CHECKED_PACKAGES, with lengths.

    A function's length runs from its `def` line to its last line (decorators excluded); a package that does not
    exist (yet) is skipped.
    """
    found: dict[str, int] = {}
    for module in package_modules().values():
        parts = module.name.split(".")
        if len(parts) < 2 or parts[1] not in SIZE_CHECKED_PACKAGES or (len(parts) == 2 and not module.is_package):
            continue
        text = module.path.read_text(encoding="utf-8")
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            found[module.name] = lines
        for qualname, node in _functions(ast.parse(text, filename=str(module.path))):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found[f"{module.name}:{qualname}"] = length
    return found


def test_no_long_modules_or_functions() -> None:
    found = long_code()
    new = {name: n for name, n in sorted(found.items()) if name not in ALLOWED_LONG}
    gone = sorted(ALLOWED_LONG - found.keys())
    assert not new, f"over {MAX_MODULE_LINES} lines per module or {MAX_FUNCTION_LINES} per function " \
                    f"(split them): " + ", ".join(f"{name} ({n} lines)" for name, n in new.items())
    assert not gone, f"ALLOWED_LONG lists code that is no longer too long (remove it): {gone}"


def test_the_graph_reads_what_runs() -> None:
    """The rules above pass vacuously if the graph misses imports: check it on a module whose imports are known."""
    store = import_graph()["prompthone.store"]
    assert "prompthone.errors" in store  # module level
    assert "prompthone.store.db" in store  # function level, `from package import submodule`
    assert "prompthone.store.record" not in store  # only under `if TYPE_CHECKING:`
