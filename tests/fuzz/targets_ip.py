"""Fuzz targets for the IPv4 side below TCP: the whole receive path from `Ndd.deliver` of a
Stack over TUN (raw IP) and TAP (Ethernet, with ARP), each frame optionally behind a
virtio_net_hdr applied the way the TUN/TAP reader applies it; IPv4 reassembly sequences on
the Reassembler itself; ARP on its cache; ICMP errors against live TCP and UDP endpoints;
UDP datagrams against bound and connected sockets; the virtio header codec."""
from __future__ import annotations

import struct

from drivers import vnet
from ndd.pktbuf import PacketBuffer
from protocols.arp import ArpCache, ArpConfig, ArpRepr
from protocols.ipfrag import MAX_DATAGRAM, Reassembler
from protocols.tcp.usrreq import TcpUserRequests
from protocols.udp.usrreq import UdpUserRequests

from . import check, target
from .harness import (
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TIME_STEPS,
    CaptureNdd,
    ClockStack,
    Fdp,
    fix_checksums,
    ip_header,
    ip_packet,
    l4_checksum,
    mutate,
    pick,
    run_timers,
    steps,
)
from .targets_tcp import A_IP, B_IP, TcpWorld

US, PEER, OTHER, FAR = 0x0A000002, 0x0A000001, 0x0A000009, 0xC0000201
SOURCES = (PEER, OTHER, FAR, US, 0x0A0000FF, 0x7F000001, 0, 0xE0000001, 0xFFFFFFFF)
DESTS = (US, US, US, 0x0A0000FF, 0xFFFFFFFF, 0xE0000001, 0xE00000FB, OTHER, 0x7F000001)
OUR_MAC, PEER_MAC = b"\x02\x00\x00\x00\x00\x02", b"\x02\x00\x00\x00\x00\x01"
MACS = (OUR_MAC, b"\xff" * 6, PEER_MAC, b"\x01\x00\x5e\x00\x00\x01", b"\x02\x00\x00\x00\x00\x09", bytes(6))
ETHERTYPES = (0x0800, 0x0806, 0x0800, 0x86DD, 0x8100, 0x88CC)
UDP_PORTS = (53, 7, 5353, 9, 40000)
PROTOS = (IPPROTO_UDP, IPPROTO_TCP, IPPROTO_ICMP, 2, 47, 255)


class NetHost:
    """One Stack (10.0.0.2/24) on a TUN- or TAP-like device, with a TCP listener on port 80,
    UDP sockets bound to 53 (wildcard), 10.0.0.2:7 (SO_BROADCAST) and one connected to
    10.0.0.1:5353 -- the endpoints a frame can reach."""

    def __init__(self, ether: bool) -> None:
        self.ether = ether
        self.stack = st = ClockStack(seed=3)
        self.ndd = CaptureNdd("tap0" if ether else "tun0", ether=ether, physaddr=OUR_MAC)
        st.add_interface(self.ndd, "10.0.0.2/24")
        st.add_route("0.0.0.0/0", gateway="10.0.0.1")
        self.tcp_user = TcpUserRequests(st.tcp)
        self.lst = self.tcp_user.attach(st.t)
        assert self.tcp_user.bind(self.lst, (0, 80), st.t) == 0 and self.tcp_user.listen(self.lst, 4, st.t) == 0
        self.udp_user = u = UdpUserRequests(st.udp)
        self.pcbs = [u.attach(st.t), u.attach(st.t), u.attach(st.t)]
        assert u.bind(self.pcbs[0], (0, 53), st.t) == 0
        assert u.bind(self.pcbs[1], (US, 7), st.t) == 0
        self.pcbs[1].broadcast = True
        assert u.connect(self.pcbs[2], (PEER, 5353), st.t) == 0
        self.ndd.out.clear()

    def frame(self, fdp: Fdp, ip: bytes) -> bytes:
        if not self.ether:
            return ip
        return pick(fdp, MACS) + pick(fdp, MACS) + struct.pack("!H", pick(fdp, ETHERTYPES)) + ip

    def deliver(self, fdp: Fdp, frame: bytes) -> None:
        """As drivers/tuntap.py's reader: an optional virtio_net_hdr, then Ndd.deliver."""
        if fdp.ConsumeBool():
            hdr = fdp.ConsumeBytes(vnet.VNET_HDR_LEN)
            data = hdr + frame
            pkt = PacketBuffer(data, vnet.VNET_HDR_LEN)
            if len(data) < vnet.VNET_HDR_LEN or not vnet.apply_rx(data, pkt):
                return
        else:
            pkt = PacketBuffer(frame)
        self.ndd.deliver(pkt)
        del self.ndd.out[:]

    def check_invariants(self) -> None:
        st = self.stack
        for pcb in self.pcbs:
            check(pcb.queued <= pcb.rcvbuf, f"UDP queue {pcb.queued} > {pcb.rcvbuf}")
        reasm = st.ipv4.reasm
        check(0 <= reasm.memory <= reasm.max_bytes, f"reassembly memory {reasm.memory}")
        for arp in st._arp.values():
            check(len(arp.entries) <= arp.config.max_entries, "ARP table over its bound")
            for e in arp.entries.values():
                check(len(e.queue) <= arp.config.queue_len and e.queued <= arp.config.queue_bytes,
                      "ARP queue over its bound")


def l4_payload(fdp: Fdp, proto: int) -> bytes:
    """A transport header that reaches a socket (ports in use, sound lengths) or raw bytes."""
    if not fdp.ConsumeBool():
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))
    data = bytes(fdp.ConsumeIntInRange(0, 3000)) if fdp.ConsumeBool() else fdp.ConsumeBytes(64)
    if proto == IPPROTO_UDP:
        length = 8 + len(data) if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 0xFFFF)
        return struct.pack("!HHHH", pick(fdp, UDP_PORTS), pick(fdp, UDP_PORTS), length, 0) + data
    if proto == IPPROTO_TCP:
        flags = pick(fdp, (0x02, 0x10, 0x04, 0x12, 0x11, 0x18))
        return struct.pack("!HHIIBBHHH", fdp.ConsumeIntInRange(1000, 1002), pick(fdp, (80, 81)),
                           fdp.ConsumeIntInRange(0, 0xFFFFFFFF), 0, 0x50, flags, 0xFFFF, 0, 0) + data[:100]
    if proto == IPPROTO_ICMP:
        type_, code = pick(fdp, ((8, 0), (0, 0), (3, 3), (3, 4), (11, 0), (12, 0), (13, 0), (5, 0)))
        quoted = ip_packet(US, pick(fdp, (PEER, FAR)), pick(fdp, (IPPROTO_UDP, IPPROTO_TCP)),
                           struct.pack("!HHHH", pick(fdp, UDP_PORTS), pick(fdp, UDP_PORTS), 8, 0))
        rest = quoted if type_ not in (8, 0, 13) else data
        return struct.pack("!BBHI", type_, code, 0, fdp.ConsumeIntInRange(0, 0xFFFFFFFF)) + rest
    return data


def ip_datagrams(fdp: Fdp) -> list[bytes]:
    """One datagram, or its fragments in an order (and with duplicates) the input picks."""
    proto = pick(fdp, PROTOS)
    src, dst = pick(fdp, SOURCES), pick(fdp, DESTS)
    payload = bytearray(l4_payload(fdp, proto))
    if fdp.ConsumeBool():
        l4_checksum(payload, src, dst, proto)
    options = fdp.ConsumeBytes(4 * fdp.ConsumeIntInRange(0, 10)) if fdp.ConsumeBool() else b""
    ident = fdp.ConsumeIntInRange(0, 3)
    if not fdp.ConsumeBool():
        ff = 0x4000 if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 0xFFFF)
        return [ip_header(src, dst, proto, len(payload), ident=ident, ff=ff, ttl=fdp.ConsumeIntInRange(0, 255),
                          options=options) + bytes(payload)]
    frags: list[bytes] = []
    offset = 0
    while offset < len(payload) and len(frags) < 12:
        size = 8 * fdp.ConsumeIntInRange(0, 200) or len(payload)
        piece = bytes(payload[offset:offset + size])
        more = offset + len(piece) < len(payload)
        frags.append(ip_header(src, dst, proto, len(piece), ident=ident, ff=(0x2000 if more else 0) | offset // 8,
                               options=options if offset == 0 else b"") + piece)
        offset += len(piece)
    if fdp.ConsumeBool():
        frags.reverse()
    if frags and fdp.ConsumeBool():
        frags.insert(fdp.ConsumeIntInRange(0, len(frags)), pick(fdp, frags))
    return frags


def _arp_frame(fdp: Fdp) -> bytes:
    spa, tpa = pick(fdp, SOURCES + (US,)), pick(fdp, (US, PEER, OTHER, US))
    sha = pick(fdp, MACS)
    data = ArpRepr(fdp.ConsumeIntInRange(0, 3), sha, spa, pick(fdp, MACS), tpa).emit()
    if fdp.ConsumeBool():
        data = mutate(fdp, data, 3)
    return pick(fdp, MACS) + sha + b"\x08\x06" + data


def _app(h: NetHost, fdp: Fdp) -> None:
    st, now = h.stack, h.stack.t
    what = fdp.ConsumeIntInRange(0, 4)
    if what == 0:
        pcb = pick(fdp, h.pcbs)
        dst = None if pcb.connected and fdp.ConsumeBool() else (pick(fdp, (PEER, OTHER, FAR, 0x0A0000FF, US)),
                                                                pick(fdp, UDP_PORTS))
        h.udp_user.send(pcb, memoryview(bytes(fdp.ConsumeIntInRange(0, 9000))), dst, now)
    elif what == 1:
        h.udp_user.recv(pick(fdp, h.pcbs), 65536, fdp.ConsumeBool(), now)
    elif what == 2:
        accepted = h.tcp_user.accept(h.lst, now)
        if accepted is not None:
            h.tcp_user.detach(accepted[0], now)
    elif what == 3:
        st.icmp.send_echo(pick(fdp, (PEER, OTHER, FAR)), 1, fdp.ConsumeIntInRange(0, 3),
                          bytes(fdp.ConsumeIntInRange(0, 2000)), now, lambda *a: None)
    else:
        c = h.tcp_user.attach(now)
        h.tcp_user.connect(c, (pick(fdp, (PEER, OTHER, FAR)), 80), now)


def run_host(ether: bool, data: bytes, udp_only: bool = False) -> None:
    fdp = Fdp(data)
    h = NetHost(ether)
    for _ in steps(fdp):
        op = fdp.ConsumeIntInRange(0, 5)
        if op == 0 and not udp_only:
            h.deliver(fdp, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 1600)))
        elif op <= 2:
            # as one TUN read batch (Ndd.nd_rx_batch) or frame by frame: inside a batch the
            # Stack's software GRO (protocols/gro.py) merges, and TCP answers at its end
            batch = fdp.ConsumeBool() and h.ndd.nd_rx_batch is not None
            if batch:
                h.ndd.nd_rx_batch(True)  # type: ignore[misc]
            for _ in range(fdp.ConsumeIntInRange(1, 3) if batch else 1):
                for dgram in ip_datagrams(fdp):
                    if fdp.ConsumeIntInRange(0, 7) == 0:
                        dgram = mutate(fdp, dgram, 4)
                        dgram = fix_checksums(dgram) if fdp.ConsumeBool() else dgram
                    h.deliver(fdp, h.frame(fdp, dgram))
            if batch:
                h.ndd.nd_rx_batch(False)  # type: ignore[misc]
        elif op == 3 and ether and not udp_only:
            h.deliver(fdp, _arp_frame(fdp))
        elif op == 4:
            h.stack.tick(pick(fdp, TIME_STEPS))
            del h.ndd.out[:]
        else:
            _app(h, fdp)
            del h.ndd.out[:]
        h.check_invariants()


@target("stack_tun")
def stack_tun(data: bytes) -> None:
    """Whole frames into a Stack's TUN device (raw IPv4), virtio header optional."""
    run_host(False, data)


@target("stack_tap")
def stack_tap(data: bytes) -> None:
    """Whole Ethernet frames into a Stack's TAP device: IPv4, ARP, other ethertypes."""
    run_host(True, data)


@target("udp")
def udp(data: bytes) -> None:
    """UDP datagrams (lengths, checksums, ports, broadcast) against bound and connected sockets."""
    run_host(False, data, udp_only=True)


@target("ipfrag")
def ipfrag(data: bytes) -> None:
    """Sequences of fragments of a few datagrams into the Reassembler (small memory budget),
    with time steps; a rebuilt datagram never exceeds 65535 octets and the memory account
    always equals what the pending datagrams are charged."""
    fdp = Fdp(data)
    r = Reassembler(timeout=30.0, max_bytes=fdp.ConsumeIntInRange(1, 200_000))
    now = 1000.0
    for _ in steps(fdp, 96):
        if fdp.ConsumeIntInRange(0, 5) == 0:
            now += pick(fdp, (0.5, 10.0, 29.9, 30.0, 31.0))
            run_timers([r], now)
        else:
            key = (PEER, US, IPPROTO_UDP, fdp.ConsumeIntInRange(0, 3))
            hdr = bytes(20 + 4 * fdp.ConsumeIntInRange(0, 10))
            offset = 8 * fdp.ConsumeIntInRange(0, 8191)
            if fdp.ConsumeBool():
                offset = 8 * fdp.ConsumeIntInRange(0, 16)
            size = fdp.ConsumeIntInRange(0, 1500) if fdp.ConsumeBool() else 8 * fdp.ConsumeIntInRange(0, 8)
            frag = bytes([fdp.ConsumeIntInRange(0, 255)]) * size
            whole = r.add(key, hdr, offset, frag, fdp.ConsumeBool(), now)
            if whole is not None:
                header, payload = whole
                check(len(header) + len(payload) <= MAX_DATAGRAM, f"reassembled {len(header) + len(payload)}")
        check(r.memory == sum(p.charge for p in r.pending.values()), "reassembly memory account")
        check(r.memory <= r.max_bytes, f"reassembly memory {r.memory} > {r.max_bytes}")


@target("arp")
def arp(data: bytes) -> None:
    """ARP packets (requests, replies, gratuitous, conflicting, malformed) into the cache,
    with resolutions queueing packets and time steps; table and queues stay bounded."""
    fdp = Fdp(data)
    sent: list[bytes] = []
    cfg = ArpConfig(max_entries=8, queue_len=4, queue_bytes=3000)
    def transmit(dst: bytes, packet: bytes) -> int:
        sent.append(packet)
        return 0

    cache = ArpCache(OUR_MAC, lambda: [US], transmit=transmit,
                     unreachable=lambda pkt: None, config=cfg)
    now = 1000.0
    cache.announce(US, now)
    for _ in steps(fdp, 96):
        op = fdp.ConsumeIntInRange(0, 4)
        if op <= 1:
            spa = pick(fdp, (PEER, OTHER, US, 0, 0x0A000000 + fdp.ConsumeIntInRange(0, 255)))
            tpa = pick(fdp, (US, PEER, spa, 0x0A000000 + fdp.ConsumeIntInRange(0, 255)))
            pkt = ArpRepr(pick(fdp, (1, 2, 1, 2, 3)), pick(fdp, MACS), spa, pick(fdp, MACS), tpa).emit()
            if op == 1:
                pkt = mutate(fdp, pkt, 4)
            cache.input(pkt, now)
        elif op == 2:
            ip = 0x0A000000 + fdp.ConsumeIntInRange(0, 20)
            cache.resolve(ip, PacketBuffer(bytes(fdp.ConsumeIntInRange(0, 1500))), now)
        elif op == 3:
            now += pick(fdp, TIME_STEPS)
            run_timers([cache], now)
        else:
            cache.add_static(0x0A000000 + fdp.ConsumeIntInRange(0, 20), pick(fdp, MACS), now)
        del sent[:]
        # static entries are never evicted (the operator's word); a table full of them
        # still takes the one dynamic entry a resolution needs
        statics = sum(e.static for e in cache.entries.values())
        check(len(cache.entries) <= max(cfg.max_entries, statics + 1), f"{len(cache.entries)} ARP entries")
        for e in cache.entries.values():
            check(len(e.queue) <= cfg.queue_len and e.queued <= cfg.queue_bytes, "ARP queue over bound")
            check(e.queued == sum(len(p) for p in e.queue), "ARP queue byte account")


@target("icmp")
def icmp(data: bytes) -> None:
    """ICMP messages into both ends of an established TCP connection that also carry UDP:
    errors quoting real segments and datagrams (mutated or not), echo, redirects, garbage."""
    fdp = Fdp(data)
    w = TcpWorld()
    w.established()
    assert w.srv is not None
    uu = [UdpUserRequests(s.udp) for s in w.stacks]
    pcb = uu[0].attach(w.now)
    uu[0].connect(pcb, (B_IP, 53), w.now)
    uu[0].send(pcb, memoryview(b"query"), None, w.now)
    w.app_send(0, w.cli, 4000)
    for _ in steps(fdp):
        op = fdp.ConsumeIntInRange(0, 4)
        if op <= 1:
            frm = fdp.ConsumeIntInRange(0, 1)
            out = w.ndds[frm].out
            quoted = pick(fdp, out) if out else b""
            if fdp.ConsumeBool():
                quoted = mutate(fdp, quoted, 4)
            quoted = quoted[:fdp.ConsumeIntInRange(0, 80)]
            type_ = pick(fdp, (3, 3, 3, 11, 12, 4, 5, 8, 0, 13, 14, 17)) if op == 0 else \
                fdp.ConsumeIntInRange(0, 255)
            code = fdp.ConsumeIntInRange(0, 15)
            body = struct.pack("!BBI", type_, code, fdp.ConsumeIntInRange(0, 0xFFFFFFFF)) + quoted
            pkt = ip_packet(pick(fdp, (OTHER, A_IP, B_IP, FAR)), B_IP if frm else A_IP, IPPROTO_ICMP, body)
            if fdp.ConsumeBool():
                pkt = mutate(fdp, pkt, 3)
                w.tainted[frm] = True            # a mutant may be a TCP segment after all
            w.inject(frm, pkt)
        elif op == 2:
            w.pump(fdp.ConsumeIntInRange(1, 8))
        elif op == 3:
            w.tick(pick(fdp, TIME_STEPS))
        else:
            side = fdp.ConsumeIntInRange(0, 1)
            c = w.cli if side == 0 else w.srv
            w.app_send(side, c, fdp.ConsumeIntInRange(1, 6000))
            uu[0].send(pcb, memoryview(bytes(fdp.ConsumeIntInRange(0, 3000))), None, w.now)
        w.check_invariants()


@target("vnet")
def vnet_header(data: bytes) -> None:
    """virtio_net_hdr on receive (apply_rx) and transmit (build_tx of what it produced)."""
    fdp = Fdp(data)
    hdr = fdp.ConsumeBytes(vnet.VNET_HDR_LEN)
    frame = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))
    if len(hdr) < vnet.VNET_HDR_LEN:
        return
    pkt = PacketBuffer(hdr + frame, vnet.VNET_HDR_LEN)
    if vnet.apply_rx(hdr + frame, pkt):
        check(not pkt.gso_type or pkt.gso_size > 0, "GSO without a segment size")
    out = PacketBuffer.from_payload(frame)
    if frame and fdp.ConsumeBool():
        out.csum_start = out.start + fdp.ConsumeIntInRange(0, len(frame) - 1)
        out.csum_offset = pick(fdp, (6, 16))
        # GSO only as our own output asks for it: a whole TCP/UDP header at csum_start
        if fdp.ConsumeBool() and out.csum_start + 20 <= out.end:
            out.gso_type, out.gso_size = pick(fdp, ((1, 1448), (5, 1472), (4, 1428)))
    check(len(vnet.build_tx(out)) == vnet.VNET_HDR_LEN, "virtio header length")
