"""`tunstack up` end to end: starts, prints `ready:`, answers ping, exits cleanly on
SIGTERM or SIGINT (exit 128 + the signal's number) and leaves no device or namespace
behind; --gw, --mtu and --stats do what --help says."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import dpkt
import pytest
import trio

from tools.lab.netns import netns_exists, unique_name

from .conftest import require_real_peer
from .helpers import loss_percent, run

TUNSTACK = [sys.executable, "-m", "tools.cli.main"]


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


async def stop(proc: trio.Process, sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    with trio.fail_after(10):
        return await proc.wait()


async def rest_of(stream: trio.abc.ReceiveStream) -> bytes:
    """Everything left on a pipe of a process that has exited."""
    data = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some():
            data += chunk
    return data


def stack_frames(pcap: os.PathLike, stack_ip: str) -> list[dpkt.ip.IP]:
    """The IPv4 packets the stack sent, from its own LINKTYPE_RAW capture."""
    with open(pcap, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == 101
        packets = [dpkt.ip.IP(buf) for _, buf in reader if buf[:1] and buf[0] >> 4 == 4]
    return [ip for ip in packets if ip.src == bytes(map(int, stack_ip.split(".")))]


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
    assert rc == 128 + signal.SIGTERM
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
        assert await stop(proc) == 128 + signal.SIGTERM
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


async def test_up_sigint_shuts_down_and_cleans_up() -> None:
    # SIGINT (Ctrl-C) is handled like SIGTERM: a clean exit 130, nothing left behind
    require_real_peer()
    ns, dev = unique_name(), unique_name("tu")
    proc, ready = await start_up("--tap", dev, "--addr", "10.77.12.2/24", "--netns", ns,
                                 "--peer-addr", "10.77.12.1/24")
    try:
        assert ready.startswith("ready: ") and f"dev={dev}" in ready
        r = await run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", "10.77.12.2"])
        assert loss_percent(r.stdout) == 0
    finally:
        rc = await stop(proc, signal.SIGINT)
    assert rc == 130
    assert b"SIGINT: shutting down" in await rest_of(proc.stderr)
    assert not netns_exists(ns)
    links = await run(["ip", "-o", "link", "show"])
    assert dev not in links.stdout.decode()


async def gw_reply_loss(ns: str, dev: str, *gw: str) -> int:
    """Linux pings the stack from 10.77.200.1, an address off the stack's subnet: the
    replies can only go back through a default route to the kernel side."""
    proc, ready = await start_up("--tun", dev, "--addr", "10.77.13.2/24", "--netns", ns,
                                 "--peer-addr", "10.77.13.1/24", *gw)
    try:
        assert ready.startswith("ready: ")
        await run(["ip", "-n", ns, "addr", "add", "10.77.200.1/32", "dev", "lo"], check=True)
        r = await run(["ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "1",
                       "-I", "10.77.200.1", "10.77.13.2"])
        return loss_percent(r.stdout)
    finally:
        assert await stop(proc) == 128 + signal.SIGTERM
        assert not netns_exists(ns)


async def test_up_gw_is_the_default_route() -> None:
    require_real_peer()
    assert await gw_reply_loss(unique_name(), unique_name("tu"), "--gw", "10.77.13.1") == 0
    # the control: without --gw the stack has no route back to 10.77.200.1
    assert await gw_reply_loss(unique_name(), unique_name("tu")) == 100


async def test_up_gw_off_subnet_is_a_clean_error() -> None:
    require_real_peer()
    ns, dev = unique_name(), unique_name("tu")
    r = await run([*TUNSTACK, "up", "--tun", dev, "--addr", "10.77.14.2/24", "--netns", ns,
                   "--peer-addr", "10.77.14.1/24", "--gw", "10.99.0.1"], timeout=20)
    assert not netns_exists(ns)
    assert r.returncode == 2 and b"ready:" not in r.stdout          # a usage error, found before any device
    assert b"Traceback" not in r.stderr and b"gateway 10.99.0.1" in r.stderr


async def test_up_mtu_sets_both_sides(tmp_path) -> None:
    require_real_peer()
    ns, dev = unique_name(), unique_name("tu")
    pcap = tmp_path / "mtu.pcap"
    proc, ready = await start_up("--tun", dev, "--addr", "10.77.15.2/24", "--netns", ns,
                                 "--peer-addr", "10.77.15.1/24", "--mtu", "1280", "--pcap", str(pcap))
    try:
        assert ready.startswith("ready: ")
        link = await run(["ip", "-n", ns, "-o", "link", "show", "dev", dev], check=True)
        assert " mtu 1280 " in link.stdout.decode()               # the kernel side
        r = await run(["ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-s", "2000",
                       "10.77.15.2"])
        assert loss_percent(r.stdout) == 0
    finally:
        assert await stop(proc) == 128 + signal.SIGTERM
    # the stack's side: its 2028-octet replies leave in fragments that fit 1280, not 1500
    sizes = sorted({len(ip) for ip in stack_frames(pcap, "10.77.15.2") if ip.p == dpkt.ip.IP_PROTO_ICMP})
    assert sizes == [20 + 2008 - 1256, 20 + 1256]     # 1256: the largest multiple of 8 within 1280 - 20


async def test_up_stats_prints_json_counters_on_exit() -> None:
    require_real_peer("socat")
    ns, dev = unique_name(), unique_name("tu")
    proc, ready = await start_up("--tun", dev, "--addr", "10.77.16.2/24", "--netns", ns,
                                 "--peer-addr", "10.77.16.1/24", "--stats", "--serve", "echo")
    try:
        r = await run(["ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.16.2"])
        assert loss_percent(r.stdout) == 0
        with trio.fail_after(10):
            r = await trio.run_process(["ip", "netns", "exec", ns, "socat", "-t", "1", "-", "UDP:10.77.16.2:7"],
                                       stdin=b"count me\n", capture_stdout=True, capture_stderr=True)
        assert r.stdout == b"count me\n"
    finally:
        rc = await stop(proc)
    assert rc == 128 + signal.SIGTERM and not netns_exists(ns)
    err = (await rest_of(proc.stderr)).decode()
    assert "SIGTERM: shutting down" in err
    stats = json.loads(err[err.index("\n{") + 1:])               # the rest of stderr is one JSON document
    assert {"ipv4", "icmp", "udp", "tcp", "reasm", "interfaces", "services"} <= stats.keys()
    assert stats["icmp"]["in_echos"] == 3 and stats["icmp"]["out_echo_reps"] == 3
    assert stats["udp"]["in_datagrams"] >= 1 and stats["udp"]["out_datagrams"] >= 1
    ndd = stats["interfaces"][dev]["ndd"]
    assert ndd["ndd_ipackets"] >= 4 and ndd["ndd_opackets"] >= 4
    echo = stats["services"]["udp/echo:7"]
    assert echo["received"] == 1 and echo["sent"] == 1 and echo["errors"] == 0


async def test_up_help_epilog_keeps_its_line_breaks() -> None:
    r = await run([*TUNSTACK, "up", "--help"])
    text = r.stdout.decode()
    # the multi-line example shows its shell continuation, on two lines
    assert "--peer-addr 10.77.0.1/24 \\\n      --serve echo --serve discard:9000\n" in text
    assert "--stats" in text and "--serve" in text
