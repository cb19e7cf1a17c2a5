"""The house rules, checked: ndd at the bottom; drivers and protocols beside each other on
it; stack on those; tools on top.  Every import counts -- module level, inside functions and
under `if TYPE_CHECKING:` -- and no module may take part in an import cycle.  A package's
`__init__` is a module map: it imports nothing of the project at module level, so importing
one small module never drags in a layer's worth of others (or trio and pytun)."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

from tests import import_graph as ig


def test_no_import_runs_against_the_layers() -> None:
    assert ig.layer_violations(ig.graph()) == []


def test_no_import_cycles() -> None:
    assert ig.cycles(ig.graph()) == []


def test_package_inits_import_nothing_of_the_project_at_module_level() -> None:
    heavy = []
    for name, path in ig.module_files().items():
        if path.name != "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:   # module level only: lazy imports inside functions are fine
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] in ig.PACKAGES):
                heavy.append(f"{name}: from {'.' * node.level}{node.module or ''} import ...")
            elif isinstance(node, ast.Import) and any(a.name.split(".")[0] in ig.PACKAGES for a in node.names):
                heavy.append(f"{name}: import ...")
    assert heavy == []


def test_a_small_module_loads_only_what_it_imports() -> None:
    code = textwrap.dedent("""
        import sys
        import ndd.checksum, drivers.vnet, protocols.tcp.seq
        print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in
                              ("ndd", "drivers", "protocols", "stack", "tools", "trio", "pytun"))))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ig.ROOT).stdout.split()
    assert out == ["drivers", "drivers.vnet", "ndd", "ndd.checksum", "ndd.pktbuf", "protocols", "protocols.tcp",
                   "protocols.tcp.seq"]


# --- the walker itself: it must see every kind of import ------------------------------------
def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    found = {}
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        parts = list(Path(rel).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def test_the_walker_sees_lazy_type_only_and_relative_imports(tmp_path: Path) -> None:
    files = _tree(tmp_path, {
        "ndd/__init__.py": "",
        "ndd/low.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from stack.high import Thing
            def f():
                from tools import top
        """,
        "ndd/mid.py": "from .low import f\nfrom . import low as again\n",
        "stack/__init__.py": "",
        "stack/high.py": "import ndd.mid\n",
        "tools/__init__.py": "",
        "tools/top.py": "",
    })
    names = set(files)
    edges = {name: ig.imports_of(name, path, names) for name, path in files.items()}
    assert edges["ndd.low"] == {"stack.high", "tools.top"}
    assert edges["ndd.mid"] == {"ndd.low"}          # `from . import low` is the module, not the package
    assert edges["stack.high"] == {"ndd.mid"}
    assert ig.layer_violations(edges) == [("ndd.low", "stack.high"), ("ndd.low", "tools.top")]
    assert ig.cycles(edges) == [["ndd.low", "ndd.mid", "stack.high"]]


def test_drivers_and_protocols_may_not_import_each_other() -> None:
    edges = {"drivers.x": {"protocols.y"}, "protocols.y": {"ndd.z"}, "ndd.z": set()}
    assert ig.layer_violations(edges) == [("drivers.x", "protocols.y")]
