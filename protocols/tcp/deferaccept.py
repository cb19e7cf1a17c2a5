"""TCP_DEFER_ACCEPT (Linux; no RFC): a listener makes its connections on their first data.

The option's seconds become a number of SYN-ACK retransmissions (Linux secs_to_retrans:
1 s, doubling, at most TCP_RTO_MAX each) and read back as the seconds those take.  While a
child in SYN-RECEIVED has seen fewer SYN-ACK timeouts than that, a bare handshake ACK (no
data, no FIN) is dropped and remembered (Linux tcp_check_req: `acked`, TCPDeferAcceptDrop):
the connection stays in SYN-RECEIVED, off the accept queue, until data comes.  Once the
peer has ACKed, the SYN-ACK is not retransmitted (it would only draw the same ACK) except
at the last deferral timeout, which gives the peer a last chance: the ACK after it makes
the connection whatever it carries.  An ACKed child lives until both the SYN-ACK retries
(net.ipv4.tcp_synack_retries) and the deferral ran out (Linux syn_ack_recalc).

SYN cookies: a cookie's ACK makes its connection at once, data or not, as on Linux (no
state was kept to hold it back in; cookie_v4_check does not defer).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tcb import Tcb

TCP_DEFER_ACCEPT = 9                # linux/tcp.h
_TIMEOUT_INIT = 1                   # s: the first SYN-ACK timeout (TCP_TIMEOUT_INIT)
_RTO_MAX = 120                      # s: TCP_RTO_MAX, the longest one
_MAX_RETRANS = 255                  # a u8 in Linux's request-socket queue


def secs_to_retrans(seconds: int) -> int:
    """The SYN-ACK timeouts that cover `seconds` (0 for none or a negative value)."""
    if seconds <= 0:
        return 0
    timeout = period = _TIMEOUT_INIT
    retrans = 1
    while seconds > period and retrans < _MAX_RETRANS:
        retrans += 1
        timeout = min(timeout * 2, _RTO_MAX)
        period += timeout
    return retrans


def retrans_to_secs(retrans: int) -> int:
    """The seconds `retrans` SYN-ACK timeouts take (what getsockopt reads back)."""
    if retrans <= 0:
        return 0
    timeout = period = _TIMEOUT_INIT
    for _ in range(retrans - 1):
        timeout = min(timeout * 2, _RTO_MAX)
        period += timeout
    return period


def drops_bare_ack(child: Tcb, seglen: int) -> bool:
    """A listener's child in SYN-RECEIVED got an acceptable handshake ACK occupying
    `seglen` octets of sequence space: True when the deferral drops it (tcp_check_req)."""
    parent = child.parent
    if parent is None or seglen or child.cookie or child.retries >= parent.defer_accept:
        return False                # (a cookie's ACK: no request was kept to hold it in)
    child.defer_acked = True
    child.segs_in -= 1              # Linux's request socket counts no segments: tcpi_segs_in as the kernel's
    child.host.stats.defer_accept_drops += 1
    return True


def holds_synack(child: Tcb) -> bool:
    """At a SYN-ACK timeout (`retries` counts this one): no retransmission while the peer has
    ACKed, but at the deferral's last timeout (syn_ack_recalc's `resend`)."""
    parent = child.parent
    return child.defer_acked and parent is not None and child.retries < parent.defer_accept


def keeps_waiting(child: Tcb) -> bool:
    """The SYN-ACK retries ran out: an ACKed child still waits out its deferral
    (syn_ack_recalc's `expire`)."""
    parent = child.parent
    return child.defer_acked and parent is not None and child.retries <= parent.defer_accept
