"""`tunstack up` and `tunstack ping` with IPv6, the Linux kernel as the peer, over TUN and TAP:
both families on one device (`ready:` lists the IPv6 addresses preferred, Linux `ping -6`
reaches them, small and fragmented), `tunstack ping -6` to the kernel (also a link-local
peer by its zone, and the largest echo), an IPv6 default gateway (global or link-local),
SLAAC from a radvd in the namespace (on TUN as on TAP), and a duplicate --addr refused
with one error line."""
from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest
import trio

from tools.lab.netns import netns_exists, unique_name

from .conftest import require_real_peer
from .helpers import kill_if_running, loss_percent, run, some_of
from .test_up_cli import TUNSTACK, rest_of, start_up, stop


async def next_line(proc: trio.Process, pattern: str, timeout: float) -> re.Match[str]:
    """The first line of the process's stdout (after `ready:`) that matches `pattern`."""
    buf = b""
    assert proc.stdout is not None
    with trio.fail_after(timeout):
        while True:
            chunk = await proc.stdout.receive_some(1)
            assert chunk, "exited"
            buf += chunk
            if buf.endswith(b"\n"):
                if m := re.search(pattern, buf.decode()):
                    return m
                buf = b""


def addr6_states(ready: str) -> dict[str, str]:
    """`addr6=fd00::2/64(preferred),fe80::1/64(preferred)` -> {"fd00::2/64": "preferred", ...}."""
    field = next(f for f in ready.split() if f.startswith("addr6="))
    return {m[1]: m[2] for m in re.finditer(r"([0-9a-f:]+/\d+)\(([a-z,]+)\)", field)}


@pytest.mark.parametrize("kind", ["tun", "tap"])
async def test_up_dual_stack_kernel_pings_both_families(kind: str) -> None:
    require_real_peer()
    ns, dev = unique_name(), unique_name("t6")
    proc, ready = await start_up(f"--{kind}", dev, "--addr", "10.77.50.2/24", "--addr", "fd00:77:50::2/64",
                                 "--netns", ns, "--peer-addr", "10.77.50.1/24", "--peer-addr", "fd00:77:50::1/64")
    try:
        assert ready.startswith(f"ready: dev={dev} kind={kind} addr=10.77.50.2/24 addr6=fd00:77:50::2/64(preferred),")
        assert " peer=10.77.50.1/24,fd00:77:50::1/64 " in ready
        states = addr6_states(ready)
        link_local = [a for a in states if a.startswith("fe80:")]
        assert len(link_local) == 1 and set(states.values()) == {"preferred"}, ready
        for size in ("56", "4000"):                            # 4000: fragmented both ways
            r = await run(["ip", "netns", "exec", ns, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "-s", size,
                           "fd00:77:50::2"])
            assert loss_percent(r.stdout) == 0, r.stdout
        mine = link_local[0].split("/")[0]
        r = await run(["ip", "netns", "exec", ns, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", f"{mine}%{dev}"])
        assert loss_percent(r.stdout) == 0, r.stdout
        r = await run(["ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.77.50.2"])
        assert loss_percent(r.stdout) == 0, r.stdout
        shown = await run(["ip", "-n", ns, "-6", "-o", "addr", "show", "dev", dev], check=True)
        assert "fd00:77:50::1/64" in shown.stdout.decode() and "tentative" not in shown.stdout.decode()
    finally:
        assert await stop(proc) == 128 + signal.SIGTERM
    assert not netns_exists(ns)


@pytest.mark.parametrize("kind", ["tun", "tap"])
async def test_ping_command_over_ipv6(kind: str) -> None:
    require_real_peer()
    ns, dev = unique_name(), unique_name("t6")
    common = [f"--{kind}", dev, "--addr", "fd00:77:51::2/64", "--netns", ns, "--peer-addr", "fd00:77:51::1/64",
              "--peer-addr", "fe80::1/64"]
    r = await run([*TUNSTACK, "ping", *common, "-c", "2", "-6", "fd00:77:51::1"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert b"64 bytes from fd00:77:51::1: seq=1" in r.stdout and b"2 sent, 2 received, 0% loss" in r.stdout
    r = await run([*TUNSTACK, "ping", *common, "-c", "1", "-s", "65527", f"fe80::1%{dev}"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"65535 bytes from fe80::1%{dev}: seq=1".encode() in r.stdout        # the largest, in 45 fragments
    r = await run([*TUNSTACK, "ping", *common, "-c", "1", "-W", "1", "fd00:77:51::9"])
    assert r.returncode == 1 and b"1 sent, 0 received" in r.stdout
    assert not netns_exists(ns)


async def gw6_reply_loss(*gw: str) -> int:
    """Linux pings the stack from fd00:200::1, off the stack's subnet: the replies can only go
    back through an IPv6 default route to the kernel side."""
    ns, dev = unique_name(), unique_name("t6")
    proc, ready = await start_up("--tap", dev, "--addr", "fd00:77:52::2/64", "--netns", ns,
                                 "--peer-addr", "fd00:77:52::1/64", "--peer-addr", "fe80::1/64", *gw)
    try:
        assert ready.startswith("ready: ")
        await run(["ip", "-n", ns, "-6", "addr", "add", "fd00:200::1/128", "dev", "lo"], check=True)
        r = await run(["ip", "netns", "exec", ns, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "1",
                       "-I", "fd00:200::1", "fd00:77:52::2"])
        return loss_percent(r.stdout)
    finally:
        assert await stop(proc) == 128 + signal.SIGTERM
        assert not netns_exists(ns)


async def test_up_ipv6_gateway_global_or_link_local() -> None:
    require_real_peer()
    assert await gw6_reply_loss("--gw", "fd00:77:52::1") == 0
    assert await gw6_reply_loss("--gw", "fe80::1") == 0
    assert await gw6_reply_loss() == 100                   # the control: no route back without --gw


RADVD_CONF = """interface {dev} {{
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 4;
    prefix fd00:99::/64 {{ AdvOnLink on; AdvAutonomous on; }};
}};
"""


@pytest.mark.parametrize("kind", ["tun", "tap"])
async def test_up_slaac_from_radvd(kind: str, tmp_path: Path) -> None:
    require_real_peer("radvd")
    ns, dev = unique_name(), unique_name("t6")
    proc, ready = await start_up(f"--{kind}", dev, "--addr", "10.77.53.2/24", "--netns", ns,
                                 "--peer-addr", "10.77.53.1/24", "--stats")
    radvd = None
    try:
        assert "fd00:99:" not in ready
        await run(["ip", "-n", ns, "-6", "addr", "add", "fd00:99::1/64", "dev", dev, "nodad"], check=True)
        conf = tmp_path / "radvd.conf"
        conf.write_text(RADVD_CONF.format(dev=dev))
        radvd = await trio.lowlevel.open_process(
            ["ip", "netns", "exec", ns, "radvd", "--nodaemon", "-C", str(conf), "-p", str(tmp_path / "radvd.pid"),
             "-m", "stderr"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        line = await next_line(proc, rf"^addr6: dev={dev} (fd00:99:[0-9a-f:]+)/64\(preferred,slaac\)$", 20)
        slaac = line[1]
        r = await run(["ip", "netns", "exec", ns, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", slaac])
        assert loss_percent(r.stdout) == 0, r.stdout
    finally:
        if radvd is not None:
            await kill_if_running(radvd)
        rc = await stop(proc)
    assert rc == 128 + signal.SIGTERM and not netns_exists(ns)
    assert proc.stderr is not None
    err = (await rest_of(proc.stderr)).decode()
    stats = json.loads(err[err.index("\n{") + 1:])
    addresses = {a["addr"]: a for a in stats["interfaces"][dev]["ipv6"]["addresses"]}
    assert addresses[slaac]["origin"] == "slaac" and addresses[slaac]["plen"] == 64
    assert stats["nd"]["ra_accepted"] >= 1


async def test_up_duplicate_ipv6_address_is_one_error_line() -> None:
    # the kernel holds fd00:77:54::5 on a persistent TAP: the stack's DAD probe for it is answered
    require_real_peer()
    dev = unique_name("t6")
    await run(["ip", "tuntap", "add", "mode", "tap", "name", dev], check=True)
    try:
        await run(["ip", "addr", "add", "fd00:77:54::5/64", "dev", dev, "nodad"], check=True)
        await run(["ip", "link", "set", dev, "up"], check=True)
        argv = [*TUNSTACK, "up", "--tap", dev, "--reuse-device", "--addr", "fd00:77:54::5/64"]
        proc = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with trio.move_on_after(30) as waited:
            await proc.wait()
        if waited.cancelled_caught:
            # Seen in CI (twice) and in 5 of 20 runs here one evening: DAD found no duplicate
            # although the kernel counted its NA sent.  The likely cause, a probe sent before the
            # kernel took in the TAP's carrier (its no-op queue drops the NA), is what
            # tools.cli.device.wait_kernel_link_ready now waits out.  Say what both sides saw.
            nstat = await run(["nstat", "-az", "Icmp6InNeighborSolicits", "Icmp6OutNeighborAdvertisements"])
            proc.send_signal(signal.SIGINT)
            with trio.move_on_after(10):
                await proc.wait()
            await kill_if_running(proc)
            raise AssertionError(f"no DAD failure in 30 s: stdout {await some_of(proc.stdout)!r}, "
                                 f"stderr {await some_of(proc.stderr)!r}, kernel {nstat.stdout!r}")
        r = subprocess.CompletedProcess(argv, proc.returncode, await some_of(proc.stdout), await some_of(proc.stderr))
        assert r.returncode == 1 and b"ready:" not in r.stdout, r.stdout + r.stderr
        err = r.stderr.decode()
        assert err.startswith("tunstack: error: --addr fd00:77:54::5/64: duplicate address detected on "
                              f"{dev}") and err.count("\n") == 1, err
    finally:
        await run(["ip", "link", "delete", dev])


async def test_up_no_slaac_ignores_router_advertisements(tmp_path: Path) -> None:
    require_real_peer("radvd", "tcpdump")
    ns, dev = unique_name(), unique_name("t6")
    proc, ready = await start_up("--tap", dev, "--addr", "10.77.55.2/24", "--netns", ns,
                                 "--peer-addr", "10.77.55.1/24", "--no-slaac", "--stats")
    radvd = None
    try:
        await run(["ip", "-n", ns, "-6", "addr", "add", "fd00:99::1/64", "dev", dev, "nodad"], check=True)
        conf = tmp_path / "radvd.conf"
        conf.write_text(RADVD_CONF.format(dev=dev))
        # two advertisements on the wire, 3..4 s apart: the stack has long read the first one
        dump = await trio.lowlevel.open_process(
            ["ip", "netns", "exec", ns, "tcpdump", "-l", "-n", "-c", "2", "-i", dev, "icmp6 and ip6[40] == 134"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert dump.stderr is not None
            with trio.fail_after(10):                      # tcpdump says "listening on" once it listens
                while b"listening on" not in await dump.stderr.receive_some():
                    pass
            radvd = await trio.lowlevel.open_process(
                ["ip", "netns", "exec", ns, "radvd", "--nodaemon", "-C", str(conf), "-p",
                 str(tmp_path / "radvd.pid"), "-m", "stderr"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with trio.fail_after(20):
                assert await dump.wait() == 0
        finally:
            await kill_if_running(dump)
    finally:
        if radvd is not None:
            await kill_if_running(radvd)
        rc = await stop(proc)
    assert rc == 128 + signal.SIGTERM and not netns_exists(ns)
    assert proc.stderr is not None
    err = (await rest_of(proc.stderr)).decode()
    stats = json.loads(err[err.index("\n{") + 1:])
    assert stats["nd"]["ra_ignored"] >= 1 and stats["nd"]["ra_accepted"] == 0
    origins = {a["origin"] for a in stats["interfaces"][dev]["ipv6"]["addresses"]}
    assert origins == {"link-local"}
