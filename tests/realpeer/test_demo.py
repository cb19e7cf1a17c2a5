"""`tunstack demo` end to end, both variants: exit 0, the summary line, and the pcaps and
summary.txt left in --out.  The root variant (TUN and TAP in a namespace, real Linux
peers, over IPv4 then IPv6) took about 20 s on the 2-core CI machine; the in-process one
about 1 s.  Both end
with the ATM section (two adapters joined by the UDP PHY; no root needed), which adds
about 2 s and the SUNATM captures atm-a.pcap and atm-b.pcap, then SVC calls through the
emulated switch with svc-a/b.pcap (the stacks) and svc-switch-a/b.pcap (its ports)."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import dpkt
import trio

from .conftest import require_real_peer
from .helpers import run

TUNSTACK = [sys.executable, "-m", "tools.cli.main"]
SUMMARY = re.compile(r"^== summary: (\d+) passed, 0 failed; captures in (.+)/: (.+)$", re.M)


async def run_demo(out: Path, *extra: str, timeout: float = 300) -> tuple[int, int, str]:
    """Run `tunstack demo --out OUT ...`; returns (exit status, its PID, stdout)."""
    with open(out.parent / "demo.stdout", "wb") as stdout, open(out.parent / "demo.stderr", "wb") as stderr:
        proc = await trio.lowlevel.open_process([*TUNSTACK, "demo", "--out", str(out), *extra],
                                                stdout=stdout, stderr=stderr, cwd=os.getcwd())
        try:
            with trio.fail_after(timeout):
                rc = await proc.wait()
        finally:
            if proc.returncode is None:       # timed out: stop our own child, by its PID
                proc.kill()
                await proc.wait()
    text = (out.parent / "demo.stdout").read_text()
    assert rc == 0, text + (out.parent / "demo.stderr").read_text()
    return rc, proc.pid, text


def check_summary(out: Path, stdout: str, pcaps: list[str]) -> int:
    """The summary line and summary.txt agree, every step passed, the pcaps are there."""
    m = SUMMARY.search(stdout)
    assert m, stdout
    passed = int(m.group(1))
    assert m.group(2) == str(out) and m.group(3).split(", ") == pcaps
    lines = (out / "summary.txt").read_text().splitlines()
    assert lines[-1] == f"{passed} passed, 0 failed"
    assert len(lines) - 1 == passed and all(ln.startswith("ok   ") for ln in lines[:-1])
    assert sorted(p.name for p in out.iterdir()) == sorted([*pcaps, "summary.txt"])
    return passed


ATM_PCAPS = ["atm-a.pcap", "atm-b.pcap"]
SVC_PCAPS = ["svc-a.pcap", "svc-b.pcap", "svc-switch-a.pcap", "svc-switch-b.pcap"]


def check_atm_section(out: Path, stdout: str) -> None:
    """The ATM section ran: its steps are in the summary and its SUNATM captures hold IP."""
    assert "== ATM: two emulated adapters" in stdout
    summary = (out / "summary.txt").read_text()
    for step in ("no cell sent", "InATMARP learns the far end", "(20000 bytes, fragmented at MTU 9180)",
                 "TCP HTTP GET", "10 MB to stack b over TCP/CLIP", "SHA-256 ok"):
        assert step in summary, step
    for step in ("SSCOP links up on VC 0/5", "calls stack b's AESA through the switch",
                 "echoed over the SVC", "cause 88 (incompatible destination) -> ECONNREFUSED",
                 "cause 3 (no route to destination) -> EHOSTUNREACH"):
        assert step in summary, step
    for name in ATM_PCAPS + SVC_PCAPS:
        linktype, n = pcap_packets(out / name)
        assert linktype == 123 and n > 10, (name, linktype, n)


def check_ipv6_section(out: Path) -> None:
    """The IPv6 section's steps are in the summary, with their figures."""
    summary = (out / "summary.txt").read_text()
    for kind in ("TUN", "TAP"):
        for step in ("Linux `ping -6 -c 5 ", "Linux `ping -6 -s 4000 ", "(4000 bytes)", "`curl -6 http://[",
                     "SHA-256 ok", "-> ECONNREFUSED", "no malformed frame", "TCP and UDP checksum valid",
                     "hop limit 64 (ND 255, MLD 1)"):
            assert f"IPv6 {kind}: " in summary and any(
                line.startswith(f"ok   IPv6 {kind}: ") and step in line for line in summary.splitlines()), (kind, step)
    for step in ("IPv6 TUN: Linux `socat - UDP6:[fd00:77::2]:7`", "IPv6 TUN: stack UDP to closed [fd00:77::1]:9",
                 "IPv6 TUN: Linux sends 200 MB", "IPv6 TUN: the stack sends 200 MB",
                 "IPv6 TAP: the stack's addresses are usable after DAD",
                 "IPv6 TAP: Linux resolved the stack's MAC by Neighbor Discovery",
                 "IPv6 TAP: the stack resolved Linux's MAC by Neighbor Discovery"):
        assert step in summary, step
    dad = [line for line in summary.splitlines() if "IPv6 TAP: the stack's DAD seen by tcpdump" in line]
    assert len(dad) == 1 and "NS for fd00:77:1::2 to ff02::1:ff00:2" in dad[0], dad
    # the kernel's own capture of the IPv6 part holds only IPv6 (no IPv4 address on those devices)
    with open(out / "tun6-kernel.pcap", "rb") as f:
        assert all(bytes(buf[:1])[0] >> 4 == 6 for _, buf in dpkt.pcap.Reader(f))


def check_gateway_section(out: Path) -> None:
    """The gateway section's steps are in the summary, with their figures."""
    summary = (out / "summary.txt").read_text()
    for step in ("gateway: `tunstack gateway --configure --netns GUEST` is up: ready: dev=tap0",
                 "gateway: the guest's curl fetches 20 MB from the internet namespace: SHA-256 equal",
                 "gateway: UDP echo through a connected host socket: sizes [1, 100, 1472, 4000, 8000] echoed",
                 "(through the host's ping sockets): 0% loss",
                 "gateway: a closed port refuses the guest as the internet did the host: ECONNREFUSED",
                 "gateway: what it cost:"):
        assert step in summary, step
    linktype, n = pcap_packets(out / "gateway-guest.pcap")
    assert linktype == 1 and n > 100


def pcap_packets(path: Path) -> tuple[int, int]:
    """(link type, number of packets) of a capture, read with dpkt."""
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        return reader.datalink(), sum(1 for _ in reader)


async def test_demo_with_real_peers(tmp_path: Path) -> None:
    require_real_peer("socat", "curl")
    out = tmp_path / "out"
    t0 = trio.current_time()
    rc, pid, stdout = await run_demo(out)
    elapsed = trio.current_time() - t0
    others = [f"{dev}-{side}.pcap" for dev in ("tap", "tap6", "tun", "tun6") for side in ("kernel", "stack")]
    passed = check_summary(out, stdout, sorted([*ATM_PCAPS, *SVC_PCAPS, *others, "gateway-guest.pcap"]))
    assert passed >= 60 and "no TUN/TAP here" not in stdout
    for section in ("== TUN ", "== TAP ", "== IPv6 over TUN ", "== IPv6 over TAP "):
        assert section in stdout
    for name in ("tun-stack.pcap", "tun6-stack.pcap"):
        assert pcap_packets(out / name)[0] == 101, name
    for name in ("tap-stack.pcap", "tap6-stack.pcap"):
        assert pcap_packets(out / name)[0] == 1, name
    for name in others:
        assert pcap_packets(out / name)[1] >= 20, name
    check_ipv6_section(out)
    check_gateway_section(out)
    check_atm_section(out, stdout)
    # its namespace and devices (named after its PID) are gone
    namespaces = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    assert [n for n in namespaces if n.startswith(f"tsdemo{pid}x")] == []
    links = (await run(["ip", "-o", "link", "show"])).stdout.decode()
    assert f"tsd{pid}x" not in links and f"tsp{pid}x" not in links
    assert elapsed < 120, f"the demo took {elapsed:.0f} s"


async def test_demo_in_process(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, _, stdout = await run_demo(out, "--memory", timeout=120)
    assert "running two stacks over an in-process link instead" in stdout
    passed = check_summary(out, stdout, sorted([*ATM_PCAPS, *SVC_PCAPS, "memory-link.pcap"]))
    assert passed >= 14
    check_atm_section(out, stdout)
    summary = (out / "summary.txt").read_text()
    # no Linux takes part: the steps say which stack pings which
    assert "Linux" not in summary and "stack a pings stack b at 10.78.0.2" in summary
    assert "stack b pings stack a at 10.78.0.1" in summary
    linktype, n = pcap_packets(out / "memory-link.pcap")
    assert linktype == 1 and n >= 20


async def test_demo_help_describes_one_stack_per_device() -> None:
    r = await run([*TUNSTACK, "demo", "--help"])
    text = " ".join(r.stdout.decode().split())
    assert r.returncode == 0 and "a separate stack on each" in text and "--memory" in text and "--out" in text
