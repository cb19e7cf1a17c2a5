"""Network namespaces as test hosts: the Linux kernel as our real peer.

Everything here shells out to iproute2.  Names are unique per process (`ts<pid>x<n>`)
and whatever a NetnsHost creates it deletes again.
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass, field

_counter = itertools.count()


def unique_name(prefix: str = "ts") -> str:
    """`ts<pid>x<n>`, at most 15 characters (IFNAMSIZ - 1).

    The `x` keeps names of concurrent processes apart: without it pid 2546's 92nd name and
    pid 25469's 2nd were both `ts254692` (pids have 4 and 5 digits side by side), and it
    lets a leftover be traced to its pid.  A 2-letter prefix and a 7-digit pid (pid_max
    4194304) still leave 5 digits of counter before the cut."""
    return f"{prefix}{os.getpid()}x{next(_counter)}"[:15]


def have_tun() -> tuple[bool, str]:
    """Can this process create TUN/TAP devices and namespaces?  (ok, reason if not)"""
    if os.geteuid() != 0:
        return False, "needs root (CAP_NET_ADMIN) for TUN/TAP and network namespaces"
    if not os.path.exists("/dev/net/tun"):
        return False, "/dev/net/tun is missing"
    if shutil.which("ip") is None:
        return False, "iproute2 (`ip`) is not installed"
    return True, ""


class IpError(subprocess.CalledProcessError):
    """A failing `ip` command whose message says which command and what `ip` said."""

    def __str__(self) -> str:
        said = " ".join((self.stderr or "").split()) or f"exit status {self.returncode}"
        return f"`{' '.join(self.cmd)}` failed: {said}"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], check=False, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise IpError(r.returncode, r.args, r.stdout, r.stderr)
    return r


def netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def netns_spec(value: str) -> tuple[str, str]:
    """What a --netns value names, as slirp4netns and pasta read it: ("pid", PID) for
    digits, ("path", PATH) for anything with a "/", else ("name", NAME) under /run/netns.
    Raises ValueError with the reason when the PID or the path does not exist."""
    if not value or value in (".", ".."):
        raise ValueError(f"not a namespace name: {value!r}")
    if value.isdigit():
        if not os.path.exists(f"/proc/{value}/ns/net"):
            raise ValueError(f"no process {value} (digits name a PID whose network namespace is used)")
        return "pid", value
    if "/" in value:
        if not os.path.exists(value):
            raise ValueError(f"{value}: no such file (a path names a network namespace file, "
                             f"e.g. /run/netns/NAME or /proc/PID/ns/net)")
        return "path", value
    if any(c.isspace() for c in value):
        raise ValueError(f"not a namespace name: {value!r}")
    return "name", value


@dataclass
class NetnsHost:
    """A namespace holding the kernel side of one of our devices."""
    name: str
    created: bool = False
    devices: list[str] = field(default_factory=list)
    alias: bool = False      # `name` is ours, for a namespace given by PID or path: only the name goes

    @classmethod
    def create(cls, name: str | None = None) -> NetnsHost:
        name = name or unique_name()
        if netns_exists(name):
            return cls(name, created=False)
        ip("netns", "add", name)
        host = cls(name, created=True)
        host.ip("link", "set", "lo", "up")
        return host

    @classmethod
    def open(cls, value: str) -> NetnsHost:
        """--netns VALUE: a name (created if missing), a PID or a path (see netns_spec).
        A PID's or a path's namespace gets a temporary name of ours in /run/netns, which
        `ip -n` and `ip netns exec` need; delete() removes the name, never the namespace."""
        kind, what = netns_spec(value)
        if kind == "name":
            return cls.create(what)
        alias = unique_name("tsns")
        if kind == "pid":
            ip("netns", "attach", alias, what)
        else:
            os.makedirs("/run/netns", exist_ok=True)
            open(f"/run/netns/{alias}", "x").close()
            r = subprocess.run(["mount", "--bind", what, f"/run/netns/{alias}"], capture_output=True, text=True)
            if r.returncode != 0:
                os.unlink(f"/run/netns/{alias}")
                raise IpError(r.returncode, r.args, r.stdout, r.stderr)
        return cls(alias, created=False, alias=True)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return ip("-n", self.name, *args, check=check)

    def adopt(self, dev: str, addr: str, *, mtu: int | None = None, peer: str | None = None) -> None:
        """Move `dev` into the namespace and configure its kernel side at `addr`."""
        ip("link", "set", dev, "netns", self.name)
        self.devices.append(dev)
        if mtu:
            self.ip("link", "set", dev, "mtu", str(mtu))
        self.ip("addr", "add", addr, "dev", dev)
        self.ip("link", "set", dev, "up")

    def exec_argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(self.exec_argv(*argv), capture_output=True, text=True, timeout=timeout, check=check)

    def delete(self) -> None:
        if (self.created or self.alias) and netns_exists(self.name):
            ip("netns", "delete", self.name, check=False)
