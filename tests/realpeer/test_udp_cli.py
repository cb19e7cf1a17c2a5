"""`tunstack up --serve` and `tunstack nc -u` end to end, as a user runs them: the
`ready:` line lists the services, Linux tools in the namespace get their echo, and
the nc client talks to a Linux UDP server."""
from __future__ import annotations

import signal
import subprocess
import sys

import trio

from tools.lab.netns import NetnsHost, netns_exists, unique_name

from .conftest import require_real_peer
from .helpers import run
from .test_up_cli import TUNSTACK, start_up, stop


async def test_up_serve_echo_and_discard() -> None:
    require_real_peer("socat", "nc")
    ns, dev = unique_name(), unique_name("tv")
    proc, ready = await start_up("--tun", dev, "--addr", "10.77.10.2/24", "--netns", ns,
                                 "--peer-addr", "10.77.10.1/24", "--serve", "echo", "--serve", "discard",
                                 "--serve", "echo:5007")
    try:
        assert ready.startswith("ready: ") and ready.endswith(
            " serve=udp/echo:7,tcp/echo:7,udp/discard:9,tcp/discard:9,udp/echo:5007,tcp/echo:5007")
        with trio.fail_after(10):
            r = await trio.run_process(["ip", "netns", "exec", ns, "socat", "-t", "1", "-", "UDP:10.77.10.2:7"],
                                       stdin=b"via socat\n", capture_stdout=True, capture_stderr=True)
        assert r.stdout == b"via socat\n"
        with trio.fail_after(10):
            r = await trio.run_process(["ip", "netns", "exec", ns, "nc", "-u", "-w", "1", "10.77.10.2", "5007"],
                                       stdin=b"via nc\n", capture_stdout=True, capture_stderr=True, check=False)
        assert r.stdout == b"via nc\n"
        # discard: no answer, and (being bound) no ICMP port unreachable either
        probe = ("import socket; s = socket.socket(2, 2); s.connect(('10.77.10.2', 9)); s.settimeout(0.5)\n"
                 "s.send(b'x')\ntry:\n    s.recv(10); print('answered')\n"
                 "except socket.timeout: print('silent')\nexcept ConnectionRefusedError: print('refused')\n")
        r = await run(["ip", "netns", "exec", ns, sys.executable, "-c", probe])
        assert r.stdout.strip() == b"silent", r.stderr
    finally:
        rc = await stop(proc)
    assert rc == 128 + signal.SIGTERM and not netns_exists(ns)


async def test_up_serve_bad_spec_and_busy_port() -> None:
    r = await run([*TUNSTACK, "up", "--tun", "x", "--addr", "10.1.2.3/24", "--serve", "gopher"])
    assert r.returncode == 2 and b"unknown service" in r.stderr
    r = await run([*TUNSTACK, "up", "--tun", "x", "--addr", "10.1.2.3/24", "--serve", "echo:70000"])
    assert r.returncode == 2 and b"out of range" in r.stderr
    require_real_peer()
    ns, dev = unique_name(), unique_name("tv")
    r = await run([*TUNSTACK, "up", "--tun", dev, "--addr", "10.77.11.2/24", "--netns", ns,
                   "--peer-addr", "10.77.11.1/24", "--serve", "echo", "--serve", "discard:7"], timeout=20)
    assert r.returncode == 1 and b"Address already in use" in r.stderr and b"ready:" not in r.stdout
    assert not netns_exists(ns)


async def test_up_help_mentions_serve_and_nc() -> None:
    r = await run([*TUNSTACK, "up", "--help"])
    assert b"--serve" in r.stdout and b"echo" in r.stdout and b"discard" in r.stdout
    r = await run([*TUNSTACK, "nc", "--help"])
    for opt in (b"-u", b"-l", b"-p PORT", b"-W N", b"-w S", b"-q S", b"--tun"):
        assert opt in r.stdout


ECHO_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(10)
print("bound", flush=True)
for _ in range(int(sys.argv[2])):
    d, peer = s.recvfrom(65535)
    s.sendto(d.upper(), peer)
"""


async def test_nc_client_against_linux_udp_server() -> None:
    require_real_peer()
    ns = unique_name()
    host = NetnsHost.create(ns)
    try:
        server = await trio.lowlevel.open_process(host.exec_argv(sys.executable, "-c", ECHO_SERVER, "6100", "3"),
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with trio.fail_after(10):
            assert b"bound" in await server.stdout.receive_some()
        dev = unique_name("tw")
        lines = b"one\ntwo\n" + b"x" * 3000 + b"\n"    # the third line leaves as fragments
        with trio.fail_after(20):
            r = await trio.run_process([*TUNSTACK, "nc", "-u", "-W", "3", "-w", "5", "--tun", dev,
                                        "--addr", "10.77.12.2/24", "--netns", ns, "--peer-addr", "10.77.12.1/24",
                                        "10.77.12.1", "6100"],
                                       stdin=lines, capture_stdout=True, capture_stderr=True, check=False)
        assert r.returncode == 0, r.stderr
        assert r.stdout == lines.upper()
        assert b"ready: " in r.stderr and b"connect=udp/10.77.12.1:6100" in r.stderr
        with trio.fail_after(5):
            await server.wait()
        # nothing listens on 6101: the ICMP port unreachable becomes ECONNREFUSED, exit 1
        with trio.fail_after(20):
            r = await trio.run_process([*TUNSTACK, "nc", "-u", "-w", "5", "--tun", dev, "--addr", "10.77.12.2/24",
                                        "--netns", ns, "--peer-addr", "10.77.12.1/24", "10.77.12.1", "6101"],
                                       stdin=b"hello?\n", capture_stdout=True, capture_stderr=True, check=False)
        assert r.returncode == 1 and b"Connection refused" in r.stderr
        links = await run(["ip", "-n", ns, "-o", "link", "show"])
        assert dev not in links.stdout.decode()
    finally:
        host.delete()


async def test_nc_listen_prints_and_replies() -> None:
    require_real_peer()
    ns = unique_name()
    host = NetnsHost.create(ns)
    try:
        dev = unique_name("tw")
        nc = await trio.lowlevel.open_process(
            [*TUNSTACK, "nc", "-u", "-l", "-p", "6200", "-w", "3", "--tun", dev, "--addr", "10.77.13.2/24",
             "--netns", ns, "--peer-addr", "10.77.13.1/24"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            err = b""
            with trio.fail_after(15):
                while b"listen=udp/0.0.0.0:6200" not in err:
                    chunk = await nc.stderr.receive_some()
                    assert chunk, err
                    err += chunk
            await nc.stdin.send_all(b"reply from nc\n")
            client = ("import socket; s = socket.socket(2, 2); s.settimeout(5)\n"
                      "s.sendto(b'hi listener\\n', ('10.77.13.2', 6200)); print(s.recv(100))\n")
            r = await run(host.exec_argv(sys.executable, "-c", client))
            assert r.stdout.strip() == b"b'reply from nc\\n'", r.stderr
            out = b""
            with trio.fail_after(5):
                while b"\n" not in out:
                    out += await nc.stdout.receive_some()
            assert out == b"hi listener\n"
            with trio.fail_after(10):
                assert await nc.wait() == 0      # -w 3: quits once idle
        finally:
            if nc.returncode is None:
                nc.kill()
                await nc.wait()
    finally:
        host.delete()
