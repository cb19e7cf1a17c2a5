"""ARP (RFC 826) with a reduced RFC 4861 §7.3.2 neighbour machine and RFC 5227 §2.3
announcements (protocols/arp.py).  Sans-IO: transmit/unreachable are recorders."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ndd.pktbuf import PacketBuffer
from protocols.addr import MAC_BROADCAST, ip_to_int
from protocols.arp import INCOMPLETE, OP_REPLY, OP_REQUEST, REACHABLE, STALE, ArpCache, ArpConfig, ArpRepr

OUR_MAC = b"\x02\x00\x00\x00\x00\x01"
PEER_MAC = b"\x02\x00\x00\x00\x00\x02"
OTHER_MAC = b"\x02\x00\x00\x00\x00\x03"
US, PEER, OTHER = ip_to_int("10.0.0.2"), ip_to_int("10.0.0.1"), ip_to_int("10.0.0.3")


@dataclass
class Rig:
    cache: ArpCache
    sent: list[tuple[bytes, ArpRepr]] = field(default_factory=list)
    ip_out: list[tuple[PacketBuffer, bytes]] = field(default_factory=list)
    failed: list[PacketBuffer] = field(default_factory=list)
    kicks: int = 0

    def requests(self) -> list[tuple[bytes, ArpRepr]]:
        return [(dst, a) for dst, a in self.sent if a.oper == OP_REQUEST]


def make_rig(**cfg) -> Rig:
    rig = Rig(None)  # type: ignore[arg-type]

    def transmit(dst: bytes, data: bytes) -> int:
        arp = ArpRepr.parse(data)
        assert arp is not None and len(data) == 28
        rig.sent.append((dst, arp))
        return 0

    def kick() -> None:
        rig.kicks += 1

    rig.cache = ArpCache(OUR_MAC, lambda: [US], transmit, rig.failed.append, ArpConfig(**cfg))
    rig.cache.transmit_ip = lambda pkt, mac: rig.ip_out.append((pkt, mac)) or 0
    rig.cache.kick = kick
    return rig


@pytest.fixture
def rig() -> Rig:
    return make_rig()


def request(spa: int, tpa: int, sha: bytes = PEER_MAC) -> bytes:
    return ArpRepr(OP_REQUEST, sha, spa, bytes(6), tpa).emit()


def reply(spa: int, sha: bytes = PEER_MAC, tpa: int = US, tha: bytes = OUR_MAC) -> bytes:
    return ArpRepr(OP_REPLY, sha, spa, tha, tpa).emit()


def pkt(tag: bytes) -> PacketBuffer:
    return PacketBuffer.from_payload(tag)


# --- RFC 826 packet reception -----------------------------------------------
def test_request_for_us_is_answered_and_learned(rig: Rig) -> None:
    rig.cache.input(request(PEER, US) + bytes(18), 5.0)      # padded to the Ethernet minimum
    ((dst, ans),) = rig.sent
    assert dst == PEER_MAC
    assert ans == ArpRepr(OP_REPLY, OUR_MAC, US, PEER_MAC, PEER)
    assert rig.cache.table() == [(PEER, REACHABLE, PEER_MAC)]
    assert rig.cache.stats.rx_requests == 1 and rig.cache.stats.tx_replies == 1
    assert rig.cache.resolve(PEER, pkt(b"x"), 6.0) == PEER_MAC


def test_request_not_for_us_only_updates_existing(rig: Rig) -> None:
    rig.cache.input(request(OTHER, ip_to_int("10.0.0.9"), OTHER_MAC), 0.0)
    assert rig.sent == [] and rig.cache.table() == [] and rig.cache.stats.not_for_us == 1
    rig.cache.input(request(PEER, US), 0.0)                  # learn PEER
    rig.sent.clear()
    new_mac = b"\x02\x00\x00\x00\x00\x99"
    rig.cache.input(request(PEER, ip_to_int("10.0.0.9"), new_mac), 1.0)   # PEER moved
    assert rig.sent == []
    assert rig.cache.table() == [(PEER, REACHABLE, new_mac)]


def test_gratuitous_arp_updates_existing_entry(rig: Rig) -> None:
    rig.cache.input(request(PEER, US), 0.0)
    rig.cache.input(request(PEER, PEER, OTHER_MAC), 1.0)     # announcement: spa == tpa
    assert rig.cache.table() == [(PEER, REACHABLE, OTHER_MAC)]


def test_probe_with_zero_sender_is_answered_not_learned(rig: Rig) -> None:
    # RFC 5227 §2.1.1 probe: sender IP 0; the reply defends our address
    rig.cache.input(request(0, US), 0.0)
    ((dst, ans),) = rig.sent
    assert dst == PEER_MAC and ans.oper == OP_REPLY and ans.tpa == 0
    assert rig.cache.table() == []


@pytest.mark.parametrize("sha", [b"\x01\x00\x5e\x00\x00\x01", MAC_BROADCAST])
def test_multicast_sender_mac_is_malformed(rig: Rig, sha: bytes) -> None:
    rig.cache.input(request(PEER, US, sha), 0.0)
    assert rig.cache.stats.malformed == 1 and rig.sent == [] and rig.cache.table() == []


@pytest.mark.parametrize("spa", ["255.255.255.255", "224.0.0.1", "127.0.0.1", "240.0.0.1", "0.0.0.7"])
def test_martian_sender_ip_is_neither_learned_nor_answered(rig: Rig, spa: str) -> None:
    # Linux arp_process: loopback/multicast senders are dropped; so are the other sources
    # no host may use (RFC 1122 §3.2.1.3).  An existing entry is not touched either.
    rig.cache.input(request(PEER, US), 0.0)
    rig.sent.clear()
    rig.cache.input(request(ip_to_int(spa), US, OTHER_MAC), 1.0)
    rig.cache.input(reply(ip_to_int(spa), OTHER_MAC), 1.0)
    assert rig.sent == [] and rig.cache.table() == [(PEER, REACHABLE, PEER_MAC)]
    assert rig.cache.stats.martian_senders == 2


def test_garbage_is_malformed(rig: Rig) -> None:
    rig.cache.input(b"\x00\x01\x08\x00", 0.0)
    rig.cache.input(bytes(28), 0.0)
    assert rig.cache.stats.malformed == 2 and rig.cache.stats.rx == 2


# --- resolution ---------------------------------------------------------------
def test_resolve_queues_and_sends_one_broadcast(rig: Rig) -> None:
    assert rig.cache.resolve(PEER, pkt(b"1"), 0.0) is None
    assert rig.cache.resolve(PEER, pkt(b"2"), 0.1) is None
    ((dst, req),) = rig.sent
    assert dst == MAC_BROADCAST
    assert req == ArpRepr(OP_REQUEST, OUR_MAC, US, bytes(6), PEER)
    assert rig.cache.table() == [(PEER, INCOMPLETE, b"")]
    assert rig.kicks >= 1 and rig.cache.poll_at() == 1.0


def test_reply_flushes_queue_in_order(rig: Rig) -> None:
    p1, p2 = pkt(b"1"), pkt(b"2")
    rig.cache.resolve(PEER, p1, 0.0)
    rig.cache.resolve(PEER, p2, 0.0)
    rig.cache.input(reply(PEER), 0.5)
    assert rig.ip_out == [(p1, PEER_MAC), (p2, PEER_MAC)]
    assert rig.cache.table() == [(PEER, REACHABLE, PEER_MAC)]
    assert rig.cache.stats.resolved == 1 and rig.failed == []
    assert rig.cache.resolve(PEER, pkt(b"3"), 0.6) == PEER_MAC
    assert len(rig.ip_out) == 2                    # resolved packets go out via the caller


def test_retries_then_unreachable() -> None:
    rig = make_rig(retrans_time=1.0, max_retries=3)
    queued = [pkt(b"a"), pkt(b"b")]
    for p in queued:
        rig.cache.resolve(PEER, p, 0.0)
    for t in (0.5, 1.0, 1.5, 2.0, 2.5):
        rig.cache.poll(t)
    assert len(rig.requests()) == 3 and rig.failed == []
    assert rig.cache.poll_at() == 3.0
    rig.cache.poll(3.0)
    assert len(rig.requests()) == 3
    assert rig.failed == queued
    assert rig.cache.table() == [] and rig.cache.stats.failed == 1
    assert rig.cache.poll_at() is None


def test_queue_bound_drops_oldest() -> None:
    rig = make_rig(queue_len=2)
    pkts = [pkt(bytes([i])) for i in range(4)]
    for p in pkts:
        rig.cache.resolve(PEER, p, 0.0)
    assert rig.cache.stats.queue_drops == 2
    rig.cache.input(reply(PEER), 0.1)
    assert [p for p, _ in rig.ip_out] == pkts[2:]


def test_queue_bound_in_bytes_holds_a_whole_fragmented_datagram() -> None:
    # 41 fragments of a 60 KB datagram fit (Linux: unres_qlen_bytes); a byte bound still drops
    rig = make_rig(queue_bytes=3000)
    frags = [pkt(bytes(1500)) for _ in range(41)]
    for p in frags:
        rig.cache.resolve(PEER, p, 0.0)
    assert rig.cache.stats.queue_drops == 39
    big = make_rig()
    for p in frags:
        big.cache.resolve(PEER, p, 0.0)
    big.cache.input(reply(PEER), 0.1)
    assert big.cache.stats.queue_drops == 0 and len(big.ip_out) == 41


# --- aging (REACHABLE -> STALE -> gone) ---------------------------------------
def test_reachable_goes_stale_then_removed() -> None:
    rig = make_rig(reachable_time=30.0, stale_time=60.0)
    rig.cache.input(request(PEER, US), 0.0)
    assert rig.cache.poll_at() == 30.0
    rig.cache.poll(29.9)
    assert rig.cache.table()[0][1] == REACHABLE
    rig.cache.poll(30.0)
    assert rig.cache.table() == [(PEER, STALE, PEER_MAC)] and rig.cache.poll_at() == 90.0
    rig.cache.poll(89.0)
    assert rig.cache.table()[0][1] == STALE
    rig.cache.poll(90.0)
    assert rig.cache.table() == [] and rig.cache.stats.failed == 0


def test_stale_entry_used_sends_one_unicast_refresh() -> None:
    rig = make_rig(reachable_time=30.0)
    rig.cache.input(request(PEER, US), 0.0)
    rig.sent.clear()
    rig.cache.poll(30.0)
    assert rig.cache.resolve(PEER, pkt(b"1"), 31.0) == PEER_MAC
    assert rig.cache.resolve(PEER, pkt(b"2"), 32.0) == PEER_MAC
    ((dst, req),) = rig.sent
    assert dst == PEER_MAC and req.oper == OP_REQUEST and req.tpa == PEER
    rig.cache.input(reply(PEER), 32.5)
    assert rig.cache.table() == [(PEER, REACHABLE, PEER_MAC)] and rig.cache.poll_at() == 62.5


def test_table_full_evicts_stale_first() -> None:
    rig = make_rig(max_entries=2, reachable_time=10.0)
    rig.cache.input(request(PEER, US), 0.0)
    rig.cache.poll(10.0)                                   # PEER is stale
    rig.cache.input(request(OTHER, US, OTHER_MAC), 11.0)
    rig.cache.resolve(ip_to_int("10.0.0.4"), pkt(b"x"), 12.0)
    assert {ip for ip, _, _ in rig.cache.table()} == {OTHER, ip_to_int("10.0.0.4")}
    assert rig.cache.stats.table_full == 1


def test_flush_reports_queued_packets() -> None:
    rig = make_rig()
    p = pkt(b"q")
    rig.cache.resolve(PEER, p, 0.0)
    rig.cache.flush()
    assert rig.failed == [p] and rig.cache.table() == []


def test_static_entry_never_expires_nor_is_overwritten() -> None:
    rig = make_rig(reachable_time=1.0)
    rig.cache.add_static(PEER, PEER_MAC, 0.0)
    assert rig.cache.poll_at() is None
    rig.cache.poll(1e6)
    rig.cache.input(reply(PEER, sha=OTHER_MAC), 1e6)       # a spoofed reply must not win
    rig.cache.poll(2e6)
    assert rig.cache.table() == [(PEER, REACHABLE, PEER_MAC)]
    assert rig.cache.resolve(PEER, pkt(b"x"), 2e6) == PEER_MAC and rig.sent == []


# --- RFC 5227 §2.3 announcements ---------------------------------------------
def test_announce_count_and_interval() -> None:
    rig = make_rig(announce_count=2, announce_interval=2.0)
    rig.cache.announce(US, 10.0)
    assert rig.kicks == 1 and rig.cache.poll_at() == 10.0
    rig.cache.poll(10.0)
    assert rig.cache.poll_at() == 12.0
    rig.cache.poll(11.9)
    assert len(rig.sent) == 1
    rig.cache.poll(12.0)
    rig.cache.poll(20.0)
    assert len(rig.sent) == 2 and rig.cache.poll_at() is None
    for dst, a in rig.sent:
        assert dst == MAC_BROADCAST
        assert a == ArpRepr(OP_REQUEST, OUR_MAC, US, bytes(6), US)    # sender == target
    assert rig.cache.stats.tx_announces == 2


def test_someone_claiming_our_address_is_counted_never_learned(rig: Rig) -> None:
    # RFC 5227 §2.4: a packet whose sender IP is ours from another MAC is a conflict
    rig.cache.input(request(US, PEER, sha=OTHER_MAC), 0.0)
    rig.cache.input(reply(US, sha=OTHER_MAC), 0.0)
    assert rig.cache.stats.conflicts == 2
    assert US not in rig.cache.entries and rig.sent == []


def test_static_entries_are_not_evicted() -> None:
    rig = make_rig(max_entries=1)
    rig.cache.add_static(PEER, PEER_MAC, 0.0)
    rig.cache.resolve(OTHER, PacketBuffer.from_payload(b"x"), 0.0)
    assert rig.cache.entries[PEER].mac == PEER_MAC and rig.cache.entries[PEER].static
