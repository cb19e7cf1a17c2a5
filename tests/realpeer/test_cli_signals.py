"""Every `tunstack` command, started as a process and sent SIGINT, SIGTERM or SIGHUP
(issue 10 point 13): it exits within a few seconds with 128 + the signal's number
(130/143/129), says so in one line (`tunstack CMD: SIGTERM: shutting down`), prints no
traceback, and leaves nothing behind: the namespace it created, its device, the
namespace alias, its child processes.  `timeout 10 tunstack nc ...` leaks nothing.

The ATM commands need no root: a UDP socket of the test stands in for the switch port
(it hears the host's first SSCOP BGN, so the host is waiting for the switch when the
signal comes -- where svc-server, arp-server and `atm ip --switch` ignored signals).
"""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.lab.netns import netns_exists, unique_name

from .conftest import require_real_peer

ROOT = Path(__file__).resolve().parents[2]
TUNSTACK = [sys.executable, "-m", "tools.cli.main"]
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
PROMPT = 10.0        # seconds: generous for a loaded machine; a clean exit takes well under 2
AESA_SERVER = "47000580ffe1000000f21a00010020481a000100"


class Cmd:
    """A tunstack process, its stdout and stderr read together (stdin kept open)."""

    def __init__(self, *args: str) -> None:
        self.p = subprocess.Popen([*TUNSTACK, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        self.out = b""

    def _read(self, timeout: float) -> bool:
        assert self.p.stdout is not None
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            return True
        chunk = os.read(self.p.stdout.fileno(), 65536)
        self.out += chunk
        return bool(chunk)

    def wait_for(self, marker: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.out:
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} within {timeout} s: {self.out[-2000:]!r}"
            assert self._read(min(left, 0.5)), f"exited ({self.p.poll()}) before {marker!r}: {self.out[-2000:]!r}"

    def stop(self, sig: int) -> tuple[int, float]:
        """Send `sig` (to our child only) and wait; (exit status, seconds it took)."""
        t0 = time.monotonic()
        self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout=PROMPT)
        finally:
            self.kill()
        while self._read(0.2):
            pass
        return rc, time.monotonic() - t0

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def assert_clean_exit(self, sig: int, rc: int, took: float, name: str) -> None:
        text = self.out.decode(errors="replace")
        assert rc == 128 + sig, (rc, text[-2000:])
        assert took < PROMPT
        assert "Traceback" not in text and "ExceptionGroup" not in text, text[-3000:]
        assert text.count("shutting down") == 1, text[-2000:]
        assert f"tunstack {name}: {signal.Signals(sig).name}: shutting down\n" in text


def links() -> str:
    return subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout


def tunstack_children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (ours: started by the command under test)."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return kids


def cmdline_holding(word: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if word in cmd and "pytest" not in cmd:
                found.append(cmd)
    return found


# --- up, nc, ping: a namespace and a device each -------------------------------------------
DEVICE_COMMANDS = {
    # name: (extra args before the device options, args after, marker once running)
    "up": ([], [], b"ready:"),
    "nc": (["-l", "-p", "5000"], [], b"listen=tcp/"),
    "nc-u": (["-u"], ["10.77.31.1", "5000"], b"connect=udp/"),
    "ping": (["-c", "1000", "-W", "1"], ["10.77.31.1"], b"bytes from 10.77.31.1"),
}


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("command", list(DEVICE_COMMANDS))
def test_device_command_cleans_up_on_signal(command: str, sig: int) -> None:
    require_real_peer()
    before, after, marker = DEVICE_COMMANDS[command]
    ns, dev = unique_name(), unique_name("tg")
    name = command.split("-")[0]
    cmd = Cmd(name, *before, "--tun", dev, "--addr", "10.77.31.2/24", "--netns", ns, "--peer-addr", "10.77.31.1/24",
              *after)
    try:
        cmd.wait_for(marker)
        assert netns_exists(ns)
        rc, took = cmd.stop(sig)
    finally:
        cmd.kill()
        if netns_exists(ns):
            subprocess.run(["ip", "netns", "delete", ns])
            pytest.fail(f"{command} left its namespace {ns} behind")
    cmd.assert_clean_exit(sig, rc, took, name)
    assert f" {dev}:" not in links() and f" {dev}@" not in links()


@pytest.mark.parametrize("sig", ["TERM", "HUP", "INT"])
def test_timeout_tunstack_nc_leaves_nothing_behind(sig: str) -> None:
    # the reproducer: `timeout 10 tunstack nc ...` leaked one namespace per run
    require_real_peer()
    ns, dev = unique_name(), unique_name("tg")
    r = subprocess.run(["timeout", "-s", sig, "3", *TUNSTACK, "nc", "-l", "-p", "5000", "--tun", dev,
                        "--addr", "10.77.32.2/24", "--netns", ns, "--peer-addr", "10.77.32.1/24"],
                       stdin=subprocess.PIPE, capture_output=True, cwd=ROOT, timeout=30)
    leaked = netns_exists(ns)
    if leaked:
        subprocess.run(["ip", "netns", "delete", ns])
    assert not leaked
    assert r.returncode == 124, r                       # timeout's "it timed out"
    assert f"SIG{sig}: shutting down".encode() in r.stderr and b"Traceback" not in r.stderr
    assert dev not in links()


def test_demo_cleans_up_on_sigterm(tmp_path: Path) -> None:
    require_real_peer()
    cmd = Cmd("demo", "--out", str(tmp_path))
    try:
        cmd.wait_for(b"== TUN ", timeout=60)
        cmd.wait_for(b"tcpdump listening", timeout=30)       # a namespace, a device, a tcpdump
        rc, took = cmd.stop(signal.SIGTERM)
    finally:
        cmd.kill()
    cmd.assert_clean_exit(signal.SIGTERM, rc, took, "demo")
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    mine = f"tsdemo{cmd.p.pid}x"
    assert mine not in names, names
    assert cmdline_holding(f"tsd{cmd.p.pid}x") == []                  # its tcpdump went with it
    assert f"tsd{cmd.p.pid}x" not in links()


def test_bench_cleans_up_on_sigterm(tmp_path: Path) -> None:
    require_real_peer("iperf3")
    cmd = Cmd("bench", "--quick", "--only", "tunstack", "--out", str(tmp_path / "bench.json"))
    try:
        cmd.wait_for(b"== tunstack", timeout=60)
        deadline = time.monotonic() + 30
        while not (kids := tunstack_children(cmd.p.pid)):           # the measuring child is running
            assert time.monotonic() < deadline and cmd.p.poll() is None
            time.sleep(0.1)
        time.sleep(2)
        rc, took = cmd.stop(signal.SIGTERM)
    finally:
        cmd.kill()
    cmd.assert_clean_exit(signal.SIGTERM, rc, took, "bench")
    for kid in kids:
        assert not os.path.exists(f"/proc/{kid}") or Path(f"/proc/{kid}/stat").read_text().split()[2] == "Z"
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"ts{kid}x" not in names, names


# --- atm: UDP sockets only, no root -----------------------------------------------------------
class FakeSwitchPort:
    """A UDP socket the host's adapter sends its cells to; nobody answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def wait_for_cells(self, timeout: float = 30) -> None:
        self.sock.settimeout(timeout)
        self.sock.recv(2048)                     # the first SSCOP BGN: the host is waiting for us

    def close(self) -> None:
        self.sock.close()


ATM_WAITING = {
    "svc-server": ["--addr", AESA_SERVER, "--wait", "60"],
    "svc-call": [AESA_SERVER, "--timeout", "60"],
    "arp-server": ["--addr", AESA_SERVER, "--wait", "60"],
    "ip": ["--aesa", AESA_SERVER, "--addr", "10.79.0.1/24", "--serve-arp", "--wait", "60"],
}


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("sub", list(ATM_WAITING))
def test_atm_host_waiting_for_the_switch_stops_on_signal(sub: str, sig: int) -> None:
    port = FakeSwitchPort()
    cmd = Cmd("atm", sub, "--switch", port.addr, *ATM_WAITING[sub])
    try:
        port.wait_for_cells()
        rc, took = cmd.stop(sig)
    finally:
        cmd.kill()
        port.close()
    cmd.assert_clean_exit(sig, rc, took, f"atm {sub}")


ATM_RUNNING = {
    "switch": (["--port", "a=127.0.0.1:0"], b"ready: switch="),
    "pvc": (["-l"], b"ready: "),
    "ip": (["-l", "--addr", "10.79.0.1/24", "--serve", "echo"], b"ready: "),
}


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("sub", list(ATM_RUNNING))
def test_atm_running_command_stops_on_signal(sub: str, sig: int) -> None:
    args, marker = ATM_RUNNING[sub]
    cmd = Cmd("atm", sub, *args)
    try:
        cmd.wait_for(marker)
        rc, took = cmd.stop(sig)
    finally:
        cmd.kill()
    cmd.assert_clean_exit(sig, rc, took, f"atm {sub}")
