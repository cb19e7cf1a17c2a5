"""The IPv6 side of a host: the network layer, ICMPv6 and, per interface, addresses (RFC 4862),
the neighbor cache (RFC 4861) and MLD (RFC 3810), joined into one sans-IO whole.

The cores each do one thing and never send; this module is their owner.  It gives the IPv6
layer what it asks of a host (`is_ours`, `route`, `source_candidates`), hands validated ND
and MLD messages to the cores they are for, and builds the messages the cores ask for:
  * Neighbor Solicitations for resolution, NUD and DAD (nd.NsRequest), Neighbor
    Advertisements answering an NS for one of our addresses (§7.2.4) and, unsolicited, when an
    address becomes usable (§7.2.6);
  * Router Solicitations when an interface's first link-local address is usable (§6.3.7:
    MAX_RTR_SOLICITATIONS 3, RTR_SOLICITATION_INTERVAL 4 s, as Linux rtr_solicits and
    rtr_solicit_interval), stopped by the first Router Advertisement;
  * MLD reports (mld.MldReport) with their hop-by-hop Router Alert (RFC 3810 §5).
It applies Router Advertisements (§6.3.4): the default router list and on-link prefixes
(route.Ipv6Routes), SLAAC (AddrConf.input_prefix), Reachable Time / Retrans Timer, the MTU
option (the interface's IPv6 MTU, within [1280, link MTU] as Linux's mtu6), the current hop
limit, RDNSS (RFC 8106, kept per interface for the gateway and a resolver; nothing here uses
it).  Redirects (§8) are honoured, as Linux's accept_redirects 1 for a host: only from the
current first hop for the destination (§8.1), as a /128 route in the routing table.

A router's interface (`become_router`, the gateway's guest link: Linux's forwarding 1 there)
joins all-routers (ff02::2), stops soliciting and ignores Router Advertisements (Linux
ignores accept_ra 1 when forwarding), hands each valid Router Solicitation to its owner
(the advertiser, protocols/ipv6/radv.py, which answers per §6.2.6) after learning the
sender's link-layer address as from an NS (§6.2.6, §7.2.3), sets the Router flag in its
Neighbor Advertisements (§7.2.4: without it a host drops the router from its default router
list, §7.2.5) and sends the advertiser's RAs from its link-local address with its
source link-layer address option (§6.2.3, `send_router_advertisement`).

Per medium: on Ethernet (a MAC) the neighbor cache resolves unicast next hops and DAD runs
for every address (Linux dad_transmits 1).  A point-to-point layer-3 link (TUN) has no
neighbor cache and no DAD -- Linux skips DAD on IFF_NOARP devices (addrconf_dad_begin) and
so does this host -- but gets a link-local address (RFC 7217 identifier), MLD and Router
Solicitation all the same.  The loopback has ::1/128 only.

The link-layer output of IPv6 is the owner's (protocols/ether.py EtherLink sends IPv6
through the interface's `nd` cache); `clock` is only for the cores' callbacks that carry no
time of their own (a failed resolution's EHOSTUNREACH), as the Stack does for ARP.
"""
from __future__ import annotations

import errno
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ndd.counters import Counters
from ndd.pktbuf import PacketBuffer

from ..icmpv6 import mld as mld_wire
from ..icmpv6 import nd as nd_wire
from ..icmpv6.core import Icmpv6
from ..ifnet import IFF_LOOPBACK
from .addr import (
    ALL_NODES,
    ALL_ROUTERS,
    LOOPBACK,
    SourceCandidate,
    eui64_iid,
    int_to_ip6,
    is_link_local,
    is_multicast,
    is_unspecified,
    is_v4_mapped,
    multicast_mac,
    stable_iid,
)
from .addrconf import INFINITE, AddrConf, AddrConfConfig, AddressInfo
from .ip6 import Ip6Meta, Ipv6
from .mld import MldConfig, MldHost, MldReport
from .nd import NdConfig, NdFailure, NeighborCache, NsRequest
from .route import METRIC_ADDRCONF, Ipv6Routes, NextHop, Route6Config, decode_preference, nd_reachability
from .wire import HDR_LEN, MIN_MTU, NH_HOPOPTS, NH_ICMPV6, Ipv6Repr

if TYPE_CHECKING:
    from ..contracts import ProtocolSwitch
    from ..icmp import TokenBucket
    from ..ifnet import Interface

ALL_NODES_INTERFACE = 0xFF01 << 112 | 1      # ff01::1, joined with ff02::1 (RFC 4291 §2.7.1)
ND_HOP_LIMIT = 255                           # RFC 4861 §6.1/§7.1: every ND message
MAX_RDNSS = 3                                # RFC 8106 §5.3.1: a host keeps at least 3
IID_PREFIX_LEN = 64


@dataclass
class Inet6Config:
    hop_limit: int = 64                 # net.ipv6.conf.*.hop_limit
    reasm_timeout: float = 60.0         # RFC 8200 §4.5 (net.ipv6.ip6frag_time)
    reasm_max_bytes: int = 4 << 20
    mtu_expires: float = 600.0          # net.ipv6.route.mtu_expires
    accept_ra: bool = True              # net.ipv6.conf.*.accept_ra (1: a host)
    autoconf: bool = True               # net.ipv6.conf.*.autoconf: SLAAC from RA prefixes
    accept_redirects: bool = True       # net.ipv6.conf.*.accept_redirects (1 on a host)
    rtr_solicits: int = 3               # MAX_RTR_SOLICITATIONS
    rtr_solicit_interval: float = 4.0   # RTR_SOLICITATION_INTERVAL
    dad_transmits: int = 1              # DupAddrDetectTransmits on links with ND
    unsolicited_na: bool = True         # RFC 4861 §7.2.6 for a new usable address (Linux ndisc_notify)
    eui64: bool = False                 # EUI-64 identifiers instead of RFC 7217 stable ones
    stable_secret: bytes | None = None  # RFC 7217 secret_key (net.ipv6.conf.*.stable_secret); None: random
    nd: NdConfig | None = None
    mld: MldConfig | None = None
    routes: Route6Config | None = None


@dataclass
class Inet6HostStats(Counters):
    rs_sent: int = 0
    ra_accepted: int = 0
    ra_ignored: int = 0            # accept_ra off, or a router's interface (Linux: forwarding 1)
    ra_mtu_ignored: int = 0        # an MTU option outside [1280, link MTU]
    rs_ignored: int = 0            # a host does not answer RS
    rs_to_router: int = 0          # RS handed to a router interface's advertiser (§6.2.6)
    ra_sent: int = 0               # RAs sent for a router interface's advertiser
    ra_no_source: int = 0          # an RA not sent: no usable link-local address yet (§6.2.3)
    ns_answered: int = 0
    ns_not_ours: int = 0           # NS for a target that is not ours (or is tentative)
    na_sent_unsolicited: int = 0
    redirects_accepted: int = 0
    redirects_ignored: int = 0     # accept_redirects off, or not from the current first hop (§8.1)
    nd_no_interface: int = 0       # ND/MLD message on an interface without IPv6
    mld_reports_sent: int = 0
    dad_duplicates: int = 0
    rdnss_learnt: int = 0


class RouterSolicitor:
    """RFC 4861 §6.3.7 for one interface, a TimedCore: `start` sends the first solicitation
    now and up to `count - 1` more `interval` apart; `stop` (an RA came) ends it."""

    def __init__(self, send: Callable[[float], object], count: int, interval: float) -> None:
        self.send = send
        self.count, self.interval = count, interval
        self.left = 0
        self.at: float | None = None
        self.kick: Callable[..., None] = lambda *at: None

    def start(self, now: float) -> None:
        if self.count > 0 and self.at is None:
            self.left, self.at = self.count, now
            self.kick(now)

    def stop(self) -> None:
        self.left, self.at = 0, None

    def poll_at(self) -> float | None:
        return self.at

    def poll(self, now: float) -> None:
        if self.at is None or now < self.at:
            return
        self.left -= 1
        self.at = now + self.interval if self.left > 0 else None
        self.send(now)


@dataclass
class Inet6Interface:
    """An interface's IPv6 state: its addresses, its neighbor cache (None off Ethernet), its
    MLD host and its router solicitations, each a TimedCore."""
    ifp: Interface
    mac: bytes | None
    addrconf: AddrConf
    mld: MldHost
    nd: NeighborCache | None
    solicitor: RouterSolicitor
    mtu6: int
    rdnss: dict[int, float] = field(default_factory=dict)     # server -> expiry (inf: never)
    mac_refs: dict[bytes, int] = field(default_factory=dict)  # multicast MAC -> groups mapped to it
    # a router's interface (become_router): the owner's RS handler and link-local-ready hook
    on_rs: Callable[[nd_wire.RouterSolicitation, int, float], None] | None = None
    on_router_ready: Callable[[float], None] | None = None

    @property
    def router(self) -> bool:
        return self.on_rs is not None

    def timed_cores(self) -> list[Any]:
        cores: list[Any] = [self.addrconf, self.mld, self.solicitor]
        if self.nd is not None:
            cores.append(self.nd)
        return cores


class Inet6Host:
    def __init__(self, protosw: ProtocolSwitch, clock: Callable[[], float], *,
                 config: Inet6Config | None = None, rng: random.Random | None = None,
                 limiter: TokenBucket | None = None, icmp_rate: float = 1000.0, icmp_burst: int = 50,
                 icmp_ratelimit: float = 1.0) -> None:
        self.config = cfg = config or Inet6Config()
        self.clock = clock
        self.rng = rng or random.SystemRandom()
        self.stats = Inet6HostStats()
        self.secret: bytes = cfg.stable_secret or self.rng.getrandbits(128).to_bytes(16, "big")
        self.ifaces: dict[int, Inet6Interface] = {}
        self.routes = Ipv6Routes(reachable=self._reachable, config=cfg.routes)
        self.ip = Ipv6(protosw, is_ours=self.is_ours, route=self.route, source_candidates=self.source_candidates,
                       rng=self.rng, reasm_timeout=cfg.reasm_timeout, reasm_max_bytes=cfg.reasm_max_bytes,
                       default_hop_limit=cfg.hop_limit, mtu_expires=cfg.mtu_expires)
        self.ip.link_mtu = self.link_mtu
        self.ip.loopback_link = self._link_local_owner
        self.icmp = Icmpv6(self.ip, rate=icmp_rate, burst=icmp_burst, ratelimit=icmp_ratelimit,
                           limiter=limiter, rng=self.rng)
        self.icmp.nd_input = self._nd_input
        self.icmp.mld_input = self._mld_input
        # what the owner learns of address changes: routes and sockets are its business
        self.on_address: Callable[[Interface, AddressInfo, str], None] = lambda ifp, info, event: None
        # the owner's device address filter: receive (True) or stop receiving a multicast MAC
        # (RFC 2464 §7: 33:33 and the group's low 32 bits); called once per MAC, refcounted here
        self.link_multicast: Callable[[Interface, bytes, bool], None] = lambda ifp, mac, on: None

    def timed_cores(self) -> list[Any]:
        """The host-wide timed cores (per-interface ones: Inet6Interface.timed_cores)."""
        return [self.ip.reasm, self.routes]

    # --- interfaces ---------------------------------------------------------------------------------
    def attach(self, ifp: Interface, now: float, *, mac: bytes | None = None, loopback: bool = False) -> Inet6Interface:
        """Enable IPv6 on `ifp`: `mac` for an Ethernet link (neighbor cache, DAD, EUI-64 or
        stable identifiers), none for a layer-3 link; the loopback gets ::1 only.  The caller
        registers the returned interface's timed cores, then calls `start`."""
        cfg = self.config
        dad = cfg.dad_transmits if mac is not None else 0
        holder: list[Inet6Interface] = []

        def iface() -> Inet6Interface:
            return holder[0]

        addrconf = AddrConf(self._iid_source(ifp, mac), rng=self.rng,
                            config=AddrConfConfig(dad_transmits=dad, loopback=loopback),
                            send_ns=lambda req: self._send_ns(iface(), req),
                            join=lambda group: self._join(iface(), group, self.clock()),
                            leave=lambda group: self._leave(iface(), group, self.clock()),
                            ready=lambda info, t: self._address_ready(iface(), info, t),
                            duplicate=lambda info, cause, t: self._address_duplicate(iface(), info, cause, t),
                            removed=lambda info, t: self._address_removed(iface(), info, t))
        mld = MldHost(send_report=lambda report: self._send_report(iface(), report), config=cfg.mld, rng=self.rng)
        mld.set_link_mtu(max(ifp.mtu, MIN_MTU))
        nd = None
        if mac is not None:
            nd = NeighborCache(send_ns=lambda req: self._send_ns(iface(), req),
                               transmit=lambda pkt, lladdr: self._transmit_resolved(iface(), pkt, lladdr),
                               unreachable=self._resolution_failed,
                               router_lost=lambda addr, t: self.routes.router_lost(ifp, addr, t),
                               neighbor_failed=lambda addr, was, t: self.routes.neighbor_failed(ifp, addr, was, t),
                               config=cfg.nd, rng=self.rng)
        solicitor = RouterSolicitor(lambda t: self._send_rs(iface(), t), cfg.rtr_solicits, cfg.rtr_solicit_interval)
        state = Inet6Interface(ifp, mac, addrconf, mld, nd, solicitor, max(ifp.mtu, MIN_MTU))
        holder.append(state)
        self.ifaces[ifp.index] = state
        if loopback:
            addrconf.add_static(LOOPBACK, 128, now, dad=False)
            self.routes.add((LOOPBACK, 128), ifp, metric=0, proto="kernel")
        return state

    def start(self, state: Inet6Interface, now: float) -> None:
        """The interface is up: all-nodes joined, the link-local address formed (DAD first)."""
        if state.ifp.index in self.ifaces and not state.ifp.flags & IFF_LOOPBACK:
            self._join(state, ALL_NODES, now)
            self._join(state, ALL_NODES_INTERFACE, now)
            state.addrconf.start(now)

    def detach(self, ifp: Interface, now: float) -> Inet6Interface | None:
        """IPv6 off `ifp`: addresses flushed (their owner told), the cache flushed (waiting
        packets dropped), routes over it removed.  The caller unregisters the timed cores."""
        state = self.ifaces.pop(ifp.index, None)
        if state is None:
            return None
        state.addrconf.flush(now)
        if state.nd is not None:
            state.nd.unreachable = lambda failure: None
            state.nd.flush()
        state.mld.flush()
        state.solicitor.stop()
        self.routes.delete_interface(ifp)
        return state

    # --- multicast memberships ----------------------------------------------------------------------
    def join_group(self, ifp: Interface, group: int, now: float) -> int:
        """A socket's IPV6_JOIN_GROUP on `ifp`: 0 or an errno (ENODEV without IPv6 there)."""
        state = self.ifaces.get(ifp.index)
        return errno.ENODEV if state is None else self._join(state, group, now)

    def leave_group(self, ifp: Interface, group: int, now: float) -> int:
        state = self.ifaces.get(ifp.index)
        return errno.ENODEV if state is None else self._leave(state, group, now)

    def _join(self, state: Inet6Interface, group: int, now: float) -> int:
        err = state.mld.join(group, now)
        if not err and state.mac is not None:
            mac = multicast_mac(group)
            state.mac_refs[mac] = state.mac_refs.get(mac, 0) + 1
            if state.mac_refs[mac] == 1:
                self.link_multicast(state.ifp, mac, True)
        return err

    def _leave(self, state: Inet6Interface, group: int, now: float) -> int:
        err = state.mld.leave(group, now)
        if not err and state.mac is not None:
            mac = multicast_mac(group)
            left = state.mac_refs.get(mac, 0) - 1
            if left <= 0:
                state.mac_refs.pop(mac, None)
                self.link_multicast(state.ifp, mac, False)
            else:
                state.mac_refs[mac] = left
        return err

    def _iid_source(self, ifp: Interface, mac: bytes | None) -> int | Callable[[int, int], int]:
        """RFC 7217 stable identifiers by default (Net_Iface the interface name, no Network_ID),
        EUI-64 from the MAC with `eui64` (RFC 4291 Appendix A)."""
        if self.config.eui64 and mac is not None:
            return eui64_iid(mac)
        name, secret = ifp.name, self.secret

        def iid(prefix: int, dad_counter: int) -> int:
            # RFC 7217 §5: a reserved identifier (RFC 5453) counts as a collision: next counter
            counter = dad_counter
            while (value := stable_iid(prefix, name, b"", counter, secret)) is None:
                counter += 1
            return value
        return iid

    def add_address(self, ifp: Interface, addr: int, plen: int, now: float, *, dad: bool = True,
                    valid: int = INFINITE, preferred: int = INFINITE) -> int:
        """`ip -6 addr add addr/plen`: 0 or an errno; the prefix becomes an on-link route
        (metric 256, proto kernel) as Linux's addrconf_prefix_route."""
        state = self.ifaces.get(ifp.index)
        if state is None:
            return errno.EAFNOSUPPORT        # IPv6 is not on this interface
        err = state.addrconf.add_static(addr, plen, now, valid, preferred,
                                        dad=dad and state.nd is not None)
        if err == 0 and plen < 128:
            try:
                self.routes.add((addr, plen), ifp, metric=METRIC_ADDRCONF, proto="kernel")
            except OSError:
                pass                       # another address of the same prefix made it
        return err

    def remove_address(self, ifp: Interface, addr: int, now: float) -> int:
        state = self.ifaces.get(ifp.index)
        return errno.EADDRNOTAVAIL if state is None else state.addrconf.remove(addr, now)

    def addresses(self, ifp: Interface, now: float) -> list[AddressInfo]:
        state = self.ifaces.get(ifp.index)
        return [] if state is None else state.addrconf.addresses(now)

    def link_mtu(self, ifp: Interface) -> int:
        state = self.ifaces.get(ifp.index)
        return ifp.mtu if state is None else min(state.mtu6, ifp.mtu)

    # --- what the IPv6 layer asks ------------------------------------------------------------------
    def is_ours(self, ifp: Interface, dst: int) -> bool:
        state = self.ifaces.get(ifp.index)
        if state is None:
            return False
        if is_multicast(dst):
            return dst in (ALL_NODES, ALL_NODES_INTERFACE) or state.mld.is_member(dst)
        if state.addrconf.is_ours(dst):
            return True
        if is_link_local(dst):
            return False              # a link-local address is only ours on its own link
        if ifp.transparent and not is_v4_mapped(dst) and not is_unspecified(dst):
            return True               # a gateway's interface (ifnet.Interface.transparent): any unicast
        # the weak host model, as Linux: any interface's address is accepted on any interface
        return any(o.addrconf.is_ours(dst) for o in self.ifaces.values() if o is not state)

    def route(self, dst: int, now: float, oif: Interface | None) -> NextHop | int:
        local = self._local_route(dst, oif)
        if local is not None:
            return local
        hop = self.routes.route(dst, now, oif)
        if isinstance(hop, int):
            return hop
        if hop.ifp.index not in self.ifaces:
            return errno.ENETUNREACH  # a scope id naming an interface without IPv6
        return hop

    def _local_route(self, dst: int, oif: Interface | None) -> NextHop | None:
        """One of our own (non-tentative) addresses goes through the loopback, as Linux's local
        table routes it (`local fd00::1 dev lo`): a connect or sendto to the host's own address
        reaches its own sockets, never the link.  A link-local one only with the interface that
        has it named (the scope id); it comes back in as that link's (`_link_local_owner`).
        O(interfaces) dict probes."""
        if is_multicast(dst) or (oif is None and is_link_local(dst)):
            return None
        lo = owned = None
        for state in self.ifaces.values():
            if state.ifp.flags & IFF_LOOPBACK:
                lo = state
            elif owned is None and (oif is None or state.ifp is oif) and state.addrconf.is_ours(dst):
                owned = state
        if lo is None or owned is None:
            return None
        return NextHop(lo.ifp, dst, None, None, dst)

    def _link_local_owner(self, addr: int) -> Interface | None:
        """The interface a link-local address of ours is on: a packet the host sent itself to
        it through the loopback belongs to that link (Linux takes the incoming interface from
        the route the packet left by), so its scope id and the replies name that link."""
        for state in self.ifaces.values():
            if not state.ifp.flags & IFF_LOOPBACK and state.addrconf.is_ours(addr):
                return state.ifp
        return None

    def source_candidates(self, ifp: Interface | None, now: float) -> list[SourceCandidate]:
        """Interface by interface, each one's newest address first: Linux keeps idev->addr_list
        newest first within a scope (ipv6_link_dev_addr) and __ipv6_dev_get_saddr keeps the first
        of equally scored candidates, so among addresses RFC 6724 cannot tell apart (rule 8 stops
        at the prefix length) the one configured last is the source."""
        states = self.ifaces.values() if ifp is None else [s for s in (self.ifaces.get(ifp.index),) if s]
        return [SourceCandidate(i.addr, i.plen, i.deprecated, False, s.ifp.index)
                for s in states for i in reversed(s.addrconf.source_candidates(now))]

    def _reachable(self, ifp: Interface, addr: int) -> bool | None:
        state = self.ifaces.get(ifp.index)
        if state is None or state.nd is None:
            return None
        return nd_reachability(state.nd.state(addr))

    # --- building and sending ND and MLD messages ----------------------------------------------------
    def _packet(self, message: bytes, src: int, dst: int, hop_limit: int, *, hbh: bytes = b"") -> PacketBuffer:
        """An IPv6 packet around an ICMPv6 message (checksummed here), for messages that leave
        by a given interface without a route lookup (ND, MLD: link-scoped by nature)."""
        pkt = PacketBuffer.from_payload(hbh + message)
        Ipv6Repr(src, dst, NH_HOPOPTS if hbh else NH_ICMPV6, len(pkt), hop_limit).emit(pkt.prepend(HDR_LEN))
        self.ip.stats.out_requests += 1
        if is_multicast(dst):
            self.ip.stats.out_mcast_pkts += 1
        return pkt

    def _send_icmp(self, state: Inet6Interface, msg: Any, src: int, dst: int, now: float, *,
                   hop_limit: int = ND_HOP_LIMIT, lladdr: bytes | None = None, hbh: bytes = b"") -> int:
        rep = msg.to_repr()
        pkt = self._packet(rep.emit(src, dst), src, dst, hop_limit, hbh=hbh)
        link = state.ifp.link
        if lladdr is not None and link is not None and hasattr(link, "send_ipv6"):
            err = link.send_ipv6(pkt, lladdr)
        else:
            err = state.ifp.transmit(pkt, dst, now)
        if err:
            self.ip.stats.out_discards += 1
        else:
            self.icmp.stats.count_out(rep.type, rep.code)
        return int(err)

    def _link_local(self, state: Inet6Interface) -> int:
        """A usable link-local address of the interface, 0 when there is none yet."""
        for info in state.addrconf.source_candidates():
            if is_link_local(info.addr):
                return info.addr
        return 0

    def _send_ns(self, state: Inet6Interface, req: NsRequest) -> None:
        now = self.clock()
        if req.src_hint == 0 and not req.with_slla:
            src = 0                                   # DAD (RFC 4862 §5.4.2)
        elif req.src_hint and state.addrconf.is_ours(req.src_hint):
            src = req.src_hint                        # §7.2.2: the prompting packet's source
        else:
            src = self._link_local(state) or next((i.addr for i in state.addrconf.source_candidates()), 0)
            if not src:
                return                                # nothing to send from yet
        options: tuple[Any, ...] = ()
        if req.with_slla and src and state.mac is not None:
            options = (nd_wire.SourceLinkLayerAddress(state.mac),)
        msg = nd_wire.NeighborSolicitation(target=req.target, options=options)
        self._send_icmp(state, msg, src, req.dst, now, lladdr=req.dst_mac)

    def _send_na(self, state: Inet6Interface, target: int, dst: int, now: float, *, solicited: bool) -> None:
        options: tuple[Any, ...] = ()
        if state.mac is not None:
            options = (nd_wire.TargetLinkLayerAddress(state.mac),)
        msg = nd_wire.NeighborAdvertisement(target=target, router=state.router, solicited=solicited, override=True,
                                            options=options)
        self._send_icmp(state, msg, target, dst, now)

    def _send_rs(self, state: Inet6Interface, now: float) -> None:
        src = self._link_local(state)
        options: tuple[Any, ...] = ()
        if src and state.mac is not None:
            options = (nd_wire.SourceLinkLayerAddress(state.mac),)   # §4.1: not from ::
        self._send_icmp(state, nd_wire.RouterSolicitation(options=options), src, ALL_ROUTERS, now)
        self.stats.rs_sent += 1

    def _send_report(self, state: Inet6Interface, report: MldReport) -> None:
        if state.ifp.flags & IFF_LOOPBACK:
            return                 # no listener to tell: memberships on the loopback are local
        now = self.clock()
        msg: Any
        if report.version == 2:
            msg = mld_wire.MldReport(records=tuple(mld_wire.McastRecord(t, g) for t, g in report.records))
        elif report.icmp_type == mld_wire.MLD_DONE:
            msg = mld_wire.MldV1Done(group=report.records[0][1])
        else:
            msg = mld_wire.MldV1Report(group=report.records[0][1])
        # RFC 3810 §5.2.13: a link-local source, or :: before the interface has one
        self._send_icmp(state, msg, self._link_local(state), report.dst, now,
                        hop_limit=mld_wire.MLD_HOP_LIMIT, hbh=mld_wire.ROUTER_ALERT_HBH)
        self.stats.mld_reports_sent += 1

    def _transmit_resolved(self, state: Inet6Interface, pkt: PacketBuffer, lladdr: bytes) -> None:
        link = state.ifp.link
        if link is not None and hasattr(link, "send_ipv6"):
            link.send_ipv6(pkt, lladdr)

    def _resolution_failed(self, failure: NdFailure) -> None:
        if failure.icmp_code is not None:
            self.ip.unreachable_from_link(failure.pkt, self.clock())

    # --- address events ---------------------------------------------------------------------------
    def _address_ready(self, state: Inet6Interface, info: AddressInfo, now: float) -> None:
        if self.config.unsolicited_na and state.mac is not None:
            self._send_na(state, info.addr, ALL_NODES, now, solicited=False)
            self.stats.na_sent_unsolicited += 1
        if is_link_local(info.addr) and state.on_router_ready is not None:
            ready, state.on_router_ready = state.on_router_ready, None
            ready(now)                                # §6.2.3: RAs go from the link-local address
        elif is_link_local(info.addr) and self.config.accept_ra and not state.router \
                and not state.ifp.flags & IFF_LOOPBACK:
            # §6.3.7: solicit routers once a link-local source exists; DAD already delayed us
            state.solicitor.start(now)
        self.on_address(state.ifp, info, "ready")

    def _address_duplicate(self, state: Inet6Interface, info: AddressInfo, cause: str, now: float) -> None:
        self.stats.dad_duplicates += 1
        self.on_address(state.ifp, info, "duplicate")

    def _address_removed(self, state: Inet6Interface, info: AddressInfo, now: float) -> None:
        if info.origin == "static" and info.plen < 128:
            others = [a for a in state.addrconf.addresses(now)
                      if a.plen == info.plen and a.addr >> (128 - info.plen) == info.addr >> (128 - info.plen)]
            if not others:
                try:
                    self.routes.delete((info.addr, info.plen), state.ifp)
                except OSError:
                    pass
        self.on_address(state.ifp, info, "removed")

    # --- ND and MLD input (validated by the ICMPv6 core: §6.1, §7.1, RFC 3810 §6.2) ------------------
    def _nd_input(self, msg: nd_wire.AnyNdMessage, meta: Ip6Meta, now: float) -> None:
        state = self.ifaces.get(meta.ifp.index) if meta.ifp is not None else None
        if state is None:
            self.stats.nd_no_interface += 1
            return
        if isinstance(msg, nd_wire.NeighborSolicitation):
            self._ns_input(state, msg, meta, now)
        elif isinstance(msg, nd_wire.NeighborAdvertisement):
            if not state.addrconf.input_na(msg.target, now) and state.nd is not None:
                state.nd.input_na(msg.target, msg.target_lladdr, msg.router, msg.solicited, msg.override, now)
        elif isinstance(msg, nd_wire.RouterAdvertisement):
            self._ra_input(state, msg, meta, now)
        elif isinstance(msg, nd_wire.Redirect):
            self._redirect_input(state, msg, meta, now)
        elif state.on_rs is not None:                 # what is left is an RS
            self._rs_input(state, state.on_rs, msg, meta, now)
        else:
            self.stats.rs_ignored += 1                # §6.2.6 is a router's

    def _ns_input(self, state: Inet6Interface, msg: nd_wire.NeighborSolicitation, meta: Ip6Meta, now: float) -> None:
        if not state.addrconf.input_ns(msg.target, meta.src, now):
            self.stats.ns_not_ours += 1
            return
        if meta.src == 0:
            # §7.2.4: a DAD probe for an address we hold: tell all-nodes, not solicited
            self._send_na(state, msg.target, ALL_NODES, now, solicited=False)
            return
        if state.nd is not None:
            state.nd.input_ns(meta.src, msg.source_lladdr, now)
        self.stats.ns_answered += 1
        self._send_na(state, msg.target, meta.src, now, solicited=True)

    def _ra_input(self, state: Inet6Interface, ra: nd_wire.RouterAdvertisement, meta: Ip6Meta, now: float) -> None:
        cfg, ifp = self.config, state.ifp
        if not cfg.accept_ra or state.router:
            self.stats.ra_ignored += 1
            return
        self.stats.ra_accepted += 1
        state.solicitor.stop()                        # §6.3.7: a host stops soliciting
        if state.nd is not None:
            state.nd.input_ra_source(meta.src, ra.source_lladdr, now)
            if ra.reachable_time:
                state.nd.set_base_reachable_time(ra.reachable_time / 1000.0, now)
            if ra.retrans_timer:
                state.nd.set_retrans_timer(ra.retrans_timer / 1000.0)
        if ra.retrans_timer:
            state.addrconf.set_retrans_timer(ra.retrans_timer / 1000.0)
        if ra.cur_hop_limit:
            self.ip.default_hop_limit = ra.cur_hop_limit     # §6.3.4 CurHopLimit
        mtu = ra.mtu
        if mtu is not None:
            if MIN_MTU <= mtu <= ifp.mtu:
                state.mtu6 = mtu
            else:
                self.stats.ra_mtu_ignored += 1
        self.routes.ra_router(ifp, meta.src, float(ra.router_lifetime), now, pref=decode_preference(ra.preference))
        for pio in ra.prefixes:
            self.routes.ra_prefix(ifp, pio.prefix, pio.prefix_len, float(pio.valid_lifetime), now, on_link=pio.on_link)
            if cfg.autoconf:
                state.addrconf.input_prefix(pio.prefix, pio.prefix_len, pio.autonomous, pio.valid_lifetime,
                                            pio.preferred_lifetime, now)
        for option in ra.rdnss:
            for server in option.servers:
                expires = math.inf if option.lifetime == INFINITE else now + option.lifetime
                if option.lifetime == 0:
                    state.rdnss.pop(server, None)
                elif server in state.rdnss or len(state.rdnss) < MAX_RDNSS:
                    if server not in state.rdnss:
                        self.stats.rdnss_learnt += 1
                    state.rdnss[server] = expires

    def _rs_input(self, state: Inet6Interface, on_rs: Callable[[nd_wire.RouterSolicitation, int, float], None],
                  msg: nd_wire.RouterSolicitation, meta: Ip6Meta, now: float) -> None:
        """§6.2.6 on a router's interface: a specified source with a link-layer address is
        learnt as from an NS (STALE; never from ::), then the advertiser decides when to answer."""
        if meta.src and state.nd is not None and msg.source_lladdr is not None:
            state.nd.input_ns(meta.src, msg.source_lladdr, now)
        self.stats.rs_to_router += 1
        on_rs(msg, meta.src, now)

    def _redirect_input(self, state: Inet6Interface, msg: nd_wire.Redirect, meta: Ip6Meta, now: float) -> None:
        hop = self.route(msg.destination, now, state.ifp if is_link_local(msg.destination) else None)
        # §8.1: from the current first hop for the destination, by the interface it leaves by
        if (not self.config.accept_redirects or isinstance(hop, int) or hop.ifp is not state.ifp
                or hop.nexthop != meta.src):
            self.stats.redirects_ignored += 1
            return
        if not self.routes.redirect(msg.destination, msg.target, state.ifp, now):
            self.stats.redirects_ignored += 1
            return
        self.stats.redirects_accepted += 1
        if state.nd is not None:
            state.nd.input_redirect_target(msg.target, msg.destination, msg.target_lladdr, now)

    def _mld_input(self, msg: mld_wire.AnyMldMessage, meta: Ip6Meta, now: float) -> None:
        state = self.ifaces.get(meta.ifp.index) if meta.ifp is not None else None
        if state is None:
            self.stats.nd_no_interface += 1
            return
        if isinstance(msg, mld_wire.MldQuery):
            state.mld.input_query_v2(msg.group, msg.max_resp_delay / 1000.0, now,
                                     source_specific=bool(msg.sources), qrv=msg.qrv, qqi=float(msg.qqi))
        elif isinstance(msg, mld_wire.MldV1Query):
            state.mld.input_query_v1(msg.group, msg.max_resp_delay / 1000.0, now)
        elif isinstance(msg, mld_wire.MldV1Report):
            state.mld.input_v1_report(msg.group, now)
        # MLDv2 reports and MLDv1 Dones of other hosts are a router's business

    # --- a router's interface (the gateway's guest link) ---------------------------------------------
    def become_router(self, ifp: Interface, on_rs: Callable[[nd_wire.RouterSolicitation, int, float], None],
                      on_ready: Callable[[float], None], now: float) -> int:
        """Make `ifp` a router's interface (see the module docstring): `on_rs(msg, src, now)`
        gets each valid RS; `on_ready(now)` is called once a link-local address is usable to
        advertise from (at once when it already is).  0, or ENODEV without IPv6 there."""
        state = self.ifaces.get(ifp.index)
        if state is None:
            return errno.ENODEV
        if state.on_rs is None:
            self._join(state, ALL_ROUTERS, now)
        state.on_rs = on_rs
        state.solicitor.stop()
        if self._link_local(state):
            state.on_router_ready = None
            on_ready(now)
        else:
            state.on_router_ready = on_ready
        return 0

    def cease_router(self, ifp: Interface, now: float) -> None:
        """`ifp` is a host's interface again: all-routers left, RSs ignored."""
        state = self.ifaces.get(ifp.index)
        if state is None or state.on_rs is None:
            return
        state.on_rs = state.on_router_ready = None
        self._leave(state, ALL_ROUTERS, now)

    def send_router_advertisement(self, ifp: Interface, ra: nd_wire.RouterAdvertisement, dst: int,
                                  now: float) -> int:
        """Send a router interface's RA to `dst` (all-nodes, or a solicitor) from its link-local
        address with the source link-layer address option (§6.2.3, §4.2): 0, ENODEV, or
        EADDRNOTAVAIL while no link-local address is usable (counted), or the link's errno."""
        state = self.ifaces.get(ifp.index)
        if state is None:
            return errno.ENODEV
        src = self._link_local(state)
        if not src:
            self.stats.ra_no_source += 1
            return errno.EADDRNOTAVAIL
        if state.mac is not None and ra.source_lladdr is None:
            ra = nd_wire.RouterAdvertisement(
                code=ra.code, cur_hop_limit=ra.cur_hop_limit, managed=ra.managed, other=ra.other,
                preference=ra.preference, router_lifetime=ra.router_lifetime, reachable_time=ra.reachable_time,
                retrans_timer=ra.retrans_timer, options=(nd_wire.SourceLinkLayerAddress(state.mac), *ra.options))
        err = self._send_icmp(state, ra, src, dst, now)
        if not err:
            self.stats.ra_sent += 1
        return err

    def link_local(self, ifp: Interface) -> int:
        """A usable link-local address of `ifp`, 0 when it has none (yet)."""
        state = self.ifaces.get(ifp.index)
        return 0 if state is None else self._link_local(state)

    # --- what the owner shows ----------------------------------------------------------------------
    def interfaces(self) -> Iterator[Inet6Interface]:
        return iter(self.ifaces.values())

    def counters(self) -> dict[str, dict[str, int]]:
        """The stats sections: ipv6 (RFC 4293 names), icmpv6, nd (the message checks and this
        host's ND events), mld."""
        nd = {**self.icmp.nd_stats.as_dict(), **self.stats.as_dict()}
        return {"ipv6": self.ip.counters(), "icmpv6": self.icmp.stats.as_dict(), "nd": nd,
                "mld": self.icmp.mld_stats.as_dict()}

    def interface_counters(self, ifp: Interface, now: float) -> dict[str, Any] | None:
        state = self.ifaces.get(ifp.index)
        if state is None:
            return None
        out: dict[str, Any] = {
            "addresses": [{"addr": int_to_ip6(i.addr), "plen": i.plen, "state": i.state.lower(), "origin": i.origin}
                          for i in state.addrconf.addresses(now)],
            "addrconf": state.addrconf.stats.as_dict(), "mld": state.mld.stats.as_dict(), "mtu6": state.mtu6,
        }
        if state.nd is not None:
            out["neighbors"] = state.nd.stats.as_dict()
        if state.rdnss:
            out["rdnss"] = [int_to_ip6(a) for a in state.rdnss]
        return out


__all__ = ["Inet6Config", "Inet6Host", "Inet6HostStats", "Inet6Interface", "RouterSolicitor"]
