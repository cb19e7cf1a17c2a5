"""Urgent data (RFC 9293 §3.8.5, RFC 6093) as Linux handles it: one byte out of band.

RFC 6093 §5 recommends that new applications not use urgent data; it is here because
Linux's socket API has it (MSG_OOB, SO_OOBINLINE, SIOCATMARK) and programs and test suites
written against Linux use it.  The semantics are Linux's, which are BSD's:

  * Sending (tcp_sendmsg with MSG_OOB, tcp_mark_urg): SND.UP is set after the last byte of
    the send, so the pointer points one past the urgent byte (RFC 6093 §2 "BSD semantics",
    Linux's default, net.ipv4.tcp_stdurg=0).  While SND.UNA is below SND.UP the connection
    is in urgent mode: every segment that starts below SND.UP carries URG with the pointer
    SND.UP - SEG.SEQ (tcp_transmit_skb), and Nagle does not hold data back (tcp_nagle_test).
  * Receiving (tcp_urg, tcp_check_urg): the byte before the pointer is the urgent byte.  A
    new pointer beyond the old one replaces it; the old urgent byte then stays in the stream
    as ordinary data -- unless the reader stands on it, then it is stepped over.  Without
    SO_OOBINLINE the urgent byte is taken out of the stream: recv(MSG_OOB) returns it once
    (EINVAL when there is none or it was read, EAGAIN while the pointer is known but the
    byte has not come), ordinary reads stop at the mark (SIOCATMARK) and then skip the byte.
    With SO_OOBINLINE it is read in the stream and recv(MSG_OOB) is EINVAL; reads still stop
    at the mark.

Sans-IO: the state of one connection's urgent data and the decisions on it; the connection
(conn.py, input.py, output.py) calls in with its sequence numbers.
"""
from __future__ import annotations

import errno

from . import seq as sq

# what the receiver knows of urgent data (Linux tp->urg_data: 0, TCP_URG_NOTYET,
# TCP_URG_VALID | byte, TCP_URG_READ)
NONE, NOTYET, VALID, READ = 0, 1, 2, 3
MAX_POINTER = 0xFFFF


class Urgent:
    """Urgent data of one connection, both directions, and its SO_OOBINLINE flag."""
    __slots__ = ("snd_up", "rcv_seq", "rcv_state", "rcv_byte", "inline")

    def __init__(self, inline: bool = False) -> None:
        self.snd_up: int | None = None      # SND.UP after a MSG_OOB send (None: never urgent)
        self.rcv_seq = 0                    # the urgent byte's sequence number (Linux urg_seq)
        self.rcv_state = NONE
        self.rcv_byte = 0
        self.inline = inline                # SO_OOBINLINE

    # --- sending -------------------------------------------------------------------------------
    def mark(self, write_seq: int) -> None:
        """send(MSG_OOB) queued data up to `write_seq`: its last byte is urgent."""
        self.snd_up = write_seq

    def sending(self, snd_una: int) -> bool:
        """Urgent mode (Linux tcp_urg_mode): the peer has not acknowledged SND.UP yet."""
        up = self.snd_up
        if up is None:
            return False
        if sq.ge(snd_una, up):
            self.snd_up = None                  # acknowledged: urgent mode ends (tcp_clean_rtx_queue)
            return False
        return True

    def pointer(self, seqno: int, snd_una: int, snd_nxt: int) -> int | None:
        """The urgent pointer of a segment starting at `seqno`, or None for no URG (Linux
        tcp_transmit_skb): SND.UP - SEG.SEQ while that fits 16 bits; else 0xFFFF, when that
        still points beyond what was sent, so the peer keeps waiting for the mark."""
        if not self.sending(snd_una):
            return None
        up = self.snd_up
        assert up is not None
        offset = sq.diff(up, seqno)
        if offset <= 0:
            return None
        if offset <= MAX_POINTER:
            return offset
        if sq.gt(sq.add(seqno, MAX_POINTER), snd_nxt):
            return MAX_POINTER
        return None

    # --- receiving -----------------------------------------------------------------------------
    def on_pointer(self, field: int, seqno: int, read_seq: int, rcv_nxt: int) -> bool:
        """A segment at `seqno` with URG and pointer `field` (Linux tcp_check_urg, BSD
        semantics: the urgent byte is the one before the pointer).  True when the reader
        stands on the old urgent byte, not inline, and must step over it now that a newer
        one replaces it (`read_seq` is the next byte the reader will read)."""
        ptr = sq.add(seqno, field - 1 if field else 0)
        if sq.gt(read_seq, ptr) or sq.lt(ptr, rcv_nxt):
            return False                        # already read, or an old pointer replayed
        if self.rcv_state != NONE and sq.le(ptr, self.rcv_seq):
            return False                        # this one, or an older one
        step_over = (self.rcv_state != NONE and self.rcv_seq == read_seq and not self.inline
                     and read_seq != rcv_nxt)
        self.rcv_state = NOTYET
        self.rcv_seq = ptr
        return step_over

    def take_byte(self, seqno: int, payload: memoryview) -> bool:
        """The pointer is known, the byte not yet: take it if this segment holds it (Linux
        tcp_urg).  True when it did -- the reader is woken."""
        offset = sq.diff(self.rcv_seq, seqno)
        if 0 <= offset < len(payload):
            self.rcv_byte = payload[offset]
            self.rcv_state = VALID
            return True
        return False

    def read_plan(self, read_seq: int, n: int) -> tuple[int, int]:
        """How an ordinary read of up to `n` bytes from `read_seq` goes (Linux tcp_recvmsg):
        (bytes to step over first, bytes to read).  A read stops at the mark; one standing
        on it steps over the urgent byte unless it is inline."""
        if self.rcv_state == NONE:
            return 0, n
        before_mark = sq.diff(self.rcv_seq, read_seq)
        if before_mark > 0:
            return 0, min(n, before_mark)
        if before_mark == 0 and not self.inline:
            return 1, n
        return 0, n

    def after_read(self, read_seq: int) -> None:
        """The reader moved to `read_seq`: once past the mark, the urgent data is forgotten."""
        if self.rcv_state != NONE and sq.gt(read_seq, self.rcv_seq):
            self.rcv_state = NONE

    def at_mark(self, read_seq: int) -> bool:
        """SIOCATMARK: the next byte to read is the urgent byte."""
        return self.rcv_state != NONE and self.rcv_seq == read_seq

    def hidden(self, read_seq: int) -> int:
        """Bytes at the read point that are not readable data: the urgent byte out of band
        (Linux tcp_poll raises its readability target by one)."""
        return 1 if not self.inline and self.at_mark(read_seq) else 0

    def recv_oob(self, peek: bool, at_end: bool) -> bytes | int:
        """recv(MSG_OOB) (Linux tcp_recv_urg): the urgent byte, b"" at the end of the stream,
        or an errno: EINVAL with none to read (none came, it was read, or it is inline),
        EAGAIN while the pointer is known and the byte is not -- never blocking."""
        if self.inline or self.rcv_state in (NONE, READ):
            return errno.EINVAL
        if self.rcv_state == VALID:
            if not peek:
                self.rcv_state = READ
            return bytes((self.rcv_byte,))
        return b"" if at_end else errno.EAGAIN


def read_seq(rcv_nxt: int, unread: int, fin: bool) -> int:
    """The next sequence number the application reads (Linux copied_seq): RCV.NXT less the
    bytes held unread and the peer's FIN, if it came."""
    return sq.add(rcv_nxt, -(unread + (1 if fin else 0)))
