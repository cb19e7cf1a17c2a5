"""Packaging (issue 10 point 15): the MIT LICENSE ships in the wheel, the license is
declared the PEP 639 way (an SPDX expression and license-files, so setuptools >= 77
builds it without the "license table is deprecated" warning), and `tunstack --version`
reports the distribution's version."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_license_is_declared_pep639() -> None:
    meta = pyproject()
    assert meta["project"]["license"] == "MIT"                 # an SPDX expression, not a table
    assert meta["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the tunstack authors" in text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in text
    # PEP 639's fields need setuptools >= 77 at build time
    req = next(r for r in meta["build-system"]["requires"] if r.startswith("setuptools"))
    m = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", req.replace(" ", ""))
    assert m and int(m.group(1)) >= 77, req


def test_wheel_carries_the_license_without_warnings(tmp_path: Path) -> None:
    # from a copy of the sources (setuptools leaves build/ behind), with pip's isolated build
    # environment holding the setuptools pyproject asks for (~3 s)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for pkg in ("stack", "tools", "protocols", "drivers", "ndd"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "wheel"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(out), str(src)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    log = r.stdout + r.stderr
    warnings = [ln for ln in log.splitlines() if "license" in ln.lower() and re.search(r"warn|deprecat", ln, re.I)]
    assert not warnings, warnings
    (wheel,) = out.glob("tunstack-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        lic = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert lic, names
        assert z.read(lic[0]).decode().startswith("MIT License")
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    version = pyproject()["project"]["version"]
    assert f"\nVersion: {version}\n" in metadata
    # the five top-level packages the README warns about, and nothing else at the top
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"stack", "tools", "protocols", "drivers", "ndd"}, tops
    # the lab ships with the package: `tunstack bench` from a wheel has its atmsigd column
    assert "tools/lab/atmsigd_shim.c" in names and "tools/lab/atmsigd.py" in names


def test_version_command() -> None:
    r = subprocess.run([sys.executable, "-m", "tools.cli.main", "--version"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0 and r.stderr == ""
    assert re.fullmatch(r"tunstack \d+\.\d+\S*\n", r.stdout), r.stdout
