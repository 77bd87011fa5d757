"""No import cycle among the modules of `mailadmin/` and `panel/`, function-level imports included.

A cycle that only works because one side imports inside a function still ties the two modules
together: neither can be read, tested or moved without the other. The graph is built from the
source with `ast` (every `import` statement, wherever it is), so nothing is executed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mailadmin", "panel")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[_module_name(path, root)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that `name` (a module or a name inside one) refers to."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, *([node.module] if node.module else [])])
            else:
                prefix = node.module or ""
            # `from pkg import mod` depends on the module pkg.mod, `from mod import name` on mod.
            candidates = [
                f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix
                for alias in node.names
            ]
        else:
            continue
        for candidate in candidates:
            target = _resolve(candidate, known)
            if target is not None and target != module:
                targets.add(target)
    return targets


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    known = _modules(root, packages)
    return {module: _imports(module, path, known) for module, path in known.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each as a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_one_cycle(graph, component) for component in components]


def _one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A concrete path a -> ... -> a inside the component, for the failure message."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if target not in parents:
                    parents[target] = node
                    nxt.append(target)
        frontier = nxt
    return component


def test_the_graph_sees_relative_and_function_level_imports() -> None:
    graph = import_graph()
    assert "mailadmin.services.context" in graph["mailadmin.services.accounts"]
    assert "mailadmin" in graph  # the package itself is a node


#: Cycles being removed elsewhere, each with the modules it ties together. An entry must go as
#: soon as its cycle is gone (test_no_stale_allowances).
ALLOWED: tuple[frozenset[str], ...] = ()


def _components(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    return [frozenset(_strongly_connected(graph, cycle[0])) for cycle in find_cycles(graph)]


def _strongly_connected(graph: dict[str, set[str]], start: str) -> set[str]:
    def reach(node: str, edges: dict[str, set[str]]) -> set[str]:
        seen, todo = {node}, [node]
        while todo:
            for target in edges.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    reverse: dict[str, set[str]] = {}
    for source, targets in graph.items():
        for target in targets:
            reverse.setdefault(target, set()).add(source)
    return reach(start, graph) & reach(start, reverse)


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = [cycle for cycle in find_cycles(graph)
              if frozenset(_strongly_connected(graph, cycle[0])) not in ALLOWED]
    message = "\n".join(" -> ".join(cycle) for cycle in cycles)
    assert not cycles, f"import cycles:\n{message}"


def test_no_stale_allowances() -> None:
    stale = set(ALLOWED) - set(_components(import_graph()))
    assert not stale, f"these cycles are gone: remove them from ALLOWED: {stale}"


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .c import NAME\n")
    (package / "a.py").write_text("def f() -> None:\n    from . import b\n")
    (package / "b.py").write_text("from .sub import NAME\n")
    (package / "sub" / "c.py").write_text("import pkg.a\nNAME = 1\n")
    (package / "d.py").write_text("from pkg.sub.c import NAME\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.d"] == {"pkg.sub.c"}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "pkg.a"]]
    (package / "a.py").write_text("def f() -> None:\n    pass\n")
    assert find_cycles(import_graph(tmp_path, ("pkg",))) == []
