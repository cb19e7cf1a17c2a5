"""Urgent data's sans-IO state (protocols/tcp/urgent.py): the sender's pointer, the
receiver's mark and byte, and recv(MSG_OOB)'s answers -- Linux's rules (tcp_transmit_skb,
tcp_check_urg, tcp_urg, tcp_recvmsg, tcp_recv_urg), each case as the kernel decides it."""
from __future__ import annotations

import errno
import inspect

from protocols.contracts import StreamUserRequests, UserRequests
from protocols.tcp import seq as sq
from protocols.tcp.urgent import NONE, NOTYET, READ, VALID, Urgent, read_seq
from protocols.tcp.usrreq import TcpUserRequests

TOP = 0xFFFFFFFF


# --- sending ---------------------------------------------------------------------------------
def test_pointer_points_after_the_urgent_byte_on_segments_below_it() -> None:
    u = Urgent()
    u.mark(1001)                                     # send(1000 bytes from 1, MSG_OOB)
    assert u.pointer(1, snd_una=1, snd_nxt=1) == 1000
    assert u.pointer(501, snd_una=1, snd_nxt=501) == 500
    assert u.pointer(1001, snd_una=1, snd_nxt=1001) is None      # at or above SND.UP: no URG
    assert u.pointer(1101, snd_una=1, snd_nxt=1101) is None


def test_urgent_mode_ends_when_the_peer_acknowledges_the_pointer() -> None:
    u = Urgent()
    u.mark(1001)
    assert u.sending(1000)
    assert not u.sending(1001)
    assert u.snd_up is None
    assert u.pointer(900, snd_una=1001, snd_nxt=1001) is None


def test_a_pointer_beyond_16_bits_is_0xffff_while_that_is_beyond_what_was_sent() -> None:
    u = Urgent()
    u.mark(200_001)
    assert u.pointer(1, snd_una=1, snd_nxt=1) == 0xFFFF
    # 0xFFFF from this segment would point into data already sent: no URG (tcp_transmit_skb)
    assert u.pointer(1, snd_una=1, snd_nxt=100_000) is None


def test_pointer_across_the_sequence_wrap() -> None:
    u = Urgent()
    u.mark(sq.add(TOP, 11))                          # SND.UP = 10, past the wrap
    assert u.pointer(TOP - 9, snd_una=TOP - 9, snd_nxt=TOP - 9) == 20
    assert u.sending(TOP)


# --- receiving -------------------------------------------------------------------------------
def test_the_urgent_byte_is_the_one_before_the_pointer() -> None:
    u = Urgent()
    assert not u.on_pointer(1000, seqno=1, read_seq=1, rcv_nxt=1)
    assert (u.rcv_state, u.rcv_seq) == (NOTYET, 1000)
    payload = memoryview(bytes(999) + b"!")
    assert u.take_byte(1, payload)
    assert (u.rcv_state, u.rcv_byte) == (VALID, ord("!"))


def test_a_pointer_beyond_the_segment_waits_for_its_byte() -> None:
    u = Urgent()
    u.on_pointer(200, seqno=1, read_seq=1, rcv_nxt=1)
    assert not u.take_byte(1, memoryview(bytes(100)))
    assert u.rcv_state == NOTYET
    assert u.recv_oob(peek=False, at_end=False) == errno.EAGAIN
    assert u.take_byte(101, memoryview(bytes(99) + b"x"))
    assert u.recv_oob(peek=False, at_end=False) == b"x"


def test_old_and_replayed_pointers_are_ignored() -> None:
    u = Urgent()
    u.on_pointer(100, seqno=1, read_seq=1, rcv_nxt=1)
    u.on_pointer(50, seqno=1, read_seq=1, rcv_nxt=1)       # older than the one known
    assert u.rcv_seq == 100
    u.rcv_state = NONE
    assert not u.on_pointer(10, seqno=1, read_seq=1, rcv_nxt=101)   # before RCV.NXT: replayed
    assert u.rcv_state == NONE
    assert not u.on_pointer(10, seqno=1, read_seq=50, rcv_nxt=50)   # already read
    assert u.rcv_state == NONE


def test_a_newer_pointer_replaces_the_first_and_may_step_the_reader_over_it() -> None:
    u = Urgent()
    u.on_pointer(100, seqno=1, read_seq=1, rcv_nxt=1)
    u.take_byte(1, memoryview(bytes(100)))
    # the reader has not reached the first mark: the old byte becomes ordinary data
    assert not u.on_pointer(100, seqno=101, read_seq=50, rcv_nxt=101)
    assert (u.rcv_state, u.rcv_seq) == (NOTYET, 200)
    # the reader stands on the mark (not inline), more is queued: it steps over the old byte
    u.take_byte(101, memoryview(bytes(100)))
    assert u.on_pointer(50, seqno=201, read_seq=200, rcv_nxt=201)
    # inline, the old byte is data and stays
    v = Urgent(inline=True)
    v.on_pointer(100, seqno=1, read_seq=1, rcv_nxt=1)
    assert not v.on_pointer(100, seqno=101, read_seq=100, rcv_nxt=101)


def test_reads_stop_at_the_mark_then_step_over_the_byte() -> None:
    u = Urgent()
    assert u.read_plan(1, 2000) == (0, 2000)               # no urgent data: as asked
    u.on_pointer(1000, seqno=1, read_seq=1, rcv_nxt=1)
    assert u.read_plan(1, 2000) == (0, 999)
    assert u.read_plan(1, 10) == (0, 10)
    assert u.at_mark(1000) and u.hidden(1000) == 1
    assert u.read_plan(1000, 2000) == (1, 2000)
    u.after_read(1000)
    assert u.rcv_state == NOTYET
    u.after_read(1001)
    assert u.rcv_state == NONE and not u.at_mark(1000)


def test_inline_reads_stop_at_the_mark_and_keep_the_byte() -> None:
    u = Urgent(inline=True)
    u.on_pointer(1000, seqno=1, read_seq=1, rcv_nxt=1)
    assert u.read_plan(1, 2000) == (0, 999)
    assert u.read_plan(1000, 2000) == (0, 2000)
    assert u.at_mark(1000) and u.hidden(1000) == 0


def test_recv_oob_answers() -> None:
    u = Urgent()
    assert u.recv_oob(peek=False, at_end=False) == errno.EINVAL        # none came
    u.on_pointer(1, seqno=1, read_seq=1, rcv_nxt=1)
    assert u.recv_oob(peek=False, at_end=True) == b""                  # the stream ended first
    u.take_byte(1, memoryview(b"u"))
    assert u.recv_oob(peek=True, at_end=False) == b"u"
    assert u.recv_oob(peek=False, at_end=False) == b"u"
    assert u.rcv_state == READ
    assert u.recv_oob(peek=False, at_end=False) == errno.EINVAL        # read once
    u.inline = True
    u.rcv_state = VALID
    assert u.recv_oob(peek=False, at_end=False) == errno.EINVAL        # inline: no out-of-band byte


def test_read_seq_leaves_out_the_unread_bytes_and_the_fin() -> None:
    assert read_seq(1000, 0, False) == 1000
    assert read_seq(1000, 100, False) == 900
    assert read_seq(1001, 100, True) == 900
    assert read_seq(5, 10, False) == TOP - 4


def test_tcp_serves_the_stream_requests_with_the_contracts_parameters() -> None:
    for name in set(vars(StreamUserRequests)) - set(vars(UserRequests)):
        if not name.startswith("_"):
            contract = inspect.signature(getattr(StreamUserRequests, name))
            assert list(inspect.signature(getattr(TcpUserRequests, name)).parameters) == list(contract.parameters)
