"""The Stack: one userspace "kernel" under trio.

    async with Stack() as st:
        ifp = st.add_interface(TunNdd("ts0"), "10.0.0.2/24")
        st.add_route("0.0.0.0/0", gateway="10.0.0.1")
        rtt = await st.ping("10.0.0.1")

It owns a nursery (driver tasks, the timer loop), the NDD chain (network services),
the interface and routing tables, the protocol switch and the protocol cores.
Nothing is module-global, so any number of stacks share one process.

Registration runs one way: the Stack builds its built-in cores itself, as typed attributes
(`ipv4`, `icmp`, `udp`, `tcp` for AF_INET; `inet6` -- IPv6, ICMPv6 and per interface
addresses, neighbours and MLD -- for AF_INET6; `atm_sockets` for AF_NDD), and installs their
protosw entries and timed cores.  Third-party protocols come in through the
`tunstack.protocols` entry points, whose `register(host)` sees the Stack only as a
protocols.contracts.ProtocolHost.
"""
from __future__ import annotations

import errno
import itertools
import logging
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

import drivers
from ndd import constants as C
from ndd.atm import DEFAULT_MTU, VcParams
from ndd.constants import AF_NDD, NDD_PROT_ATM, NDD_PROT_ETHER, SOCK_CONN_DGRAM
from ndd.demux import NsFilter, NsUser
from ndd.ndd import Ndd, StatusBlock
from ndd.pktbuf import PacketBuffer
from ndd.services import NetServices
from protocols.addr import int_to_ip, ip_to_int, parse_prefix
from protocols.atm.sockets.usrreq import AtmUserRequests
from protocols.contracts import PR_ADDR, PR_ATOMIC, PR_CONNREQUIRED, ProtocolHost, ProtocolSwitch, Protosw
from protocols.gro import TcpGro
from protocols.icmp import Icmp
from protocols.ifnet import (
    IFF_BROADCAST,
    IFF_LOOPBACK,
    IFF_MULTICAST,
    IFF_NOARP,
    IFF_POINTOPOINT,
    IFF_RUNNING,
    IFF_UP,
    Interface,
    InterfaceTable,
)
from protocols.ipv4 import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4
from protocols.ipv6.addr import int_to_ip6, ip6_to_int
from protocols.ipv6.host import Inet6Config, Inet6Host, Inet6Interface
from protocols.ipv6.wire import NH_ICMPV6
from protocols.ndd8022 import Ndd8022UserRequests
from protocols.route import RoutingTable
from protocols.tcp.tcp import Tcp
from protocols.tcp.usrreq import TcpUserRequests
from protocols.udp.udp import Udp
from protocols.udp.usrreq import UdpUserRequests

from . import gcpolicy, plugins
from .timers import TimerService

log = logging.getLogger(__name__)


@dataclass
class StackConfig:
    default_ttl: int = 64
    reasm_timeout: float = 30.0
    reasm_max_bytes: int = 4 << 20
    icmp_rate: float = 1000.0
    icmp_burst: int = 50
    icmp_ratelimit: float = 1.0     # net.ipv4.icmp_ratelimit: per-destination error interval (0: off)
    min_pmtu: int = 552             # net.ipv4.route.min_pmtu: floor of a learned path MTU
    mtu_expires: float = 600.0      # net.ipv4.route.mtu_expires: a learned path MTU lasts this long
    loopback: bool = True
    plugins: bool = True            # load tunstack.protocols / tunstack.drivers entry points
    arp: Any = None                 # protocols.arp.ArpConfig; None: defaults
    seed: int | None = None         # deterministic ISNs/IDs for tests
    tcp: Any = None                 # protocols.tcp.TcpConfig; None: defaults
    clip: Any = None                # protocols.atm.clip.link.ClipConfig (InATMARP timers); None: defaults
    ipv6: bool = True               # IPv6 on every interface but ATM ones (Linux disable_ipv6 0)
    inet6: Inet6Config | None = None   # IPv6 host settings (protocols/ipv6/host.py); None: defaults
    gro: bool = True                # software GRO of a read batch's TCP segments (protocols/gro.py; ethtool -K gro)
    early_demux: bool = True        # TCP segments of known connections skip IPv4 input (Linux ip_early_demux)
    gc_threshold2: int | None = 100  # the cyclic GC's full-collection threshold while it runs (stack/gcpolicy.py)


class Stack:
    def __init__(self, name: str = "tunstack", config: StackConfig | None = None) -> None:
        self.name = name
        self.config = config or StackConfig()
        self.rng = random.Random(self.config.seed) if self.config.seed is not None else random.SystemRandom()
        self.nursery: trio.Nursery | None = None
        self._clock: trio.abc.Clock | None = None          # the run's, while the Stack runs (now)
        self.ns = NetServices(self._spawn, self.now)
        self.ifnet = InterfaceTable()
        self.routes = RoutingTable()
        self.protosw = ProtocolSwitch()
        self.timers = TimerService(self.now)
        self.gro = TcpGro(self._ip_up)
        self._in_batch = False
        # run at the end of each device read batch, after TCP's output pass: users that act on
        # socket upcalls outside any task (the gateway's splices) do their work there
        self.rx_batch_hooks: list[Callable[[], None]] = []
        self.rx_start_hooks: list[Callable[[], None]] = []   # at a batch's start (stack/busypoll.py)
        self.in_rx_batch = False             # from a batch's start until its hooks have run
        self._early_demux = self.config.early_demux
        self.drivers = plugins.DriverRegistry()
        self.plugins_loaded: list[str] = []
        self._ping_ident = self.rng.getrandbits(16)
        self._ping_seq = itertools.count(1)
        self._arp: dict[str, Any] = {}
        self._clip: dict[str, Any] = {}   # ifname -> protocols.atm.clip.link.AtmLink
        self._filters: dict[str, list[tuple[NsFilter, NsUser]]] = {}   # ifname -> its IP/ARP filters
        # name -> its addresses in preference order, either family (Debian's /etc/hosts default)
        self.hosts: dict[str, str | tuple[str, ...]] = {"localhost": ("127.0.0.1", "::1")}
        # the built-in cores, built here and held as typed attributes (docs/design.md, "Registration runs one way")
        self.ipv4, self.icmp, self.udp, self.tcp = self._build_inet()
        self.inet6: Inet6Host = self._build_inet6()
        self.atm_sockets: AtmUserRequests = self._build_atm_sockets()
        drivers.register(self.drivers)
        if self.config.plugins:
            host: ProtocolHost = self     # what a protocol plug-in may use of the Stack (checked here)
            for group, kind, target in ((plugins.PROTOCOL_GROUP, "protocol", host),
                                        (plugins.DRIVER_GROUP, "driver", self.drivers)):
                for name_, fn in plugins.load_entry_points(group):
                    if plugins.call_register(name_, fn, target):
                        self.plugins_loaded.append(f"{kind}:{name_}")

    # --- the built-in protocol families ------------------------------------------------
    def _build_inet(self) -> tuple[Ipv4, Icmp, Udp, Tcp]:
        """AF_INET: IPv4 (its reassembly timers), then ICMP, UDP and TCP on it, each with
        its protosw entry; TCP's timers too."""
        cfg = self.config
        self.protosw.add_domain(socket.AF_INET, "internet")
        ipv4 = Ipv4(self.ifnet, self.routes, self.protosw, rng=self.rng, reasm_timeout=cfg.reasm_timeout,
                    reasm_max_bytes=cfg.reasm_max_bytes, default_ttl=cfg.default_ttl,
                    min_pmtu=cfg.min_pmtu, mtu_expires=cfg.mtu_expires)
        self.timers.register(ipv4.reasm)
        icmp = Icmp(ipv4, rate=cfg.icmp_rate, burst=cfg.icmp_burst, rng=self.rng, ratelimit=cfg.icmp_ratelimit)
        self.protosw.add(socket.AF_INET, Protosw("icmp", socket.SOCK_RAW, IPPROTO_ICMP, input=icmp.input,
                                                 ctlinput=icmp.ctlinput, flags=PR_ATOMIC | PR_ADDR, core=icmp))
        udp = Udp(ipv4, self.rng)
        self.protosw.add(socket.AF_INET, Protosw("udp", socket.SOCK_DGRAM, IPPROTO_UDP, input=udp.input,
                                                 ctlinput=udp.ctlinput, usrreqs=UdpUserRequests(udp),
                                                 flags=PR_ATOMIC | PR_ADDR, core=udp))
        tcp = Tcp(ipv4, self.rng, self.now, cfg.tcp)
        self.timers.register(tcp)
        self.protosw.add(socket.AF_INET, Protosw("tcp", socket.SOCK_STREAM, IPPROTO_TCP, input=tcp.input,
                                                 ctlinput=tcp.ctlinput, usrreqs=TcpUserRequests(tcp),
                                                 flags=PR_CONNREQUIRED, core=tcp))
        return ipv4, icmp, udp, tcp

    def _build_inet6(self) -> Inet6Host:
        """AF_INET6: the IPv6 host (IPv6, ICMPv6; addresses, neighbours and MLD come per
        interface in add_interface), with ICMPv6 in ip6_protox and the host's timed cores;
        then the UDP and TCP cores speak IPv6 too, each with its AF_INET6 entry (one core,
        two families: dual-stack sockets and one port space, as Linux).  ICMPv6 errors share
        ICMP's token bucket, as Linux's icmp_global serves both families."""
        cfg = self.config
        self.protosw.add_domain(socket.AF_INET6, "internet6")
        inet6 = Inet6Host(self.protosw, self.now, config=cfg.inet6, rng=self.rng, limiter=self.icmp.limiter,
                          icmp_ratelimit=cfg.icmp_ratelimit)
        icmp6 = inet6.icmp
        self.protosw.add(socket.AF_INET6, Protosw("icmpv6", socket.SOCK_RAW, NH_ICMPV6, input=icmp6.input,
                                                  ctlinput=icmp6.ctlinput, flags=PR_ATOMIC | PR_ADDR, core=icmp6))
        for core in inet6.timed_cores():
            self.timers.register(core)
        inet6.link_multicast = self._link_multicast
        udp, tcp = self.udp, self.tcp
        udp.ipv6 = tcp.ipv6 = inet6.ip
        udp.interface_by_index = tcp.interface_by_index = self._interface_by_index
        udp.join_group = lambda ifindex, group, now: self._join6(inet6.join_group, ifindex, group, now)
        udp.leave_group = lambda ifindex, group, now: self._join6(inet6.leave_group, ifindex, group, now)
        self.protosw.add(socket.AF_INET6, Protosw("udp6", socket.SOCK_DGRAM, IPPROTO_UDP, input=udp.input6,
                                                  ctlinput=udp.ctlinput6,
                                                  usrreqs=UdpUserRequests(udp, family=socket.AF_INET6),
                                                  flags=PR_ATOMIC | PR_ADDR, core=udp))
        self.protosw.add(socket.AF_INET6, Protosw("tcp6", socket.SOCK_STREAM, IPPROTO_TCP, input=tcp.input6,
                                                  ctlinput=tcp.ctlinput6,
                                                  usrreqs=TcpUserRequests(tcp, family=socket.AF_INET6),
                                                  flags=PR_CONNREQUIRED, core=tcp))
        return inet6

    def _interface_by_index(self, index: int) -> Interface | None:
        return next((ifp for ifp in self.ifnet if ifp.index == index), None)

    def _join6(self, op: Any, ifindex: int, group: int, now: float) -> int:
        """A socket's IPV6_JOIN_GROUP / _LEAVE_GROUP on interface `ifindex` (ENODEV: none)."""
        ifp = self._interface_by_index(ifindex)
        return errno.ENODEV if ifp is None else int(op(ifp, group, now))

    def _link_multicast(self, ifp: Interface, mac: bytes, on: bool) -> None:
        """The device's address filter for a multicast MAC (NDD_ENABLE_ADDRESS / _DISABLE_)."""
        try:
            ifp.ndd.ndd_ctl(C.NDD_ENABLE_ADDRESS if on else C.NDD_DISABLE_ADDRESS, mac)
        except OSError as exc:
            log.warning("%s: multicast address %s: %s", ifp.name, mac.hex(":"), exc)

    def _build_atm_sockets(self) -> AtmUserRequests:
        """AF_NDD: the ATM connection-oriented datagram service (PVC and SVC sockets); its SVC
        call control registers its own timed cores (itself now, an adapter's UNI as it starts)."""
        self.protosw.add_domain(AF_NDD, "ndd")
        usrreqs = AtmUserRequests(self.ns, self.now, self.timers)
        self.protosw.add(AF_NDD, Protosw("atm", SOCK_CONN_DGRAM, NDD_PROT_ATM, usrreqs=usrreqs,
                                         flags=PR_ATOMIC | PR_CONNREQUIRED))
        # and the 802.2 datagram family: whole Ethernet frames by a sockaddr_ndd_8022 filter
        self.protosw.add(AF_NDD, Protosw("ndd8022", socket.SOCK_DGRAM, NDD_PROT_ETHER,
                                         usrreqs=Ndd8022UserRequests(self.ns), flags=PR_ATOMIC))
        return usrreqs

    # --- lifetime ---------------------------------------------------------------
    def now(self) -> float:
        """trio's clock.  Read from the run's clock object itself once the Stack runs:
        trio.current_time() is three Python-level calls, and the stack reads the time a few
        times per segment."""
        clock = self._clock
        return clock.current_time() if clock is not None else trio.current_time()

    def _spawn(self, fn: Any, *args: Any) -> None:
        if self.nursery is None:
            raise RuntimeError("the Stack is not running: use `async with Stack() as stack:`")
        self.nursery.start_soon(fn, *args)

    async def __aenter__(self) -> Stack:
        self._clock = trio.lowlevel.current_clock()
        self._nursery_cm = trio.open_nursery()
        self.nursery = await self._nursery_cm.__aenter__()
        self.nursery.start_soon(self.timers.run)
        if self.config.loopback:
            from drivers.memlink import LoopbackNdd
            self.loopback = self.add_interface(LoopbackNdd("lo"), "127.0.0.1/8")   # and ::1/128
            self.ipv4.loopback = self.loopback
        gcpolicy.hold(self.config.gc_threshold2)
        return self

    async def __aexit__(self, etype: Any, exc: Any, tb: Any) -> bool | None:
        # As close(2) releases the descriptor even when it reports an error, the teardown
        # always completes -- interfaces down, tasks cancelled and joined -- and close()'s
        # exception is raised after it, never dropped.  Failures come out in the order they
        # happened: one (the body's, a task's or close()'s) surfaces as itself, not wrapped;
        # several (the body's first, close()'s last) as one group, so none hides another.
        assert self.nursery is not None
        close_failed: list[BaseException] = []
        try:
            self.close()
        except BaseException as failure:
            close_failed.append(failure)
        self.nursery.cancel_scope.cancel()
        try:
            handled = await self._nursery_cm.__aexit__(etype, exc, tb)
        except BaseExceptionGroup as group:
            failures = [*group.exceptions, *close_failed]
            if len(failures) == 1:
                raise failures[0] from None
            if not close_failed:
                raise
            raise BaseExceptionGroup("the Stack's body or tasks failed, and so did close()", failures) from None
        finally:
            self.nursery = self._clock = None
            gcpolicy.release(self.config.gc_threshold2)
        if close_failed:
            raise close_failed[0]
        return handled

    def close(self) -> None:
        """Take every interface down and release its NDD (drivers close their devices)."""
        for ifp in list(self.ifnet):
            self.remove_interface(ifp)

    # --- interfaces ------------------------------------------------------------
    def add_interface(self, ndd: Ndd, addr: str | None = None, *, name: str | None = None,
                      mtu: int | None = None) -> Interface:
        """Attach `ndd`, open it (ns_alloc), claim IPv4 (and ARP) frames, configure `addr`;
        IPv6 frames too and a link-local address (after DAD), unless StackConfig.ipv6 is off
        or the interface is ATM."""
        from protocols.arp import ArpCache, ArpConfig
        from protocols.ether import ETHERTYPE_ARP, ETHERTYPE_IPV4, EtherLink, RawIpLink

        if ndd.ndd_name not in self.ns.ndds:
            self.ns.ns_attach(ndd)
        self.ns.ns_alloc(ndd.ndd_name)
        kind = ndd.ndd_type
        if kind == C.NDD_ISO88023:
            flags = IFF_UP | IFF_BROADCAST | IFF_MULTICAST
        elif kind == C.NDD_SOFTWARE_LOOPBACK:
            flags = IFF_UP | IFF_LOOPBACK | IFF_NOARP
        elif kind == C.NDD_ATM:
            flags = IFF_UP    # a LIS: neither broadcast nor point-to-point (RFC 2225 §3)
            # RFC 2225 §5: IP MTU 9180 by default whatever the adapter's ndd_mtu; each PVC is
            # opened with max SDU = IP MTU + 8 octets of LLC/SNAP (add_atm_pvc)
            mtu = mtu or DEFAULT_MTU
        else:
            flags = IFF_UP | IFF_POINTOPOINT | IFF_NOARP
        if ndd.ndd_flags & C.NDD_RUNNING:
            flags |= IFF_RUNNING
        ifp = self.ifnet.create(name or ndd.ndd_name, ndd, mtu or ndd.ndd_mtu, flags)
        ndd.nd_rx_batch = self._rx_batch
        ip_user = NsUser(self._ip_isr, ifp)
        if self._early_demux and kind in (C.NDD_ISO88023, C.NDD_RAWIP):
            ndd.nd_fast_rx = self._fast_rx(ifp, ndd, ether=kind == C.NDD_ISO88023)
        if kind == C.NDD_ATM:
            self._add_atm_link(ifp, ndd)
        elif kind == C.NDD_ISO88023:
            arp = ArpCache(ndd.ndd_physaddr, lambda: [a.addr for a in ifp.addrs], transmit=None,  # type: ignore[arg-type]
                           unreachable=lambda pkt: self.ipv4.unreachable_from_link(pkt, self.now()),
                           config=self.config.arp or ArpConfig())
            link = EtherLink(ifp, ndd, arp)
            # ARP is 28 octets: pad to the 60-octet Ethernet minimum (IEEE 802.3 §3.2.8)
            arp.transmit = lambda dst, data: link.send(PacketBuffer.from_payload(data + bytes(18)), dst, ETHERTYPE_ARP)
            arp.transmit_ip = lambda pkt, mac: link.send(pkt, mac, ETHERTYPE_IPV4)
            ifp.link = link
            self._arp[ifp.name] = arp
            self.timers.register(arp)
            self._claim(ifp, NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_IPV4), ip_user)
            self._claim(ifp, NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_ARP), NsUser(self._arp_isr, arp))
        else:
            ifp.link = RawIpLink(ndd)
            self._claim(ifp, NsFilter(C.NS_IPVERSION, version=4), ip_user)
        if self.config.ipv6 and kind != C.NDD_ATM:
            self._add_inet6(ifp, ndd)
        self.ns.ns_add_status(ndd, self._on_status)
        if addr:
            self.add_address(ifp, addr)
        return ifp

    def _claim(self, ifp: Interface, flt: NsFilter, user: NsUser) -> None:
        """ns_add_filter for the interface, remembered so remove_interface deletes it."""
        self.ns.ns_add_filter(ifp.ndd, flt, user)
        self._filters.setdefault(ifp.name, []).append((flt, user))

    def _add_inet6(self, ifp: Interface, ndd: Ndd) -> Inet6Interface:
        """IPv6 on `ifp`: frames claimed (ethertype 0x86DD, or IP version 6 on a layer-3
        link), the interface's IPv6 cores registered, its link-local address begun."""
        from protocols.ether import ETHERTYPE_IPV6, EtherLink

        ethernet = isinstance(ifp.link, EtherLink)
        now = self.now()
        state = self.inet6.attach(ifp, now, mac=ndd.ndd_physaddr if ethernet else None,
                                  loopback=bool(ifp.flags & IFF_LOOPBACK))
        if isinstance(ifp.link, EtherLink):
            ifp.link.nd = state.nd
            flt = NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_IPV6)
        else:
            flt = NsFilter(C.NS_IPVERSION, version=6)
        self._claim(ifp, flt, NsUser(self._ip6_isr, ifp))
        for core in state.timed_cores():
            self.timers.register(core)
        self.inet6.start(state, now)
        return state

    def add_address(self, ifp: Interface | str, addr: str, *, dad: bool = True) -> None:
        """Configure `addr` ("10.0.0.2/24", "fd00::2/64") on the interface.  An IPv6 address is
        tentative until DAD passes (on Ethernet; `dad=False` is `ip addr add ... nodad`).
        Raises OSError with Linux's errno (EEXIST, EINVAL, EADDRNOTAVAIL, ...)."""
        ifp = self.ifnet.get(ifp) if isinstance(ifp, str) else ifp
        if ":" in addr:
            text, _, plen_text = addr.partition("/")
            try:
                ip6, plen6 = ip6_to_int(text), int(plen_text or 128)
            except ValueError:
                raise OSError(errno.EINVAL, f"{os.strerror(errno.EINVAL)}: bad IPv6 address {addr!r}") from None
            err = self.inet6.add_address(ifp, ip6, plen6, self.now(), dad=dad)
            if err:
                raise OSError(err, f"{os.strerror(err)}: {addr} on {ifp.name}")
            return
        ip, plen = parse_prefix(addr)
        ia = self.ifnet.add_address(ifp, ip, plen)
        if plen < 32 and not ifp.flags & IFF_LOOPBACK:
            try:
                self.routes.add((ia.network, plen), ifp, source=ip, proto="kernel")
            except FileExistsError:
                pass        # a secondary address on the subnet: the primary's prefix route serves it (Linux)
        arp = self._arp.get(ifp.name)
        if arp is not None:
            arp.announce(ip, self.now())
        clip = self._clip.get(ifp.name)
        if clip is not None:
            clip.table.address_added(self.now())   # PVCs waiting for an address ask now
            if clip.svc is not None:
                clip.svc.address_added(self.now())  # and the ATMARP client registers it

    def remove_interface(self, ifp: Interface | str) -> None:
        ifp = self.ifnet.get(ifp) if isinstance(ifp, str) else ifp
        ndd = ifp.ndd
        arp = self._arp.pop(ifp.name, None)
        if arp is not None:
            self.timers.unregister(arp)
            arp.unreachable = lambda pkt: None
            arp.flush()
        clip = self._clip.pop(ifp.name, None)
        if clip is not None:
            self._remove_atm_link(clip)
        state = self.inet6.detach(ifp, self.now())
        if state is not None:
            for core in state.timed_cores():
                self.timers.unregister(core)
        self.routes.delete_interface(ifp)
        self.ifnet.remove(ifp)
        ifp.flags &= ~(IFF_UP | IFF_RUNNING)
        self.ifnet.touch()
        if ifp is getattr(self, "loopback", None):
            self.ipv4.loopback = None
        try:
            self.ns.ns_del_status(ndd, self._on_status)
        except OSError:
            pass
        for flt, user in self._filters.pop(ifp.name, ()):
            try:
                self.ns.ns_del_filter(ndd, flt, user)   # ours to delete before ns_free (AIX)
            except OSError:
                pass                                    # the NDD was freed under us
        ndd.nd_fast_rx = None
        self.ns.ns_free(ndd)
        if self.ns.refcount.get(ndd.ndd_name) == 0:
            self.ns.ns_detach(ndd)

    # --- IP over ATM (protocols/atm/clip/link.py) --------------------------------------------
    def _add_atm_link(self, ifp: Interface, ndd: Ndd) -> None:
        from protocols.atm.clip.link import AtmArpTable, AtmLink, ClipConfig

        table = AtmArpTable(lambda: [a.addr for a in ifp.addrs], transmit=lambda vpi, vci, data: 0,
                            transmit_ip=lambda pkt, vpi, vci: 0,
                            unreachable=lambda pkt: self.ipv4.unreachable_from_link(pkt, self.now()),
                            config=self.config.clip or ClipConfig(),
                            source_for=lambda ip: ifp.source_for(ip) or 0)
        link = AtmLink(ifp, ndd, table, lambda pkt, now: self._ip_isr(ndd, pkt, ifp))
        ifp.link = link
        self._clip[ifp.name] = link
        self.timers.register(table)

    def _remove_atm_link(self, link: Any) -> None:
        from protocols.atm.clip.calls import disable_svc

        self.timers.unregister(link.table)
        link.table.unreachable = lambda pkt: None
        disable_svc(self, link)               # SVCs released (RELEASE, cause 16), nothing reported
        vcs = list(link.table.pvcs)
        link.table.flush()
        for vc in vcs:
            try:
                link.ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, vc)
            except OSError:
                pass

    def add_atm_pvc(self, ifname: str, vpi: int, vci: int, peer_ip: str | None = None, *,
                    pcr: float = 0.0) -> None:
        """Carry IPv4 on PVC vpi/vci of ATM interface `ifname` (RFC 2684 LLC/SNAP).

        `peer_ip` makes a static entry; None learns the far end by InATMARP (RFC 2225 §7).
        The VC is opened on the adapter with max SDU = IP MTU + 8 (LLC/SNAP) and claimed
        with an NS_ATM_VC filter.  Raises OSError: ENODEV not an ATM interface, EINVAL
        reserved/out-of-range VPI/VCI, EADDRINUSE VC in use, EEXIST peer on another PVC."""
        from protocols.atm.clip.link import LLC_SNAP_LEN

        ifp = self.ifnet.get(ifname)
        link = self._clip.get(ifp.name)
        if link is None:
            raise OSError(errno.ENODEV, f"{os.strerror(errno.ENODEV)}: {ifname} is not an ATM interface")
        peer = ip_to_int(peer_ip) if peer_ip is not None else None
        if peer is not None and peer in link.table.by_ip:
            raise OSError(errno.EEXIST, f"{os.strerror(errno.EEXIST)}: {peer_ip} already has a PVC")
        ndd = ifp.ndd
        ndd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(vpi, vci, max_sdu=ifp.mtu + LLC_SNAP_LEN, pcr=pcr))
        try:
            self.ns.ns_add_filter(ndd, NsFilter(C.NS_ATM_VC, vpi=vpi, vci=vci),
                                  NsUser(self._clip_isr, (link, vpi, vci)))
        except OSError:
            ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, (vpi, vci))
            raise
        link.table.add_pvc(vpi, vci, peer, self.now())

    def remove_atm_pvc(self, ifname: str, vpi: int, vci: int) -> None:
        link = self._clip.get(self.ifnet.get(ifname).name)
        if link is None or (vpi, vci) not in link.table.pvcs:
            raise OSError(errno.ENOENT, f"{os.strerror(errno.ENOENT)}: no PVC {vpi}/{vci} on {ifname}")
        link.table.remove_pvc(vpi, vci)
        self.ns.ns_del_filter(link.ndd, NsFilter(C.NS_ATM_VC, vpi=vpi, vci=vci))
        link.ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, (vpi, vci))

    def atm_table(self, ifname: str) -> Any:
        """The interface's protocols.atm.clip.link.AtmArpTable (PVCs and their far ends)."""
        return self._clip[self.ifnet.get(ifname).name].table

    def add_atm_svc(self, ifname: str, aesa: bytes, *, arp_server: bytes | None = None,
                    serve_atmarp: bool = False) -> Any:
        """Also carry IPv4 over SVCs on ATM interface `ifname` (RFC 2225 §8.3), as `aesa`.

        Calls for `aesa` with B-LLI LLC are accepted as CLIP VCs; a next hop no PVC leads to
        is resolved to an AESA -- static entries (`add_atm_svc_peer`), else the ATMARP server
        at `arp_server` (RFC 2225 §8.5) -- and called on demand.  `serve_atmarp` makes this
        interface the LIS's ATMARP server too (RFC 2225 §8.4; it resolves through itself).
        Returns the protocols.atm.clip.svc.ClipSvc (`.table()`, `.server`).  Raises OSError:
        ENODEV not an ATM interface, EEXIST SVCs already on, EADDRINUSE the address is
        bound with CLIP's B-LLI; ValueError for an AESA that is not 20 octets."""
        from protocols.atm.clip.calls import enable_svc
        return enable_svc(self, self._clip_link(ifname), aesa, arp_server=arp_server, serve_atmarp=serve_atmarp)

    def add_atm_svc_peer(self, ifname: str, ip: str, aesa: bytes) -> None:
        """A static IP -> AESA entry for CLIP over SVCs (the call is placed on demand)."""
        if len(aesa) != 20:
            raise ValueError("an AESA is 20 octets")
        self.atm_svc(ifname).add_peer(ip_to_int(ip), aesa, self.now())

    def remove_atm_svc_peer(self, ifname: str, ip: str) -> None:
        if not self.atm_svc(ifname).remove_peer(ip_to_int(ip)):
            raise OSError(errno.ENOENT, f"{os.strerror(errno.ENOENT)}: no SVC entry for {ip} on {ifname}")

    def atm_svc(self, ifname: str) -> Any:
        """The interface's protocols.atm.clip.svc.ClipSvc; ENXIO if it runs no SVCs."""
        link = self._clip_link(ifname)
        if link.svc is None:
            raise OSError(errno.ENXIO, f"{os.strerror(errno.ENXIO)}: {ifname} runs no SVCs (add_atm_svc)")
        return link.svc

    def _clip_link(self, ifname: str) -> Any:
        link = self._clip.get(self.ifnet.get(ifname).name)
        if link is None:
            raise OSError(errno.ENODEV, f"{os.strerror(errno.ENODEV)}: {ifname} is not an ATM interface")
        return link

    def _clip_isr(self, ndd: Ndd, pkt: PacketBuffer, data: tuple[Any, int, int]) -> None:
        link, vpi, vci = data
        link.input(pkt, vpi, vci, self.now())

    def interface(self, name: str) -> Interface:
        return self.ifnet.get(name)

    def if_nametoindex(self, name: str) -> int:
        """An interface's index, for scope ids ("fe80::1%tap0"), as socket.if_nametoindex."""
        try:
            return self.ifnet.get(name).index
        except OSError:
            raise OSError("no interface with this name") from None

    def arp_cache(self, name: str) -> Any:
        return self._arp[name]

    def add_route(self, prefix: str, gateway: str | None = None, *, dev: str | None = None,
                  metric: int = 0) -> None:
        """`ip route add prefix [via gateway] [dev dev] [metric m]`, either family (an IPv6
        prefix or gateway has a colon; metric 0 is 1024 there, as Linux's IP6_RT_PRIO_USER)."""
        if ":" in prefix or (gateway is not None and ":" in gateway):
            self._add_route6(prefix, gateway, dev, metric)
            return
        gw = ip_to_int(gateway) if gateway else None
        if dev is not None:
            ifp = self.ifnet.get(dev)
        elif gw is not None:
            r = self.routes.lookup(gw)
            if r is None or r.gateway is not None:
                raise OSError(errno.ENETUNREACH, f"{os.strerror(errno.ENETUNREACH)}: gateway {gateway}")
            ifp = r.ifp
        else:
            raise ValueError("a route needs a gateway or a device")
        self.routes.add(prefix, ifp, gw, metric=metric)

    def _add_route6(self, prefix: str, gateway: str | None, dev: str | None, metric: int) -> None:
        from protocols.ipv6.route import METRIC_USER, needs_scope_id

        gw = ip6_to_int(gateway) if gateway else None
        if dev is not None:
            ifp = self.ifnet.get(dev)
        elif gw is not None and not needs_scope_id(gw):
            hop = self.inet6.route(gw, self.now(), None)
            if isinstance(hop, int) or hop.nexthop != gw:
                raise OSError(errno.ENETUNREACH, f"{os.strerror(errno.ENETUNREACH)}: gateway {gateway}")
            ifp = hop.ifp
        elif gw is not None:
            raise OSError(errno.EINVAL, f"{os.strerror(errno.EINVAL)}: a link-local gateway needs a device")
        else:
            raise ValueError("a route needs a gateway or a device")
        self.inet6.routes.add("::/0" if prefix == "default" else prefix, ifp, gw, metric=metric or METRIC_USER)

    # --- receive entry points (ns_user isr) ------------------------------------
    def _rx_batch(self, starting: bool) -> None:
        """A device's read batch begins or ends (Ndd.nd_rx_batch): inside one, in-order TCP
        segments are merged (protocols/gro.py) and TCP answers once per batch per
        connection (protocols/tcp/tcp.py rx_batch_end); at its end what GRO holds goes up first."""
        if starting:
            self.in_rx_batch = True
            for hook in self.rx_start_hooks:
                hook()
            self._in_batch = self.config.gro
            self.tcp.batching = True
            return
        self._in_batch = False
        self.gro.flush()
        self.tcp.rx_batch_end()
        try:
            for hook in self.rx_batch_hooks:
                hook()
        finally:
            self.in_rx_batch = False

    def _fast_rx(self, ifp: Interface, ndd: Ndd, ether: bool) -> Callable[[bytes, int, bool], bool]:
        """The device's nd_fast_rx (XDP's place): a gateway's relayed TCP segment goes from the
        octets the driver read straight to Tcp.relayed_input4 (relayed_input6) -- no
        PacketBuffer, demuxer or IP input: a third of a relayed round trip's Python
        (tools/bench/relaycost.py) -- and so does a guest's SYN for the forwarder (a tenth
        of a relayed connection's).  Taken only where the whole way would end in the same
        place: relayed flows of the family exist, or a forwarder and a transparent
        interface, no demuxer tap is registered, GRO would not hold the frame
        (it goes up at once: the device hands super-frames up itself, or no batch is under
        way), on Ethernet the frame is unicast to our MAC with the IPv4 or IPv6 ethertype
        (IPv6 when the interface takes it).  Anything else -- and whatever relayed_input4/6
        declines -- takes the whole way, unchanged."""
        tcp, name = self.tcp, ndd.ndd_name
        relays, taps = tcp.relays, ndd.ndd_demuxer.taps
        caps = ndd.caps
        inet6 = self.config.ipv6                            # (IPv6 frames claimed on this interface)

        def fast_rx(data: bytes, start: int, csum_valid: bool) -> bool:
            # a relayed flow's segment, or a gateway's SYN for the forwarder
            forwarding = tcp.forwarder is not None and ifp.transparent
            v4 = bool(relays.flows) or forwarding
            v6 = inet6 and (bool(relays.flows6) or forwarding)
            if not (v4 or v6) or taps.get(name) or (self._in_batch and not caps.gso_rx):
                return False
            if ether:
                if len(data) < start + 54 or data[start:start + 6] != ndd.ndd_physaddr:   # (it may change)
                    return False
                kind = data[start + 12] << 8 | data[start + 13]
                start += 14
                if kind == 0x0800:
                    return v4 and tcp.relayed_input4(data, start, len(data), csum_valid, ifp, self.now())
                return kind == 0x86DD and v6 and tcp.relayed_input6(data, start, len(data), csum_valid, ifp,
                                                                    self.now())
            if len(data) <= start:
                return False
            if data[start] >> 4 == 4:
                return v4 and tcp.relayed_input4(data, start, len(data), csum_valid, ifp, self.now())
            return v6 and tcp.relayed_input6(data, start, len(data), csum_valid, ifp, self.now())
        return fast_rx

    def _ip_isr(self, ndd: Ndd, pkt: PacketBuffer, ifp: Interface) -> None:
        # a device that hands over super-frames itself (GSO receive) has done GRO's work
        if self._in_batch and not ndd.caps.gso_rx:
            self.gro.receive(pkt, ifp)
        else:
            self._ip_up(pkt, ifp)

    def _ip_up(self, pkt: PacketBuffer, ifp: Interface) -> None:
        now = self.now()
        # a segment of a known connection goes straight to it (Linux ip_early_demux)
        if not (self._early_demux and self.tcp.early_input(pkt, ifp, now)):
            self.ipv4.input(ifp, pkt, now)

    def _ip6_isr(self, ndd: Ndd, pkt: PacketBuffer, ifp: Interface) -> None:
        now = self.now()
        # a segment of a gateway's relayed flow goes straight to it (Tcp.early_input6)
        if not (self._early_demux and self.tcp.relays.flows6 and self.tcp.early_input6(pkt, ifp, now)):
            self.inet6.ip.input(ifp, pkt, now)

    def _arp_isr(self, ndd: Ndd, pkt: PacketBuffer, arp: Any) -> None:
        arp.input(pkt.view(), self.now())

    def _on_status(self, ndd: Ndd, block: StatusBlock) -> None:
        for ifp in self.ifnet:
            if ifp.ndd is ndd:
                if ndd.ndd_flags & C.NDD_RUNNING:
                    ifp.flags |= IFF_RUNNING
                else:
                    ifp.flags &= ~IFF_RUNNING
                self.ifnet.touch()
                log.info("%s: status code=%#x option=%s", ifp.name, block.code, block.option)

    # --- sockets ---------------------------------------------------------------------
    def socket(self, family: int = 2, type: int = 1, proto: int = 0) -> Any:
        """A socket of this stack, like socket.socket(family, type, proto) (AF_INET, SOCK_STREAM)."""
        from .domains import create
        return create(self, family, type, proto)

    # --- tools -------------------------------------------------------------------
    async def ping(self, dst: str | int, *, size: int = 56, timeout: float = 5.0, ttl: int | None = None,
                   src: str | int | None = None, df: bool = False) -> float:
        """One ICMP echo (ICMPv6 for an IPv6 address: "fd00::1", "fe80::1%eth0"); returns
        the round-trip time in seconds.  `ttl` is the hop limit over IPv6, where `df` does
        not apply (IPv6 routers never fragment).

        Raises OSError: ETIMEDOUT without an answer, or the errno of an ICMP/ARP/ND error
        (EHOSTUNREACH, ENETUNREACH, ...); EINVAL for a link-local address without its
        interface; EIO if the reply's data differs."""
        family6 = isinstance(dst, str) and ":" in dst
        oif = None
        if family6:
            assert isinstance(dst, str)
            text, _, scope = dst.partition("%")
            daddr = ip6_to_int(text)
            oif = self.ifnet.get(scope) if scope else None
            show = int_to_ip6
        else:
            daddr = ip_to_int(dst)
            show = int_to_ip
        seq = next(self._ping_seq) & 0xFFFF
        payload = bytes((seq + i) & 0xFF for i in range(size))
        done = trio.Event()
        outcome: list[Any] = []

        def on_reply(err: int, reporter: int, data: bytes) -> None:
            outcome.append((err, reporter, data, self.now()))
            done.set()

        start = self.now()
        icmp: Any = self.inet6.icmp if family6 else self.icmp
        if family6:
            source = ip6_to_int(str(src)) if src is not None else 0
            err = icmp.send_echo(daddr, self._ping_ident, seq, payload, start, on_reply, src=source,
                                 hop_limit=ttl, oif=oif)
        else:
            err = icmp.send_echo(daddr, self._ping_ident, seq, payload, start, on_reply,
                                 src=ip_to_int(src) if src is not None else 0, ttl=ttl, df=df)
        if err:
            raise OSError(err, os.strerror(err))
        with trio.move_on_after(timeout):
            await done.wait()
        if not outcome:
            icmp.cancel_echo(self._ping_ident, seq)
            raise OSError(errno.ETIMEDOUT, f"{os.strerror(errno.ETIMEDOUT)}: no echo reply from {show(daddr)}")
        err, reporter, data, when = outcome[0]
        if err:
            frm = f" (reported by {show(reporter)})" if reporter else ""
            raise OSError(err, f"{os.strerror(err)}{frm}")
        if data != payload:
            raise OSError(errno.EIO, "echo reply data differs from the request")
        return when - start

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ipv4": self.ipv4.stats.as_dict(), "icmp": self.icmp.stats.as_dict(),
                               "udp": self.udp.stats.as_dict(), "tcp": self.tcp.stats.as_dict(),
                               "reasm": self.ipv4.reasm.stats.as_dict(), "pmtu": self.ipv4.pmtu.stats.as_dict(),
                               "timers": {"wakeups": self.timers.wakeups, "stalls": self.timers.stalls},
                               "gro": {"runs": self.gro.runs, "merged": self.gro.merged,
                                       "prepended": self.gro.prepended},
                               # what the tcp_mem budget sees now (Linux /proc/net/sockstat "mem")
                               "tcp_mem": {"allocated": self.tcp.mem.allocated, "committed": self.tcp.mem.committed,
                                           "pressure": self.tcp.mem.pressure, "promising": self.tcp.mem.promising},
                               **self.inet6.counters(),
                               "interfaces": {}}
        now = self.now()
        for ifp in self.ifnet:
            # ndd_genstats (and the device's ndd_specstats), then the demuxer's nd_dmxstats
            # (an address such as atm_genstats' atm_macadr as colon-hex text, for JSON)
            entry = {"ndd": {k: v.hex(":") if isinstance(v, bytes) else v for k, v in ifp.ndd.genstats().items()},
                     "demux": ifp.ndd.ndd_nsdemux.nd_dmxstats.as_dict()}
            inet6 = self.inet6.interface_counters(ifp, now)
            if inet6 is not None:
                entry["ipv6"] = inet6
            if ifp.name in self._arp:
                entry["arp"] = self._arp[ifp.name].stats.as_dict()
            if ifp.name in self._clip:
                entry["clip"] = self._clip[ifp.name].stats.as_dict()
            if hasattr(ifp.ndd, "faults"):
                entry["faults"] = ifp.ndd.faults.as_dict()
            out["interfaces"][ifp.name] = entry
        return out
