"""`tunstack up` end to end: starts, prints `ready:`, answers ping, exits cleanly on
SIGTERM and leaves no device or namespace behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import dpkt
import pytest
import trio

from tools.netns import netns_exists, unique_name

from .conftest import require_real_peer
from .helpers import loss_percent, run

TUNSTACK = [sys.executable, "-m", "tools.cli"]


async def start_up(*args: str) -> tuple[trio.Process, str]:
    proc = await trio.lowlevel.open_process([*TUNSTACK, "up", *args], stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, cwd=os.getcwd())
    line = b""
    with trio.fail_after(15):
        while not line.endswith(b"\n"):
            chunk = await proc.stdout.receive_some(1)
            assert chunk, f"exited before ready: {await proc.stderr.receive_some()}"
            line += chunk
    return proc, line.decode().strip()


async def stop(proc: trio.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    with trio.fail_after(10):
        return await proc.wait()


@pytest.mark.parametrize("kind", ["tun", "tap"])
async def test_up_ready_ping_sigterm_cleanup(kind: str, tmp_path) -> None:
    require_real_peer()
    ns, dev = unique_name(), unique_name("tu")
    pcap = tmp_path / "up.pcap"
    proc, ready = await start_up(f"--{kind}", dev, "--addr", "10.77.9.2/24", "--netns", ns,
                                 "--peer-addr", "10.77.9.1/24", "--pcap", str(pcap))
    try:
        assert ready.startswith("ready: ") and f"dev={dev}" in ready and f"netns={ns}" in ready
        r = await run(["ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.9.2"])
        assert loss_percent(r.stdout) == 0
    finally:
        rc = await stop(proc)
    assert rc == 0
    assert not netns_exists(ns)
    links = await run(["ip", "-o", "link", "show"])
    assert dev not in links.stdout.decode()
    with open(pcap, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == (101 if kind == "tun" else 1)
        assert len(list(reader)) >= 6


async def test_up_leaves_existing_namespace(tmp_path) -> None:
    require_real_peer()
    ns, dev = unique_name(), unique_name("tu")
    await run(["ip", "netns", "add", ns], check=True)
    try:
        proc, ready = await start_up("--tun", dev, "--addr", "10.77.8.2/24", "--netns", ns,
                                     "--peer-addr", "10.77.8.1/24", "--no-offload")
        assert "offload=off" in ready
        assert await stop(proc) == 0
        assert netns_exists(ns)          # not ours to delete
        links = await run(["ip", "-n", ns, "-o", "link", "show"])
        assert dev not in links.stdout.decode()   # but the device went with our fd
    finally:
        await run(["ip", "netns", "delete", ns])


async def test_up_help_and_bad_arguments() -> None:
    r = await run([*TUNSTACK, "up", "--help"])
    text = r.stdout.decode()
    for opt in ("--tun", "--tap", "--addr", "--gw", "--mtu", "--netns", "--peer-addr", "--pcap", "--no-offload"):
        assert opt in text
    r = await run([*TUNSTACK, "up", "--tun", "x", "--addr", "10.1.2.3/40"])
    assert r.returncode == 2 and b"--addr" in r.stderr
    r = await run([*TUNSTACK, "up", "--tun", "x", "--addr", "10.1.2.3/24", "--netns", "n"])
    assert r.returncode == 2 and b"--peer-addr" in r.stderr


async def test_ping_command_resolves_and_pings_linux() -> None:
    require_real_peer()
    ns, dev = unique_name(), unique_name("tq")
    r = await run([*TUNSTACK, "ping", "--tap", dev, "--addr", "10.77.7.2/24", "--netns", ns,
                   "--peer-addr", "10.77.7.1/24", "-c", "2", "-s", "3000", "10.77.7.1"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert b"2 sent, 2 received, 0% loss" in r.stdout
    assert not netns_exists(ns)
    r = await run([*TUNSTACK, "ping", "--tun", dev, "--addr", "10.77.7.2/24", "--netns", ns,
                   "--peer-addr", "10.77.7.1/24", "-c", "1", "-W", "1", "10.77.7.9"])
    assert r.returncode == 1 and b"1 sent, 0 received" in r.stdout
