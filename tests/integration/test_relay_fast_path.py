"""The relayed flows' short way (issue 13): a guest frame a driver reads goes by nd_fast_rx
(Stack._fast_rx) straight to Tcp.relayed_input4 and RelayedFlow.segment, and a plain segment
to the guest is built whole by Tcp.emit_plain4 behind the link's cached header and written by
ndd_output_gather.  It must be invisible: the same frames out, octet for octet, the same
counters and the same octets to the host as the whole way (PacketBuffer, demuxer, IPv4 or
IPv6 input and TCP's input with early demux off, TcpRepr, EtherLink and ARP, ndd_output) --
under every kind of segment a guest may send, good or bad -- and it must be taken where it
can be.

The gateway runs as tools/bench/relaycost.py runs it: a Stack over an in-memory TAP (a
SOCK_SEQPACKET pair with the real vnet header), everything synchronous, so the two runs see
the same clock-free sequence of events."""
from __future__ import annotations

import dataclasses
import random
import socket
import struct
from typing import Any

import pytest
import trio

from drivers import vnet
from drivers.tuntap import TunNdd
from ndd.checksum import checksum, pseudo_header_sum
from protocols.arp import REACHABLE, STALE
from protocols.ipv6.wire import pseudo_header_sum as pseudo_header_sum6
from protocols.tcp.config import TcpConfig
from protocols.tcp.forward import ForwardRequest
from protocols.tcp.relayed import LINGERING, RelayedFlow
from stack import Stack, StackConfig
from tests.unit.test_tcp_relayed import FakeHost
from tools.bench.relaycost import GUEST, GUEST_MAC, REMOTE, REMOTE_PORT, SYN_OPTIONS, MemoryTap

ACK, PSH, FIN, SYN, RST = 0x10, 0x08, 0x01, 0x02, 0x04
GPORT = 40000
GUEST_INT = int.from_bytes(GUEST, "big")
GUEST6, REMOTE6 = 0xFD00_0000_0000_0000_0000_0000_0000_0100, 0x2001_0DB8_0000_0000_0000_0000_0000_0001


class MemoryTun(TunNdd):
    """relaycost's MemoryTap as a TUN: the frames are bare IPv4 packets behind the vnet header."""
    _open_device = MemoryTap._open_device
    _close_device = MemoryTap._close_device


def frame(tap: MemoryTap | MemoryTun, flags: int, seq: int, ack: int, payload: bytes = b"", *, options: bytes = b"",
          window: int = 502, vnet_flags: int = vnet.F_NEEDS_CSUM, gso_type: int = 0, csum_start: int = 34,
          tcp_csum: bool = False, bad_tcp_csum: bool = False, bad_ip_csum: bool = False, ip_options: bytes = b"",
          dst_mac: bytes | None = None, frag: int = 0x4000, sport: int = GPORT, family: int = 4,
          src: bytes = GUEST, dst: bytes = REMOTE, tos: int = 0, dport: int = REMOTE_PORT) -> bytes:
    """A frame as the guest's kernel writes it to the TAP: vnet header, Ethernet, IPv4 (or
    IPv6: `bad_ip_csum` is then a payload length one too long, `ip_options` a hop-by-hop
    header, `frag` other than DF a fragment header; `src`, `dst` and `tos` IPv4's), TCP."""
    thl = 20 + len(options)
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                                (thl // 4) << 4, flags, window, 0, 0) + options + payload)
    if family == 6:
        return _frame6(tap, tcp, vnet_flags=vnet_flags, gso_type=gso_type, csum_start=csum_start + 20,
                       tcp_csum=tcp_csum, bad_tcp_csum=bad_tcp_csum, long=bad_ip_csum, hop_by_hop=bool(ip_options),
                       fragment=frag != 0x4000, dst_mac=dst_mac, tclass=tos,
                       src=int.from_bytes(src, "big") if len(src) == 16 else GUEST6,
                       dst=int.from_bytes(dst, "big") if len(dst) == 16 else REMOTE6)
    if tcp_csum or bad_tcp_csum:
        struct.pack_into("!H", tcp, 16, checksum(tcp, pseudo_header_sum(int.from_bytes(src, "big"),
                                                                        int.from_bytes(dst, "big"), 6, len(tcp)))
                         ^ (0x5555 if bad_tcp_csum else 0))
    ihl = 20 + len(ip_options)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl // 4, tos, ihl + len(tcp), 1, frag, 64, 6, 0, src,
                               dst) + ip_options)
    struct.pack_into("!H", ip, 10, checksum(ip) ^ (0x0F0F if bad_ip_csum else 0))
    if not tap.is_tap:                                  # TUN: no Ethernet header
        hdr = vnet.VNET_HDR.pack(vnet_flags, gso_type, 0, 1400 if gso_type else 0, csum_start - 14, 16)
        return hdr + bytes(ip) + bytes(tcp)
    hdr = vnet.VNET_HDR.pack(vnet_flags, gso_type, 0, 1400 if gso_type else 0, csum_start, 16)
    eth = (dst_mac if dst_mac is not None else tap.ndd_physaddr) + GUEST_MAC + b"\x08\x00"
    return hdr + eth + bytes(ip) + bytes(tcp)


def _frame6(tap: MemoryTap | MemoryTun, tcp: bytearray, *, vnet_flags: int, gso_type: int, csum_start: int,
            tcp_csum: bool, bad_tcp_csum: bool, long: bool, hop_by_hop: bool, fragment: bool,
            dst_mac: bytes | None, tclass: int = 0, src: int = GUEST6, dst: int = REMOTE6) -> bytes:
    ext, nh = b"", 6
    if fragment:
        ext, nh = bytes((nh, 0, 0, 1)) + b"\0\0\0\x07", 44      # offset 0, more fragments
    if hop_by_hop:
        ext, nh = bytes((nh, 0, 1, 4)) + bytes(4) + ext, 0         # a PadN option
    if tcp_csum or bad_tcp_csum:
        struct.pack_into("!H", tcp, 16, checksum(tcp, pseudo_header_sum6(src, dst, 6, len(tcp)))
                         ^ (0x5555 if bad_tcp_csum else 0))
    ip = struct.pack("!IHBB", 6 << 28 | tclass << 20 | 0x12345, len(ext) + len(tcp) + (1 if long else 0), nh, 64) \
        + src.to_bytes(16, "big") + dst.to_bytes(16, "big") + ext
    start = csum_start + len(ext) - (0 if tap.is_tap else 14)
    hdr = vnet.VNET_HDR.pack(vnet_flags, gso_type, 0, 1400 if gso_type else 0, start, 16)
    if not tap.is_tap:
        return hdr + ip + bytes(tcp)
    eth = (dst_mac if dst_mac is not None else tap.ndd_physaddr) + GUEST_MAC + b"\x86\xdd"
    return hdr + eth + ip + bytes(tcp)


class Host(FakeHost):
    """The host socket (test_tcp_relayed's), keeping the order of the flow's calls too."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def shut_host(self) -> None:
        super().shut_host()
        self.events.append("shut")

    def host_reads(self, on: bool) -> None:
        self.events.append(f"reads {on}")

    def host_writes(self, on: bool) -> None:
        self.events.append(f"writes {on}")

    def close_host(self, reset: bool) -> None:
        super().close_host(reset)
        self.events.append(f"close {reset}")


class Guest:
    """One relayed flow's gateway and the guest's side of it, driven by hand."""

    def __init__(self, st: Stack, tap: MemoryTap | MemoryTun, fast: bool, family: int = 4) -> None:
        self.st, self.tap, self.family = st, tap, family
        if not fast:                                    # the whole way: no driver's look, no gathering
            tap.nd_fast_rx = None
            tap.caps.gather = False
        self.out: list[bytes] = []
        self.notes: dict[str, int] = {}                 # what a script saw happen (the same both ways)
        self.requests: list[ForwardRequest] = []
        st.tcp.forwarder = self.requests.append
        self.hosts: list[Host] = []
        self.open(GPORT)

    def open(self, port: int) -> None:
        """A guest connection from `port`: its SYN, forwarded, answered by a relayed flow."""
        self.port = port
        self.send(self.frame(SYN, 1000, 0, options=SYN_OPTIONS))
        assert len(self.requests) == 1
        self.host = Host()
        self.hosts.append(self.host)
        flow = self.st.tcp.forward_relay(self.requests.pop().id, self.host, self.st.now())
        assert flow is not None
        self.flow: RelayedFlow = flow
        self.iss = flow.iss
        self.drain()

    def frame(self, flags: int, seq: int, ack: int, payload: bytes = b"", **kw: Any) -> bytes:
        """A frame of the guest's current connection."""
        return frame(self.tap, flags, seq, ack, payload, sport=self.port, family=self.family, **kw)

    def send(self, *frames: bytes) -> None:
        for f in frames:
            self.tap.kernel.send(f)
        self.tap.poll_rx()
        self.drain()

    def drain(self) -> None:
        while True:
            try:
                self.out.append(self.tap.kernel.recv(70000, socket.MSG_DONTWAIT))
            except BlockingIOError:
                return

    def counters(self) -> dict[str, Any]:
        st, tap = self.st, self.tap
        f = self.flow
        return {"ndd": tap.stats.as_dict(), "dmx": vars(tap.ndd_nsdemux.nd_dmxstats).copy(),
                "ip": st.ipv4.stats.as_dict(), "tcp": st.tcp.stats.as_dict(),
                "ip6": st.tcp.ipv6.stats.as_dict() if st.tcp.ipv6 is not None else None,
                "arp": st._arp[tap.ndd_name].stats.as_dict() if tap.is_tap else None,
                "host": [(bytes(h.got), h.events) for h in self.hosts],
                "held": [(_fields(p.request), _fields(p.seg), _fields(p.meta), p.quote, p.datalen)
                         for p in st.tcp._fwd_pending.values()],
                "requests": [_fields(r) for r in self.requests],
                "notes": dict(self.notes),
                "flow": (f.state, f.snd_una, f.snd_nxt, f.rcv_nxt, f.snd_wnd, len(f.unacked), len(f.pending),
                         len(f.ooo), f.fin_in, f.fin_acked)}


def _fields(record: Any) -> dict[str, Any]:
    """A dataclass's fields (an interface: whether there is one; the clock's reading left out:
    trio's clock starts anywhere)."""
    out = {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name != "now"}
    return out | {"ifp": out["ifp"] is not None} if "ifp" in out else out


def _run(script: Any, fast: bool, seed: int = 0, seen: list[tuple[str, bytes]] | None = None,
         kind: str = "tap") -> tuple[list[bytes], dict[str, Any], int, int]:
    """The script's run (`fast`: the short ways allowed) -- the frames out, the counters, the
    frames nd_fast_rx took, the ndd_output_gather calls; a tap from the start when `seen`."""
    async def main() -> tuple[list[bytes], dict[str, Any], int, int]:
        tap: MemoryTap | MemoryTun = MemoryTap(f"fastpath{seed % 1000}", mtu=1500,
                                               physaddr=b"\x02\x00\x00\x00\x00\x02") if kind.startswith("tap") \
            else MemoryTun(f"fastpath{seed % 1000}", mtu=1500)
        family = 6 if kind.endswith("6") else 4
        # the whole way without early demux too: Ipv4.input / Tcp.input (input6) decide
        # (no SYN cookies: their clock is trio's, which starts anywhere -- a listener's ISN is isn()'s)
        async with Stack("gateway", config=StackConfig(seed=7, ipv6=family == 6, early_demux=fast,
                                                       tcp=TcpConfig(syncookies=False))) as st:
            st.tcp.isn = lambda key, now, tag=b"isn": 0xFFFFF000    # type: ignore[method-assign]  # RFC 6528's clock out
            st.tcp.ts_clock = lambda now: 0x1000        # type: ignore[method-assign]  # (a listener's timestamps)
            ifp = st.add_interface(tap, "10.0.2.2/24", mtu=1500)
            ifp.transparent = True
            if family == 6:
                st.add_address(ifp, "fd00::2/64", dad=False)
                if tap.is_tap:                          # the guest's neighbour entry REACHABLE
                    ifp.link.nd.input_ns(GUEST6, GUEST_MAC, st.now())
                    ifp.link.nd.confirm_reachable(GUEST6, st.now())
            elif tap.is_tap:
                ifp.link.arp.add_static(GUEST_INT, GUEST_MAC, st.now())
            tap.kernel.setblocking(False)
            gathered = [0]
            gather = tap.ndd_output_gather

            def counted(*args: Any) -> int:
                gathered[0] += 1
                return gather(*args)

            tap.ndd_output_gather = counted             # type: ignore[method-assign]
            if seen is not None:
                tap.taps.append(lambda ndd, way, pkt: seen.append((way, pkt.tobytes())))
            g = Guest(st, tap, fast, family)
            script(g, random.Random(seed))
            return g.out, g.counters(), tap.rx_fast, gathered[0]
    return trio.run(main)


def _same_both_ways(script: Any, seed: int = 0, kind: str = "tap") -> tuple[int, int, dict[str, Any]]:
    out_fast, counters_fast, rx_fast, gathered = _run(script, True, seed, kind=kind)
    out_whole, counters_whole, rx_whole, gathered_whole = _run(script, False, seed, kind=kind)
    assert rx_whole == 0 and gathered_whole == 0
    assert len(out_fast) == len(out_whole)
    for i, (a, b) in enumerate(zip(out_fast, out_whole, strict=True)):
        assert a == b, f"frame {i} differs:\n{a.hex()}\n{b.hex()}"
    assert counters_fast == counters_whole
    return rx_fast, gathered, counters_fast


def _checksum_trouble(trouble: int, kw: dict[str, Any]) -> bool:
    """Troubles 0-2 of a hostile script, in `kw` for frame(): a bad IP header checksum, a
    bad TCP checksum the device did not vouch for, a right one it did not vouch for."""
    if trouble == 0:
        kw["bad_ip_csum"] = True
    elif trouble == 1:
        kw.update(vnet_flags=0, bad_tcp_csum=True)
    elif trouble == 2:
        kw.update(vnet_flags=0, tcp_csum=True)
    return trouble <= 2


def _round_trips(g: Guest, rng: random.Random) -> None:
    seq, ack = 1001, g.iss + 1
    g.send(g.frame(ACK, seq, ack))
    for i in range(50):
        g.send(g.frame(ACK | PSH, seq, ack, b"q" * (1 + i % 3)))
        seq += 1 + i % 3
        g.flow.host_data(b"r" * (1 + i % 5), g.st.now())
        g.drain()
        ack += 1 + i % 5
    g.send(g.frame(FIN | ACK, seq, ack))
    g.flow.host_eof(g.st.now())
    g.drain()
    g.send(g.frame(ACK, seq + 1, ack + 1))


@pytest.mark.parametrize("kind", ["tap", "tun", "tap6", "tun6"])
def test_round_trips_take_the_short_way_and_send_what_the_whole_way_sends(kind: str) -> None:
    rx_fast, gathered, _ = _same_both_ways(_round_trips, kind=kind)
    assert rx_fast == 54 and gathered >= 51           # every guest segment (the SYN too), every answer


_SYN_SOURCES = (GUEST,) * 14 + tuple(socket.inet_aton(a) for a in (
    "10.0.2.2", "127.0.0.1", "10.0.2.255", "255.255.255.255", "224.0.0.1", "0.1.2.3", "10.0.2.101"))
_SYN_DESTS = (REMOTE,) * 14 + tuple(socket.inet_aton(a) for a in (
    "10.0.2.2", "127.0.0.1", "10.0.2.255", "255.255.255.255", "224.0.0.1", "240.0.0.1", "0.0.0.5", "10.0.2.77",
    "8.8.8.8"))
_SYN_SOURCES6 = (GUEST6.to_bytes(16, "big"),) * 14 + tuple(socket.inet_pton(socket.AF_INET6, a) for a in (
    "fd00::2", "::1", "ff02::1", "::ffff:10.0.2.100", "fe80::1", "::", "fd00::101"))
_SYN_DESTS6 = (REMOTE6.to_bytes(16, "big"),) * 14 + tuple(socket.inet_pton(socket.AF_INET6, a) for a in (
    "fd00::2", "::1", "ff02::1", "ff05::1", "ff00::1", "fe80::99", "::ffff:1.2.3.4", "::", "2001:db8::77"))


def _syns(g: Guest, rng: random.Random) -> None:
    """SYNs no flow knows, good and bad: to the world (held for the forwarder; again: a
    retransmission), from martian sources, to our own addresses, broadcasts, multicast and
    127/8, with a listener on the port, with data, ECN bits, bad checksums, IP options,
    fragments, other flags -- between them some held ones answered by relayed flows."""
    st = g.st
    if g.family == 6:
        sources, dests = _SYN_SOURCES6, _SYN_DESTS6
        for addr in (0, REMOTE6):                      # every address's 8080; the world's 8081 (IP_TRANSPARENT)
            lst = st.tcp.attach(socket.AF_INET6)
            lst.transparent = bool(addr)
            assert st.tcp.bind6(lst, addr, 8081 if addr else 8080, 0, st.now()) == 0 and st.tcp.listen(lst, 8) == 0
    else:
        sources, dests = _SYN_SOURCES, _SYN_DESTS
        for addr in (0, int.from_bytes(REMOTE, "big")):
            lst = st.tcp.attach()
            lst.transparent = bool(addr)
            assert st.tcp.bind(lst, addr, 8081 if addr else 8080) == 0 and st.tcp.listen(lst, 8) == 0
    width = 16 if g.family == 6 else 4
    for _ in range(300):
        kw: dict[str, Any] = {"src": rng.choice(sources), "dst": rng.choice(dests),
                              "sport": rng.choice((GPORT, 40001, 40002, rng.randrange(1024, 65536))),
                              "dport": rng.choice((REMOTE_PORT, REMOTE_PORT, 8080, 8081, 22, rng.randrange(1, 65536))),
                              "options": rng.choice((SYN_OPTIONS, SYN_OPTIONS, b"", b"\x01\x01\x08\x0a" + bytes(8),
                                                     b"\x02\x04\x05", b"\x03\x03\x0e\x00"))}
        trouble = rng.randrange(12)
        if _checksum_trouble(trouble, kw):
            pass
        elif trouble == 3:
            kw["ip_options"] = b"\x01\x01\x01\x00"
        elif trouble == 4:
            kw["frag"] = rng.choice((0x2000, 0x0001))
        elif trouble == 5:
            kw["dst_mac"] = rng.choice((b"\xff" * 6, b"\x02\x00\x00\x00\x00\x99", b"\x01\x00\x5e\x00\x00\x01"))
        elif trouble == 6:
            kw["tos"] = rng.choice((1, 2, 3, 0xB8))
        flags = SYN if rng.random() < 0.8 else rng.choice((SYN | ACK, SYN | FIN, SYN | RST, SYN | PSH, SYN | 0x40))
        payload = b"" if rng.random() < 0.8 else b"fast open" * rng.randrange(1, 80)
        key = (int.from_bytes(kw["dst"], "big"), kw["dport"], int.from_bytes(kw["src"], "big"), kw["sport"])
        old = (st.tcp.relays.flows6 if g.family == 6 else st.tcp.relays.flows).get(key)
        if old is not None and old.state == LINGERING:
            g.notes["lingering_met"] = g.notes.get("lingering_met", 0) + 1
        g.send(frame(g.tap, flags, rng.randrange(1 << 32), 0, payload, family=g.family, **kw))
        if g.requests and rng.random() < 0.3:           # one held SYN answered: a relayed flow
            g.hosts.append(Host())
            flow = st.tcp.forward_relay(g.requests.pop(rng.randrange(len(g.requests))).id, g.hosts[-1], st.now())
            g.drain()
            if flow is not None and rng.random() < 0.5:   # ... closed at once: it lingers, and the
                ends = {"src": flow.faddr.to_bytes(width, "big"), "dst": flow.laddr.to_bytes(width, "big"),
                        "sport": flow.fport, "dport": flow.lport}      # guest's next SYN from its port retires it
                g.send(frame(g.tap, ACK, flow.rcv_nxt, flow.snd_nxt, family=g.family, **ends))
                flow.host_eof(st.now())
                g.drain()
                g.send(frame(g.tap, FIN | ACK, flow.rcv_nxt, flow.snd_nxt, family=g.family, **ends))
                assert flow.state == LINGERING
        elif g.requests and rng.random() < 0.2:         # ... a connection (its next SYN: a challenge ACK)
            st.tcp.forward_accept(g.requests.pop().id, st.now())
            g.drain()
        elif g.requests and rng.random() < 0.2:
            st.tcp.forward_reject(g.requests.pop(0).id, rng.choice(("rst", "net", "host", "admin")), st.now())
            g.drain()


@pytest.mark.parametrize("kind", ["tap", "tun", "tap6", "tun6"])
@pytest.mark.parametrize("seed", range(4))
def test_a_syn_for_the_forwarder_is_held_as_the_whole_way_holds_it(seed: int, kind: str) -> None:
    rx_fast, _, counters = _same_both_ways(_syns, seed, kind)
    assert rx_fast > 30                               # (the others went the whole way)
    assert counters["notes"]["lingering_met"] >= 2    # ... and SYNs met lingering flows


def _hostile(g: Guest, rng: random.Random) -> None:
    """Segments of every kind, good and bad, around the flow's own variables, with the host
    side's events between them."""
    seq = 1001
    g.send(g.frame(ACK, seq, g.iss + 1))
    for _ in range(400):
        f = g.flow
        if f.state >= LINGERING:                     # the flow ended: the guest connects again
            g.open(g.port + 1)
            f, seq = g.flow, 1001
            g.send(g.frame(ACK, seq, g.iss + 1))
        what = rng.randrange(20)
        if what < 12:
            flags = rng.choice((ACK, ACK | PSH, ACK | PSH, ACK | FIN, SYN, ACK | SYN, FIN, 0, ACK | 0x20))
            if rng.random() < 0.02:
                flags = rng.choice((RST, RST | ACK))    # (rare: one in the window ends the flow)
            off = rng.choice((0, 0, 0, 0, rng.randrange(-3000, 3000)))
            n = rng.choice((0, 0, 1, 10, 536, 1400))
            ackno = f.snd_una + rng.choice((0, 0, rng.randrange(-5, len(f.unacked) + 6)))
            kw: dict[str, Any] = {}
            trouble = rng.randrange(14)
            if _checksum_trouble(trouble, kw):
                pass
            elif trouble == 3:
                kw["vnet_flags"] = vnet.F_DATA_VALID
            elif trouble == 4:
                kw["ip_options"] = b"\x01\x01\x01\x00"
            elif trouble == 5:
                kw["dst_mac"] = b"\xff" * 6
            elif trouble == 6:
                kw["dst_mac"] = b"\x02\x00\x00\x00\x00\x99"
            elif trouble == 7:
                kw["frag"] = 0x2000
            elif trouble == 8:
                kw["csum_start"] = 4000                 # NEEDS_CSUM beyond the frame: nonsense
            elif trouble == 9:
                lo = f.snd_una + rng.randrange(0, 3000)
                kw["options"] = struct.pack("!BBBBII", 1, 1, 5, 10, lo & 0xFFFFFFFF,
                                            (lo + rng.randrange(1, 2000)) & 0xFFFFFFFF)
            elif trouble == 10:
                kw["options"] = b"\x01\x01\x08\x0a" + bytes(8)   # timestamps the flow never offered
            elif trouble == 11:
                kw["window"] = rng.choice((0, 1, 0xFFFF))
            data = bytes(rng.randrange(256) for _ in range(min(n, 16))) * (n // 16 + 1)
            g.send(g.frame(flags, seq + off, ackno, data[:n], **kw))
            if off == 0 and not kw.get("bad_ip_csum") and not kw.get("bad_tcp_csum") and flags & ACK:
                seq = f.rcv_nxt if f.rcv_nxt - seq < 1 << 20 else seq
        elif what < 15:
            room = f.send_room()
            if room > 0:
                f.host_data(bytes(rng.randrange(256) for _ in range(7)) * (min(room, 3000) // 7 + 1), g.st.now())
                g.drain()
        elif what < 17:
            g.host.room = rng.choice((None, 0, 100))
            f.host_writable(g.st.now())
            g.drain()
        elif what == 17:
            g.send(g.frame(ACK, seq, f.snd_nxt),
                   g.frame(ACK | PSH, seq, f.snd_nxt, b"batched"))
            seq = f.rcv_nxt
        elif what == 18:
            f.host_eof(g.st.now())
            g.drain()
        else:
            g.send(g.frame(ACK, seq, f.snd_nxt, gso_type=1))   # a super-frame: the whole way


@pytest.mark.parametrize("kind", ["tap", "tun", "tap6", "tun6"])
@pytest.mark.parametrize("seed", range(6))
def test_any_segment_gets_the_same_answer_both_ways(seed: int, kind: str) -> None:
    rx_fast, gathered, _ = _same_both_ways(_hostile, seed, kind)
    assert rx_fast > 0 and gathered > 0


def test_a_stale_neighbour_is_sent_by_the_whole_way_which_probes_it() -> None:
    """The link's cached header is used only while ARP's entry is REACHABLE: a STALE one goes
    through EtherLink.output, whose use of it sends the unicast probe (RFC 1122 §2.3.2.1)."""
    def script(g: Guest, rng: random.Random) -> None:
        arp = g.st._arp[g.tap.ndd_name]
        g.send(g.frame(ACK, 1001, g.iss + 1))
        entry = arp.entries[GUEST_INT]
        link = g.st.ifnet.get(g.tap.ndd_name).link
        assert entry.state == REACHABLE and (link.cached_header(GUEST_INT) is not None) == g.tap.caps.gather
        entry.state, entry.static = STALE, False
        assert link.cached_header(GUEST_INT) is None
        before = arp.stats.tx_requests
        g.flow.host_data(b"answer", g.st.now())
        g.drain()
        assert arp.stats.tx_requests == before + 1
        assert g.out[-1][-6:] == b"answer" and g.out[-2][10 + 12:10 + 14] == b"\x08\x06"   # the probe, then it

    _same_both_ways(script)


def test_a_tap_sees_every_frame_so_the_short_way_steps_aside() -> None:
    seen: list[tuple[str, bytes]] = []
    rx_fast, gathered = _run(_round_trips, True, seen=seen)[2:]
    assert rx_fast == 0 and gathered == 0
    assert sum(way == "in" for way, _ in seen) == 54 and sum(way == "out" for way, _ in seen) >= 52
