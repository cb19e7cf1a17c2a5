"""Every script in scripts/ against tunstack (mock clock) and against the Linux kernel
(a namespace over TUN, real time).  A script tunstack does not pass yet says so in its
first lines (`// xfail tunstack: why`) and runs as a strict expected failure: the day
tunstack passes it, the test fails until the line is removed."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.realpeer.conftest import require_real_peer

from .run import run_script

SCRIPTS = sorted((Path(__file__).parent / "scripts").glob("*.pkt"))
BACKENDS = ("tunstack", "linux")


def xfail_reason(path: Path, backend: str) -> str | None:
    """The reason of a `// xfail BACKEND: reason` line in the script's leading comments."""
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text.startswith("//"):
            break
        tag = f"xfail {backend}:"
        body = text[2:].strip()
        if body.startswith(tag):
            return body[len(tag):].strip()
    return None


def _params() -> list[object]:
    out: list[object] = []
    for path in SCRIPTS:
        for backend in BACKENDS:
            marks: list[pytest.MarkDecorator] = []
            if backend == "linux":
                marks.append(pytest.mark.realpeer)
            reason = xfail_reason(path, backend)
            if reason:
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            out.append(pytest.param(path, backend, id=f"{path.stem}-{backend}", marks=marks))
    return out


def test_there_are_scripts() -> None:
    assert len(SCRIPTS) >= 8


@pytest.mark.parametrize(("path", "backend"), _params())
def test_script(path: Path, backend: str) -> None:
    if backend == "linux":
        require_real_peer()
    run_script(path, backend)
