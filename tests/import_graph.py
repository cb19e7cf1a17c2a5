"""The project's import graph, read from the source with `ast`: every import statement
(module level, inside functions, under `if TYPE_CHECKING:`), resolved to project modules.

The layering test (tests/unit/test_layers.py) checks it against the intended order; run
`python -m tests.import_graph` to print the violations and cycles it finds.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ndd", "drivers", "protocols", "stack", "tools")
# ndd at the bottom; drivers and protocols beside each other on it; stack on those; tools on top.
RANK = {"ndd": 0, "drivers": 1, "protocols": 1, "stack": 2, "tools": 3}


def module_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """Project modules `name` imports; `from pkg import sub` counts sub when it is a module."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_package, node)
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
            # `from pkg import sub` loads pkg anyway as sub's parent; it names pkg itself only
            # when it takes something that is not a submodule out of it.
            candidates = submodules if len(submodules) == len(node.names) else submodules + [base]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


def graph() -> dict[str, set[str]]:
    files = module_files()
    names = set(files)
    return {name: imports_of(name, path, names) for name, path in files.items()}


def layer_violations(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for importer, targets in edges.items():
        low = importer.split(".")[0]
        for target in targets:
            high = target.split(".")[0]
            if high != low and RANK[high] >= RANK[low]:
                bad.append((importer, target))
    return sorted(bad)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def main() -> int:
    edges = graph()
    bad = layer_violations(edges)
    for importer, target in bad:
        print(f"layer: {importer} -> {target}")
    loops = cycles(edges)
    for component in loops:
        print(f"cycle ({len(component)}): {' '.join(component)}")
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} edges, {len(bad)} layer violations, "
          f"{len(loops)} cycles")
    return 1 if bad or loops else 0


if __name__ == "__main__":
    sys.exit(main())
