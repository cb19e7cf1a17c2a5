"""What the demo parts share: running a command, tcpdump in the namespace, a series of
pings (the stack's and Linux's), an HTTP GET of the pattern body; either family."""
from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
from typing import TYPE_CHECKING, Any

import trio

from tools.lab.netns import NetnsHost
from tools.services.http import pattern_bytes

if TYPE_CHECKING:
    from pathlib import Path

    from .report import Report


def family_of(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def url_host(ip: str) -> str:
    """An address as a URL's host: IPv6 literals in brackets (RFC 3986 §3.2.2)."""
    return f"[{ip}]" if ":" in ip else ip


async def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    with trio.fail_after(timeout):
        return await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)


def ping_loss(output: str) -> int | None:
    m = re.search(r"(\d+)% packet loss", output)
    return int(m.group(1)) if m else None


class Tcpdump:
    """tcpdump inside the namespace, writing a pcap; stopped with SIGINT (our own PID)."""

    def __init__(self, host: NetnsHost, dev: str, path: Path) -> None:
        # -B 64 MiB: with offloads on, 64 KiB super-frames overrun tcpdump's default 2 MiB
        # capture buffer and frames go missing from the pcap (seen: 36-78 per 100 MiB).
        # -s 65600 (a 64 KiB super-frame and its headers): in immediate mode every slot of
        # the ring is snaplen long, so the default 262144 left 256 slots in 64 MiB and a burst
        # of small frames overran them (seen: 77 of 7968 without offloads, once tunstack
        # coalesced its ACKs and sent faster); now about a thousand
        self.argv = host.exec_argv("tcpdump", "-i", dev, "-n", "-U", "--immediate-mode", "-B", "65536",
                                   "-s", "65600", "-Z", "root", "-w", str(path))
        self.proc: trio.Process | None = None
        self.stderr = b""

    async def start(self) -> bool:
        if shutil.which("tcpdump") is None:
            return False
        self.proc = await trio.lowlevel.open_process(self.argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        stderr = self.proc.stderr
        assert stderr is not None   # stderr=PIPE
        with trio.move_on_after(5):
            async for chunk in stderr:
                self.stderr += chunk
                if b"listening on" in self.stderr:
                    return True
        return False

    async def stop(self) -> int:
        """Stop and return how many packets it captured (-1 if unknown)."""
        if self.proc is None:
            return -1
        await trio.sleep(0.3)  # let the last frames reach the file (-U flushes per packet)
        self.proc.send_signal(signal.SIGINT)
        stderr = self.proc.stderr
        assert stderr is not None   # stderr=PIPE
        with trio.move_on_after(5):
            async for chunk in stderr:
                self.stderr += chunk
        await self.proc.wait()
        m = re.search(rb"(\d+) packets? captured", self.stderr)
        return int(m.group(1)) if m else -1

    def kill(self) -> None:
        """On the way out of a cancelled demo (a signal): our tcpdump must not outlive us."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


async def ping_series(st: Any, dst: str, count: int, size: int) -> tuple[bool, str]:
    """`count` ICMP echoes from stack `st` to `dst`: (none failed, the round trips and errors)."""
    rtts, errors = [], []
    for _ in range(count):
        try:
            rtts.append(await st.ping(dst, size=size, timeout=3))
        except OSError as exc:
            errors.append(str(exc))
    detail = ", ".join(f"{r * 1000:.3f} ms" for r in rtts) + ("; " + "; ".join(errors) if errors else "")
    return not errors, detail


async def http_get_pattern(st: Any, ip: str, n: int) -> tuple[bool, int]:
    """GET /bytes/n (Connection: close) from the HTTP service of tools.services at ip:80:
    (a 200 came with the right pattern body, the body's length)."""
    with st.socket(family_of(ip), socket.SOCK_STREAM) as s:
        await s.connect((ip, 80))
        await s.sendall(f"GET /bytes/{n} HTTP/1.1\r\nHost: {url_host(ip)}\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        while chunk := await s.recv(65536):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head.startswith(b"HTTP/1.1 200 ") and body == pattern_bytes(0, n), len(body)


async def stack_pings(report: Report, st: Any, dst: str, label: str, count: int = 3, size: int = 56,
                      who: str = "the stack", peer: str = "Linux") -> None:
    ok, detail = await ping_series(st, dst, count, size)
    report.step(f"{label}: {who} pings {peer} at {dst} ({size} bytes)", ok, detail)


async def linux_pings(report: Report, host: NetnsHost, dst: str, label: str) -> None:
    """Linux pings `dst`, five small echoes then three of 4000 bytes (fragmented both ways)."""
    ping = ["ping", "-6"] if ":" in dst else ["ping"]
    small = await run(host.exec_argv(*ping, "-c", "5", "-i", "0.2", "-W", "2", dst))
    loss = ping_loss(small.stdout.decode())
    report.step(f"{label}: Linux `{' '.join(ping)} -c 5 {dst}`", loss == 0, f"{loss}% loss")
    big = await run(host.exec_argv(*ping, "-c", "3", "-i", "0.3", "-s", "4000", "-W", "2", dst))
    loss = ping_loss(big.stdout.decode())
    report.step(f"{label}: Linux `{' '.join(ping)} -s 4000 {dst}` (fragmented, reassembled, answered)",
                loss == 0, f"{loss}% loss")
