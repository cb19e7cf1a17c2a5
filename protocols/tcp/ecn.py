"""Explicit Congestion Notification for TCP (RFC 3168), as Linux does it (tp->ecn_flags,
net/ipv4/tcp_input.c and tcp_output.c, include/net/tcp_ecn.h).

The IP layers hand the ECN field up (IpMeta.tos / Ip6Meta.tclass: tcp.py copies its two low
bits into TcpRepr.ecn) and take it down with the socket's TOS / traffic class, whose two low
bits the connection sets per segment as Linux's INET_ECN_xmit / INET_ECN_dontxmit do.

Negotiation (RFC 3168 §6.1.1), `TcpConfig.ecn` = net.ipv4.tcp_ecn:
  0  off: an ECN-setup SYN is answered as a plain one;
  1  request it on outgoing connections and accept it on incoming ones;
  2  accept it only (Linux's default): a listener answers an ECN-setup SYN with ECE.
An ECN-setup SYN carries ECE and CWR and must itself be Not-ECT (a SYN marked ECT says a
middlebox rewrote the field: Linux tcp_ecn_create_request refuses ECN then); the SYN-ACK
agreeing carries ECE without CWR.  Neither carries ECT.  A retransmitted SYN goes without
ECE and CWR (net.ipv4.tcp_ecn_fallback, RFC 3168 §6.1.1.1: a middlebox may drop them), but the
request stands: a SYN-ACK with ECE still turns ECN on, as Linux's tcp_ecn_clear_syn.

Once on:
  * new data segments go out ECT(0); pure ACKs, retransmissions, SYNs, FINs without data and
    window probes Not-ECT (RFC 3168 §6.1.4-6.1.5, Linux tcp_ecn_send);
  * a data segment arriving CE makes every segment we send carry ECE until a segment with CWR
    arrives (§6.1.3); the first CE asks for quick ACKs (Linux tcp_enter_quickack_mode(sk, 2)),
    a CWR segment with data for an ACK at once (Linux ICSK_ACK_NOW); CE on a pure ACK is not
    looked at (Linux checks data only);
  * an ACK with ECE makes the sender reduce once per window of data (§6.1.2): it enters CWR
    (Linux TCP_CA_CWR, tcpi_ca_state 2) with ssthresh and cwnd as the congestion control's
    on_congestion sets them, and the next new data segment carries CWR.  CWR ends once
    SND.UNA passes SND.MAX as it was then; meanwhile cwnd does not grow.  A reduction for loss
    (fast recovery, RTO) also puts CWR on the next new data (Linux tcp_init_cwnd_reduction,
    tcp_enter_loss).
We never set CE: marking is a router's job.
"""
from __future__ import annotations

from .wire import CWR, ECE

NOT_ECT, ECT1, ECT0, CE = 0, 1, 2, 3      # RFC 3168 §5: the IP header's ECN codepoints
ECN_MASK = 3

ECN_OFF, ECN_ON, ECN_PASSIVE = 0, 1, 2    # net.ipv4.tcp_ecn
QUICKACKS_ON_CE = 2                       # Linux tcp_enter_quickack_mode(sk, 2)


class Ecn:
    """One connection's ECN state (Linux tp->ecn_flags); the connection holds one only while
    ECN is requested or on (Connection.ecn, None otherwise: the segment path tests that)."""
    __slots__ = ("demand_cwr", "queue_cwr", "seen", "cwr_high")

    def __init__(self) -> None:
        self.demand_cwr = False        # CE received: ECE on what we send until CWR arrives
        self.queue_cwr = False         # we reduced: CWR on the next new data segment
        self.seen = False              # an ECT or CE data segment arrived (Linux TCP_ECN_SEEN)
        self.cwr_high: int | None = None   # in CWR: SND.MAX when it began (Linux high_seq)

    @property
    def in_cwr(self) -> bool:
        return self.cwr_high is not None

    # --- receiving --------------------------------------------------------------------------
    def on_cwr(self) -> None:
        """A segment with CWR: the sender has reduced; stop echoing (RFC 3168 §6.1.3)."""
        self.demand_cwr = False

    def on_data(self, codepoint: int) -> bool:
        """A data segment's ECN codepoint; True when it asks for quick ACKs (Linux
        __tcp_ecn_check_ce): the first CE of an episode, or a Not-ECT segment after ECT ones
        (most likely a retransmission: the sender is in trouble)."""
        if codepoint == CE:
            self.seen = True
            if not self.demand_cwr:
                self.demand_cwr = True
                return True
            return False
        if codepoint == NOT_ECT:
            return self.seen
        self.seen = True
        return False

    # --- sending ----------------------------------------------------------------------------
    def data_flags(self) -> int:
        """TCP flags for a new data segment (ECT(0) is the caller's): CWR once after a
        reduction, ECE while CE is unanswered."""
        flags = ECE if self.demand_cwr else 0
        if self.queue_cwr:
            self.queue_cwr = False
            flags |= CWR
        return flags

    def ack_flags(self) -> int:
        """TCP flags for any other segment (pure ACK, retransmission, FIN, probe)."""
        return ECE if self.demand_cwr else 0

    # --- the sender's reduction ---------------------------------------------------------------
    def enter_cwr(self, snd_max: int) -> None:
        """An ECE to act on (RFC 3168 §6.1.2): the caller has reduced cwnd; CWR goes out on the
        next new data and no further ECE reduces before SND.UNA passes `snd_max`."""
        self.cwr_high = snd_max
        self.queue_cwr = True

    def to_recovery(self) -> bool:
        """Fast recovery begins.  True when CWR had already reduced cwnd for this window: the
        caller reduces no further (§6.1.2: once per window; Linux tcp_enter_recovery skips
        tcp_init_cwnd_reduction from CWR).  Otherwise the reduction it makes goes out as CWR."""
        if self.cwr_high is not None:
            self.cwr_high = None
            return True
        self.queue_cwr = True
        return False

    def on_timeout(self) -> None:
        """A retransmission timeout (the SYN's too): CWR on the next new data, and CWR's
        window is over (Linux tcp_enter_loss: tcp_ecn_queue_cwr, state Loss)."""
        self.cwr_high = None
        self.queue_cwr = True


def syn_requests_ecn(flags: int) -> bool:
    """An ECN-setup SYN (RFC 3168 §6.1.1): ECE and CWR both set."""
    return flags & (ECE | CWR) == ECE | CWR


def listener_accepts(mode: int, syn_flags: int, codepoint: int) -> bool:
    """Does a listener with net.ipv4.tcp_ecn = `mode` agree to ECN for this SYN?  Modes 1 and
    2 do, for an ECN-setup SYN that is itself Not-ECT (Linux tcp_ecn_create_request)."""
    return mode != ECN_OFF and syn_requests_ecn(syn_flags) and codepoint == NOT_ECT


def synack_agrees(flags: int) -> bool:
    """The SYN-ACK answering our ECN-setup SYN agrees: ECE without CWR (RFC 3168 §6.1.1; a
    SYN-ACK with both is a reflector echoing our flags, Linux tcp_ecn_rcv_synack)."""
    return flags & (ECE | CWR) == ECE


def syn_ecn_flags(synack: bool, retries: int, fallback: bool) -> int:
    """ECE/CWR on a SYN of a connection with ECN requested or agreed: ECE on the SYN-ACK
    (retransmissions too, Linux tcp_ecn_make_synack); ECE and CWR on our SYN, but not on its
    retransmissions under net.ipv4.tcp_ecn_fallback (Linux tcp_ecn_clear_syn)."""
    if synack:
        return ECE
    return ECE | CWR if retries == 0 or not fallback else 0
