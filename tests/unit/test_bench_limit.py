"""The bench's minimal TCP endpoint (tools/bench/limit.py): its frame handling, frame in → frames out."""
from __future__ import annotations

import hashlib
import socket
import struct

import dpkt

from ndd.checksum import ones_sum, verify
from tools.bench.limit import MSS, RTO, TSO_SEGS, VNET, WSCALE, Endpoint, pattern_at

US, PEER = "10.78.3.2", "10.78.3.1"
FIN, SYN, RST, PSH, ACK = dpkt.tcp.TH_FIN, dpkt.tcp.TH_SYN, dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_ACK


def frame(flags: int, seq: int, ack: int = 0, data: bytes = b"", *, sport: int = 33000, dport: int = 5001,
          window: int = 502, opts: bytes = b"", dst: str = US, vnet: bool = False) -> bytes:
    """A frame as Linux writes it to the TUN (dpkt fills in both checksums)."""
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=window, opts=opts, data=data)
    tcp.off = 5 + len(opts) // 4
    ip = dpkt.ip.IP(src=socket.inet_aton(PEER), dst=socket.inet_aton(dst), p=6, ttl=64, data=tcp)
    ip.len = 20 + len(bytes(tcp))
    raw = bytes(ip)
    return bytes(10) + raw if vnet else raw


def written(ep: Endpoint) -> list[bytes]:
    """What the endpoint would write, each frame joined; `out` emptied."""
    frames = [b"".join(bytes(p) for p in vec) for vec in ep.out]
    ep.out.clear()
    return frames


def parse(raw: bytes, *, vnet: bool = False) -> tuple[dpkt.tcp.TCP, bytes]:
    """(the TCP segment, the virtio_net_hdr or b''); checks the IPv4 header checksum and, without
    offload, the TCP checksum over the pseudo-header."""
    hdr, raw = (raw[:10], raw[10:]) if vnet else (b"", raw)
    assert verify(raw[:20])
    ip = dpkt.ip.IP(raw)
    assert socket.inet_ntoa(ip.src) == US and ip.len == len(raw)
    seg = raw[20:]
    pseudo = ones_sum(ip.src + ip.dst) + 6 + len(seg)
    if not vnet:
        assert verify(seg, pseudo)
    tcp = ip.data
    assert isinstance(tcp, dpkt.tcp.TCP)
    return tcp, hdr


def mss_ws(tcp: dpkt.tcp.TCP) -> dict[int, bytes]:
    return dict(dpkt.tcp.parse_opts(tcp.opts))


SYN_OPTS = b"\x02\x04\x05\xb4" + b"\x01\x03\x03\x07"     # MSS 1460, NOP, WS 7


def established(ep: Endpoint, *, mode: str = "sink", vnet: bool = False) -> int:
    """A handshake with Linux's ISN 1000 to port 5001; our ISN."""
    ep.listen(5001, mode)
    ep.input(frame(SYN, 1000, opts=SYN_OPTS, vnet=vnet))
    (synack, _), = [parse(f, vnet=vnet) for f in written(ep)]
    ep.input(frame(ACK, 1001, synack.seq + 1, vnet=vnet))
    ep.flush()
    assert written(ep) == []
    return int(synack.seq)


def test_syn_gets_a_syn_ack_with_mss_and_window_scale() -> None:
    ep = Endpoint(US, offload=False)
    ep.listen(5001, "sink")
    ep.input(frame(SYN, 1000, opts=SYN_OPTS))
    (raw,) = written(ep)
    tcp, _ = parse(raw)
    assert tcp.flags == SYN | ACK and tcp.ack == 1001 and (tcp.sport, tcp.dport) == (5001, 33000)
    opts = mss_ws(tcp)
    assert opts[dpkt.tcp.TCP_OPT_MSS] == struct.pack("!H", MSS)
    assert opts[dpkt.tcp.TCP_OPT_WSCALE] == bytes([WSCALE])
    assert dpkt.tcp.TCP_OPT_SACKOK not in opts and dpkt.tcp.TCP_OPT_TIMESTAMP not in opts


def test_no_window_scale_offered_to_a_peer_without_it() -> None:
    ep = Endpoint(US, offload=False)
    ep.listen(5001, "sink")
    ep.input(frame(SYN, 1000, opts=b"\x02\x04\x05\xb4"))
    tcp, _ = parse(written(ep)[0])
    assert dpkt.tcp.TCP_OPT_WSCALE not in mss_ws(tcp)


def test_in_order_data_gets_one_cumulative_ack_per_batch() -> None:
    ep = Endpoint(US, offload=False, hash_input=True)
    iss = established(ep)
    ep.input(frame(ACK | PSH, 1001, iss + 1, b"a" * 100))
    ep.input(frame(ACK | PSH, 1101, iss + 1, b"b" * 50))
    assert written(ep) == []            # nothing before the batch ends
    ep.flush()
    (raw,) = written(ep)
    tcp, _ = parse(raw)
    assert tcp.flags == ACK and tcp.ack == 1151 and tcp.seq == iss + 1 and tcp.win == 0xFFFF
    (c,) = ep.conns.values()
    assert c.rx_bytes == 150 and c.hasher.digest() == hashlib.sha256(b"a" * 100 + b"b" * 50).digest()


def test_out_of_order_data_gets_a_duplicate_ack_at_once() -> None:
    ep = Endpoint(US, offload=False)
    iss = established(ep)
    ep.input(frame(ACK, 2001, iss + 1, b"x" * 10))
    (raw,) = written(ep)
    tcp, _ = parse(raw)
    assert tcp.flags == ACK and tcp.ack == 1001
    ep.flush()
    assert written(ep) == []
    assert next(iter(ep.conns.values())).rx_bytes == 0


def test_fin_is_acked_and_answered_then_the_connection_is_forgotten() -> None:
    ep = Endpoint(US, offload=False)
    iss = established(ep)
    ep.input(frame(FIN | ACK, 1001, iss + 1))
    ep.flush()
    (raw,) = written(ep)
    tcp, _ = parse(raw)
    assert tcp.flags == FIN | ACK and tcp.ack == 1002 and tcp.seq == iss + 1
    ep.input(frame(ACK, 1002, iss + 2))
    ep.flush()
    assert written(ep) == [] and ep.conns == {}


def test_echo_sends_the_data_back_carrying_the_ack() -> None:
    ep = Endpoint(US, offload=False)
    iss = established(ep, mode="echo")
    ep.input(frame(ACK | PSH, 1001, iss + 1, b"x"))
    ep.flush()
    (raw,) = written(ep)
    tcp, _ = parse(raw)
    assert tcp.data == b"x" and tcp.ack == 1002 and tcp.flags & ACK
    ep.input(frame(ACK | PSH, 1002, iss + 2, b"y"))     # the next request ACKs the echo
    ep.flush()
    tcp, _ = parse(written(ep)[0])
    assert tcp.data == b"y" and tcp.seq == iss + 2
    assert next(iter(ep.conns.values())).sndbuf == b"y"     # "x" acknowledged, "y" not yet


def test_close_mode_sends_fin_once_established() -> None:
    ep = Endpoint(US, offload=False)
    ep.listen(5009, "close")
    ep.input(frame(SYN, 1000, opts=SYN_OPTS, dport=5009))
    synack, _ = parse(written(ep)[0])
    ep.input(frame(ACK, 1001, synack.seq + 1, dport=5009))
    ep.flush()
    (raw,) = written(ep)
    tcp, _ = parse(raw)
    assert tcp.flags == FIN | ACK and ep.accepted == 1
    ep.input(frame(FIN | ACK, 1001, synack.seq + 2, dport=5009))
    ep.flush()
    tcp, _ = parse(written(ep)[0])
    assert tcp.flags == ACK and tcp.ack == 1002 and ep.conns == {}


def test_other_addresses_are_dropped_and_strays_get_a_reset() -> None:
    ep = Endpoint(US, offload=False)
    ep.input(frame(SYN, 1000, dst="10.78.3.9"))
    assert written(ep) == [] and ep.dropped == 1
    ep.input(frame(ACK, 1000, 777, b"z"))           # no connection: RST from its ACK field
    tcp, _ = parse(written(ep)[0])
    assert tcp.flags == RST and tcp.seq == 777
    ep.input(frame(SYN, 1000, dport=9))             # no listener: RST|ACK
    tcp, _ = parse(written(ep)[0])
    assert tcp.flags == RST | ACK and tcp.ack == 1001
    ep.input(b"\x45" + bytes(10))                   # too short: dropped, no exception
    assert ep.dropped == 4


def test_active_open_sends_data_the_window_allows_then_fin() -> None:
    ep = Endpoint(US, offload=False)
    c = ep.connect(PEER, 5002)
    syn, _ = parse(written(ep)[0])
    assert syn.flags == SYN and mss_ws(syn)[dpkt.tcp.TCP_OPT_WSCALE] == bytes([WSCALE])
    # SYN-ACK: window 4 × 1460 unscaled, WS 0
    ep.input(frame(SYN | ACK, 5000, syn.seq + 1, sport=5002, dport=c.lport, window=4 * 1460,
                   opts=b"\x02\x04\x05\xb4\x01\x03\x03\x00"))
    ep.flush()
    segs = [parse(f)[0] for f in written(ep)]
    assert all(s.flags & ACK and s.data for s in segs)      # the data carries the handshake's ACK
    data = b"".join(s.data for s in segs)
    assert len(data) == 4 * 1460 and all(len(s.data) <= 1460 for s in segs)
    assert data == bytes(pattern_at(0, len(data)))
    ep.shutdown(c)
    ep.input(frame(ACK, 5001, syn.seq + 1 + len(data), sport=5002, dport=c.lport, window=4 * 1460))
    ep.flush()
    (raw,) = written(ep)
    fin, _ = parse(raw)
    assert fin.flags == FIN | ACK and fin.seq == syn.seq + 1 + len(data)
    ep.input(frame(FIN | ACK, 5001, fin.seq + 1, sport=5002, dport=c.lport))
    ep.flush()
    ack, _ = parse(written(ep)[0])
    assert ack.ack == 5002 and ep.conns == {}


def test_offload_sends_tso_super_segments_with_a_partial_checksum() -> None:
    ep = Endpoint(US, offload=True)
    c = ep.connect(PEER, 5002)
    syn, vh = parse(written(ep)[0], vnet=True)
    assert VNET.unpack(vh)[0] == 1          # NEEDS_CSUM
    ep.input(frame(SYN | ACK, 5000, syn.seq + 1, sport=5002, dport=c.lport, window=65535,
                   opts=b"\x02\x04\x05\xb4\x01\x03\x03\x05", vnet=True))
    ep.input(frame(ACK, 5001, syn.seq + 1, sport=5002, dport=c.lport, window=65535, vnet=True))  # 2 MiB
    ep.flush()
    frames = written(ep)
    first, vh = parse(frames[0], vnet=True)
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET.unpack(vh)
    assert (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset) == (1, 1, 40, 1460, 20, 16)
    assert len(first.data) == TSO_SEGS * 1460
    ip = dpkt.ip.IP(frames[0][10:])
    pseudo = ones_sum(ip.src + ip.dst) + 6 + 20 + len(first.data)
    assert first.sum == (pseudo % 0xFFFF or 0xFFFF)         # the pseudo-header sum, folded


def test_a_lost_segment_is_sent_again_after_the_timeout() -> None:
    ep = Endpoint(US, offload=False)
    iss = established(ep, mode="echo")
    ep.input(frame(ACK | PSH, 1001, iss + 1, b"q"))
    ep.flush()
    written(ep)
    ep.tick(ep.now + RTO / 2)
    assert written(ep) == []
    ep.tick(ep.now + RTO)
    (raw,) = written(ep)
    tcp, _ = parse(raw)
    assert tcp.data == b"q" and tcp.seq == iss + 1
