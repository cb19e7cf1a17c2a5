"""The IPv6 part of `tunstack demo`: one TUN and one TAP device of their own, IPv6 only,
in the demo's namespace (tools/demo/tour.py calls `ipv6_device_demo` for each).

Both: the stack's addresses pass DAD (TAP; on TUN they are usable at once, as Linux does
no DAD on an IFF_NOARP link), Linux `ping -6` of the stack (small, and 4000 bytes in
fragments both ways), the stack pings Linux's global and link-local (fe80::…%dev)
addresses, Linux `curl -6` of the http service with a SHA-256 check and a refused connect.
TAP: Neighbor Discovery both ways (`ip -6 neigh` holds the stack's MAC, the stack's
neighbour cache Linux's) and the stack's DAD probes -- NS from :: to the solicited-node
group -- seen by tcpdump.  TUN: UDP echo with socat and Python (up to 8000 bytes, in
fragments), a closed UDP port's ECONNREFUSED and, after the captures, 200 MB each way
with its Mbit/s.  tshark then reads the stack's capture: nothing malformed, every ICMPv6,
TCP and UDP checksum valid and the hop limits the RFCs ask.  The TUN device has the
offloads (an offloaded checksum -- the pseudo-header sum the device completes, virtio_net's
NEEDS_CSUM -- is checked as such), the TAP device none: there every checksum, the stack's
and the kernel's, is computed in full.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from drivers.pcap import PcapRecorder
from drivers.tuntap import TunTapNdd
from protocols.addr import mac_to_str
from protocols.ipv6.addr import ip6_to_int
from protocols.ipv6.wire import pseudo_header_sum
from stack import Stack
from tools.lab.netns import NetnsHost, ip
from tools.services.builtin import ServiceStats, udp_echo

from .probes import Tcpdump, linux_pings, run, stack_pings
from .tcp import HTTP_BYTES, tcp_bulk, tcp_captured
from .udp import linux_udp_echo, stack_udp_refused

if TYPE_CHECKING:
    from .report import Report

TUN6_KERNEL, TUN6_STACK = "fd00:77::1", "fd00:77::2"
TAP6_KERNEL, TAP6_STACK = "fd00:77:1::1", "fd00:77:1::2"
PLEN = 64
DAD_WAIT = 10.0            # seconds: DAD takes ~2 s on Ethernet (up to 1 s delay + RetransTimer)
MLD_REPORT_V2 = 143         # hop limit 1 (RFC 3810 §5); ND (133-137) 255 (RFC 4861 §6.1, §7.1)
IPPROTO_TCP, IPPROTO_UDP = 6, 17


def adopt6(host: NetnsHost, dev: str, addr: str) -> None:
    """Move `dev` into the namespace with the IPv6 address `addr` only, `nodad` so that the
    kernel can use it at once (its link-local still goes through DAD)."""
    ip("link", "set", dev, "netns", host.name)
    host.devices.append(dev)
    host.ip("-6", "addr", "add", f"{addr}/{PLEN}", "dev", dev, "nodad")
    host.ip("link", "set", dev, "up")


def stack_addresses(st: Stack, dev: str) -> dict[str, str]:
    """The stack's IPv6 addresses on `dev` -> their state (tentative, preferred, ...)."""
    return {a["addr"]: a["state"] for a in st.stats()["interfaces"][dev]["ipv6"]["addresses"]}


async def wait_preferred(st: Stack, dev: str, timeout: float) -> dict[str, str]:
    """Until every address of `dev` has left the tentative state (or `timeout`)."""
    with trio.move_on_after(timeout):
        while any(s == "tentative" for s in stack_addresses(st, dev).values()):
            await trio.sleep(0.05)
    return stack_addresses(st, dev)


async def kernel_link_local(host: NetnsHost, dev: str, timeout: float = 5.0) -> str | None:
    """The kernel side's link-local address once its own DAD has passed."""
    with trio.move_on_after(timeout):
        while True:
            r = await run(host.exec_argv("ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
                                         "-tentative"))
            found = [ln.split("inet6 ")[1].split("/")[0] for ln in r.stdout.decode().splitlines() if "inet6 " in ln]
            if found:
                return found[0]
            await trio.sleep(0.1)
    return None


async def ipv6_device_demo(report: Report, out: Path, host: NetnsHost, ndd: TunTapNdd, kernel_ip: str,
                           stack_ip: str) -> None:
    """One device, IPv6 only: Linux and the stack ping each other, TCP (and UDP on TUN),
    Neighbor Discovery and DAD on TAP; both sides captured, the stack's checked by tshark."""
    kind = "TAP" if ndd.is_tap else "TUN"
    label, dev = f"IPv6 {kind}", ndd.ndd_name
    print(f"== IPv6 over {kind} {dev}: kernel {kernel_ip}/{PLEN} in netns {host.name}, stack {stack_ip}/{PLEN}"
          + (" (Neighbor Discovery both ways, DAD)" if ndd.is_tap else " (no DAD on TUN, as Linux)")
          + ("" if ndd.offload else "; offloads off: every checksum computed in full, both ways"))
    t0 = trio.current_time()
    ndd.create()
    adopt6(host, dev, kernel_ip)
    prefix = f"{kind.lower()}6"
    dump = Tcpdump(host, dev, out / f"{prefix}-kernel.pcap")
    try:
        # before the stack starts: its DAD probes are the first thing it sends
        report.step(f"{label}: tcpdump listening in the namespace", await dump.start())
        await _device_steps(report, out, host, ndd, kernel_ip, stack_ip, label, dump)
    finally:
        dump.kill()
    print(f"    IPv6 {kind} section: {trio.current_time() - t0:.2f} s")


async def _device_steps(report: Report, out: Path, host: NetnsHost, ndd: TunTapNdd, kernel_ip: str,
                        stack_ip: str, label: str, dump: Tcpdump) -> None:
    prefix, dev = f"{label.split()[1].lower()}6", ndd.ndd_name
    async with Stack(f"demo-{prefix}") as st:
        rec = PcapRecorder.attach(ndd, str(out / f"{prefix}-stack.pcap"))
        t_dad = trio.current_time()
        st.add_interface(ndd, f"{stack_ip}/{PLEN}")
        addrs = await wait_preferred(st, dev, DAD_WAIT)
        link_local = next((a for a in addrs if a.startswith("fe80:")), "")
        report.step(f"{label}: the stack's addresses are usable"
                    + (" after DAD (tentative -> preferred)" if ndd.is_tap else " at once (no DAD on TUN)"),
                    addrs.get(stack_ip) == "preferred" and addrs.get(link_local) == "preferred",
                    ", ".join(f"{a} {s}" for a, s in addrs.items())
                    + f" in {trio.current_time() - t_dad:.2f} s")
        await linux_pings(report, host, stack_ip, label)
        if ndd.is_tap:
            neigh = (await run(host.exec_argv("ip", "-6", "neigh", "show", stack_ip, "dev", dev))).stdout.decode()
            report.step(f"{label}: Linux resolved the stack's MAC by Neighbor Discovery (`ip -6 neigh`)",
                        f"lladdr {mac_to_str(ndd.ndd_physaddr)}" in neigh.lower(), neigh.strip())
        await stack_pings(report, st, kernel_ip, label)
        await stack_pings(report, st, kernel_ip, label, size=4000)
        kernel_ll = await kernel_link_local(host, dev)
        if kernel_ll is None:
            report.step(f"{label}: the stack pings Linux's link-local address", False,
                        "the kernel's link-local address stayed tentative")
        else:
            await stack_pings(report, st, f"{kernel_ll}%{dev}", label)
        if ndd.is_tap:
            report_neighbour(report, st, ndd, kernel_ip, label)
        else:
            await udp_steps(report, st, host, kernel_ip, stack_ip, label)
        # without offloads every MSS is a frame of its own in the capture: 1 MB, not 10
        await tcp_captured(report, st, host, kernel_ip, stack_ip, label,
                           HTTP_BYTES if ndd.vnet else HTTP_BYTES // 10)
        rec.close()
        captured = await dump.stop()
        if not ndd.is_tap:
            await tcp_bulk(report, st, host, kernel_ip, stack_ip, label)
        stats = st.stats()
        link_local = next((a for a in stack_addresses(st, dev) if a.startswith("fe80:")), link_local)
    report.step(f"{label}: tcpdump in the namespace saw the exchange", captured >= 30, f"{captured} packets captured")
    if ndd.is_tap:
        await dad_on_the_wire(report, out / f"{prefix}-kernel.pcap", [stack_ip, link_local], label)
    await tshark_check6(report, out / f"{prefix}-stack.pcap", [stack_ip, link_local], label, offloaded=ndd.vnet)
    ip6, icmp6, nd = stats["ipv6"], stats["icmpv6"], stats["nd"]
    print(f"    stack counters: ipv6 in={ip6['in_receives']} delivered={ip6['in_delivers']} "
          f"reasm ok={ip6['reasm_oks']} frag ok={ip6['out_frag_oks']}; icmpv6 in={icmp6['in_msgs']} "
          f"out={icmp6['out_msgs']}; nd: {', '.join(f'{k}={v}' for k, v in nd.items() if v)}")


async def udp_steps(report: Report, st: Stack, host: NetnsHost, kernel_ip: str, stack_ip: str, label: str) -> None:
    echo_stats = ServiceStats()
    async with trio.open_nursery() as services:
        await services.start(lambda task_status: udp_echo(st, 7, stats=echo_stats, task_status=task_status))
        report.step(f"{label}: the stack serves UDP echo on [{stack_ip}]:7", True)
        await linux_udp_echo(report, host, stack_ip, label)
        services.cancel_scope.cancel()
    print(f"    echo service: {echo_stats.received} datagrams in, {echo_stats.sent} out, {echo_stats.errors} errors")
    await stack_udp_refused(report, st, kernel_ip, label)


def report_neighbour(report: Report, st: Stack, ndd: TunTapNdd, kernel_ip: str, label: str) -> None:
    """The stack's neighbour cache holds Linux's MAC for its address (RFC 4861 §7.3)."""
    cache = st.inet6.ifaces[st.interface(ndd.ndd_name).index].nd
    entries = {addr: (state, mac) for addr, state, mac, _router in cache.table()} if cache is not None else {}
    state, mac = entries.get(ip6_to_int(kernel_ip), ("absent", b""))
    report.step(f"{label}: the stack resolved Linux's MAC by Neighbor Discovery", bool(mac) and mac == ndd.kernel_mac,
                f"{kernel_ip} lladdr {mac_to_str(mac) if mac else '?'} {state}")


async def _tshark_rows(pcap: Path, display_filter: str, fields: tuple[str, ...],
                       occurrence: str = "f") -> tuple[int, list[list[str]]]:
    """(exit status, one row of `fields` per frame matching `display_filter`); a field found
    more than once in a frame (in an ICMPv6 error) is its first or last (`occurrence`) one."""
    argv = ["tshark", "-n", "-r", str(pcap), "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
            "-Y", display_filter, "-T", "fields", "-E", f"occurrence={occurrence}",
            *(a for f in fields for a in ("-e", f))]
    r = await run(argv)
    return r.returncode, [ln.split("\t") for ln in r.stdout.decode().splitlines() if ln.strip()]


async def dad_on_the_wire(report: Report, pcap: Path, addrs: list[str], label: str) -> None:
    """The stack's DAD probes in the kernel's capture: NS from :: for each address, to its
    solicited-node group ff02::1:ffXX:XXXX (RFC 4862 §5.4.2)."""
    if shutil.which("tshark") is None:
        report.step(f"{label}: DAD seen on the wire", False, "tshark is not installed")
        return
    _, rows = await _tshark_rows(pcap, "icmpv6.type == 135 && ipv6.src == ::",
                                 ("icmpv6.nd.ns.target_address", "ipv6.dst"))
    probes = {target: dst for target, dst in (r[:2] for r in rows if len(r) >= 2)}
    want = {a: solicited_node(a) for a in addrs if a}
    report.step(f"{label}: the stack's DAD seen by tcpdump (NS from :: to the solicited-node group)",
                bool(want) and all(probes.get(a) == g for a, g in want.items()),
                "; ".join(f"NS for {t} to {d}" for t, d in probes.items()) or "no probe captured")


def solicited_node(addr: str) -> str:
    """ff02::1:ffXX:XXXX for the low 24 bits of `addr` (RFC 4291 §2.7.1)."""
    low = ip6_to_int(addr) & 0xFFFFFF
    return f"ff02::1:ff{low >> 16:02x}:{low & 0xFFFF:x}"


async def tshark_check6(report: Report, pcap: Path, stack_addrs: list[str], label: str, offloaded: bool) -> None:
    """tshark reads the stack's capture: no malformed frame; every ICMPv6 checksum good;
    every TCP/UDP checksum good or, on a device with checksum offload (`offloaded`), for a
    frame handed over with a partial checksum, the pseudo-header sum the device completes;
    every hop limit from the stack as the RFCs say."""
    if shutil.which("tshark") is None:
        report.step(f"{label}: tshark check", False, "tshark is not installed")
        return
    mine, wrong_hlim = hop_limit_filters(stack_addrs)
    queries = {
        "frames": ("frame", ("frame.number",), "f"),
        "malformed": ("_ws.malformed", ("frame.number",), "f"),
        "icmp": ("icmpv6", ("icmpv6.checksum.status",), "f"),            # the outer message's
        # the last IPv6 header and the transport after it (in an ICMPv6 error: the quoted one)
        "l4": ("tcp || udp", ("ipv6.src", "ipv6.dst", "tcp.checksum.status", "tcp.checksum", "tcp.hdr_len",
                              "tcp.len", "udp.checksum.status", "udp.checksum", "udp.length",
                              "tcp.checksum_calculated", "udp.checksum_calculated"), "l"),
        "sent": (mine, ("frame.number",), "f"),
        "wrong_hlim": (wrong_hlim, ("frame.number",), "f"),
    }
    results: dict[str, tuple[int, list[list[str]]]] = {}

    async def query(name: str) -> None:
        results[name] = await _tshark_rows(pcap, *queries[name])

    async with trio.open_nursery() as n:      # six reads of one file: at once
        for name in queries:
            n.start_soon(query, name)
    tshark_ok = all(rc == 0 for rc, _ in results.values())
    rows = {name: r for name, (_, r) in results.items()}
    frames, icmp, l4 = rows["frames"], rows["icmp"], rows["l4"]
    icmp_bad = sum(r[0] != "1" for r in icmp)
    verdicts = [l4_checksum(row) for row in l4]
    bad = [row for row, v in zip(l4, verdicts, strict=True) if v == "bad"]
    print(f"    tshark view of {pcap.name}: {len(frames)} frames, {len(icmp)} ICMPv6, {len(l4)} TCP/UDP")
    report.step(f"{label}: tshark finds no malformed frame in {pcap.name}",
                tshark_ok and not rows["malformed"] and frames != [],
                f"{len(rows['malformed'])} malformed of {len(frames)}")
    checked = verdicts.count("good") + verdicts.count("partial")
    # without offloads nobody may leave a checksum to the device: a partial one is wrong
    partial_ok = offloaded or "partial" not in verdicts
    report.step(f"{label}: every ICMPv6, TCP and UDP checksum valid"
                + ("" if offloaded else " (no offload: each one in full)"),
                tshark_ok and icmp_bad == 0 and not bad and partial_ok and len(icmp) > 0 and checked > 0,
                f"ICMPv6 {len(icmp) - icmp_bad} good, {icmp_bad} bad; TCP/UDP {verdicts.count('good')} good, "
                f"{verdicts.count('partial')} offloaded (pseudo-header sum right), {len(bad)} bad"
                + (f", {verdicts.count('unverified')} quoted in part (not checkable)" if 'unverified' in verdicts
                   else "")
                + (f": {bad[:3]}" if bad else ""))
    report.step(f"{label}: every packet from the stack has hop limit 64 (ND 255, MLD 1)",
                tshark_ok and not rows["wrong_hlim"] and len(rows["sent"]) > 0,
                f"{len(rows['wrong_hlim'])} of {len(rows['sent'])} otherwise")


def l4_checksum(row: list[str]) -> str:
    """good (tshark verified it), partial (the folded pseudo-header sum a device completes:
    virtio_net NEEDS_CSUM, the stack's or the kernel's offload), unverified (tshark had
    not the whole segment: a truncated quote in an ICMPv6 error), or bad."""
    src, dst, tcp_status, tcp_sum, tcp_hdr, tcp_len, udp_status, udp_sum, udp_len, tcp_calc, udp_calc = \
        (row + [""] * 11)[:11]
    status, field, calculated = (tcp_status, tcp_sum, tcp_calc) if tcp_status else (udp_status, udp_sum, udp_calc)
    if status == "1":
        return "good"
    if status == "0" and field and calculated and int(field, 16) == 0xFFFF and int(calculated, 16) == 0:
        # the other zero of ones' complement (RFC 1624 §3: 0xFFFF is -0, 0 is +0; the
        # sum over the segment verifies either way): Linux's skb_checksum_help writes it for
        # a checksum that folds to 0 (CSUM_MANGLED_0), for TCP too -- tshark calls it bad
        return "good"
    if status == "2":     # tshark could not check it: a header quoted in an ICMPv6 error, cut short
        return "unverified"
    if not src or not field:
        return "bad"
    proto, length = ((IPPROTO_TCP, int(tcp_hdr) + int(tcp_len)) if tcp_status else (IPPROTO_UDP, int(udp_len)))
    expect = pseudo_header_sum(ip6_to_int(src.partition("%")[0]), ip6_to_int(dst.partition("%")[0]), proto, length)
    return "partial" if int(field, 16) in (expect, expect % 0xFFFF) else "bad"


def hop_limit_filters(stack_addrs: list[str]) -> tuple[str, str]:
    """Display filters: (packets from the stack, those of them with the wrong hop limit).
    Hop limit 64 (Linux's default), Neighbor Discovery 255 (RFC 4861 §6.1, §7.1), MLD
    reports 1 (RFC 3810 §5); the outer header only (`#1`), not one quoted in an error.
    The unspecified source is the stack's DAD probes and its MLD reports sent during DAD."""
    mine = " || ".join(f"ipv6.src#1 == {a}" for a in [*stack_addrs, "::"] if a)
    nd = "(icmpv6.type#1 >= 133 && icmpv6.type#1 <= 137)"
    mld = f"icmpv6.type#1 == {MLD_REPORT_V2}"
    right = (f"({nd} && ipv6.hlim#1 == 255) || ({mld} && ipv6.hlim#1 == 1) "
             f"|| (!{nd} && !({mld}) && ipv6.hlim#1 == 64)")
    return f"({mine})", f"({mine}) && !({right})"
