"""Fuzz targets for the IPv6 cores (issue 12; not yet wired into a Stack, so each is fed
directly): a packet through the fixed header and the extension-header chain, its
fragments into the reassembler; any ICMPv6 message through the codecs and the ND/MLD
receipt checks; the neighbor cache driven by NS/NA/resolve/time steps."""
from __future__ import annotations

import random
import typing
from dataclasses import fields

from ndd.pktbuf import PacketBuffer
from protocols.icmpv6 import mld, nd
from protocols.icmpv6.message import parse_message
from protocols.icmpv6.stats import Icmpv6Stats, MldStats, NdStats
from protocols.ipv6.exthdr import Chain, resume_after_reassembly, walk_chain
from protocols.ipv6.frag import Datagram, Ipv6Reassembler, ParamProblem
from protocols.ipv6.nd import NdConfig, NeighborCache
from protocols.ipv6.stats import Ipv6Stats
from protocols.ipv6.wire import HDR_LEN, Ipv6Repr

from . import check, target
from .harness import TIME_STEPS, Fdp, mutate, pick, steps

IPV6_COUNTERS = {f.name for f in fields(Ipv6Stats)}
ICMPV6_SECTIONS = {"icmpv6": {f.name for f in fields(Icmpv6Stats)}, "nd": {f.name for f in fields(NdStats)},
                   "mld": {f.name for f in fields(MldStats)}}
LINK_LOCAL, GLOBAL = 0xFE80 << 112 | 1, 0x2001_0DB8 << 96 | 2
ADDRS = (LINK_LOCAL, GLOBAL, 0, 0xFF02 << 112 | 1, 0xFF02 << 112 | 0x1_FF00_0001, 0xFF02 << 112 | 0x16, 1)
NEXT_HEADERS = (0, 43, 44, 60, 58, 6, 17, 59, 51, 50, 135, 253)
# a few chains worth starting from: hop-by-hop with Router Alert, a fragment header, RH0, dst opts
# errors quote at most 1232 octets, a Redirect's redirected header 1192: shorter ones round-trip
ROUND_TRIP_MAX = 1200
ND_MESSAGES = typing.get_args(nd.AnyNdMessage)
MLD_MESSAGES = typing.get_args(mld.AnyMldMessage)
SEEDS = (bytes((58, 0, 5, 2, 0, 0, 1, 0)), bytes((17, 0, 0, 0, 0, 0, 0, 7)), bytes((58, 0, 0, 8, 0, 1, 0, 0)),
         bytes((6, 0, 1, 4, 0, 0, 0, 0)), bytes((44, 0, 1, 2, 0, 0)) + bytes((17, 0, 0, 9, 0, 0, 0, 1)))


@target("ipv6_packet")
def ipv6_packet(data: bytes) -> None:
    """Packets of one flow: the fixed header, the chain walk, fragments into the reassembler."""
    fdp = Fdp(data)
    reasm = Ipv6Reassembler(max_bytes=64 << 10, max_datagrams=8)
    now = 0.0
    for _ in steps(fdp, 16):
        body = mutate(fdp, pick(fdp, SEEDS) + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 96)))
        src, dst, nh = pick(fdp, ADDRS), pick(fdp, ADDRS), pick(fdp, NEXT_HEADERS)
        frame = Ipv6Repr(src, dst, nh, len(body)).to_bytes() + body
        frame = mutate(fdp, frame, 2) if fdp.ConsumeBool() else frame
        h = Ipv6Repr.parse(frame)
        if isinstance(h, str):
            check(h in IPV6_COUNTERS, f"header drop reason {h!r} is no Ipv6Stats counter")
            continue
        packet = frame[:h.total_len]
        verdict = walk_chain(packet, h.next_header, dst_multicast=h.dst >> 120 == 0xFF)
        if not isinstance(verdict, Chain):
            check(verdict.reason in IPV6_COUNTERS, f"chain drop reason {verdict.reason!r} is no counter")
            if verdict.param_problem is not None:
                check(0 <= verdict.param_problem[1] < len(packet), "parameter problem points outside")
            continue
        check(HDR_LEN <= verdict.offset <= len(packet), "the upper layer starts outside the packet")
        info = verdict.fragment
        if info is None or not verdict.needs_reassembly:
            continue
        got = reasm.add(h.src, h.dst, packet[:info.hdr_offset], info.nh_field, info.header,
                        packet[info.payload_offset:], now)
        if isinstance(got, Datagram):
            resumed = resume_after_reassembly(got.packet, verdict, dst_multicast=False)
            check(isinstance(resumed, Chain) or resumed.reason in IPV6_COUNTERS, "resumed walk's reason")
        elif isinstance(got, ParamProblem):
            check(0 <= got.pointer < len(packet), "reassembly parameter problem points outside")
        check(reasm.memory <= reasm.max_bytes, "reassembly memory over its budget")
        now += pick(fdp, TIME_STEPS)
        reasm.poll(now)
        at = reasm.poll_at()
        check(at is None or at > now, "the reassembler's next deadline is not in the future")


@target("icmpv6_message")
def icmpv6_message(data: bytes) -> None:
    """Any ICMPv6 message: parse, the ND/MLD receipt checks, and emit back to the same octets."""
    fdp = Fdp(data)
    src, dst, hop_limit = pick(fdp, ADDRS), pick(fdp, ADDRS), pick(fdp, (255, 1, 64, 254))
    message = fdp.ConsumeBytes(fdp.remaining_bytes())
    msg = parse_message(message, src, dst, verify=False)
    if isinstance(msg, tuple):
        section, counter = msg
        check(counter in ICMPV6_SECTIONS.get(section, ()), f"drop {msg!r} names no counter")
        return
    if isinstance(msg, ND_MESSAGES):
        reason = nd.validate(msg, src, dst, hop_limit)
        check(reason is None or reason in ICMPV6_SECTIONS["nd"], f"ND reason {reason!r}")
    elif isinstance(msg, MLD_MESSAGES):
        reason = mld.validate(msg, src, dst, hop_limit)
        check(reason is None or reason in ICMPV6_SECTIONS["mld"], f"MLD reason {reason!r}")
    if len(message) <= ROUND_TRIP_MAX:     # longer ones are cut on emit (RFC 4443 §2.4(c))
        again = parse_message(msg.emit(src, dst), src, dst)
        check(again == msg, "a parsed message does not emit back to itself")


@target("ipv6_nd_cache")
def ipv6_nd_cache(data: bytes) -> None:
    """The neighbor cache under packets to resolve, NS and NA of any kind, and time."""
    fdp = Fdp(data)
    cfg = NdConfig(max_entries=16, max_incomplete=4)
    cache = NeighborCache(config=cfg, rng=random.Random(1))
    neighbours = [0xFE80 << 112 | i for i in range(1, 24)]
    macs = (b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02", None)
    now = 0.0
    for _ in steps(fdp):
        op, addr = fdp.ConsumeIntInRange(0, 4), pick(fdp, neighbours)
        if op == 0:
            cache.resolve(addr, PacketBuffer(b"x" * fdp.ConsumeIntInRange(1, 1500)), now)
        elif op == 1:
            cache.input_ns(addr, pick(fdp, macs), now)
        elif op == 2:
            cache.input_na(addr, pick(fdp, macs), fdp.ConsumeBool(), fdp.ConsumeBool(), fdp.ConsumeBool(), now)
        elif op == 3:
            cache.confirm_reachable(addr, now)
        else:
            now += pick(fdp, TIME_STEPS)
            cache.poll(now)
            at = cache.poll_at()
            check(at is None or at > now, "the neighbor cache's next deadline is not in the future")
        check(len(cache.table()) <= cfg.max_entries, "the neighbor table outgrew its bound")


# --- the whole IPv6 host (protocols/ipv6/host.py): ND, MLD, RAs and echoes on one interface ---
HOST_MAC = b"\x02\x00\x00\x00\x00\x01"
ROUTERS = tuple(0xFE80 << 112 | i for i in range(1, 40))
PREFIXES = tuple((0x2001_0DB8_0000_0000 + i) << 64 for i in range(40))


class _HostLink:
    """EtherLink's IPv6 side for the fuzzer: everything the host sends must be a sane packet."""

    def __init__(self) -> None:
        self.sent = 0

    def _check(self, pkt: PacketBuffer) -> int:
        h = Ipv6Repr.parse(pkt.tobytes())
        check(not isinstance(h, str), f"the host sent a malformed IPv6 packet ({h})")
        self.sent += 1
        return 0

    def cached_header(self, nexthop: int) -> bytes | None:
        return None                   # contracts.LinkOutput: no header ready, output() each time

    def cached_header6(self, nexthop: int, src: int, now: float) -> bytes | None:
        return None

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        return self._check(pkt)

    def send_ipv6(self, pkt: PacketBuffer, mac: bytes) -> int:
        return self._check(pkt)


def _host_message(fdp: Fdp, ll: int) -> bytes:
    """An ICMPv6 message a neighbour might send: an RA with prefixes/MTU/RDNSS, an NS or NA about
    us or others, a redirect, an MLD query, an echo -- fields from the input, then mutated."""
    kind = fdp.ConsumeIntInRange(0, 5)
    mac = nd.SourceLinkLayerAddress(pick(fdp, (b"\x02\x00\x00\x00\x00\x09", b"\x01\x00\x00\x00\x00\x00")))
    msg: typing.Any
    if kind == 0:
        opts: list[typing.Any] = [mac, nd.Mtu(fdp.ConsumeIntInRange(0, 70000))]
        for _ in range(fdp.ConsumeIntInRange(0, 4)):
            opts.append(nd.PrefixInformation(64 if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 128),
                                             fdp.ConsumeBool(), fdp.ConsumeBool(),
                                             pick(fdp, (0, 30, 7200, 0xFFFFFFFF)), pick(fdp, (0, 20, 0xFFFFFFFF)),
                                             pick(fdp, PREFIXES)))
        opts.append(nd.Rdnss(pick(fdp, (0, 60, 0xFFFFFFFF)), tuple(pick(fdp, PREFIXES) | 0x53 for _ in range(3))))
        msg = nd.RouterAdvertisement(options=tuple(opts), cur_hop_limit=fdp.ConsumeIntInRange(0, 255),
                                     router_lifetime=pick(fdp, (0, 30, 1800, 9000)),
                                     reachable_time=fdp.ConsumeIntInRange(0, 1 << 20),
                                     retrans_timer=fdp.ConsumeIntInRange(0, 1 << 20),
                                     preference=fdp.ConsumeIntInRange(0, 3))
    elif kind == 1:
        msg = nd.NeighborSolicitation(target=pick(fdp, (ll, ROUTERS[0], PREFIXES[0] | 1)), options=(mac,))
    elif kind == 2:
        msg = nd.NeighborAdvertisement(target=pick(fdp, (ll, ROUTERS[0], ROUTERS[1])), router=fdp.ConsumeBool(),
                                       solicited=fdp.ConsumeBool(), override=fdp.ConsumeBool(),
                                       options=(nd.TargetLinkLayerAddress(mac.lladdr),))
    elif kind == 3:
        msg = nd.Redirect(target=pick(fdp, ROUTERS), destination=pick(fdp, PREFIXES) | 7)
    elif kind == 4:
        msg = mld.MldQuery(max_resp_code=fdp.ConsumeIntInRange(0, 0xFFFF), group=pick(fdp, (0, ll | 0xFF02 << 112)))
    else:
        from protocols.icmpv6.wire import EchoRequest
        msg = EchoRequest(fdp.ConsumeIntInRange(0, 0xFFFF), 1, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64)))
    return msg.to_repr().emit(0, 0)     # checksum fixed by the caller for the real addresses


@target("ipv6_host")
def ipv6_host(data: bytes) -> None:
    """The IPv6 host on one Ethernet interface under neighbours' ND/MLD/echo traffic and time:
    nothing raises, whatever it sends parses, and every table stays within its bound."""
    import socket

    from protocols.contracts import ProtocolSwitch, Protosw
    from protocols.icmpv6.wire import icmpv6_checksum
    from protocols.ifnet import IFF_RUNNING, IFF_UP, Interface
    from protocols.ipv6.host import MAX_RDNSS, Inet6Host

    fdp = Fdp(data)
    clock = [0.0]
    protosw = ProtocolSwitch()
    protosw.add_domain(socket.AF_INET6, "internet6")
    host = Inet6Host(protosw, lambda: clock[0], rng=random.Random(3))
    protosw.add(socket.AF_INET6, Protosw("icmpv6", socket.SOCK_RAW, 58, input=host.icmp.input,
                                         ctlinput=host.icmp.ctlinput))

    class _Ndd:
        ndd_name, ndd_mtu, ndd_physaddr = "eth0", 1500, HOST_MAC

    ifp = Interface("eth0", _Ndd(), 1, 1500, IFF_UP | IFF_RUNNING)  # type: ignore[arg-type]
    link = _HostLink()
    ifp.link = link
    state = host.attach(ifp, 0.0, mac=HOST_MAC)
    host.start(state, 0.0)
    cores = [*host.timed_cores(), *state.timed_cores()]
    for _ in steps(fdp, 24):
        if fdp.ConsumeBool():
            clock[0] += pick(fdp, TIME_STEPS)
            for core in cores:
                at = core.poll_at()
                if at is not None and at <= clock[0]:
                    core.poll(clock[0])
            continue
        ll = next((a.addr for a in host.addresses(ifp, clock[0]) if a.addr >> 112 == 0xFE80), 0xFE80 << 112 | 2)
        src = pick(fdp, (*ROUTERS[:3], 0, PREFIXES[0] | 9))
        dst = pick(fdp, (0xFF02 << 112 | 1, ll, 0xFF02 << 112 | 0x1_FF00_0000 | ll & 0xFFFFFF))
        body = bytearray(_host_message(fdp, ll))
        body[2:4] = b"\x00\x00"
        body[2:4] = icmpv6_checksum(body, src, dst).to_bytes(2, "big")
        body = bytearray(mutate(fdp, bytes(body), 1)) if fdp.ConsumeIntInRange(0, 3) == 0 else body
        hop_limit = 1 if body and body[0] in (130, 131, 132, 143) else 255
        packet = Ipv6Repr(src, dst, 58, len(body), hop_limit).to_bytes() + bytes(body)
        pkt = PacketBuffer(bytes(14) + packet, 14)
        pkt.ll_bcast = dst >> 120 == 0xFF
        host.ip.input(ifp, pkt, clock[0])
        cfg = host.routes.config
        check(len(host.routes.routers()) <= cfg.max_ra_routers, "the default router list outgrew its bound")
        check(len(host.routes.prefixes()) <= cfg.max_ra_prefixes, "the prefix list outgrew its bound")
        check(len(host.addresses(ifp, clock[0])) <= state.addrconf.config.max_total, "addresses beyond the bound")
        check(len(state.rdnss) <= MAX_RDNSS, "more RDNSS servers than the bound")
        check(state.nd is not None and len(state.nd.table()) <= state.nd.config.max_entries, "neighbor cache bound")
        check(1280 <= host.link_mtu(ifp) <= 1500, "the IPv6 link MTU left [1280, link MTU]")


# --- whole IPv6 frames into a Stack: TCP and UDP over IPv6, ICMPv6, fragments -------------------
US6, PEER6, FAR6 = 0xFD00 << 112 | 2, 0xFD00 << 112 | 1, 0x2001_0DB8 << 96 | 9
SOURCES6 = (PEER6, FAR6, 0xFE80 << 112 | 1, US6, 0, 0xFF02 << 112 | 1, 1, 0xFFFF_0A00_0001)
DESTS6 = (US6, US6, US6, 0xFF02 << 112 | 1, 0xFF02 << 112 | 0x1_FF00_0002, PEER6, 1)


def _l4_6(fdp: Fdp, nh: int, src: int, dst: int) -> bytes:
    """A TCP segment, UDP datagram or ICMPv6 message that reaches an endpoint, checksummed over
    the IPv6 pseudo-header most of the time; raw bytes otherwise."""
    import struct

    from ndd.checksum import checksum
    from protocols.ipv6.wire import pseudo_header_sum

    if not fdp.ConsumeBool():
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))
    size = fdp.ConsumeIntInRange(0, 120)
    data = fdp.ConsumeBytes(size) if fdp.ConsumeBool() else bytes(size * 25)
    if nh == 17:
        body = bytearray(struct.pack("!HHHH", pick(fdp, (53, 5353, 9)), pick(fdp, (53, 9)), 8 + len(data), 0) + data)
        at = 6
    elif nh == 6:
        flags = pick(fdp, (0x02, 0x10, 0x04, 0x12, 0x11, 0x18))
        body = bytearray(struct.pack("!HHIIBBHHH", fdp.ConsumeIntInRange(1000, 1002), pick(fdp, (80, 81)),
                                     fdp.ConsumeIntInRange(0, 0xFFFFFFFF), 0, 0x50, flags, 0xFFFF, 0, 0) + data[:100])
        at = 16
    else:
        type_ = pick(fdp, (128, 129, 1, 2, 3, 4, 135, 136, 134))
        body = bytearray(struct.pack("!BBHI", type_, 0, 0, fdp.ConsumeIntInRange(0, 0xFFFFFFFF)) + data[:200])
        at = 2
    if fdp.ConsumeIntInRange(0, 3):
        body[at:at + 2] = checksum(body, pseudo_header_sum(src, dst, nh, len(body))).to_bytes(2, "big")
    return bytes(body)


@target("stack_ipv6")
def stack_ipv6(data: bytes) -> None:
    """Whole IPv6 frames (fragmented or not) into a Stack over TUN or TAP with an AF_INET6
    TCP listener on :: port 80 and UDP sockets on [::]:53 and connected to [fd00::1]:5353."""
    import socket

    from protocols.tcp.usrreq import TcpUserRequests
    from protocols.udp.usrreq import UdpUserRequests

    from .harness import CaptureNdd, ClockStack

    fdp = Fdp(data)
    ether = fdp.ConsumeBool()
    st = ClockStack(seed=5)
    ndd = CaptureNdd("tap0" if ether else "tun0", ether=ether)
    st.add_interface(ndd, "10.0.0.2/24")
    st.add_address(ndd.ndd_name, "fd00::2/64", dad=False)
    t = TcpUserRequests(st.tcp, family=socket.AF_INET6)
    lst = t.attach(st.t)
    assert t.bind(lst, (0, 80, 0, 0), st.t) == 0 and t.listen(lst, 4, st.t) == 0
    u = UdpUserRequests(st.udp, family=socket.AF_INET6)
    pcbs = [u.attach(st.t), u.attach(st.t)]
    assert u.bind(pcbs[0], (0, 53, 0, 0), st.t) == 0
    assert u.connect(pcbs[1], (PEER6, 5353, 0, 0), st.t) == 0
    for _ in steps(fdp, 24):
        if fdp.ConsumeIntInRange(0, 4) == 0:
            st.tick(pick(fdp, TIME_STEPS))
            ndd.out.clear()
            continue
        nh = pick(fdp, (6, 17, 58, 6, 17))
        src, dst = pick(fdp, SOURCES6), pick(fdp, DESTS6)
        payload = _l4_6(fdp, nh, src, dst)
        packets = [Ipv6Repr(src, dst, nh, len(payload), fdp.ConsumeIntInRange(0, 255)).to_bytes() + payload]
        if fdp.ConsumeBool() and len(payload) > 8:
            from protocols.ipv6.exthdr import encode_fragment_header
            ident, cut = fdp.ConsumeIntInRange(0, 3), 8 * fdp.ConsumeIntInRange(1, max(1, len(payload) // 8))
            pieces = [(0, payload[:cut], cut < len(payload)), (cut, payload[cut:], False)]
            packets = [Ipv6Repr(src, dst, 44, 8 + len(p), 64).to_bytes()
                       + encode_fragment_header(nh, off, more, ident) + p for off, p, more in pieces if p or off == 0]
            if fdp.ConsumeBool():
                packets.reverse()
        for packet in packets:
            if fdp.ConsumeIntInRange(0, 7) == 0:
                packet = mutate(fdp, packet, 3)
            frame = (b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x86\xdd" + packet) if ether else packet
            ndd.deliver(PacketBuffer(frame))
            ndd.out.clear()
        for pcb in pcbs:
            check(pcb.queued <= pcb.rcvbuf, "a UDP queue outgrew its buffer")
        check(0 <= st.inet6.ip.reasm.memory <= st.inet6.ip.reasm.max_bytes, "IPv6 reassembly memory out of bounds")
