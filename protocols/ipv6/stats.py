"""The IPv6 network layer's counters: RFC 4293 ipSystemStats names, lower-cased, as Ipv4Stats.

Parsers return one of these field names as their drop reason (`stats.bump(reason)`).  The
reassembly counters live here too because RFC 4293 puts them in the same table; ICMPv6, ND and
MLD keep their own records.
"""
from __future__ import annotations

from dataclasses import dataclass

from ndd.counters import Counters


@dataclass
class Ipv6Stats(Counters):
    in_receives: int = 0
    in_hdr_errors: int = 0        # bad version, address rules, bad options, routing header, chain too long
    in_no_routes: int = 0
    in_addr_errors: int = 0       # not for us (a host does not forward), routing header to multicast
    in_unknown_protos: int = 0    # next header with no handler, hop-by-hop not first (param problem code 1)
    in_truncated_pkts: int = 0    # frame shorter than the payload length, or a header running past it
    in_discards: int = 0
    in_delivers: int = 0
    in_mcast_pkts: int = 0
    reasm_reqds: int = 0
    reasm_oks: int = 0
    reasm_fails: int = 0
    out_requests: int = 0
    out_no_routes: int = 0
    out_discards: int = 0
    out_frag_reqds: int = 0
    out_frag_oks: int = 0
    out_frag_fails: int = 0
    out_frag_creates: int = 0
    out_mcast_pkts: int = 0
