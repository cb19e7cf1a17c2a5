"""tools/gateway/nsenter.py and TunTapNdd's `opener`, without root (the kernel-side
behaviour is in tests/realpeer/test_gateway_netns.py)."""
from __future__ import annotations

import ctypes
import ipaddress
import os
import signal
import socket
import struct

import pytest

from drivers.tuntap import OpenedDevice, TapNdd, TunNdd
from tools.gateway.ifconfig import _Rtentry, _sa
from tools.gateway.nsenter import (
    CLONE_NEWNET,
    NamespaceError,
    NamespaceTarget,
    exit_status,
    same_namespace,
    setns,
)


def test_targets_as_slirp4netns_and_tunstack_up_name_them() -> None:
    assert NamespaceTarget.for_pid(42) == NamespaceTarget("/proc/42/ns/net", "/proc/42/ns/user")
    assert NamespaceTarget.from_spec("42") == NamespaceTarget("/proc/42/ns/net", "/proc/42/ns/user")
    assert NamespaceTarget.from_spec("42", userns_path="/u") == NamespaceTarget("/proc/42/ns/net", "/u", True)
    assert NamespaceTarget.from_spec("demo") == NamespaceTarget("/run/netns/demo")
    assert NamespaceTarget.from_spec("/var/run/netns/x") == NamespaceTarget("/var/run/netns/x")
    assert NamespaceTarget.for_path("/p", "/u") == NamespaceTarget("/p", "/u", user_required=True)
    for bad in ("", ".", "..", "a b"):
        with pytest.raises(NamespaceError, match=r"^not a network namespace: "):
            NamespaceTarget.from_spec(bad)


def test_check_names_the_missing_process_in_one_line() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)                     # now surely no process `pid`
    with pytest.raises(NamespaceError) as info:
        NamespaceTarget.for_pid(pid).check()
    assert str(info.value) == f"no process {pid} (/proc/{pid}/ns/net): No such file or directory"


def test_setns_error_is_one_line() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(NamespaceError) as info:
            setns(r, CLONE_NEWNET)           # a pipe is no namespace
        assert str(info.value) == "setns(CLONE_NEWNET): Invalid argument"
    finally:
        os.close(r)
        os.close(w)


def test_same_namespace() -> None:
    assert same_namespace("/proc/self/ns/net", f"/proc/{os.getpid()}/ns/net")
    assert not same_namespace("/proc/self/ns/net", "/proc/self/ns/user")


def test_exit_status_as_a_shell_reports_it() -> None:
    assert exit_status(7 << 8) == 7
    assert exit_status(signal.SIGTERM) == 128 + signal.SIGTERM


class FakeOpener:
    """An opener that hands out a socketpair end as the 'device': ioctls on it fail, which
    create() must survive (as with pytun, MTU/MAC failures are not fatal)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.peer: socket.socket | None = None

    def __call__(self, name: str, flags: int) -> OpenedDevice:
        self.calls.append((name, flags))
        dev, self.peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        return OpenedDevice(fd=dev.detach(), name=name + "k", control=socket.socket(socket.AF_INET, socket.SOCK_DGRAM))


def test_opener_gives_the_device_and_release_closes_both_fds() -> None:
    opener = FakeOpener()
    ndd = TapNdd("tg9", opener=opener)
    ndd.create()
    ndd.create()                                       # idempotent: one open
    assert opener.calls == [("tg9", 0x0002 | 0x1000 | 0x4000)]   # IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
    assert ndd.ndd_name == "tg9k" and ndd.fd >= 0 and ndd.control is not None
    assert not os.get_blocking(ndd.fd)
    assert ndd.offload_flags == 0 and ndd.vnet             # TUNSETOFFLOAD refused: no offloads claimed
    fd, control = ndd.fd, ndd.control
    ndd.release()
    assert ndd.fd == -1 and ndd.control is None and control.fileno() == -1
    with pytest.raises(OSError):
        os.fstat(fd)
    assert opener.peer is not None
    opener.peer.close()


def test_opener_flags_for_tun_without_offload() -> None:
    opener = FakeOpener()
    ndd = TunNdd("tu9", offload=False, opener=opener)
    ndd.create()
    assert opener.calls == [("tu9", 0x0001 | 0x1000)] and not ndd.vnet
    ndd.release()
    assert opener.peer is not None
    opener.peer.close()


def test_route_sockaddr_keeps_the_address_after_the_port_nul() -> None:
    # regression: _Sockaddr(AF_INET, data) with a c_char array stopped at the port's NUL
    # bytes and gave the kernel gateway 0.0.0.0 (SIOCADDRT: EINVAL)
    sa = bytes(_sa(ipaddress.IPv4Address("10.0.2.2")))
    assert sa == struct.pack("=H", socket.AF_INET) + bytes(2) + bytes([10, 0, 2, 2]) + bytes(8)
    assert ctypes.sizeof(_Rtentry) == (120 if ctypes.sizeof(ctypes.c_void_p) == 8 else 68)
