"""The TCP tools end to end, as a user runs them: `tunstack up --serve http --serve echo`
answering Linux `curl` and `nc -N`, chargen feeding a Linux reader, and `tunstack nc`
as a client of Linux `socat`/`nc -l` servers and as a listener."""
from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys

import pytest
import trio

from tools.lab.netns import NetnsHost, netns_exists, unique_name
from tools.services.builtin import chargen_cycle
from tools.services.http import pattern_bytes

from .conftest import require_real_peer
from .helpers import run
from .test_up_cli import TUNSTACK, start_up, stop


async def in_ns(ns: str, *argv: str, stdin: bytes = b"", timeout: float = 30) -> subprocess.CompletedProcess:
    with trio.fail_after(timeout):
        return await trio.run_process(["ip", "netns", "exec", ns, *argv], stdin=stdin, capture_stdout=True,
                                      capture_stderr=True, check=False)


@pytest.mark.parametrize("kind", ["tun", "tap"])
async def test_up_serves_http_and_tcp_echo(kind: str) -> None:
    require_real_peer("curl", "nc")
    ns, dev = unique_name(), unique_name("tx")
    proc, ready = await start_up(f"--{kind}", dev, "--addr", "10.77.20.2/24", "--netns", ns,
                                 "--peer-addr", "10.77.20.1/24", "--serve", "http", "--serve", "echo", "--stats")
    try:
        assert ready.startswith("ready: ") and ready.endswith(" serve=tcp/http:80,udp/echo:7,tcp/echo:7")
        r = await in_ns(ns, "curl", "-sS", "-m", "10", "-D", "-", "http://10.77.20.2/")
        head, _, body = r.stdout.partition(b"\r\n\r\n")
        assert r.returncode == 0 and head.startswith(b"HTTP/1.1 200 OK\r\n"), r.stderr
        assert b"<h1>tunstack</h1>" in body and b"10.77.20.1:" in body

        n = 10_000_000
        r = await in_ns(ns, "curl", "-sS", "-m", "60", "http://10.77.20.2/bytes/10000000", timeout=70)
        assert r.returncode == 0, r.stderr
        assert len(r.stdout) == n
        assert hashlib.sha256(r.stdout).digest() == hashlib.sha256(pattern_bytes(0, n)).digest()

        # one connection for three requests (keep-alive), a 404 and a HEAD among them
        r = await in_ns(ns, "curl", "-sS", "-m", "10", *["-o", "/dev/null"] * 3,
                        "-w", "%{http_code} %{num_connects}\\n",
                        "http://10.77.20.2/bytes/5", "http://10.77.20.2/nope", "http://10.77.20.2/")
        assert r.stdout.split(b"\n")[:3] == [b"200 1", b"404 0", b"200 0"], r.stderr
        r = await in_ns(ns, "curl", "-sS", "-m", "10", "-I", "http://10.77.20.2/bytes/10000000000")
        assert b"Content-Length: 10000000000\r\n" in r.stdout, r.stderr

        # half-close: nc -N sends its FIN after stdin; the echo still comes back, then ours
        r = await in_ns(ns, "nc", "-N", "10.77.20.2", "7", stdin=b"half\nclose\n")
        assert (r.returncode, r.stdout) == (0, b"half\nclose\n"), r.stderr
        data = pattern_bytes(1, 1_000_003)
        r = await in_ns(ns, "nc", "-N", "10.77.20.2", "7", stdin=data)
        assert r.returncode == 0 and r.stdout == data, (len(r.stdout), r.stderr)

        # a client that resets mid-transfer ends its own connection, not the service
        r = await in_ns(ns, sys.executable, "-c", RESET_CLIENT)
        assert r.returncode == 0, r.stderr
        r = await in_ns(ns, "curl", "-sS", "-m", "10", "http://10.77.20.2/bytes/1000")
        assert r.stdout == pattern_bytes(0, 1000), r.stderr
    finally:
        rc = await stop(proc)
    assert rc == 128 + signal.SIGTERM and not netns_exists(ns)
    err = await proc.stderr.receive_some(1 << 20)
    services = json.loads(err[err.index(b"{"):])["services"]
    assert services["tcp/http:80"]["connections"] == 6 and services["tcp/http:80"]["errors"] == 1
    assert services["tcp/http:80"]["bytes_out"] > 10_000_000
    # the HTTP bounds' counters (issue 10): 7 answered, none refused, timed out or malformed
    assert {k: services["tcp/http:80"][k] for k in ("requests", "bad_requests", "timeouts", "refused", "active")} == {
        "requests": 7, "bad_requests": 0, "timeouts": 0, "refused": 0, "active": 0}
    assert services["tcp/echo:7"] == {"received": 0, "sent": 0, "errors": 0, "connections": 2,
                                      "bytes_in": 1_000_014, "bytes_out": 1_000_014}


RESET_CLIENT = """
import socket, struct
s = socket.create_connection(("10.77.20.2", 80), timeout=10)
s.sendall(b"GET /bytes/1000000000 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
got = 0
while got < 200000:
    got += len(s.recv(65536))
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()   # RST
"""


async def test_up_chargen_discard_and_a_closed_port() -> None:
    require_real_peer("nc")
    ns, dev = unique_name(), unique_name("tx")
    proc, ready = await start_up("--tun", dev, "--addr", "10.77.21.2/24", "--netns", ns,
                                 "--peer-addr", "10.77.21.1/24", "--serve", "chargen", "--serve", "discard:5009")
    try:
        assert ready.endswith(" serve=tcp/chargen:19,udp/discard:5009,tcp/discard:5009")
        # Linux reads 300 kB and closes: chargen stops (RST) and serves the next reader
        for _ in range(2):
            r = await in_ns(ns, "sh", "-c", "nc -d 10.77.21.2 19 | head -c 300000")
            assert len(r.stdout) == 300_000
            cycle = chargen_cycle()
            assert r.stdout == (cycle * (300_000 // len(cycle) + 1))[:300_000]
            # RFC 864: 72 printable characters a line, each line one character further on
            assert r.stdout[:148] == bytes(range(32, 104)) + b"\r\n" + bytes(range(33, 105)) + b"\r\n"
        r = await in_ns(ns, "nc", "-N", "10.77.21.2", "5009", stdin=b"x" * 2_000_000)
        assert (r.returncode, r.stdout) == (0, b""), r.stderr
        r = await in_ns(ns, "nc", "-z", "-w", "3", "10.77.21.2", "5010")
        assert r.returncode == 1      # refused: nothing listens there
    finally:
        rc = await stop(proc)
    assert rc == 128 + signal.SIGTERM


UPPER_SERVER = """
import socket, sys
host = sys.argv[2] if len(sys.argv) > 2 else "0.0.0.0"      # "::" for IPv6
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(sys.argv[1])))
s.listen(1)
s.settimeout(20)
print("listening", flush=True)
c, _ = s.accept()
c.settimeout(20)
while data := c.recv(65536):
    c.sendall(data.upper())
c.shutdown(socket.SHUT_WR)     # the reply is complete: our FIN ends the client
c.recv(1)
"""


async def test_nc_client_against_linux_servers() -> None:
    require_real_peer("socat", "nc")
    ns = unique_name()
    host = NetnsHost.create(ns)
    dev = unique_name("ty")
    nc = [*TUNSTACK, "nc", "--tun", dev, "--addr", "10.77.22.2/24", "--netns", ns, "--peer-addr", "10.77.22.1/24"]
    servers: list[trio.Process] = []
    try:
        # a Linux server that answers after our FIN (-N), then closes
        server = await trio.lowlevel.open_process(host.exec_argv(sys.executable, "-c", UPPER_SERVER, "6400"),
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        servers.append(server)
        with trio.fail_after(10):
            assert b"listening" in await server.stdout.receive_some()
        with trio.fail_after(30):
            r = await trio.run_process([*nc, "-N", "10.77.22.1", "6400"], stdin=b"hello over tcp\n",
                                       capture_stdout=True, capture_stderr=True, check=False)
        assert r.returncode == 0 and r.stdout == b"HELLO OVER TCP\n", r.stderr
        assert b"ready: " in r.stderr and b"connect=tcp/10.77.22.1:6400" in r.stderr

        # 5 MB to a Linux socat sink: everything arrives before nc exits (-q 0)
        sink = await trio.lowlevel.open_process(
            host.exec_argv("socat", "-u", "TCP-LISTEN:6401,reuseaddr", "STDOUT"), stdout=subprocess.PIPE)
        servers.append(sink)
        got = hashlib.sha256()
        size = 0

        async def drain() -> None:
            nonlocal size
            async for chunk in sink.stdout:
                got.update(chunk)
                size += len(chunk)

        data = pattern_bytes(7, 5_000_000)
        async with trio.open_nursery() as n:
            n.start_soon(drain)
            await trio.sleep(0.5)   # socat listening
            with trio.fail_after(60):
                r = await trio.run_process([*nc, "-q", "0", "10.77.22.1", "6401"], stdin=data,
                                           capture_stdout=True, capture_stderr=True, check=False)
            assert r.returncode == 0, r.stderr
        assert size == len(data) and got.digest() == hashlib.sha256(data).digest()

        # nothing listens on 6402: RST -> ECONNREFUSED, printed like nc, exit 1
        with trio.fail_after(30):
            r = await trio.run_process([*nc, "10.77.22.1", "6402"], stdin=b"",
                                       capture_stdout=True, capture_stderr=True, check=False)
        assert r.returncode == 1
        assert b"connect to 10.77.22.1 port 6402 (tcp) failed: Connection refused" in r.stderr
        links = await run(["ip", "-n", ns, "-o", "link", "show"])
        assert dev not in links.stdout.decode()
    finally:
        for p in servers:
            if p.returncode is None:
                p.kill()
                await p.wait()
        host.delete()


async def test_nc_listen_one_connection() -> None:
    require_real_peer()
    ns = unique_name()
    host = NetnsHost.create(ns)
    try:
        dev = unique_name("ty")
        nc = await trio.lowlevel.open_process(
            [*TUNSTACK, "nc", "-l", "-p", "6500", "-N", "--tun", dev, "--addr", "10.77.23.2/24",
             "--netns", ns, "--peer-addr", "10.77.23.1/24"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            err = b""
            with trio.fail_after(15):
                while b"listen=tcp/0.0.0.0:6500" not in err:
                    chunk = await nc.stderr.receive_some()
                    assert chunk, err
                    err += chunk
            await nc.stdin.send_all(b"reply from the stack\n")
            await nc.stdin.aclose()            # -N: our FIN follows the reply
            # the Linux client reads up to our FIN, then answers and closes (no race with stdin)
            client = ("import socket; s = socket.create_connection(('10.77.23.2', 6500), timeout=10)\n"
                      "got = b''\nwhile d := s.recv(100): got += d\n"
                      "s.sendall(b'hi listener\\n'); s.close(); print(got)\n")
            r = await in_ns(ns, sys.executable, "-c", client)
            assert r.stdout.strip() == b"b'reply from the stack\\n'", r.stderr
            out = b""
            with trio.fail_after(10):
                async for chunk in nc.stdout:
                    out += chunk
                assert await nc.wait() == 0    # ends at the peer's FIN
            assert out == b"hi listener\n"
        finally:
            if nc.returncode is None:
                nc.kill()
                await nc.wait()
    finally:
        host.delete()


async def test_tcp_help_texts() -> None:
    r = await run([*TUNSTACK, "up", "--help"])
    for word in (b"chargen", b"http", b"/bytes/N", b"tcp/echo:7"):
        assert word in r.stdout
    r = await run([*TUNSTACK, "nc", "--help"])
    for opt in (b"-N", b"-l", b"-q S", b"-w S", b"-u", b"Connection refused"):
        assert opt in r.stdout
    r = await run([*TUNSTACK, "nc", "-W", "2", "--tun", "x", "--addr", "10.1.2.3/24", "10.1.2.4", "7"])
    assert r.returncode == 2 and b"needs -u" in r.stderr


async def test_nc_over_ipv6_client_listener_and_udp() -> None:
    # the same nc over IPv6 (TAP: the stack's address passes DAD first): a TCP client of a
    # Linux server, a dual-stack `-6 -l` listener reached by a Linux IPv4 client, and UDP
    require_real_peer("socat")
    ns = unique_name()
    host = NetnsHost.create(ns)
    dev = unique_name("ty")
    base = [*TUNSTACK, "nc", "--tap", dev, "--addr", "10.77.24.2/24", "--addr", "fd00:77:24::2/64",
            "--netns", ns, "--peer-addr", "10.77.24.1/24", "--peer-addr", "fd00:77:24::1/64"]
    servers: list[trio.Process] = []
    try:
        server = await trio.lowlevel.open_process(host.exec_argv(sys.executable, "-c", UPPER_SERVER, "6600", "::"),
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        servers.append(server)
        with trio.fail_after(10):
            assert b"listening" in await server.stdout.receive_some()
        with trio.fail_after(30):
            r = await trio.run_process([*base, "-N", "fd00:77:24::1", "6600"], stdin=b"hello over ipv6\n",
                                       capture_stdout=True, capture_stderr=True, check=False)
        assert r.returncode == 0 and r.stdout == b"HELLO OVER IPV6\n", r.stderr
        assert b"connect=tcp/[fd00:77:24::1]:6600 local=[fd00:77:24::2]:" in r.stderr
        with trio.fail_after(30):     # -4 with an IPv6 literal: the family is refused up front
            r = await trio.run_process([*base, "-4", "fd00:77:24::1", "6600"], stdin=b"",
                                       capture_stdout=True, capture_stderr=True, check=False)
        assert r.returncode == 2 and b"Address family for hostname not supported" in r.stderr

        # UDP to a Linux socat echo over IPv6
        echo = await trio.lowlevel.open_process(
            host.exec_argv("socat", "UDP6-RECVFROM:6601,fork", "EXEC:cat"), stdout=subprocess.DEVNULL)
        servers.append(echo)
        await trio.sleep(0.5)
        with trio.fail_after(30):
            r = await trio.run_process([*base, "-u", "-W", "1", "fd00:77:24::1", "6601"], stdin=b"datagram six\n",
                                       capture_stdout=True, capture_stderr=True, check=False)
        assert r.returncode == 0 and r.stdout == b"datagram six\n", r.stderr
        assert b"connect=udp/[fd00:77:24::1]:6601" in r.stderr
    finally:
        for p in servers:
            if p.returncode is None:
                p.kill()
                await p.wait()
        host.delete()

    # a `-6 -l` listener on :: takes a Linux IPv4 client (dual stack), shown as ::ffff:
    ns = unique_name()
    host = NetnsHost.create(ns)
    try:
        nc = await trio.lowlevel.open_process(
            [*TUNSTACK, "nc", "-6", "-l", "-p", "6602", "-N", "--tap", unique_name("ty"),
             "--addr", "10.77.25.2/24", "--addr", "fd00:77:25::2/64", "--netns", ns,
             "--peer-addr", "10.77.25.1/24", "--peer-addr", "fd00:77:25::1/64"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            err = b""
            with trio.fail_after(20):
                while b"listen=tcp/[::]:6602" not in err:
                    chunk = await nc.stderr.receive_some()
                    assert chunk, err
                    err += chunk
            await nc.stdin.aclose()
            client = ("import socket; s = socket.create_connection(('10.77.25.2', 6602), timeout=10)\n"
                      "s.sendall(b'v4 to a v6 listener\\n'); s.shutdown(socket.SHUT_WR)\n"
                      "while s.recv(100): pass\n")
            r = await in_ns(ns, sys.executable, "-c", client)
            assert r.returncode == 0, r.stderr
            out = b""
            with trio.fail_after(10):
                async for chunk in nc.stdout:
                    out += chunk
                assert await nc.wait() == 0
            rest = await nc.stderr.receive_some()
            assert out == b"v4 to a v6 listener\n" and b"accepted=tcp/[::ffff:10.77.25.1]:" in err + rest
        finally:
            if nc.returncode is None:
                nc.kill()
                await nc.wait()
    finally:
        host.delete()
