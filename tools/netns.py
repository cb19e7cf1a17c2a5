"""Network namespaces as test hosts: the Linux kernel as our real peer (DESIGN.md §5).

Everything here shells out to iproute2.  Names are unique per process (`ts<pid><n>`)
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
    """`ts<pid><n>`, at most 15 characters (IFNAMSIZ - 1)."""
    return f"{prefix}{os.getpid()}{next(_counter)}"[:15]


def have_tun() -> tuple[bool, str]:
    """Can this process create TUN/TAP devices and namespaces?  (ok, reason if not)"""
    if os.geteuid() != 0:
        return False, "needs root (CAP_NET_ADMIN) for TUN/TAP and network namespaces"
    if not os.path.exists("/dev/net/tun"):
        return False, "/dev/net/tun is missing"
    if shutil.which("ip") is None:
        return False, "iproute2 (`ip`) is not installed"
    return True, ""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


@dataclass
class NetnsHost:
    """A namespace holding the kernel side of one of our devices."""
    name: str
    created: bool = False
    devices: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, name: str | None = None) -> "NetnsHost":
        name = name or unique_name()
        if netns_exists(name):
            return cls(name, created=False)
        ip("netns", "add", name)
        host = cls(name, created=True)
        host.ip("link", "set", "lo", "up")
        return host

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
        if self.created and netns_exists(self.name):
            ip("netns", "delete", self.name, check=False)
