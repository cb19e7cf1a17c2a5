"""`tunstack demo` end to end, both variants: exit 0, the summary line, and the pcaps and
summary.txt left in --out.  The root variant (TUN and TAP in a namespace, real Linux
peers) took about 8 s on the 2-core CI machine; the in-process one about 1 s.  Both end
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
    others = ["tap-kernel.pcap", "tap-stack.pcap", "tun-kernel.pcap", "tun-stack.pcap"]
    passed = check_summary(out, stdout, sorted([*ATM_PCAPS, *SVC_PCAPS, *others]))
    assert passed >= 25 and "no TUN/TAP here" not in stdout
    for section in ("== TUN ", "== TAP "):
        assert section in stdout
    assert pcap_packets(out / "tun-stack.pcap")[0] == 101 and pcap_packets(out / "tap-stack.pcap")[0] == 1
    for name in others:
        assert pcap_packets(out / name)[1] >= 20, name
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
