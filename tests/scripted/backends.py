"""The two systems a script runs against: tunstack over an in-process link with trio's
MockClock, and the Linux kernel in a network namespace over a TUN device.

Both put the SUT at 192.0.2.1 and the scripted peer at 192.0.2.2 (RFC 5737 TEST-NET-1)
on a raw-IP link, so a packet is the same bytes on either.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import socket as pysocket
import struct
import subprocess
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from drivers.memlink import MemoryNdd
from ndd.pktbuf import PacketBuffer

SUT_IP, PEER_IP = "192.0.2.1", "192.0.2.2"
CLONE_NEWNET = 0x40000000
POLL_NOW = 1e-6                 # mock time a poll may wait: "now" for a readiness check
QUEUE_MAX = 4096                # outgoing packets held for the runner (a script sends few)


class _PacketQueue:
    """What the SUT sent, with the time each packet was seen; bounded (oldest dropped and
    counted: a runaway SUT cannot fill memory)."""

    def __init__(self) -> None:
        self.items: deque[tuple[float, bytes]] = deque()
        self.dropped = 0
        self._wake = trio.Event()

    def put(self, t: float, data: bytes) -> None:
        if len(self.items) >= QUEUE_MAX:
            self.items.popleft()
            self.dropped += 1
        self.items.append((t, data))
        self._wake.set()

    async def get(self) -> tuple[float, bytes]:
        while not self.items:
            self._wake = trio.Event()
            await self._wake.wait()
        return self.items.popleft()

    def drain(self) -> list[tuple[float, bytes]]:
        out = list(self.items)
        self.items.clear()
        return out


# --- tunstack ------------------------------------------------------------------------------
class ScriptLinkNdd(MemoryNdd):
    """tunstack's raw-IP device whose far end is the script: what the stack sends goes to
    the runner's queue, what the script injects is delivered as a received frame."""

    def __init__(self, queue: _PacketQueue) -> None:
        super().__init__("sc0", kind="rawip")
        self.queue = queue

    def _transmit(self, pkt: PacketBuffer) -> int:
        self.queue.put(self.attached.clock(), pkt.tobytes())
        return 0


@dataclass
class _TunstackSocket:
    sock: Any
    nonblocking: bool = False
    connect_error: int | None = None        # a non-blocking connect's outcome, for SO_ERROR
    connecting: bool = False


class TunstackApi:
    """Socket calls on tunstack's trio sockets.  tunstack has no non-blocking connect: with
    O_NONBLOCK set the connect runs in a task and the call answers EINPROGRESS, and its
    outcome is what SO_ERROR reads -- the harness's emulation of connect(2) semantics."""

    def __init__(self, stack: Any, nursery: trio.Nursery) -> None:
        self.stack = stack
        self.nursery = nursery

    async def socket(self, family: int, type: int, proto: int) -> _TunstackSocket:
        return _TunstackSocket(self.stack.socket(family, type, proto))

    async def set_nonblocking(self, s: _TunstackSocket, on: bool) -> None:
        s.nonblocking = on

    async def setsockopt(self, s: _TunstackSocket, level: int, opt: int, value: int | bytes) -> None:
        s.sock.setsockopt(level, opt, value)

    async def getsockopt(self, s: _TunstackSocket, level: int, opt: int, buflen: int | None) -> int | bytes:
        if level == pysocket.SOL_SOCKET and opt == pysocket.SO_ERROR and s.connect_error is not None:
            err, s.connect_error = s.connect_error, 0
            return err
        value: int | bytes = s.sock.getsockopt(level, opt, buflen)
        return value

    async def bind(self, s: _TunstackSocket, addr: tuple[str, int]) -> None:
        s.sock.bind(addr)

    async def listen(self, s: _TunstackSocket, backlog: int) -> None:
        s.sock.listen(backlog)

    async def accept(self, s: _TunstackSocket) -> _TunstackSocket:
        child, _ = s.sock.accept_nowait() if s.nonblocking else await s.sock.accept()
        return _TunstackSocket(child)

    async def connect(self, s: _TunstackSocket, addr: tuple[str, int]) -> None:
        if not s.nonblocking:
            await s.sock.connect(addr)
            return
        if s.connecting:
            raise OSError(errno.EALREADY, os.strerror(errno.EALREADY))

        async def background() -> None:
            try:
                await s.sock.connect(addr)
                s.connect_error = 0
            except OSError as e:
                s.connect_error = e.errno
            finally:
                s.connecting = False

        s.connecting = True
        self.nursery.start_soon(background)
        # a connect that ends without a segment from the peer ends at once, as connect(2) on a
        # non-blocking socket: an error, or TCP_FASTOPEN_CONNECT's deferred connect (0)
        for _ in range(3):
            await trio.lowlevel.checkpoint()
        if not s.connecting and s.connect_error is not None:
            err, s.connect_error = s.connect_error, None
            if err:
                raise OSError(err, os.strerror(err))
            return
        raise OSError(errno.EINPROGRESS, os.strerror(errno.EINPROGRESS))

    async def send(self, s: _TunstackSocket, data: bytes, flags: int) -> int:
        if s.nonblocking:
            flags |= pysocket.MSG_DONTWAIT
        n: int = await s.sock.send(data, flags)
        return n

    async def sendto(self, s: _TunstackSocket, data: bytes, flags: int, addr: tuple[str, int]) -> int:
        if s.nonblocking:
            flags |= pysocket.MSG_DONTWAIT
        n: int = await s.sock.sendto(data, flags, addr)
        return n

    async def recv(self, s: _TunstackSocket, n: int, flags: int) -> int:
        if s.nonblocking:
            flags |= pysocket.MSG_DONTWAIT
        return len(await s.sock.recv(n, flags))

    async def ioctl(self, s: _TunstackSocket, request: int) -> int:
        value: int = s.sock.ioctl(request)
        return value

    async def shutdown(self, s: _TunstackSocket, how: int) -> None:
        s.sock.shutdown(how)

    async def close(self, s: _TunstackSocket) -> None:
        s.sock.close()

    async def discard(self, s: _TunstackSocket) -> None:
        s.sock.close()
    async def poll(self, s: _TunstackSocket, events: int) -> int:
        """Readiness now: a wait that would park is cancelled at once (a tick of mock time)."""
        ready = 0
        for bit, wait in ((select.POLLIN, s.sock.wait_readable), (select.POLLOUT, s.sock.wait_writable)):
            if events & bit:
                with trio.move_on_after(POLL_NOW):
                    await wait()
                    ready |= bit
        return ready



@dataclass
class TunstackBackend:
    stack: Any
    ndd: ScriptLinkNdd
    queue: _PacketQueue
    api: TunstackApi
    name: str = "tunstack"
    sut_ip: str = SUT_IP
    peer_ip: str = PEER_IP
    call_grace: float = 0.0005       # mock time: a call not done when all tasks block is blocking

    def now(self) -> float:
        return trio.current_time()

    async def inject(self, packet: bytes) -> None:
        self.ndd.deliver(PacketBuffer(packet))
        await trio.lowlevel.checkpoint()

    async def next_packet(self) -> tuple[float, bytes]:
        return await self.queue.get()

    def pending_packets(self) -> list[tuple[float, bytes]]:
        return self.queue.drain()


def _flag(value: str) -> bool:
    return int(value) != 0


def _rack_bit(value: str) -> bool:
    """net.ipv4.tcp_recovery is a bit mask; bit 0 (TCP_RACK_LOSS_DETECTION) is RACK."""
    return bool(int(value) & 1)


# A script's `// sysctl KEY=VALUE` lines on tunstack: the TcpConfig field each sets, and how
# its value reads.  A key missing here fails the script (say what it means for tunstack).
TUNSTACK_SYSCTLS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "net.ipv4.tcp_sack": ("sack", _flag),
    "net.ipv4.tcp_dsack": ("dsack", _flag),
    "net.ipv4.tcp_timestamps": ("timestamps", _flag),
    "net.ipv4.tcp_window_scaling": ("window_scaling", _flag),
    "net.ipv4.tcp_syncookies": ("syncookies", _flag),
    "net.ipv4.tcp_syn_retries": ("syn_retries", int),
    "net.ipv4.tcp_synack_retries": ("synack_retries", int),
    "net.ipv4.tcp_syn_linear_timeouts": ("syn_linear_timeouts", int),
    "net.ipv4.tcp_ecn": ("ecn", int),
    "net.ipv4.tcp_ecn_fallback": ("ecn_fallback", _flag),
    "net.ipv4.tcp_congestion_control": ("congestion", str),
    "net.ipv4.tcp_early_retrans": ("loss_probes", lambda v: int(v) >= 3),   # 3, 4: TLP on; 0-2: off
    "net.ipv4.tcp_fastopen": ("fastopen", lambda v: int(v, 0)),
    "net.ipv4.tcp_mtu_probing": ("mtu_probing", int),
    "net.ipv4.tcp_base_mss": ("base_mss", int),
    "net.ipv4.tcp_mtu_probe_floor": ("mtu_probe_floor", int),
    "net.ipv4.tcp_probe_threshold": ("probe_threshold", int),
    "net.ipv4.tcp_probe_interval": ("probe_interval", float),
    "net.ipv4.tcp_retries1": ("retries1", int),
    "net.ipv4.tcp_slow_start_after_idle": ("slow_start_after_idle", _flag),
    "net.ipv4.tcp_recovery": ("rack", _rack_bit),
}

# The congestion control of the Linux sockets unless a script's sysctl names another: a new
# namespace inherits the host's default (BBR on some hosts) and may not set one the host does
# not allow (tcp_allowed_congestion_control), so each socket sets it (TCP_CONGESTION, which
# root may set to any loaded one; accepted sockets inherit the listener's).  tunstack's
# default, as upstream Linux's, is CUBIC: the scripts compare the defaults.
LINUX_CONGESTION_SYSCTL = "net.ipv4.tcp_congestion_control"
LINUX_DEFAULT_CONGESTION = "cubic"


def tunstack_tcp_config(sysctls: Mapping[str, str]) -> Any:
    """TcpConfig with the script's sysctls applied (TUNSTACK_SYSCTLS)."""
    from protocols.tcp.config import TcpConfig
    config = TcpConfig()
    for key, value in sysctls.items():
        if key not in TUNSTACK_SYSCTLS:
            raise ValueError(f"sysctl {key}: no TcpConfig field for it (backends.TUNSTACK_SYSCTLS)")
        name, convert = TUNSTACK_SYSCTLS[key]
        setattr(config, name, convert(value))
    return config


@asynccontextmanager
async def tunstack_backend(seed: int = 1, sysctls: Mapping[str, str] | None = None) -> AsyncIterator[TunstackBackend]:
    """A Stack (IPv6 off: nothing but the script's traffic on the link) on a script link.
    Run it under trio.testing.MockClock(autojump_threshold=0) for script time."""
    from stack.stack import Stack, StackConfig
    queue = _PacketQueue()
    config = StackConfig(seed=seed, ipv6=False, plugins=False, tcp=tunstack_tcp_config(sysctls or {}))
    async with Stack("sut", config) as stack, \
            trio.open_nursery() as nursery:
        ndd = ScriptLinkNdd(queue)
        stack.add_interface(ndd, f"{SUT_IP}/24")
        yield TunstackBackend(stack, ndd, queue, TunstackApi(stack, nursery))
        nursery.cancel_scope.cancel()


# --- Linux ---------------------------------------------------------------------------------
def _socket_in_netns(netns: str, family: int, type: int, proto: int) -> pysocket.socket:
    """A socket made in `netns`: setns(2) in a thread of its own (network namespaces are
    per thread), which ends after -- the socket keeps its namespace for life."""
    out: dict[str, Any] = {}

    def body() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            with open(f"/run/netns/{netns}") as f:
                if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns: {os.strerror(err)}")
            out["sock"] = pysocket.socket(family, type, proto)
        except OSError as e:
            out["error"] = e

    t = threading.Thread(target=body, name="scripted-setns")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    sock: pysocket.socket = out["sock"]
    return sock


class LinuxApi:
    """Socket calls on the kernel's sockets in the namespace; a call that may block runs in
    a thread (abandoned if the script ends first: closing the socket releases it)."""

    def __init__(self, netns: str, congestion: str = LINUX_DEFAULT_CONGESTION) -> None:
        self.netns = netns
        self.congestion = congestion

    async def socket(self, family: int, type: int, proto: int) -> pysocket.socket:
        s = _socket_in_netns(self.netns, family, type, proto)
        if type & pysocket.SOCK_STREAM:
            s.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_CONGESTION, self.congestion.encode())
        return s

    async def set_nonblocking(self, s: pysocket.socket, on: bool) -> None:
        s.setblocking(not on)

    async def setsockopt(self, s: pysocket.socket, level: int, opt: int, value: int | bytes) -> None:
        s.setsockopt(level, opt, value)

    async def getsockopt(self, s: pysocket.socket, level: int, opt: int, buflen: int | None) -> int | bytes:
        return s.getsockopt(level, opt) if buflen is None else s.getsockopt(level, opt, buflen)

    async def bind(self, s: pysocket.socket, addr: tuple[str, int]) -> None:
        s.bind(addr)

    async def listen(self, s: pysocket.socket, backlog: int) -> None:
        s.listen(backlog)

    async def accept(self, s: pysocket.socket) -> pysocket.socket:
        child, _ = await trio.to_thread.run_sync(s.accept, abandon_on_cancel=True)
        return child

    async def connect(self, s: pysocket.socket, addr: tuple[str, int]) -> None:
        await trio.to_thread.run_sync(s.connect, addr, abandon_on_cancel=True)

    async def send(self, s: pysocket.socket, data: bytes, flags: int) -> int:
        n: int = await trio.to_thread.run_sync(s.send, data, flags, abandon_on_cancel=True)
        return n

    async def sendto(self, s: pysocket.socket, data: bytes, flags: int, addr: tuple[str, int]) -> int:
        n: int = await trio.to_thread.run_sync(s.sendto, data, flags, addr, abandon_on_cancel=True)
        return n

    async def recv(self, s: pysocket.socket, n: int, flags: int) -> int:
        data: bytes = await trio.to_thread.run_sync(s.recv, n, flags, abandon_on_cancel=True)
        return len(data)

    async def ioctl(self, s: pysocket.socket, request: int) -> int:
        value: int = struct.unpack("i", fcntl.ioctl(s.fileno(), request, bytes(4)))[0]
        return value

    async def shutdown(self, s: pysocket.socket, how: int) -> None:
        s.shutdown(how)

    async def close(self, s: pysocket.socket) -> None:
        s.close()                                # a plain close(2): RST with unread data, else FIN

    async def discard(self, s: pysocket.socket) -> None:
        if s.fileno() >= 0:
            try:
                s.shutdown(pysocket.SHUT_RDWR)   # wakes a thread still blocked in accept/recv
            except OSError:
                pass
        s.close()

    async def poll(self, s: pysocket.socket, events: int) -> int:
        p = select.poll()
        p.register(s.fileno(), events)
        return sum(ev & events for _, ev in p.poll(0))



@dataclass
class LinuxBackend:
    fd: int
    api: LinuxApi
    queue: _PacketQueue = field(default_factory=_PacketQueue)
    name: str = "linux"
    sut_ip: str = SUT_IP
    peer_ip: str = PEER_IP
    call_grace: float = 0.05         # real time

    def now(self) -> float:
        return trio.current_time()

    async def inject(self, packet: bytes) -> None:
        os.write(self.fd, packet)
        await trio.lowlevel.checkpoint()

    async def reader(self) -> None:
        while True:
            await trio.lowlevel.wait_readable(self.fd)
            while True:
                try:
                    data = os.read(self.fd, 65536)
                except BlockingIOError:
                    break
                self.queue.put(trio.current_time(), data)

    async def next_packet(self) -> tuple[float, bytes]:
        return await self.queue.get()

    def pending_packets(self) -> list[tuple[float, bytes]]:
        return self.queue.drain()


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)


@asynccontextmanager
async def linux_backend(sysctls: Mapping[str, str] | None = None) -> AsyncIterator[LinuxBackend]:
    """The kernel in a fresh namespace (its sysctl defaults but the script's, IPv6 off so
    that only the script's traffic crosses the device) on a TUN device whose other end we hold."""
    import pytun

    from tools.lab.netns import NetnsHost, unique_name
    host = NetnsHost.create(unique_name("sc"))
    tun = None
    try:
        for key in ("all", "default"):
            _run(*host.exec_argv("sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"))
        congestion = LINUX_DEFAULT_CONGESTION
        for key, value in (sysctls or {}).items():
            if key == LINUX_CONGESTION_SYSCTL:
                congestion = value
                continue
            _run(*host.exec_argv("sysctl", "-qw", f"{key}={value}"))
        tun = pytun.TunTapDevice(name=unique_name("sct"), flags=pytun.IFF_TUN | pytun.IFF_NO_PI)
        os.set_blocking(tun.fileno(), False)
        host.adopt(tun.name, f"{SUT_IP}/24")
        backend = LinuxBackend(tun.fileno(), LinuxApi(host.name, congestion))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(backend.reader)
            yield backend
            nursery.cancel_scope.cancel()
    finally:
        if tun is not None:
            tun.close()
        host.delete()
