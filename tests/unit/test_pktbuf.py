"""PacketBuffer headroom discipline (ndd/pktbuf.py): headers are prepended in place,
the payload is copied at most once (the BSD mbuf / Linux skb idea)."""
from __future__ import annotations

from ndd.pktbuf import DEFAULT_HEADROOM, PacketBuffer


def test_from_payload_leaves_headroom() -> None:
    pb = PacketBuffer.from_payload(b"hello", headroom=40)
    assert pb.headroom == 40 and len(pb) == 5 and pb.tobytes() == b"hello"
    assert bytes(pb.view()) == b"hello"


def test_prepend_keeps_buffer_while_headroom_suffices() -> None:
    pb = PacketBuffer.from_payload(b"payload", headroom=34)
    buf = pb.buf
    pb.prepend(20)[:] = b"I" * 20
    pb.prepend(14)[:] = b"E" * 14
    assert pb.buf is buf                      # no copy: headers went into the headroom
    assert pb.headroom == 0
    assert pb.tobytes() == b"E" * 14 + b"I" * 20 + b"payload"


def test_prepend_regrows_when_headroom_exhausted() -> None:
    pb = PacketBuffer.from_payload(b"data", headroom=8)
    old = pb.buf
    pb.prepend(8)[:] = b"h" * 8
    assert pb.buf is old
    pb.prepend(4)[:] = b"HHHH"
    assert pb.buf is not old
    assert pb.tobytes() == b"HHHHhhhhhhhhdata"
    assert pb.headroom == DEFAULT_HEADROOM - 4


def test_prepend_larger_than_default_headroom() -> None:
    pb = PacketBuffer.from_payload(b"x", headroom=0)
    pb.prepend(DEFAULT_HEADROOM + 10)[:] = bytes(DEFAULT_HEADROOM + 10)
    assert len(pb) == DEFAULT_HEADROOM + 11 and pb.tobytes()[-1:] == b"x"


def test_prepend_regrows_read_only_buffer() -> None:
    # a received packet (bytes) turned around: regrow instead of writing into it
    raw = b"\x00" * 20 + b"body"
    pb = PacketBuffer(raw, 20)
    view = pb.prepend(4)
    view[:] = b"abcd"
    assert isinstance(pb.buf, bytearray)
    assert pb.tobytes() == b"abcdbody"
    assert raw == b"\x00" * 20 + b"body"     # the original is untouched


def test_prepend_regrows_memoryview_buffer() -> None:
    backing = bytearray(b"\x00" * 8 + b"body")
    pb = PacketBuffer(memoryview(backing), 8)
    pb.prepend(2)[:] = b"zz"
    assert isinstance(pb.buf, bytearray)
    assert pb.tobytes() == b"zzbody"
    assert backing[:8] == bytes(8)


def test_csum_start_survives_regrow() -> None:
    pb = PacketBuffer.from_payload(b"\x00" * 8 + b"udp payload", headroom=4)
    pb.csum_start, pb.csum_offset = pb.start, 6      # L4 header starts at the payload
    l4 = pb.tobytes()
    pb.prepend(20)[:] = b"\x45" + bytes(19)          # forces a regrow
    assert pb.buf[pb.csum_start:pb.csum_start + len(l4)] == l4
    assert pb.csum_start == pb.start + 20


def test_csum_start_unset_stays_unset() -> None:
    pb = PacketBuffer(b"abc")
    pb.prepend(1)[:] = b"z"
    assert pb.csum_start == -1


def test_pull_and_trim() -> None:
    pb = PacketBuffer(bytearray(b"EEEEIIIIpayload\x00\x00\x00"))
    pb.pull(4)
    assert pb.tobytes() == b"IIIIpayload\x00\x00\x00"
    pb.pull(4)
    pb.trim(7)                                        # drop link-layer padding
    assert pb.tobytes() == b"payload" and len(pb) == 7
    assert pb.headroom == 8


def test_pull_then_prepend_reuses_space() -> None:
    pb = PacketBuffer(bytearray(b"HDRpayload"))
    buf = pb.buf
    pb.pull(3)
    pb.prepend(3)[:] = b"NEW"
    assert pb.buf is buf and pb.tobytes() == b"NEWpayload"


def test_copy_is_independent_and_keeps_metadata() -> None:
    pb = PacketBuffer.from_payload(b"0123456789", headroom=16)
    pb.csum_start, pb.csum_offset, pb.csum_valid = pb.start + 2, 6, True
    pb.gso_type, pb.gso_size, pb.ll_src, pb.ll_bcast = 1, 1400, b"\x02" * 6, True
    cp = pb.copy()
    assert cp.tobytes() == pb.tobytes() and cp.buf is not pb.buf
    assert cp.csum_start - cp.start == 2 and cp.csum_offset == 6 and cp.csum_valid
    assert (cp.gso_type, cp.gso_size, cp.ll_src, cp.ll_bcast) == (1, 1400, b"\x02" * 6, True)
    cp.view()[0] = ord("X")
    assert pb.tobytes() == b"0123456789"


def test_copy_of_buffer_without_headroom_gets_headroom() -> None:
    pb = PacketBuffer(b"abcdef")
    pb.csum_start = 2
    cp = pb.copy()
    assert cp.headroom == DEFAULT_HEADROOM
    assert cp.buf[cp.csum_start:cp.end] == b"cdef"


def test_allocate_is_zeroed_and_writable() -> None:
    pb = PacketBuffer.allocate(32, headroom=10)
    assert pb.tobytes() == bytes(32) and pb.headroom == 10
    pb.view()[:4] = b"abcd"
    assert pb.tobytes()[:4] == b"abcd"
