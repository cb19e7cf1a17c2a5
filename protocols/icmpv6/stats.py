"""Counters of the ICMPv6 family: `Stack.stats()` sections `icmpv6`, `nd` and `mld`.

Icmpv6Stats carries the RFC 2466 ipv6IfIcmp* / RFC 4293 icmpStats names, lower-cased as
Ipv4Stats does (ipv6IfIcmpInEchos -> in_echos; Linux's /proc/net/snmp6 Icmp6InEchos),
with per-type counters in and out.  NdStats and MldStats hold why a message was dropped:
every reason string nd.py and mld.py return is a field of theirs, so the core does
`stats.bump(reason)`.  The cores that will use them add their own events beside.
"""
from __future__ import annotations

from dataclasses import dataclass

from ndd.counters import Counters

from .wire import (
    DEST_UNREACH,
    ECHO_REPLY,
    ECHO_REQUEST,
    MLD2_REPORT,
    MLD_DONE,
    MLD_QUERY,
    MLD_REPORT,
    NEIGHBOR_ADVERT,
    NEIGHBOR_SOLICIT,
    PACKET_TOO_BIG,
    PARAM_PROBLEM,
    REDIRECT,
    ROUTER_ADVERT,
    ROUTER_SOLICIT,
    TIME_EXCEEDED,
    UNREACH_ADMIN,
)

# type -> the per-type counter's suffix (RFC 2466 ipv6IfIcmpIn*/Out*; MLDv2 reports as Linux)
_PER_TYPE = {
    DEST_UNREACH: "dest_unreachs", PACKET_TOO_BIG: "pkt_too_bigs", TIME_EXCEEDED: "time_excds",
    PARAM_PROBLEM: "parm_problems", ECHO_REQUEST: "echos", ECHO_REPLY: "echo_replies",
    MLD_QUERY: "group_memb_queries", MLD_REPORT: "group_memb_responses", MLD_DONE: "group_memb_reductions",
    ROUTER_SOLICIT: "router_solicits", ROUTER_ADVERT: "router_advertisements",
    NEIGHBOR_SOLICIT: "neighbor_solicits", NEIGHBOR_ADVERT: "neighbor_advertisements",
    REDIRECT: "redirects", MLD2_REPORT: "mldv2_reports",
}


@dataclass
class Icmpv6Stats(Counters):
    in_msgs: int = 0                # every message received, bad or good (icmpStatsInMsgs)
    in_errors: int = 0              # ... with an ICMP-specific error: checksum, length (icmpStatsInErrors)
    in_csum_errors: int = 0         # Linux Icmp6InCsumErrors (also in in_errors)
    in_truncated: int = 0           # shorter than the 8-octet header (also in in_errors)
    in_quote_truncated: int = 0     # an error quoting less than an IPv6 header (Linux: InErrors)
    in_quote_bad_version: int = 0   # an error quoting something else than IPv6
    in_unknown_types: int = 0       # informational types we do not know: discarded (RFC 4443 §2.4(a))
    in_dest_unreachs: int = 0
    in_admin_prohibs: int = 0       # destination unreachable code 1 (also in in_dest_unreachs)
    in_pkt_too_bigs: int = 0
    in_time_excds: int = 0
    in_parm_problems: int = 0
    in_echos: int = 0
    in_echo_replies: int = 0
    in_group_memb_queries: int = 0
    in_group_memb_responses: int = 0
    in_group_memb_reductions: int = 0
    in_mldv2_reports: int = 0
    in_router_solicits: int = 0
    in_router_advertisements: int = 0
    in_neighbor_solicits: int = 0
    in_neighbor_advertisements: int = 0
    in_redirects: int = 0
    out_msgs: int = 0
    out_errors: int = 0             # errors we sent (icmpStatsOutErrors counts failures; Linux counts these)
    out_dest_unreachs: int = 0
    out_admin_prohibs: int = 0
    out_pkt_too_bigs: int = 0
    out_time_excds: int = 0
    out_parm_problems: int = 0
    out_echos: int = 0
    out_echo_replies: int = 0
    out_group_memb_queries: int = 0
    out_group_memb_responses: int = 0
    out_group_memb_reductions: int = 0
    out_mldv2_reports: int = 0
    out_router_solicits: int = 0
    out_router_advertisements: int = 0
    out_neighbor_solicits: int = 0
    out_neighbor_advertisements: int = 0
    out_redirects: int = 0
    out_rate_limited: int = 0       # an error the global token bucket refused (Linux RateLimitGlobal)
    out_rate_limited_host: int = 0  # ... the destination's bucket refused (Linux RateLimitHost)
    out_suppressed: int = 0         # an error RFC 4443 §2.4(e) forbids sending

    def count_in(self, type_: int, code: int = 0) -> None:
        """in_msgs and the type's counter (none for an unknown type)."""
        self.in_msgs += 1
        suffix = _PER_TYPE.get(type_)
        if suffix is not None:
            self.bump("in_" + suffix)
            if type_ == DEST_UNREACH and code == UNREACH_ADMIN:
                self.in_admin_prohibs += 1

    def count_out(self, type_: int, code: int = 0) -> None:
        """out_msgs, out_errors for an error type, and the type's counter."""
        self.out_msgs += 1
        if type_ < 128:
            self.out_errors += 1
        suffix = _PER_TYPE.get(type_)
        if suffix is not None:
            self.bump("out_" + suffix)
            if type_ == DEST_UNREACH and code == UNREACH_ADMIN:
                self.out_admin_prohibs += 1


@dataclass
class NdStats(Counters):
    """Neighbor Discovery messages dropped by the RFC 4861 receipt checks (nd.py)."""
    in_unknown_types: int = 0
    in_truncated: int = 0                   # ICMP length below the type's minimum
    in_opt_zero_len: int = 0                # §4.6: an option of length 0 voids the message
    in_opt_truncated: int = 0               # an option running past the message
    in_opt_malformed: int = 0               # a known option too short: ignored, message kept
    in_bad_hop_limit: int = 0               # not 255
    in_bad_code: int = 0                    # not 0
    in_src_not_link_local: int = 0          # RA, Redirect (§6.1.2, §8.1)
    in_unspecified_with_lladdr: int = 0     # RS, NS from :: with a source link-layer option
    in_dad_dst_not_solicited_node: int = 0  # NS from :: not to a solicited-node group (§7.1.1)
    in_target_multicast: int = 0            # NS, NA (§7.1.1, §7.1.2)
    in_solicited_to_multicast: int = 0      # NA with S set sent to a multicast group (§7.1.2)
    in_redirect_dst_multicast: int = 0      # §8.1
    in_redirect_bad_target: int = 0         # §8.1: neither link-local nor the destination


@dataclass
class MldStats(Counters):
    """MLD messages dropped by the RFC 3810 / RFC 2710 receipt checks (mld.py)."""
    in_unknown_types: int = 0
    in_bad_length: int = 0                  # a query neither 24 nor >= 28 octets (§8.1), short v1
    in_truncated: int = 0                   # sources or records past the message
    in_bad_hop_limit: int = 0               # not 1 (§6.2)
    in_src_not_link_local: int = 0          # §6.2 (a report may also come from ::, §5.2.13)
    in_bad_group: int = 0                   # a query's group neither 0 nor multicast
    in_general_query_with_sources: int = 0  # as Linux's igmp6_event_query
