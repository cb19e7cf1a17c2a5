"""The IPv6 host glue (protocols/ipv6/host.py) with an explicit clock and recording links:
what it sends when an interface comes up (DAD, MLD, unsolicited NA, RS; RFC 4861 §6.3.7,
§7.2.6, RFC 4862 §5.4, RFC 3810 §6.1), how it answers NS (§7.2.4), applies RAs (§6.3.4) and
redirects (§8.1), and the device's multicast filter.  Output is parsed by scapy, input built
by scapy: neither side checks itself."""
from __future__ import annotations

import errno
import random
import socket
from dataclasses import dataclass, field
from typing import Any

from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6MLQuery2,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrHopByHop,
)

from ndd.pktbuf import PacketBuffer
from protocols.contracts import ProtocolSwitch, Protosw
from protocols.ifnet import IFF_LOOPBACK, IFF_RUNNING, IFF_UP, Interface
from protocols.ipv6.addr import int_to_ip6, ip6_to_int, solicited_node
from protocols.ipv6.host import Inet6Config, Inet6Host, Inet6Interface

from .fakes import StubNdd

MAC = b"\x02\x00\x00\x00\x00\x01"
PEER_MAC = "02:00:00:00:00:99"
ROUTER_LL = "fe80::1"


@dataclass
class EtherRecorder:
    """Stands in for EtherLink: routed output (nexthop) and ND's direct sends (MAC)."""
    sent: list[tuple[bytes, Any]] = field(default_factory=list)

    def cached_header(self, nexthop: int) -> bytes | None:
        return None                   # contracts.LinkOutput: no header ready, output() each time

    def cached_header6(self, nexthop: int, src: int, now: float) -> bytes | None:
        return None

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        self.sent.append((pkt.tobytes(), nexthop))
        return 0

    def send_ipv6(self, pkt: PacketBuffer, mac: bytes) -> int:
        self.sent.append((pkt.tobytes(), mac))
        return 0


@dataclass
class World:
    host: Inet6Host
    ifp: Interface
    state: Inet6Interface
    link: EtherRecorder
    clock: list[float]
    filters: list[tuple[bytes, bool]]

    @property
    def now(self) -> float:
        return self.clock[0]

    def run_until(self, until: float) -> None:
        cores = [*self.host.timed_cores(), *self.state.timed_cores()]
        while True:
            due = [at for c in cores if (at := c.poll_at()) is not None]
            at = min(due, default=None)
            if at is None or at > until:
                self.clock[0] = until
                return
            self.clock[0] = max(self.clock[0], at)
            for c in cores:
                when = c.poll_at()
                if when is not None and when <= self.clock[0]:
                    c.poll(self.clock[0])

    def packets(self) -> list[tuple[Any, Any]]:
        out = [(IPv6(data), where) for data, where in self.link.sent]
        self.link.sent.clear()
        return out

    def receive(self, pkt: Any) -> None:
        self.host.ip.input(self.ifp, PacketBuffer.from_payload(bytes(pkt)), self.now)

    def addresses(self) -> dict[str, str]:
        return {int_to_ip6(a.addr): a.state for a in self.host.addresses(self.ifp, self.now)}


def new_host(clock: list[float], **cfg: Any) -> Inet6Host:
    """A host with ICMPv6 in the protocol switch, as the Stack registers it."""
    protosw = ProtocolSwitch()
    protosw.add_domain(socket.AF_INET6, "internet6")
    host = Inet6Host(protosw, lambda: clock[0], config=Inet6Config(**cfg), rng=random.Random(5))
    protosw.add(socket.AF_INET6, Protosw("icmpv6", socket.SOCK_RAW, 58, input=host.icmp.input,
                                         ctlinput=host.icmp.ctlinput))
    return host


def make(ether: bool = True, **cfg: Any) -> World:
    clock = [100.0]
    host = new_host(clock, **cfg)
    ifp = Interface("eth0", StubNdd("eth0"), 1, 1500, IFF_UP | IFF_RUNNING)  # type: ignore[arg-type]
    link = EtherRecorder()
    ifp.link = link
    filters: list[tuple[bytes, bool]] = []
    host.link_multicast = lambda i, mac, on: filters.append((mac, on))
    state = host.attach(ifp, clock[0], mac=MAC if ether else None)
    host.start(state, clock[0])
    return World(host, ifp, state, link, clock, filters)


def up(w: World) -> str:
    """Bring the link-local address through DAD; its text."""
    w.run_until(w.now + 3)
    return next(a for a, s in w.addresses().items() if a.startswith("fe80:") and s == "PREFERRED")


def test_interface_up_sends_dad_mld_then_na_and_router_solicitations() -> None:
    w = make()
    ll = next(iter(w.addresses()))
    assert w.addresses() == {ll: "TENTATIVE"}
    assert (b"\x33\x33\x00\x00\x00\x01", True) in w.filters          # all-nodes' MAC on the filter
    w.run_until(w.now + 1.5)
    sent = w.packets()
    probes = [(p, where) for p, where in sent if p.haslayer(ICMPv6ND_NS)]
    assert len(probes) == 1
    probe, mac = probes[0]
    # RFC 4862 §5.4.2: from ::, to the solicited-node group, no source link-layer option
    assert probe.src == "::" and probe.dst == int_to_ip6(solicited_node(ip6_to_int(ll)))
    assert probe.hlim == 255 and not probe.haslayer(ICMPv6NDOptSrcLLAddr)
    assert mac == b"\x33\x33\xff" + ip6_to_int(ll).to_bytes(16, "big")[-3:]
    reports = [p for p, _ in sent if p.haslayer(ICMPv6MLReport2)]
    assert reports and all(p.hlim == 1 and p.haslayer(IPv6ExtHdrHopByHop) and p.dst == "ff02::16" for p in reports)
    w.run_until(w.now + 2)
    assert w.addresses() == {ll: "PREFERRED"}
    sent = w.packets()
    na = next(p for p, _ in sent if p.haslayer(ICMPv6ND_NA))
    assert na.dst == "ff02::1" and na[ICMPv6ND_NA].S == 0 and na[ICMPv6ND_NA].O == 1
    assert na[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:01"
    rs = [p for p, _ in sent if p.haslayer(ICMPv6ND_RS)]
    assert len(rs) == 1 and rs[0].src == ll and rs[0].dst == "ff02::2" and rs[0].haslayer(ICMPv6NDOptSrcLLAddr)
    w.run_until(w.now + 20)        # §6.3.7: MAX_RTR_SOLICITATIONS in all, 4 s apart
    assert len([p for p, _ in w.packets() if p.haslayer(ICMPv6ND_RS)]) == 2
    assert w.host.stats.rs_sent == 3


def test_router_advertisement_router_prefix_slaac_mtu_rdnss() -> None:
    w = make()
    up(w)
    w.packets()
    ra = (IPv6(src=ROUTER_LL, dst="ff02::1", hlim=255)
          / ICMPv6ND_RA(routerlifetime=1800, chlim=77, reachabletime=20000, retranstimer=500)
          / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC) / ICMPv6NDOptMTU(mtu=1400)
          / ICMPv6NDOptPrefixInfo(prefix="2001:db8:5::", prefixlen=64, L=1, A=1, validlifetime=3600,
                                  preferredlifetime=1800)
          / ICMPv6NDOptRDNSS(dns=["2001:db8::53", "2001:db8::54", "2001:db8::55", "2001:db8::56"], lifetime=600))
    w.receive(ra)
    assert w.host.stats.ra_accepted == 1
    assert w.state.solicitor.poll_at() is None                      # §6.3.7: soliciting stops
    routers = w.host.routes.routers()
    assert [int_to_ip6(r.addr) for r in routers] == [ROUTER_LL]
    hop = w.host.route(ip6_to_int("2001:db8:77::1"), w.now, None)
    assert not isinstance(hop, int) and int_to_ip6(hop.nexthop) == ROUTER_LL
    on_link = w.host.route(ip6_to_int("2001:db8:5::9"), w.now, None)
    assert not isinstance(on_link, int) and int_to_ip6(on_link.nexthop) == "2001:db8:5::9"
    assert w.host.link_mtu(w.ifp) == 1400 and w.host.ip.default_hop_limit == 77
    assert w.state.nd is not None and w.state.nd.retrans_timer == 0.5
    assert len(w.state.rdnss) == 3                                 # bounded (RFC 8106 §5.3.1: >= 3)
    slaac = [a for a in w.addresses() if a.startswith("2001:db8:5:")]
    assert len(slaac) == 1 and w.addresses()[slaac[0]] == "TENTATIVE"
    w.run_until(w.now + 3)
    assert w.addresses()[slaac[0]] == "PREFERRED"
    # an MTU option above the link's is ignored and counted
    w.receive(IPv6(src=ROUTER_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=1800)
              / ICMPv6NDOptMTU(mtu=9000))
    assert w.host.stats.ra_mtu_ignored == 1 and w.host.link_mtu(w.ifp) == 1400


def test_ra_ignored_when_accept_ra_is_off() -> None:
    w = make(accept_ra=False)
    up(w)
    w.receive(IPv6(src=ROUTER_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=1800))
    assert w.host.stats.ra_ignored == 1 and w.host.routes.routers() == []


def test_ns_for_our_address_is_answered_solicited_and_learns_the_source() -> None:
    w = make()
    ll = up(w)
    w.packets()
    ns = (IPv6(src="fe80::99", dst=int_to_ip6(solicited_node(ip6_to_int(ll))), hlim=255)
          / ICMPv6ND_NS(tgt=ll) / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC))
    w.receive(ns)
    (na, nexthop), = w.packets()
    assert na.src == ll and na.dst == "fe80::99" and nexthop == ip6_to_int("fe80::99")
    assert na[ICMPv6ND_NA].S == 1 and na[ICMPv6ND_NA].O == 1 and na[ICMPv6ND_NA].tgt == ll
    assert na[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:01"
    assert w.state.nd is not None and w.state.nd.state(ip6_to_int("fe80::99")) == "STALE"
    # a DAD probe for an address we hold: the answer goes to all-nodes, S clear (§7.2.4)
    w.receive(IPv6(src="::", dst=int_to_ip6(solicited_node(ip6_to_int(ll))), hlim=255) / ICMPv6ND_NS(tgt=ll))
    (na, _), = w.packets()
    assert na.dst == "ff02::1" and na[ICMPv6ND_NA].S == 0
    # a target that is not ours: nothing
    w.receive(IPv6(src="fe80::99", dst=ll, hlim=255) / ICMPv6ND_NS(tgt="fe80::7")
              / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC))
    assert w.packets() == [] and w.host.stats.ns_not_ours == 1


def test_na_for_a_tentative_address_is_a_duplicate() -> None:
    w = make()
    ll = next(iter(w.addresses()))
    w.receive(IPv6(src="fe80::99", dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt=ll, O=1)
              / ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC))
    assert w.host.stats.dad_duplicates == 1
    # RFC 7217 §6: a stable identifier is tried again with DAD_Counter + 1, a new address
    now = w.addresses()
    assert ll not in now and len(now) == 1 and next(iter(now.values())) == "TENTATIVE"


def test_redirect_only_from_the_current_first_hop() -> None:
    w = make()
    up(w)
    w.receive(IPv6(src=ROUTER_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=1800)
              / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC))
    ll = next(a for a in w.addresses() if a.startswith("fe80:"))
    dst = "2001:db8:9::1"
    w.receive(IPv6(src="fe80::66", dst=ll, hlim=255) / ICMPv6ND_Redirect(tgt="fe80::2", dst=dst))
    assert w.host.stats.redirects_ignored == 1                       # §8.1: not our first hop
    w.receive(IPv6(src=ROUTER_LL, dst=ll, hlim=255) / ICMPv6ND_Redirect(tgt="fe80::2", dst=dst))
    assert w.host.stats.redirects_accepted == 1
    hop = w.host.route(ip6_to_int(dst), w.now, None)
    assert not isinstance(hop, int) and int_to_ip6(hop.nexthop) == "fe80::2"


def test_mld_general_query_is_answered() -> None:
    w = make()
    ll = up(w)
    w.run_until(w.now + 10)
    w.packets()
    w.receive(IPv6(src="fe80::1", dst="ff02::1", hlim=1) / IPv6ExtHdrHopByHop(options=[])
              / ICMPv6MLQuery2(mrd=1000))
    w.run_until(w.now + 1.5)
    reports = [p for p, _ in w.packets() if p.haslayer(ICMPv6MLReport2)]
    assert len(reports) == 1 and reports[0].src == ll
    groups = {r.dst for r in reports[0][ICMPv6MLReport2].records}
    assert int_to_ip6(solicited_node(ip6_to_int(ll))) in groups and "ff02::1" not in groups   # RFC 3810 §6


def test_socket_joins_refcount_the_device_filter() -> None:
    w = make()
    group = ip6_to_int("ff02::1234")
    w.filters.clear()
    assert w.host.join_group(w.ifp, group, w.now) == 0
    assert w.host.join_group(w.ifp, group, w.now) == 0
    assert w.filters == [(b"\x33\x33\x00\x00\x12\x34", True)]
    assert w.host.is_ours(w.ifp, group)
    assert w.host.leave_group(w.ifp, group, w.now) == 0 and len(w.filters) == 1
    assert w.host.leave_group(w.ifp, group, w.now) == 0
    assert w.filters[-1] == (b"\x33\x33\x00\x00\x12\x34", False) and not w.host.is_ours(w.ifp, group)


def test_layer3_link_has_no_dad_and_solicits_without_lladdr() -> None:
    w = make(ether=False)
    ll = next(iter(w.addresses()))
    assert w.addresses() == {ll: "PREFERRED"}                        # Linux: no DAD on IFF_NOARP
    w.run_until(w.now + 1)
    sent = w.packets()
    assert not any(p.haslayer(ICMPv6ND_NS) or p.haslayer(ICMPv6ND_NA) for p, _ in sent)
    rs = [p for p, _ in sent if p.haslayer(ICMPv6ND_RS)]
    assert len(rs) == 1 and not rs[0].haslayer(ICMPv6NDOptSrcLLAddr)
    assert w.host.add_address(w.ifp, ip6_to_int("fd00::2"), 64, w.now) == 0
    assert w.addresses()["fd00::2"] == "PREFERRED"
    hop = w.host.route(ip6_to_int("fd00::9"), w.now, None)           # the prefix route, proto kernel
    assert not isinstance(hop, int) and hop.route is not None and hop.route.proto == "kernel"


def test_loopback_has_only_the_loopback_address() -> None:
    clock = [0.0]
    host = new_host(clock)
    lo = Interface("lo", StubNdd("lo"), 1, 65536, IFF_UP | IFF_RUNNING | IFF_LOOPBACK)  # type: ignore[arg-type]
    state = host.attach(lo, 0.0, loopback=True)
    host.start(state, 0.0)
    assert [(int_to_ip6(a.addr), a.state) for a in host.addresses(lo, 0.0)] == [("::1", "PREFERRED")]
    assert host.is_ours(lo, 1) and state.solicitor.poll_at() is None


def test_mld_reports_fit_the_link_whatever_the_number_of_groups() -> None:
    # RFC 3810 §5.2.15: the records go in as many reports as the link's MTU needs
    w = make()
    up(w)
    w.packets()
    for i in range(150):
        assert w.host.join_group(w.ifp, ip6_to_int(f"ff05::{i + 1:x}"), w.now) == 0
    w.run_until(w.now + 0.5)
    reports = [(p, len(bytes(p))) for p, _ in w.packets() if p.haslayer(ICMPv6MLReport2)]
    assert len(reports) >= 3 and all(size <= 1500 for _, size in reports)
    groups = {r.dst for p, _ in reports for r in p[ICMPv6MLReport2].records}
    assert {f"ff05::{i + 1:x}" for i in range(150)} <= groups


def test_own_global_address_is_routed_through_the_loopback() -> None:
    """Linux's local table: a packet to one of the host's own usable addresses goes through
    `lo` and comes back in (a connect() to the host's own fd00::2 reaches its listener); a
    tentative address is not ours yet; a link-local one needs its interface named, and comes
    back in as received on that interface (its scope id, the link replies go by)."""
    w = make(ether=True)
    lo = Interface("lo", StubNdd("lo"), 2, 65536, IFF_UP | IFF_RUNNING | IFF_LOOPBACK)  # type: ignore[arg-type]
    w.host.start(w.host.attach(lo, w.now, loopback=True), w.now)
    ll = ip6_to_int(up(w))
    mine = ip6_to_int("fd00::2")
    assert w.host.add_address(w.ifp, mine, 64, w.now) == 0
    hop = w.host.route(mine, w.now, None)
    assert not isinstance(hop, int) and hop.nexthop == mine and hop.route is not None   # tentative: the link
    assert hop.ifp is w.ifp
    w.run_until(w.now + 3)                                                             # DAD done
    hop = w.host.route(mine, w.now, None)
    assert not isinstance(hop, int) and hop.ifp is lo and hop.nexthop == mine and hop.source == mine
    hop = w.host.route(mine, w.now, w.ifp)                                             # its own device
    assert not isinstance(hop, int) and hop.ifp is lo
    assert w.host.is_ours(lo, mine)                                                    # and taken in
    other = w.host.route(ip6_to_int("fd00::9"), w.now, None)
    assert not isinstance(other, int) and other.ifp is w.ifp                           # a neighbour: the link
    scoped = w.host.route(ll, w.now, w.ifp)
    assert not isinstance(scoped, int) and scoped.ifp is lo and scoped.source == ll
    assert w.host.route(ll, w.now, None) == errno.EINVAL                             # which link?
    seen: list[tuple[str, str]] = []
    w.host.ip.protosw.add(socket.AF_INET6, Protosw("udp6", socket.SOCK_DGRAM, 17,
                                                   input=lambda pkt, meta, now: seen.append((meta.ifp.name,
                                                                                            int_to_ip6(meta.dst)))))
    looped = IPv6(src=int_to_ip6(ll), dst=int_to_ip6(ll)) / UDP(sport=1, dport=2)
    w.host.ip.input(lo, PacketBuffer.from_payload(bytes(looped)), w.now)
    assert seen == [("eth0", int_to_ip6(ll))]


def test_source_selection_ties_go_to_the_newest_address() -> None:
    """RFC 6724 rule 8 stops at the prefix length, so fe80::88:1/64 and the RFC 7217 link-local
    tie for fe80::88:2, as fd00::2/64 and fd00::3/64 tie for fd00::9: Linux then takes the
    address configured last (its address list is newest first within a scope)."""
    w = make(ether=False)
    auto_ll = ip6_to_int(next(iter(w.addresses())))
    static_ll = ip6_to_int("fe80::88:1")
    assert w.host.ip.choose_source(ip6_to_int("fe80::88:2"), w.ifp, w.now) == auto_ll
    assert w.host.add_address(w.ifp, static_ll, 64, w.now) == 0
    assert w.host.ip.choose_source(ip6_to_int("fe80::88:2"), w.ifp, w.now) == static_ll
    for text in ("fd00::2", "fd00::3"):
        assert w.host.add_address(w.ifp, ip6_to_int(text), 64, w.now) == 0
    assert w.host.ip.choose_source(ip6_to_int("fd00::9"), w.ifp, w.now) == ip6_to_int("fd00::3")
    assert w.host.ip.choose_source(ip6_to_int("fd00::2"), w.ifp, w.now) == ip6_to_int("fd00::2")   # rule 1
