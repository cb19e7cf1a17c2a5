"""`tunstack demo`: the guided tour, on embedded defaults.

With root and /dev/net/tun: a namespace, a TUN and a TAP device whose kernel sides
live in it, and a separate stack on each.  Linux pings the stack (small and 4000-byte pings,
the latter fragmented and reassembled), the stack pings Linux back (over TAP after
ARP both ways), tcpdump records the kernel's view, the stack records its own, and
tshark checks the stack's capture for bad checksums, malformed frames and TTLs.
Over TUN it also does UDP: the stack serves echo on port 7, Linux (socat and Python in
the namespace) exchanges datagrams with it, one of them larger than the MTU, and a
connected stack socket meets ECONNREFUSED from a closed Linux port.  And TCP
(tools/demo/tcp.py): Linux `curl` against the stack's http service, a refused connect,
and, once the captures have stopped, 200 MB each way with its Mbit/s.  Then IPv6
(tools/demo/ipv6.py) on a TUN and a TAP device of its own: `ping -6` both ways, Neighbor
Discovery both ways and DAD on the wire (TAP), UDP, `curl -6`, refused connects and the
bulk transfers again (TUN), tshark checking every checksum and hop limit.  Then
`tunstack gateway` (tools/demo/gateway.py) gives a namespace a network through host
sockets: curl, UDP, ping and a refused port from the guest to an "internet" namespace.
Without root: two stacks over an in-process link (ping, UDP echo, an HTTP GET and a
refused TCP connect), and it says so.  Both variants end with ATM (tools/demo/atm.py:
PVC datagrams and Classical IP) and SVC calls through the emulated switch
(tools/demo/svc.py).
Exit status 0 only when every step worked.
"""
from __future__ import annotations

import argparse
import shutil
import socket
from pathlib import Path

import trio

from drivers.memlink import memory_link_pair
from drivers.pcap import PcapRecorder
from drivers.tuntap import TapNdd, TunNdd, TunTapNdd
from protocols.addr import ip_to_int, mac_to_str
from stack import Stack
from tools.lab.netns import NetnsHost, have_tun, unique_name
from tools.services.builtin import ServiceStats, udp_echo

from .atm import atm_demo
from .gateway import gateway_demo
from .ipv6 import TAP6_KERNEL, TAP6_STACK, TUN6_KERNEL, TUN6_STACK, ipv6_device_demo
from .probes import Tcpdump, linux_pings, run, stack_pings
from .report import Report
from .tcp import memory_tcp, tcp_bulk, tcp_captured
from .udp import linux_udp_echo, stack_udp_refused

TUN_KERNEL, TUN_STACK = "10.77.0.1", "10.77.0.2"
TAP_KERNEL, TAP_STACK = "10.77.1.1", "10.77.1.2"


async def tshark_check(report: Report, pcap: Path, stack_ip: str, label: str) -> None:
    if shutil.which("tshark") is None:
        report.step(f"{label}: tshark check", False, "tshark is not installed")
        return
    base = ["tshark", "-n", "-r", str(pcap), "-o", "ip.check_checksum:TRUE"]
    bad = await run(base + ["-Y", '_ws.malformed || ip.checksum.status == "Bad" || icmp.checksum.status == "Bad"'])
    ttl = await run(base + ["-Y", f"ip.src == {stack_ip} && ip.ttl != 64 && !icmp.type == 3"])
    total = await run(base)
    lines = [ln for ln in total.stdout.decode().splitlines() if ln.strip()]
    bad_n = len([ln for ln in bad.stdout.decode().splitlines() if ln.strip()])
    ttl_n = len([ln for ln in ttl.stdout.decode().splitlines() if ln.strip()])
    print(f"    tshark view of {pcap.name} ({len(lines)} frames, first 8):")
    for ln in lines[:8]:
        print("      " + ln.strip())
    report.step(f"{label}: tshark finds no malformed or bad-checksum frame", total.returncode == 0 and bad_n == 0
                and len(lines) > 0, f"{bad_n} bad of {len(lines)}")
    report.step(f"{label}: every packet from the stack has TTL 64", ttl_n == 0, f"{ttl_n} with another TTL")


async def device_demo(report: Report, out: Path, host: NetnsHost, ndd: TunTapNdd, kernel_ip: str,
                      stack_ip: str) -> None:
    """One device: Linux pings the stack, the stack pings Linux, both sides captured."""
    label, dev = ("TAP" if ndd.is_tap else "TUN"), ndd.ndd_name
    print(f"== {label} {dev}: kernel {kernel_ip}/24 in netns {host.name}, stack {stack_ip}/24"
          + (" (ARP both ways)" if ndd.is_tap else ""))
    ndd.create()
    host.adopt(dev, f"{kernel_ip}/24")
    prefix = label.lower()
    dump = Tcpdump(host, dev, out / f"{prefix}-kernel.pcap")
    try:
        report.step(f"{label}: tcpdump listening in the namespace", await dump.start())
        await _device_steps(report, out, host, ndd, kernel_ip, stack_ip, label, dump)
    finally:
        dump.kill()


async def _device_steps(report: Report, out: Path, host: NetnsHost, ndd: TunTapNdd, kernel_ip: str,
                        stack_ip: str, label: str, dump: Tcpdump) -> None:
    prefix, dev = label.lower(), ndd.ndd_name
    async with Stack(f"demo-{prefix}") as st:
        st.add_interface(ndd, f"{stack_ip}/24")
        rec = PcapRecorder.attach(ndd, str(out / f"{prefix}-stack.pcap"))
        report.step(f"{label}: offloads negotiated", ndd.vnet,
                    f"TUNSETOFFLOAD flags {ndd.offload_flags:#x}, caps {ndd.caps}")
        await linux_pings(report, host, stack_ip, label)
        if ndd.is_tap:
            neigh = (await run(host.exec_argv("ip", "neigh", "show", stack_ip))).stdout.decode()
            report.step(f"{label}: Linux resolved the stack's MAC by ARP",
                        mac_to_str(ndd.ndd_physaddr) in neigh.lower(), neigh.strip())
        await stack_pings(report, st, kernel_ip, label)
        if not ndd.is_tap:
            echo_stats = ServiceStats()
            async with trio.open_nursery() as services:
                await services.start(lambda task_status: udp_echo(st, 7, stats=echo_stats,
                                                                  task_status=task_status))
                report.step(f"{label}: the stack serves UDP echo on {stack_ip}:7", True)
                await linux_udp_echo(report, host, stack_ip, label)
                services.cancel_scope.cancel()
            print(f"    echo service: {echo_stats.received} datagrams in, {echo_stats.sent} out, "
                  f"{echo_stats.errors} errors")
            await stack_udp_refused(report, st, kernel_ip, label)
            await tcp_captured(report, st, host, kernel_ip, stack_ip, label)
        if ndd.is_tap:
            learned = {ip: mac for ip, _, mac in st.arp_cache(dev).table()}.get(ip_to_int(kernel_ip), b"")
            report.step(f"{label}: the stack resolved Linux's MAC by ARP", bool(learned) and learned == ndd.kernel_mac,
                        f"{kernel_ip} is-at {mac_to_str(learned) if learned else '?'}")
        rec.close()
        captured = await dump.stop()
        if not ndd.is_tap:
            await tcp_bulk(report, st, host, kernel_ip, stack_ip, label)
        stats = st.stats()
    report.step(f"{label}: tcpdump in the namespace saw the exchange", captured >= 30, f"{captured} packets captured")
    await tshark_check(report, out / f"{prefix}-stack.pcap", stack_ip, label)
    ip4, icmp = stats["ipv4"], stats["icmp"]
    print(f"    stack counters: ipv4 in={ip4['in_receives']} delivered={ip4['in_delivers']} "
          f"frag_creates={ip4['frag_creates']}; icmp echos in={icmp['in_echos']} replies out={icmp['out_echo_reps']}; "
          f"reasm ok={stats['reasm']['oks']}")
    tcp = stats.get("tcp", {})
    if tcp.get("in_segs"):
        print(f"    tcp: opens active={tcp.get('active_opens')} passive={tcp.get('passive_opens')}, "
              f"segments in={tcp['in_segs']} out={tcp.get('out_segs')} retransmitted={tcp.get('retrans_segs')}")


async def memory_demo(report: Report, out: Path) -> None:
    print("== two stacks over an in-process memory link (10.78.0.1 <-> 10.78.0.2)")
    a, b = memory_link_pair("mem0", "mem1")
    async with Stack("demo-a") as sa, Stack("demo-b") as sb:
        sa.add_interface(a, "10.78.0.1/24")
        sb.add_interface(b, "10.78.0.2/24")
        rec = PcapRecorder.attach(a, str(out / "memory-link.pcap"))
        await stack_pings(report, sa, "10.78.0.2", "memory", count=5, who="stack a", peer="stack b")
        await stack_pings(report, sa, "10.78.0.2", "memory", count=3, size=4000, who="stack a", peer="stack b")
        await stack_pings(report, sb, "10.78.0.1", "memory", count=3, who="stack b", peer="stack a")
        async with trio.open_nursery() as services:
            await services.start(udp_echo, sb, 7)
            results = []
            with sa.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                await s.connect(("10.78.0.2", 7))
                for size in (1, 512, 1472, 4000):
                    data = bytes((i * 7 + size) % 251 for i in range(size))
                    await s.send(data)
                    with trio.move_on_after(3):
                        results.append((size, await s.recv(65535) == data))
            services.cancel_scope.cancel()
        report.step("memory: UDP echo between the stacks (1/512/1472/4000 bytes)",
                    len(results) == 4 and all(ok for _, ok in results), str(results))
        await memory_tcp(report, sa, sb, "10.78.0.2")
        rec.close()
    if shutil.which("tshark"):
        await tshark_check(report, out / "memory-link.pcap", "10.78.0.1", "memory")


async def run_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report()
    ok, why = have_tun()
    if args.memory or not ok:
        print(f"tunstack demo: no TUN/TAP here ({why or 'asked for --memory'}); "
              "running two stacks over an in-process link instead.")
        await memory_demo(report, out)
    else:
        host = NetnsHost.create(unique_name("tsdemo"))
        try:
            await device_demo(report, out, host, TunNdd(unique_name("tsd")), TUN_KERNEL, TUN_STACK)
            await device_demo(report, out, host, TapNdd(unique_name("tsp")), TAP_KERNEL, TAP_STACK)
            await ipv6_device_demo(report, out, host, TunNdd(unique_name("tsd")), TUN6_KERNEL, TUN6_STACK)
            # without offloads: every checksum in its capture is computed in full, both ways
            await ipv6_device_demo(report, out, host, TapNdd(unique_name("tsp"), offload=False), TAP6_KERNEL,
                                   TAP6_STACK)
        finally:
            host.delete()
        await gateway_demo(report, out)
    await atm_demo(report, out)   # no root needed: the same in both variants
    passed = sum(ok for _, ok, _ in report.steps)
    summary = f"{passed} passed, {len(report.steps) - passed} failed"
    (out / "summary.txt").write_text("\n".join(f"{'ok  ' if ok else 'FAIL'} {n}: {d}" for n, ok, d in report.steps)
                                     + "\n" + summary + "\n")
    pcaps = sorted(p.name for p in out.glob("*.pcap"))
    print(f"== summary: {summary}; captures in {out}/: {', '.join(pcaps)}")
    return 0 if report.all_ok else 1
