"""`tunstack atm` end to end: separate processes joined by the ATM adapter's UDP PHY on
127.0.0.1 (no root, no TUN: these never skip).  Two `atm pvc` processes exchange
datagrams; an `atm ip` server (http, echo) is pinged and fetched from by `atm ip` clients;
errors are one line and exit 1; --help has examples."""
from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import sys
from pathlib import Path

import dpkt
import trio

TUNSTACK = [sys.executable, "-m", "tools.cli.main"]
ROOT = Path(__file__).resolve().parents[2]


async def run(*args: str, stdin: bytes = b"", timeout: float = 30) -> subprocess.CompletedProcess:
    with trio.fail_after(timeout):
        return await trio.run_process([*TUNSTACK, *args], stdin=stdin, capture_stdout=True, capture_stderr=True,
                                      check=False, cwd=ROOT)


class Proc:
    """A `tunstack` child whose `ready:` line we wait for; stopped by its PID only."""

    def __init__(self, proc: trio.Process, stream: trio.abc.ReceiveStream) -> None:
        self.proc, self.stream = proc, stream
        self.buf = b""

    @classmethod
    async def start(cls, *args: str, ready_on: str = "stdout", stdin: int = subprocess.DEVNULL) -> tuple[Proc, str]:
        proc = await trio.lowlevel.open_process([*TUNSTACK, *args], stdin=stdin, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE, cwd=ROOT)
        self = cls(proc, proc.stdout if ready_on == "stdout" else proc.stderr)
        with trio.fail_after(15):
            while b"\n" not in self.buf:
                chunk = await self.stream.receive_some()
                assert chunk, f"exited before ready: {self.buf!r}"
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return self, line.decode()

    async def rest(self, stream: trio.abc.ReceiveStream) -> bytes:
        data = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some():
                data += chunk
        return data

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        with trio.fail_after(10):
            return await self.proc.wait()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def local_port(ready: str) -> int:
    field = next(f for f in ready.split() if f.startswith("local="))
    return int(field.rsplit(":", 1)[1])


def sunatm_frames(path: Path) -> list[bytes]:
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == 123
        return [buf for _, buf in reader]


async def test_two_pvc_processes_exchange_datagrams(tmp_path: Path) -> None:
    # a learns its far end from the first cells (-l, port 0), b is pointed at a's port
    pcap = tmp_path / "a.pcap"
    a, ready = await Proc.start("atm", "pvc", "-l", "--local", "127.0.0.1:0", "--vci", "42", "-w", "2",
                                "--pcap", str(pcap), ready_on="stderr", stdin=subprocess.PIPE)
    try:
        assert ready.startswith("ready: ") and "remote=learning" in ready and "pvc=0/42" in ready
        port = local_port(ready)
        assert port != 0
        await a.proc.stdin.send_all(b"back 1\nback 2\n")   # held until b has sent something
        await a.proc.stdin.aclose()
        r = await run("atm", "pvc", "--remote", f"127.0.0.1:{port}", "--vci", "42", "-W", "2",
                      stdin=b"hello\nworld\n")
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"back 1\nback 2\n"
        assert r.stderr.startswith(b"ready: ") and f"remote=127.0.0.1:{port}".encode() in r.stderr
        with trio.fail_after(10):
            rc = await a.proc.wait()            # -w 2: idle for 2 s, then done
        assert rc == 0
        assert await a.rest(a.proc.stdout) == b"hello\nworld\n"
    finally:
        await a.kill()
    frames = sunatm_frames(pcap)
    # 2 in, 2 out; pseudo-header: direction bit, VPI 0, VCI 42; then the SDU itself.  The
    # held lines leave once "hello" is in, so "world" may arrive before or after them.
    assert all(fr[1:4] == b"\x00\x00\x2a" for fr in frames)
    assert [fr[4:] for fr in frames if not fr[0] & 0x80] == [b"hello\n", b"world\n"]
    assert [fr[4:] for fr in frames if fr[0] & 0x80] == [b"back 1\n", b"back 2\n"]
    assert frames[0][4:] == b"hello\n" and len(frames) == 4


async def test_pvc_sigint_ends_cleanly() -> None:
    a, ready = await Proc.start("atm", "pvc", "-l", "--stats", ready_on="stderr", stdin=subprocess.PIPE)
    try:
        assert await a.stop(signal.SIGINT) == 130      # 128 + SIGINT, as a shell reports
        err = a.buf + await a.rest(a.proc.stderr)
        assert b"SIGINT: shutting down" in err and b"Traceback" not in err and b'"adapter"' in err
    finally:
        await a.kill()


async def test_ip_server_pinged_and_fetched_by_other_processes(tmp_path: Path) -> None:
    pcap = tmp_path / "server.pcap"
    srv, ready = await Proc.start("atm", "ip", "-l", "--local", "127.0.0.1:0", "--addr", "10.79.0.1/24",
                                  "--serve", "http", "--serve", "echo", "--pcap", str(pcap))
    try:
        assert "peer=inatmarp" in ready and "mtu=9180" in ready
        assert ready.endswith("serve=tcp/http:80,udp/echo:7,tcp/echo:7")
        remote = f"127.0.0.1:{local_port(ready)}"
        # a client learns the server by InATMARP, pings it (20000 bytes: 3 fragments each way)
        r = await run("atm", "ip", "--remote", remote, "--addr", "10.79.0.2/24", "--ping", "10.79.0.1",
                      "-c", "2", "-s", "20000")
        assert r.returncode == 0, r.stdout + r.stderr
        assert b"2 sent, 2 received, 0% loss" in r.stdout and b"20008 bytes from 10.79.0.1" in r.stdout
        assert b"inatmarp: PVC 0/100 leads to 10.79.0.1" in r.stderr
        # a second process (a new UDP port): the -l server follows it; TCP to the http service
        body = tmp_path / "body"
        n = 2_000_000
        r = await run("atm", "ip", "--remote", remote, "--addr", "10.79.0.2/24", "--peer-ip", "10.79.0.1",
                      "--fetch", f"http://10.79.0.1/bytes/{n}", "-o", str(body))
        assert r.returncode == 0, r.stderr
        expect = hashlib.sha256(bytes(i % 256 for i in range(n))).hexdigest()
        assert hashlib.sha256(body.read_bytes()).hexdigest() == expect
        assert f"HTTP/1.1 200 OK, {n} bytes".encode() in r.stderr and expect.encode() in r.stderr
        # the body on stdout, the ready line on stderr; a 404 exits 1
        r = await run("atm", "ip", "--remote", remote, "--addr", "10.79.0.2/24", "--fetch", "http://10.79.0.1/")
        assert r.returncode == 0 and b"<h1>tunstack</h1>" in r.stdout and b"ready: " in r.stderr
        r = await run("atm", "ip", "--remote", remote, "--addr", "10.79.0.2/24", "--fetch", "http://10.79.0.1/x")
        assert r.returncode == 1 and b"404" in r.stderr
        r = await run("atm", "ip", "--remote", remote, "--addr", "10.79.0.2/24", "--fetch", "http://10.79.0.1:81/")
        assert r.returncode == 1 and r.stderr.splitlines()[-1] == (
            b"tunstack: error: connect to 10.79.0.1 port 81 (tcp) failed: Connection refused")
    finally:
        rc = await srv.stop(signal.SIGTERM)
        await srv.kill()
    assert rc == 128 + signal.SIGTERM
    err = await srv.rest(srv.proc.stderr)
    assert b"inatmarp: PVC 0/100 leads to 10.79.0.2" in err and b"SIGTERM: shutting down" in err
    frames = sunatm_frames(pcap)
    # CLIP: every SDU is LLC/SNAP (marked 2 in the pseudo-header), IPv4 or ATMARP, on 0/100
    assert len(frames) > 20 and all(fr[0] & 0x0F == 2 and fr[1:4] == b"\x00\x00\x64" for fr in frames)
    assert {fr[4:12] for fr in frames} == {bytes.fromhex("AAAA030000000800"), bytes.fromhex("AAAA030000000806")}


async def test_errors_are_one_line_and_exit_1() -> None:
    # nobody at the far end: InATMARP never answered
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        r = await run("atm", "ip", "--remote", f"127.0.0.1:{port}", "--addr", "10.79.0.2/24",
                      "--ping", "10.79.0.1", "--wait", "0.5")
        assert r.returncode == 1 and b"Traceback" not in r.stderr
        assert r.stderr.splitlines()[-1].startswith(b"tunstack: error: no answer to InATMARP on PVC 0/100")
        # the local UDP port is taken
        r = await run("atm", "pvc", "--local", f"127.0.0.1:{port}", "-l")
        assert r.returncode == 1 and r.stdout == b""
        assert r.stderr == f"tunstack: error: --local 127.0.0.1:{port}: Address already in use\n".encode()
    # usage errors: argparse's exit 2 with the option named
    for args, word in ((["pvc"], b"--remote"), (["pvc", "-l", "--vci", "5"], b"--vci"),
                       (["pvc", "-l", "--local", "nowhere"], b"--local"),
                       (["pvc", "-l", "--line-rate", "fast"], b"--line-rate"),
                       (["ip", "-l", "--addr", "10.1.2.3/40"], b"--addr"),
                       (["ip", "-l", "--addr", "10.0.0.1/24", "--serve", "gopher"], b"--serve"),
                       (["ip", "-l", "--addr", "10.0.0.1/24", "--fetch", "ftp://x/"], b"--fetch")):
        r = await run("atm", *args)
        assert r.returncode == 2 and word in r.stderr and b"Traceback" not in r.stderr, (args, r.stderr)
        assert r.stderr.startswith(b"tunstack: error: ") and r.stderr.count(b"\n") == 1, r.stderr


async def test_help_texts_have_examples() -> None:
    r = await run("--help")
    assert r.returncode == 0 and b"atm" in r.stdout
    r = await run("atm", "--help")
    assert r.returncode == 0 and b"pvc" in r.stdout and b"ip" in r.stdout and b"examples" in r.stdout
    r = await run("atm", "pvc", "--help")
    text = r.stdout.decode()
    assert r.returncode == 0 and "examples:" in text and "tunstack atm pvc --local 127.0.0.1:7001" in text
    for opt in ("--local", "--remote", "--listen", "--vpi", "--vci", "--line-rate", "--pcap", "-W", "-w", "-q",
                "ready:"):
        assert opt in text, opt
    r = await run("atm", "ip", "--help")
    text = r.stdout.decode()
    assert r.returncode == 0 and "examples:" in text and "--ping 10.79.0.1" in text
    for opt in ("--addr", "--peer-ip", "--serve", "--ping", "--fetch", "--pcap", "InATMARP", "ready:"):
        assert opt in text, opt
