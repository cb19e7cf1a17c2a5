"""ATMARP packets (RFC 2225 §8.7), the ATMARP server's table (§8.4) and the SVC client core
(§8.3-8.5), sans-IO with an explicit clock."""
from __future__ import annotations

import errno
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.atm.clip.atmarp import (
    OP_INARP_REPLY,
    OP_INARP_REQUEST,
    OP_REPLY,
    OP_REQUEST,
    OPS,
    TL_E164,
    AtmArpRepr,
    inarp_reply_to,
    nak_of,
    reply_to,
    request,
)
from protocols.atm.clip.atmarp_server import LOCAL, AtmArpServer
from protocols.atm.clip.link import VALID, ClipConfig, ClipStats
from protocols.atm.clip.svc import OPEN, REGISTERED, ClipSvc, SvcVc

IP_A, IP_B, IP_S = ip_to_int("10.0.0.1"), ip_to_int("10.0.0.2"), ip_to_int("10.0.0.3")
NET = bytes.fromhex("47000580ffe1000000f21a")
AESA_A = NET + bytes.fromhex("00010020481a000100")
AESA_B = NET + bytes.fromhex("00020020481a000200")
AESA_S = NET + bytes.fromhex("00030020481a000300")


# --- the codec ---------------------------------------------------------------------------------
def test_registration_request_byte_exact() -> None:
    # §8.5: a client registers by asking for its own address; §8.7.1 layout, §8.7.3 TL 0x14 = NSAPA, 20
    raw = request(IP_A, AESA_A, IP_A).emit()
    assert raw == (bytes.fromhex("0013 0800 14 00 0001 04 00 00 04").replace(b" ", b"")
                   + AESA_A + bytes([10, 0, 0, 1]) + bytes([10, 0, 0, 1]))
    assert len(raw) == 40 and AtmArpRepr.parse(raw) == request(IP_A, AESA_A, IP_A)


def test_reply_and_nak_byte_exact() -> None:
    req = request(IP_A, AESA_A, IP_B)
    reply = reply_to(req, IP_B, AESA_B).emit()
    assert reply == (bytes.fromhex("00130800" "1400" "0002" "04" "1400" "04")
                     + AESA_B + bytes([10, 0, 0, 2]) + AESA_A + bytes([10, 0, 0, 1]))
    raw = req.emit()
    nak = nak_of(req).emit()          # §8.7.4: the request, ar$op = 10
    assert nak == raw[:6] + b"\x00\x0a" + raw[8:]
    inreply = inarp_reply_to(AtmArpRepr(OP_INARP_REQUEST, None, None, sha=AESA_S), IP_A, AESA_A)
    assert AtmArpRepr.parse(inreply.emit()) == AtmArpRepr(OP_INARP_REPLY, IP_A, None, sha=AESA_A, tha=AESA_S)


def test_e164_with_nsap_subaddress() -> None:
    # §8.7.3 structure 3: an E.164 number (IA5 digits) with an NSAPA subaddress
    r = AtmArpRepr(OP_REQUEST, IP_A, IP_B, sha=b"4930123456", ssa=AESA_A, stype=TL_E164)
    raw = r.emit()
    assert raw[4:6] == bytes([0x40 | 10, 20])
    assert AtmArpRepr.parse(raw) == r and r.valid()


def test_parse_rejects() -> None:
    raw = request(IP_A, AESA_A, IP_B).emit()
    good = AtmArpRepr.parse(raw)
    assert good is not None

    def at(i: int, b: int) -> bytes:
        return raw[:i] + bytes([b]) + raw[i + 1:]

    assert AtmArpRepr.parse(raw[:-1]) is None                        # truncated
    assert AtmArpRepr.parse(raw[:11]) is None                        # shorter than the fixed part
    assert AtmArpRepr.parse(at(1, 0x01)) is None                     # ar$hrd 1: not ATM
    assert AtmArpRepr.parse(at(3, 0xdd)) is None                     # ar$pro not IPv4
    assert AtmArpRepr.parse(at(7, 3)) is None                        # op 3
    assert AtmArpRepr.parse(at(4, 0x80 | 20)) is None                # TL reserved bit
    assert AtmArpRepr.parse(at(4, 19)) is None                       # NSAPA of 19 octets
    assert AtmArpRepr.parse(at(8, 3)) is None                        # spln 3
    e164 = AtmArpRepr(OP_REQUEST, IP_A, IP_B, sha=b"12345", stype=TL_E164).emit()
    assert AtmArpRepr.parse(e164) is not None
    assert AtmArpRepr.parse(e164.replace(b"12345", b"1234x")) is None          # not IA5 digits
    sixteen = AtmArpRepr(OP_REQUEST, IP_A, IP_B, sha=b"1" * 16, stype=TL_E164)
    assert not sixteen.valid() and AtmArpRepr.parse(sixteen.emit()) is None    # over 15 digits
    nsap_sub = AtmArpRepr(OP_REQUEST, IP_A, IP_B, sha=AESA_A, ssa=AESA_B)      # NSAPA + subaddress
    assert not nsap_sub.valid() and AtmArpRepr.parse(nsap_sub.emit()) is None
    e164_sub = AtmArpRepr(OP_REQUEST, IP_A, IP_B, sha=b"12345", ssa=AESA_B, stype=TL_E164).emit()
    assert AtmArpRepr.parse(e164_sub[:5] + bytes([0x40 | 20]) + e164_sub[6:]) is None   # E.164 subaddress
    assert AtmArpRepr.parse(raw + b"\x00\x00") == good               # trailing octets are ignored


nsap = st.binary(min_size=20, max_size=20)
e164 = st.text("0123456789", min_size=1, max_size=15).map(str.encode)
ip = st.none() | st.integers(0, 0xFFFFFFFF)


@st.composite
def party(draw: Any) -> tuple[bytes, bytes, int]:
    kind = draw(st.sampled_from(["none", "nsap", "e164", "e164+sub"]))
    if kind == "none":
        return b"", b"", 0
    if kind == "nsap":
        return draw(nsap), b"", 0
    return draw(e164), draw(nsap) if kind == "e164+sub" else b"", TL_E164


@st.composite
def reprs(draw: Any) -> AtmArpRepr:
    sha, ssa, stype = draw(party())
    tha, tsa, ttype = draw(party())
    return AtmArpRepr(draw(st.sampled_from(OPS)), draw(ip), draw(ip), sha, ssa, tha, tsa, stype, ttype)


@given(reprs())
def test_round_trip(r: AtmArpRepr) -> None:
    assert r.valid()
    raw = r.emit()
    assert AtmArpRepr.parse(raw) == r
    assert AtmArpRepr.parse(raw).emit() == raw                      # type: ignore[union-attr]


@given(st.binary(max_size=120))
def test_parse_never_raises_and_is_canonical(data: bytes) -> None:
    # arbitrary octets behind a valid fixed header: parse is None or re-emits what it read
    head = bytes.fromhex("00130800")
    for raw in (data, head + data):
        r = AtmArpRepr.parse(raw)
        if r is not None:
            assert r.valid()
            again = AtmArpRepr.parse(r.emit())
            assert again == r


# --- the server's table (§8.4) -----------------------------------------------------------------
class Vc:
    def __init__(self, name: str) -> None:
        self.name, self.open = name, True


def server(lifetime: float = 1200.0) -> tuple[AtmArpServer, list[tuple[Any, AtmArpRepr]]]:
    sent: list[tuple[Any, AtmArpRepr]] = []
    srv = AtmArpServer(send=lambda vc, arp, now: sent.append((vc, arp)),
                       is_open=lambda vc: vc is LOCAL or vc.open, own_ip=lambda: None, aesa=AESA_S,
                       lifetime=lifetime, retrans=1.0, retries=2)
    return srv, sent


def test_server_registers_answers_and_naks() -> None:
    srv, sent = server()
    va, vb = Vc("a"), Vc("b")
    srv.input(va, request(IP_A, AESA_A, IP_A), 0.0)                 # registration
    assert sent[-1] == (va, reply_to(request(IP_A, AESA_A, IP_A), IP_A, AESA_A))
    srv.input(vb, request(IP_B, AESA_B, IP_A), 1.0)                 # b asks for a, registering b too
    assert sent[-1][1].op == OP_REPLY and (sent[-1][1].spa, sent[-1][1].sha) == (IP_A, AESA_A)
    assert sent[-1][1].tpa == IP_B and sent[-1][1].tha == AESA_B
    ask = request(IP_A, AESA_A, IP_S)
    srv.input(va, ask, 2.0)
    assert sent[-1] == (va, nak_of(ask))                             # unknown: NAK
    assert [(e[0], e[1]) for e in srv.table()] == [(IP_A, AESA_A), (IP_B, AESA_B)]
    s = srv.stats
    assert (s.server_requests, s.server_replies, s.server_naks) == (3, 2, 1)
    assert (s.server_registrations, s.server_refreshes) == (2, 1)


def test_server_duplicate_address_keeps_the_open_one() -> None:
    srv, sent = server()
    va, vx = Vc("a"), Vc("x")
    srv.input(va, request(IP_A, AESA_A, IP_A), 0.0)
    srv.input(vx, request(IP_A, AESA_B, IP_A), 1.0)                 # IP_A claimed by another AESA
    assert srv.stats.server_duplicates == 1
    assert sent[-1][1].sha == AESA_A                                 # the reply names the holder
    va.open = False
    srv.vc_closed(va)
    srv.input(vx, request(IP_A, AESA_B, IP_A), 2.0)                 # its VC gone: replaced
    assert srv.table()[0][:2] == (IP_A, AESA_B) and srv.stats.server_registrations == 2


def test_server_ages_entries_after_asking_open_vcs() -> None:
    srv, sent = server(lifetime=100.0)
    va, vb = Vc("a"), Vc("b")
    srv.input(va, request(IP_A, AESA_A, IP_A), 0.0)
    srv.input(vb, request(IP_B, AESA_B, IP_B), 0.0)
    vb.open = False
    srv.vc_closed(vb)
    assert srv.poll_at() == 100.0
    srv.poll(100.0)                                   # b: no VC -> gone; a: InATMARP on its VC
    assert [e[0] for e in srv.table()] == [IP_A] and srv.stats.server_aged == 1
    assert sent[-1][0] is va and sent[-1][1].op == OP_INARP_REQUEST and sent[-1][1].sha == AESA_S
    srv.input(va, AtmArpRepr(OP_INARP_REPLY, IP_A, None, sha=AESA_A), 100.5)    # answered: refreshed
    assert srv.poll_at() == 200.5
    srv.poll(200.5)
    srv.poll(201.5)
    srv.poll(202.5)                                   # two unanswered checks, then removed
    assert srv.table() == [] and srv.stats.server_aged == 2


# --- the client core (§8.3-8.5), calls faked ---------------------------------------------------------
class Net:
    """Records what the core asks for; `answer` decides each call's fate."""

    def __init__(self, **cfg: Any) -> None:
        self.arp: list[tuple[tuple[int, int], AtmArpRepr]] = []
        self.ip: list[tuple[PacketBuffer, tuple[int, int]]] = []
        self.lost: list[PacketBuffer] = []
        self.calls: list[SvcVc] = []
        self.released: list[SvcVc] = []
        self.core = ClipSvc(AESA_A, lambda: [IP_A], lambda ip: IP_A, ClipStats(), ClipConfig(**cfg),
                            transmit=self.tx, transmit_ip=self.tx_ip, unreachable=self.lost.append)
        self.core.call = self.call
        self.core.release = self.released.append

    def tx(self, vc: tuple[int, int], data: bytes) -> int:
        arp = AtmArpRepr.parse(data)
        assert arp is not None
        self.arp.append((vc, arp))
        return 0

    def tx_ip(self, pkt: PacketBuffer, vc: tuple[int, int]) -> int:
        self.ip.append((pkt, vc))
        return 0

    def call(self, vc: SvcVc) -> int:
        self.calls.append(vc)
        return 0


def pkt() -> PacketBuffer:
    return PacketBuffer.from_payload(b"x" * 20)


def test_no_server_no_entry_is_ehostunreach_and_static_calls_on_demand() -> None:
    n = Net()
    c = n.core
    assert c.resolve(IP_B, pkt(), 0.0) == errno.EHOSTUNREACH
    c.add_peer(IP_B, AESA_B, 0.0)
    p1, p2 = pkt(), pkt()
    assert c.resolve(IP_B, p1, 0.0) is None and c.resolve(IP_B, p2, 0.1) is None
    assert len(n.calls) == 1 and n.calls[0].aesa == AESA_B            # one call for both
    c.connected(n.calls[0], (0, 40), 0.2)
    assert n.ip == [(p1, (0, 40)), (p2, (0, 40))] and c.resolve(IP_B, pkt(), 0.3) == (0, 40)
    assert c.poll_at() == 0.3 + 1200.0                                 # the idle timer
    c.poll(1200.3)
    assert n.released == [n.calls[0]] and c.stats.calls_idle == 1
    assert c.table() == [(IP_B, AESA_B, VALID, True, None)]


def test_failed_call_reports_the_held_packets() -> None:
    n = Net()
    c = n.core
    c.add_peer(IP_B, AESA_B, 0.0)
    held = pkt()
    c.resolve(IP_B, held, 0.0)
    c.failed(n.calls[0], 0.5)
    assert n.lost == [held] and c.stats.calls_failed == 1
    c.resolve(IP_B, pkt(), 1.0)                                        # the next packet calls again
    assert len(n.calls) == 2


def test_registration_resolution_and_nak_through_the_server() -> None:
    n = Net(register_interval=900.0)
    c = n.core
    c.use_server(AESA_S, 0.0)
    c.poll(0.0)
    server_vc = n.calls[0]
    assert server_vc.server and server_vc.aesa == AESA_S
    c.connected(server_vc, (0, 33), 0.1)
    c.poll(0.1)
    assert n.arp[-1] == ((0, 33), request(IP_A, AESA_A, IP_A))        # registration
    c.input((0, 33), reply_to(request(IP_A, AESA_A, IP_A), IP_A, AESA_A).emit(), 0.2)
    assert c.reg == REGISTERED and c.stats.registrations == 1 and c.poll_at() == 900.2
    held = pkt()
    assert c.resolve(IP_B, held, 1.0) is None
    assert n.arp[-1] == ((0, 33), request(IP_A, AESA_A, IP_B))
    c.input((0, 33), reply_to(request(IP_A, AESA_A, IP_B), IP_B, AESA_B).emit(), 1.1)
    assert n.calls[-1].aesa == AESA_B and n.calls[-1].ip == IP_B      # called on the answer
    lost = pkt()
    c.resolve(IP_S, lost, 2.0)
    c.input((0, 33), nak_of(request(IP_A, AESA_A, IP_S)).emit(), 2.1)
    assert n.lost == [lost] and c.stats.rx_arp_naks == 1 and IP_S not in c.peers
    c.cleared(server_vc, 3.0)                                          # the server's VC went away
    c.poll(4.0)
    assert n.calls[-1].server and n.calls[-1] is not server_vc         # called again to re-register


def test_incoming_call_is_asked_by_inatmarp() -> None:
    n = Net()
    c = n.core
    vc = SvcVc(AESA_B, outgoing=False)
    c.incoming(vc, (0, 50), 0.0)
    assert vc.state == OPEN and n.arp[-1][1].op == OP_INARP_REQUEST and n.arp[-1][1].spa == IP_A
    c.input((0, 50), inarp_reply_to(n.arp[-1][1], IP_B, AESA_B).emit(), 0.1)
    assert c.table() == [(IP_B, AESA_B, VALID, False, (0, 50))]
    assert c.resolve(IP_B, pkt(), 0.2) == (0, 50) and not n.calls


def test_aged_entry_is_revalidated_before_more_ip() -> None:
    # §8.5.1: with a server, through it; without, InATMARP on the VC -- no answer releases the VC
    n = Net(entry_lifetime=100.0, svc_idle_timeout=1e9, max_retries=2)
    c = n.core
    c.use_server(AESA_S, 0.0)
    c.poll(0.0)
    c.connected(n.calls[0], (0, 33), 0.0)
    c.poll(0.0)
    c.resolve(IP_B, pkt(), 1.0)
    c.input((0, 33), reply_to(request(IP_A, AESA_A, IP_B), IP_B, AESA_B).emit(), 1.0)
    c.connected(n.calls[-1], (0, 40), 1.1)
    c.poll(101.0)                                                      # aged with its VC open
    assert c.peers[IP_B].state == "REVALIDATING" and n.arp[-1] == ((0, 33), request(IP_A, AESA_A, IP_B))
    held = pkt()
    assert c.resolve(IP_B, held, 101.5) is None                         # no IP until revalidated
    c.input((0, 33), reply_to(request(IP_A, AESA_A, IP_B), IP_B, AESA_B).emit(), 101.6)
    assert n.ip[-1] == (held, (0, 40)) and c.peers[IP_B].state == VALID

    m = Net(entry_lifetime=100.0, svc_idle_timeout=1e9, max_retries=2)
    d = m.core
    vc = SvcVc(AESA_B, outgoing=False)
    d.incoming(vc, (0, 50), 0.0)
    d.input((0, 50), inarp_reply_to(m.arp[-1][1], IP_B, AESA_B).emit(), 0.1)
    d.poll(100.1)
    d.poll(101.1)
    assert [a.op for _, a in m.arp[-2:]] == [OP_INARP_REQUEST, OP_INARP_REQUEST]
    d.poll(102.1)                                                      # two unanswered: released
    assert m.released == [vc] and IP_B not in d.peers and d.stats.revalidation_failed == 1
