"""The UDP part of `tunstack demo` (over TUN, either family; tools/demo/tour.py and
tools/demo/ipv6.py call these).

Linux (socat and Python in the namespace) exchanges datagrams with the stack's echo
service, one of them larger than the MTU (fragmented both ways), and a connected stack
socket meets ECONNREFUSED from a closed Linux port (ICMP or ICMPv6 port unreachable).
"""
from __future__ import annotations

import errno
import shutil
import socket
import sys
from typing import TYPE_CHECKING, Any

import trio

from .probes import family_of, run, url_host

if TYPE_CHECKING:
    from tools.lab.netns import NetnsHost

    from .report import Report

UDP_ECHO_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], int(sys.argv[2])))
for size in map(int, sys.argv[3:]):
    data = bytes((i * 7 + size) % 251 for i in range(size))
    s.send(data)
    back = s.recv(65535)
    print(size, "ok" if back == data else "MISMATCH %d" % len(back), flush=True)
"""

IP_HEADERS = {socket.AF_INET: 20 + 8, socket.AF_INET6: 40 + 8}   # IP + UDP header octets


async def linux_udp_echo(report: Report, host: NetnsHost, stack_ip: str, label: str, mtu: int = 1500) -> None:
    """Linux talks to the stack's UDP echo service (port 7)."""
    six = ":" in stack_ip
    if shutil.which("socat"):
        target = f"UDP6:{url_host(stack_ip)}:7" if six else f"UDP:{stack_ip}:7"
        with trio.fail_after(10):
            # -t: how long socat waits for the echo after its stdin ended; it waits that long
            # whatever comes (UDP has no end), and a local echo takes well under a millisecond
            r = await trio.run_process(host.exec_argv("socat", "-t", "0.5", "-", target),
                                       stdin=b"hello from socat\n", capture_stdout=True, capture_stderr=True,
                                       check=False)
        report.step(f"{label}: Linux `socat - {target}` gets its datagram echoed",
                    r.stdout == b"hello from socat\n", repr(r.stdout.decode(errors="replace").strip()))
    largest = mtu - IP_HEADERS[family_of(stack_ip)]
    sizes = ["1", "100", str(largest), str(largest + 1), "4000", "8000"]
    r = await run(host.exec_argv(sys.executable, "-c", UDP_ECHO_CLIENT, stack_ip, "7", *sizes), timeout=30)
    lines = r.stdout.decode().split("\n")
    ok = r.returncode == 0 and sum(ln.endswith(" ok") for ln in lines) == len(sizes)
    report.step(f"{label}: Linux (Python) UDP echo of {'/'.join(sizes)} bytes (>{largest}: fragmented both ways)",
                ok, ", ".join(ln for ln in lines if ln) or r.stderr.decode().strip()[-200:])


async def stack_udp_refused(report: Report, st: Any, kernel_ip: str, label: str, port: int = 9) -> None:
    """A connected stack UDP socket to a closed Linux port: port unreachable, then ECONNREFUSED."""
    with st.socket(family_of(kernel_ip), socket.SOCK_DGRAM) as s:
        await s.connect((kernel_ip, port))
        await s.send(b"anyone there?")
        got = "no error"
        with trio.move_on_after(3):
            try:
                await s.recv(100)
                got = "a datagram?"
            except OSError as exc:
                got = errno.errorcode.get(exc.errno or 0, str(exc))
    report.step(f"{label}: stack UDP to closed {url_host(kernel_ip)}:{port} -> ECONNREFUSED on the next call",
                got == "ECONNREFUSED", got)
