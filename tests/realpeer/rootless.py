"""An unprivileged user for rootless tests (rootlesskit, `tunstack gateway` without root),
made from what the machine has and put back exactly as found afterwards:

  * the user is `nobody` (uid/gid 65534, present on every Debian);
  * /etc/subuid and /etc/subgid get a range for it (newuidmap/newgidmap need one for
    rootlesskit's user namespace), the files restored to their old content (or removed);
  * /dev/net/tun is made usable by everyone (0666, as distributions that ship rootless
    Podman set it), its mode restored after;
  * a working directory owned by the user, removed after;
  * `slirp4netns` (and `tunstack`, a symlink to it), a shim in that directory that runs
    this checkout's `tunstack` under the name slirp4netns (the compatibility mode), and
    logs its argv to `argv.log` so a test can check which slirp4netns ran.  The user
    cannot run this venv's interpreter when it lives under /root (pyenv): the shim uses
    the system's python3 of the same minor version, with the venv's site-packages on
    its path.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
SUB_RANGE = "{name}:{start}:65536\n"
SUB_START = 1_000_000_000          # far above any range a real user of this machine has


@dataclass
class RootlessUser:
    uid: int
    gid: int
    home: Path
    slirp4netns: Path                  # the shim
    tunstack: Path                     # the same shim under its own name
    argv_log: Path

    def argv(self, *command: str) -> list[str]:
        """`command` run as the user (no capabilities, no supplementary groups)."""
        env = [f"HOME={self.home}", f"XDG_RUNTIME_DIR={self.home}", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "env", "-i", *env,
                *command]


def _system_python() -> str:
    """A python3 the user can run, of this interpreter's version (the venv's extension
    modules are built for it)."""
    want = f"python3.{sys.version_info.minor}"
    for directory in ("/usr/bin", "/usr/local/bin"):
        candidate = Path(directory, want)
        if candidate.exists():
            return str(candidate)
    pytest.fail(f"no {want} in /usr/bin or /usr/local/bin for the unprivileged user (the venv's interpreter "
                f"is {sys.executable})")


@contextlib.contextmanager
def _restored(path: Path) -> Iterator[None]:
    old = path.read_bytes() if path.exists() else None
    try:
        yield
    finally:
        if old is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(old)


@contextlib.contextmanager
def rootless_user() -> Iterator[RootlessUser]:
    for tool in ("setpriv", "newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (make test installs uidmap and util-linux)")
    python = _system_python()
    site = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
    tun = Path("/dev/net/tun")
    mode = stat.S_IMODE(tun.stat().st_mode)
    home = Path(tempfile.mkdtemp(prefix="tunstack-rootless."))
    with _restored(Path("/etc/subuid")), _restored(Path("/etc/subgid")):
        try:
            os.chmod(home, 0o755)
            os.chown(home, NOBODY, NOBODY)
            for name in ("/etc/subuid", "/etc/subgid"):
                with open(name, "a") as f:
                    f.write(SUB_RANGE.format(name="nobody", start=SUB_START))
            os.chmod(tun, 0o666)
            shim = home / "slirp4netns"
            log = home / "argv.log"
            shim.write_text(f"#!{python}\nimport sys\nsys.path[:0] = [{str(REPO)!r}, {str(site)!r}]\n"
                            f"with open({str(log)!r}, 'a') as f:\n    f.write(' '.join(sys.argv) + '\\n')\n"
                            "from tools.cli.main import main\nsys.exit(main())\n")
            shim.chmod(0o755)
            (home / "tunstack").symlink_to(shim)
            log.touch()
            os.chown(log, NOBODY, NOBODY)
            yield RootlessUser(NOBODY, NOBODY, home, shim, home / "tunstack", log)
        finally:
            os.chmod(tun, mode)
            shutil.rmtree(home, ignore_errors=True)
