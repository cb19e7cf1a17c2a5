"""A DHCPv4 server core (RFC 2131 §4.3) for one subnet: the gateway's TAP (issue 13).

Sans-IO.  The owner hands it every UDP payload that reached port 67 on the TAP:

    reply = server.input(payload, src_ip, now)      # DhcpReply or None

and sends `reply.payload` from `reply.src_ip`:67 to `reply.dst_ip`:`reply.dst_port`, in an
Ethernet frame to `reply.dst_mac` -- or, when that is None, to whatever MAC the stack finds
for dst_ip (ARP), as for any unicast.  The server is a TimedCore (protocols/contracts.py):
register it with the timer service; `poll(now)` ends held offers, leases and declines.

The address model is slirp4netns's (`DhcpConfig.for_cidr`): subnet 10.0.2.0/24, the
gateway 10.0.2.2 is router and server identifier, DNS 10.0.2.3, and a pool of 16 addresses
from 10.0.2.100 (slirp's NB_BOOTP_CLIENTS; the first guest gets slirp4netns's 10.0.2.100).
Leases last 86400 s by default (slirp's LEASE_TIME: a day), or less when the client asks
for less (never under `min_lease_time`); T1 and T2 are 1/2 and 7/8 of it (§4.4.5).

What the server answers (§4.3):
  DISCOVER  an OFFER, held for `offer_hold` seconds, of: the client's current (or last,
            still free) address; else the address it asks for (option 50) when free; else
            the free address freed longest ago (never used ones first, lowest first).
            No address free: no answer, counted in `pool_exhausted`.
  REQUEST   selecting (server id present): ours -> ACK, or NAK when the address went to
            another client; another server's -> our offer is withdrawn, no answer.
            init-reboot (requested address, no server id), renewing and rebinding (ciaddr):
            the address is the client's, or free in our pool -> ACK; else NAK.
  DECLINE   the address is someone else's on the link: kept out of the pool for
            `decline_hold` seconds (600 s, as dnsmasq's DECLINE_BACKOFF).
  RELEASE   the address goes back to the pool (remembered for its client, §4.3.1's
            "previous address" preference, until another client needs it).
  INFORM    an ACK with the configuration and no lease (§4.3.5).

The server is authoritative for its subnet (ISC's `authoritative`, dnsmasq's
dhcp-authoritative): it is the only one on the gateway's link, so a guest that asks for an
address it does not know (after a gateway restart, say) gets it when it is free in the pool
rather than the silence §4.3.2 prescribes for a non-authoritative server, and a NAK for any
other address, so it starts over at once instead of after its timeouts.

Replies go where §4.1 says: to a relay (giaddr) on port 67; a NAK broadcast; to ciaddr when
the client has one; broadcast when the client sets the B flag or its hardware address is not
Ethernet; else to yiaddr at the client's MAC (it has no address to answer ARP with).
The client identifier (option 61) names a client, else its hardware type and address
(§4.2); client identifiers are echoed in replies (RFC 6842).

Bounds: one lease record per pool address (offered, bound, declined, or free and remembered
for its last client), so the table, the client index and the timer heap all stay within
the pool size; a message's work is O(its length) to parse and O(log pool) after.
"""
from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ndd.counters import Counters

from ..addr import BROADCAST, MAC_BROADCAST, parse_prefix, prefix_mask
from .wire import (
    ACK,
    BOOTREQUEST,
    CLIENT_PORT,
    DECLINE,
    DISCOVER,
    FLAG_BROADCAST,
    HTYPE_ETHER,
    INFORM,
    MIN_DATAGRAM,
    NAK,
    OFFER,
    RELEASE,
    REQUEST,
    SERVER_PORT,
    Buf,
    DhcpMessage,
)

OFFERED, BOUND, DECLINED, FREE = "OFFERED", "BOUND", "DECLINED", "FREE"
IP_UDP_HEADERS = 20 + 8
MAX_DNS_SERVERS = 8             # keeps every reply far inside 576 octets
MAX_LEASE_TIME = 0xFFFFFFFE     # 0xFFFFFFFF means infinity (RFC 2131 §3.3): never granted

Destination = tuple[int, int, bytes | None]     # IP address, UDP port, MAC (None: resolve the IP)


@dataclass
class DhcpConfig:
    network: int = 0x0A000200           # 10.0.2.0
    prefix_len: int = 24
    server: int = 0x0A000202            # the gateway: server identifier (option 54)
    router: int | None = None           # None: the server address
    dns: tuple[int, ...] = (0x0A000203,)
    domain: str = ""                    # option 15 when set
    mtu: int | None = None              # option 26 when set
    lease_time: int = 86400             # seconds (slirp's LEASE_TIME)
    min_lease_time: int = 120           # the least granted to a client asking for less
    pool_start: int = 0x0A000264        # 10.0.2.100
    pool_size: int = 16                 # slirp's NB_BOOTP_CLIENTS
    offer_hold: float = 60.0            # an OFFER reserves its address this long (§4.3.1)
    decline_hold: float = 600.0         # a DECLINEd address stays out of the pool this long

    @classmethod
    def for_cidr(cls, cidr: str = "10.0.2.0/24", **overrides: object) -> DhcpConfig:
        """slirp4netns's model for `--cidr`: gateway .2, DNS .3, guests from .100."""
        network, plen = parse_prefix(cidr)
        network &= prefix_mask(plen)
        values: dict[str, object] = {"network": network, "prefix_len": plen, "server": network + 2,
                                     "dns": (network + 3,), "pool_start": network + 100}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def netmask(self) -> int:
        return prefix_mask(self.prefix_len)

    @property
    def gateway(self) -> int:
        return self.server if self.router is None else self.router

    def on_subnet(self, addr: int) -> bool:
        return addr & self.netmask == self.network

    def in_pool(self, addr: int) -> bool:
        return self.pool_start <= addr < self.pool_start + self.pool_size

    def __post_init__(self) -> None:
        if not 0 < self.prefix_len <= 30:
            raise ValueError(f"DHCP subnet prefix length {self.prefix_len}: 1..30")
        if self.network & ~self.netmask & 0xFFFFFFFF:
            raise ValueError("DHCP subnet address has host bits set")
        host_min, host_max = self.network + 1, self.network + (~self.netmask & 0xFFFFFFFF) - 1
        pool_end = self.pool_start + self.pool_size - 1
        if self.pool_size < 1 or self.pool_start < host_min or pool_end > host_max:
            raise ValueError("DHCP pool must be a non-empty range of host addresses of the subnet")
        for what, addr in (("server", self.server), ("router", self.gateway)):
            if not host_min <= addr <= host_max:
                raise ValueError(f"DHCP {what} address is not a host of the subnet")
        if any(self.in_pool(a) for a in (self.server, self.gateway, *self.dns)):
            raise ValueError("DHCP pool overlaps the server, router or DNS address")
        if len(self.dns) > MAX_DNS_SERVERS:
            raise ValueError(f"at most {MAX_DNS_SERVERS} DNS servers")
        if len(self.domain.encode("ascii")) > 255:
            raise ValueError("DHCP domain name over 255 octets")
        if self.mtu is not None and not 68 <= self.mtu <= 65535:
            raise ValueError("DHCP interface MTU: 68..65535 (RFC 2132 §5.1)")
        if not 1 <= self.min_lease_time <= self.lease_time <= MAX_LEASE_TIME:
            raise ValueError("DHCP lease times: 1 <= min_lease_time <= lease_time < 2**32-1")
        if self.offer_hold <= 0 or self.decline_hold <= 0:
            raise ValueError("DHCP offer and decline holds must be positive")


@dataclass
class DhcpStats(Counters):
    in_messages: int = 0
    in_discover: int = 0
    in_request: int = 0
    in_decline: int = 0
    in_release: int = 0
    in_inform: int = 0
    # dropped on input: the codec's faults (wire.DhcpMessage.parse), then the server's
    in_truncated: int = 0           # shorter than the fixed fields and cookie
    in_bad_op: int = 0              # op neither BOOTREQUEST nor BOOTREPLY
    in_bad_cookie: int = 0          # no DHCP magic cookie (plain BOOTP is not served)
    in_bad_hlen: int = 0            # hlen over 16
    in_bad_option: int = 0          # an option past its field, or of a wrong length
    in_bad_overload: int = 0        # option 52 not 1, 2 or 3
    in_not_request: int = 0         # a BOOTREPLY (another server's, or a loop)
    in_no_message_type: int = 0     # no option 53: BOOTP with the cookie
    in_unexpected_type: int = 0     # OFFER/ACK/NAK or an unknown type sent to the server
    in_no_client_id: int = 0        # neither option 61 nor a hardware address
    in_foreign_relay: int = 0       # giaddr outside our subnet: not ours to serve
    in_other_server: int = 0        # a DECLINE/RELEASE for another server's id
    request_invalid: int = 0        # a REQUEST with neither server id, requested address nor ciaddr
    request_other_server: int = 0   # SELECTING another server: our offer withdrawn
    pool_exhausted: int = 0         # a DISCOVER left unanswered: no address free
    nak_wrong_network: int = 0      # NAK: the address is not on our subnet
    nak_not_available: int = 0      # NAK: outside the pool, another client's, or declined
    decline_not_owner: int = 0      # a DECLINE for an address not the client's: ignored
    release_unknown: int = 0        # a RELEASE for an address not the client's: ignored
    out_offer: int = 0
    out_ack: int = 0
    out_nak: int = 0
    out_options_left_out: int = 0   # options that did not fit the client's message size
    leases_granted: int = 0         # a new binding (ACK of an address the client did not hold)
    leases_renewed: int = 0         # ACK extending a binding the client held
    leases_released: int = 0
    leases_expired: int = 0
    offers_expired: int = 0
    addresses_declined: int = 0
    declines_expired: int = 0       # a declined address back in the pool


@dataclass(frozen=True, slots=True)
class DhcpReply:
    """One message to send: UDP src_ip:67 -> dst_ip:dst_port, to Ethernet dst_mac (None:
    resolve dst_ip as usual)."""
    payload: bytes
    message_type: int               # wire.OFFER, ACK or NAK
    src_ip: int
    dst_ip: int
    dst_port: int
    dst_mac: bytes | None
    src_port: int = SERVER_PORT


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    addr: int
    state: str                      # OFFERED, BOUND, DECLINED, FREE (remembered for its last client)
    hwaddr: bytes
    host_name: bytes | None
    expires: float | None


@dataclass(eq=False, slots=True)
class _Lease:
    addr: int
    state: str
    key: bytes | None = None        # the client's (None once declined)
    hwaddr: bytes = b""
    host_name: bytes | None = None
    lease_time: int = 0             # granted, seconds
    expires: float | None = None    # OFFERED/BOUND/DECLINED: when that ends
    heap_at: float | None = None


@dataclass(eq=False)
class DhcpServer:
    config: DhcpConfig = field(default_factory=DhcpConfig)

    def __post_init__(self) -> None:
        self.stats = DhcpStats()
        cfg = self.config
        self._leases: dict[int, _Lease] = {}
        self._by_key: dict[bytes, _Lease] = {}
        # the addresses free to offer, the next one first: never used ones in address order,
        # then each freed one at the end (least recently used first, so a client coming
        # back finds its old address still free as long as possible)
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(
            range(cfg.pool_start, cfg.pool_start + cfg.pool_size))
        self._heap: list[tuple[float, int, _Lease]] = []
        self._seq = 0
        self.kick: Callable[..., None] = lambda *at: None

    # --- the owner's entry points -----------------------------------------------------------
    def input(self, data: Buf, src_ip: int, now: float) -> DhcpReply | None:
        """A UDP payload received on port 67 from src_ip; the reply to send, if any."""
        self.stats.in_messages += 1
        self.poll(now)              # decide on the table as of now, whatever the timer lag
        msg = DhcpMessage.parse(data)
        if isinstance(msg, str):
            self.stats.bump(msg)
            return None
        drop = self._admissible(msg)
        if drop:
            self.stats.bump(drop)
            return None
        key = client_key(msg)
        if key is None:
            self.stats.in_no_client_id += 1
            return None
        mtype = msg.message_type
        if mtype == DISCOVER:
            self.stats.in_discover += 1
            return self._discover(msg, key, now)
        if mtype == REQUEST:
            self.stats.in_request += 1
            return self._request(msg, key, now)
        if mtype == DECLINE:
            self.stats.in_decline += 1
            self._decline(msg, key, now)
            return None
        if mtype == RELEASE:
            self.stats.in_release += 1
            self._release(msg, key)
            return None
        self.stats.in_inform += 1
        return self._inform(msg, src_ip)

    def leases(self) -> list[LeaseInfo]:
        """The table, in address order (for --stats and the SIGUSR1 dump)."""
        return [LeaseInfo(r.addr, r.state, r.hwaddr, r.host_name, r.expires)
                for _, r in sorted(self._leases.items())]

    def lease_of(self, addr: int) -> LeaseInfo | None:
        r = self._leases.get(addr)
        return None if r is None else LeaseInfo(r.addr, r.state, r.hwaddr, r.host_name, r.expires)

    @property
    def free_count(self) -> int:
        return len(self._free)

    # --- the messages -------------------------------------------------------------------------
    def _admissible(self, msg: DhcpMessage) -> str:
        """The counter that drops a well-formed message before the server looks at it, or ''."""
        if msg.op != BOOTREQUEST:
            return "in_not_request"
        if msg.message_type is None:
            return "in_no_message_type"
        if msg.message_type not in (DISCOVER, REQUEST, DECLINE, RELEASE, INFORM):
            return "in_unexpected_type"
        if msg.giaddr and not self.config.on_subnet(msg.giaddr):
            return "in_foreign_relay"
        return ""

    def _discover(self, msg: DhcpMessage, key: bytes, now: float) -> DhcpReply | None:
        """§4.3.1: choose an address and offer it."""
        addr = self._address_for(msg, key)
        if addr is None:
            self.stats.pool_exhausted += 1
            return None
        rec = self._leases.get(addr)
        if rec is not None and rec.key == key and rec.state == BOUND:
            # a bound client that lost its state: offer its binding and leave it bound
            lease_time = rec.lease_time
        else:
            lease_time = self._lease_time(msg)
            rec = self._claim(addr, key, OFFERED, now + self.config.offer_hold, lease_time)
        rec.hwaddr, rec.host_name = msg.hwaddr, msg.host_name or rec.host_name
        return self._reply(msg, OFFER, yiaddr=addr, lease_time=lease_time)

    def _address_for(self, msg: DhcpMessage, key: bytes) -> int | None:
        rec = self._by_key.get(key)
        if rec is not None and (rec.state in (OFFERED, BOUND) or rec.addr in self._free):
            return rec.addr
        wanted = msg.requested_ip
        if wanted is not None and wanted in self._free:
            return wanted
        return next(iter(self._free), None)

    def _request(self, msg: DhcpMessage, key: bytes, now: float) -> DhcpReply | None:
        """§4.3.2, by the client's state: SELECTING names a server; INIT-REBOOT asks for an
        address with ciaddr 0; RENEWING (unicast) and REBINDING (broadcast) fill ciaddr."""
        if msg.server_id is not None:
            if msg.server_id != self.config.server:
                self.stats.request_other_server += 1
                self._withdraw_offer(key)
                return None
            addr = msg.requested_ip if msg.requested_ip is not None else msg.ciaddr
        elif msg.requested_ip is not None and not msg.ciaddr:
            addr = msg.requested_ip
        else:
            addr = msg.ciaddr
        if not addr:
            self.stats.request_invalid += 1
            return None
        if not self.config.on_subnet(addr):
            self.stats.nak_wrong_network += 1
            return self._nak(msg, b"address not on this network")
        if not self._grantable(addr, key):
            self.stats.nak_not_available += 1
            return self._nak(msg, b"address not available")
        rec = self._leases.get(addr)
        renewed = rec is not None and rec.key == key and rec.state == BOUND
        lease_time = self._lease_time(msg)
        rec = self._claim(addr, key, BOUND, now + lease_time, lease_time)
        rec.hwaddr, rec.host_name = msg.hwaddr, msg.host_name or rec.host_name
        if renewed:
            self.stats.leases_renewed += 1
        else:
            self.stats.leases_granted += 1
        return self._reply(msg, ACK, yiaddr=addr, ciaddr=msg.ciaddr, lease_time=lease_time)

    def _grantable(self, addr: int, key: bytes) -> bool:
        """The address is in the pool and free, or already this client's."""
        if not self.config.in_pool(addr):
            return False
        if addr in self._free:
            return True
        rec = self._leases.get(addr)
        return rec is not None and rec.key == key and rec.state in (OFFERED, BOUND)

    def _decline(self, msg: DhcpMessage, key: bytes, now: float) -> None:
        """§4.3.3: the client found the address in use (ARP): keep it out of the pool."""
        if msg.server_id is not None and msg.server_id != self.config.server:
            self.stats.in_other_server += 1
            return
        addr = msg.requested_ip
        rec = self._leases.get(addr) if addr is not None else None
        if rec is None or rec.key != key or rec.state not in (OFFERED, BOUND):
            self.stats.decline_not_owner += 1
            return
        self._by_key.pop(key, None)
        rec.key, rec.state, rec.host_name = None, DECLINED, None
        rec.expires = now + self.config.decline_hold
        self.stats.addresses_declined += 1
        self._arm(rec)

    def _release(self, msg: DhcpMessage, key: bytes) -> None:
        """§4.3.4: the client gives the address (ciaddr) back."""
        if msg.server_id is not None and msg.server_id != self.config.server:
            self.stats.in_other_server += 1
            return
        rec = self._leases.get(msg.ciaddr)
        if rec is None or rec.key != key or rec.state not in (OFFERED, BOUND):
            self.stats.release_unknown += 1
            return
        self.stats.leases_released += 1
        self._to_free(rec)

    def _inform(self, msg: DhcpMessage, src_ip: int) -> DhcpReply:
        """§4.3.5: the configuration without a lease, straight to the client's address
        (ciaddr; the packet's source when a client leaves ciaddr empty)."""
        return self._reply(msg, ACK, ciaddr=msg.ciaddr, inform_to=msg.ciaddr or src_ip)

    # --- the table ------------------------------------------------------------------------------
    def _claim(self, addr: int, key: bytes, state: str, expires: float,
               lease_time: int) -> _Lease:
        """Make `addr` the client's, in `state` until `expires`.  Another address the
        client held or was offered goes back to the pool (one record per client)."""
        old = self._by_key.get(key)
        if old is not None and old.addr != addr:
            self._forget(old)
        rec = self._leases.get(addr)
        if rec is None:
            rec = self._leases[addr] = _Lease(addr, state)
        elif rec.key is not None and rec.key != key:
            del self._by_key[rec.key]       # a free address remembered for its last client
            rec.host_name = None
        self._free.pop(addr, None)
        rec.key, rec.state, rec.expires, rec.lease_time = key, state, expires, lease_time
        self._by_key[key] = rec
        self._arm(rec)
        return rec

    def _withdraw_offer(self, key: bytes) -> None:
        rec = self._by_key.get(key)
        if rec is not None and rec.state == OFFERED:
            self._to_free(rec)

    def _to_free(self, rec: _Lease) -> None:
        """Back to the pool, at its end, still remembered for its client."""
        rec.state, rec.expires, rec.heap_at = FREE, None, None
        self._free[rec.addr] = None
        self._free.move_to_end(rec.addr)

    def _forget(self, rec: _Lease) -> None:
        """Drop the record; the address goes back to the pool."""
        if rec.key is not None and self._by_key.get(rec.key) is rec:
            del self._by_key[rec.key]
        del self._leases[rec.addr]
        rec.heap_at = None
        self._free[rec.addr] = None
        self._free.move_to_end(rec.addr)

    def _lease_time(self, msg: DhcpMessage) -> int:
        """The configured lease, or the shorter one the client asks for (option 51), not
        under min_lease_time."""
        cfg = self.config
        if msg.lease_time is None:
            return cfg.lease_time
        return max(cfg.min_lease_time, min(cfg.lease_time, msg.lease_time))

    # --- replies -----------------------------------------------------------------------------
    def _reply(self, msg: DhcpMessage, mtype: int, *, yiaddr: int = 0, ciaddr: int = 0,
               lease_time: int | None = None, inform_to: int | None = None) -> DhcpReply:
        """An OFFER or ACK (RFC 2131 §4.3.1 Table 3) with the configuration."""
        cfg = self.config
        out = DhcpMessage(op=2, xid=msg.xid, chaddr=msg.chaddr, htype=msg.htype, hlen=msg.hlen,
                          flags=msg.flags, ciaddr=ciaddr, yiaddr=yiaddr, giaddr=msg.giaddr,
                          message_type=mtype, server_id=cfg.server, client_id=msg.client_id,
                          subnet_mask=cfg.netmask, routers=(cfg.gateway,), dns_servers=cfg.dns,
                          domain_name=cfg.domain.encode("ascii") or None, interface_mtu=cfg.mtu)
        if lease_time is not None:
            out.lease_time = lease_time
            out.renewal_time = lease_time // 2             # §4.4.5: 0.5 and 0.875 of the lease
            out.rebinding_time = lease_time * 7 // 8
        dst: Destination
        if inform_to is not None:
            if msg.giaddr:
                dst = (msg.giaddr, SERVER_PORT, None)
            elif inform_to:
                dst = (inform_to, CLIENT_PORT, None)
            else:
                dst = (BROADCAST, CLIENT_PORT, MAC_BROADCAST)
        else:
            dst = self._destination(msg, yiaddr)
        return self._send(msg, out, mtype, dst)

    def _nak(self, msg: DhcpMessage, why: bytes) -> DhcpReply:
        """§4.3.2: a NAK carries no address and no configuration; broadcast, or through the
        relay with the B flag set so the relay broadcasts it."""
        out = DhcpMessage(op=2, xid=msg.xid, chaddr=msg.chaddr, htype=msg.htype, hlen=msg.hlen,
                          flags=msg.flags | (FLAG_BROADCAST if msg.giaddr else 0), giaddr=msg.giaddr,
                          message_type=NAK, server_id=self.config.server, client_id=msg.client_id,
                          message=why)
        if msg.giaddr:
            dst: Destination = (msg.giaddr, SERVER_PORT, None)
        else:
            dst = (BROADCAST, CLIENT_PORT, MAC_BROADCAST)
        return self._send(msg, out, NAK, dst)

    def _destination(self, msg: DhcpMessage, yiaddr: int) -> Destination:
        """§4.1: relay, then ciaddr, then broadcast when asked for (or when the client's
        hardware address is not one we can send a frame to), else yiaddr at chaddr."""
        if msg.giaddr:
            return msg.giaddr, SERVER_PORT, None
        if msg.ciaddr:
            return msg.ciaddr, CLIENT_PORT, None
        if msg.broadcast or msg.htype != HTYPE_ETHER or msg.hlen != 6:
            return BROADCAST, CLIENT_PORT, MAC_BROADCAST
        return yiaddr, CLIENT_PORT, msg.hwaddr

    def _send(self, msg: DhcpMessage, out: DhcpMessage, mtype: int,
              dst: Destination) -> DhcpReply:
        # the client takes max(576, its option 57) octets of IP datagram (RFC 2131 §2, RFC 2132 §9.10)
        room = max(MIN_DATAGRAM, msg.max_message_size or 0) - IP_UDP_HEADERS
        payload, left_out = out.emit_within(room, msg.param_request or b"")
        self.stats.out_options_left_out += left_out
        self.stats.bump({OFFER: "out_offer", ACK: "out_ack", NAK: "out_nak"}[mtype])
        return DhcpReply(payload, mtype, self.config.server, dst[0], dst[1], dst[2])

    # --- timers (TimedCore) --------------------------------------------------------------------
    def poll_at(self) -> float | None:
        while self._heap:
            at, _, rec = self._heap[0]
            if rec.heap_at == at and self._leases.get(rec.addr) is rec:
                return at
            heapq.heappop(self._heap)        # superseded, or the record is gone
        return None

    def poll(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            at, _, rec = heapq.heappop(self._heap)
            if rec.heap_at != at or self._leases.get(rec.addr) is not rec:
                continue
            rec.heap_at = None
            self._expire(rec)

    def _expire(self, rec: _Lease) -> None:
        if rec.state == OFFERED:
            self.stats.offers_expired += 1
            self._to_free(rec)
        elif rec.state == BOUND:
            self.stats.leases_expired += 1
            self._to_free(rec)
        elif rec.state == DECLINED:
            self.stats.declines_expired += 1
            self._forget(rec)

    def _arm(self, rec: _Lease) -> None:
        """Put the record's deadline in the heap (an older item for it goes stale).  Every
        deadline is a hold or a lease after `now`, so never due at once."""
        at = rec.expires
        if at is None or rec.heap_at == at:
            rec.heap_at = at
            return
        rec.heap_at = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, rec))
        if len(self._heap) > 2 * len(self._leases) + 64:
            self._rebuild_heap()
        self.kick(at)

    def _rebuild_heap(self) -> None:
        """Drop the stale items: the heap stays within twice the table (+64)."""
        self._heap = []
        for rec in self._leases.values():
            if rec.heap_at is not None:
                self._seq += 1
                self._heap.append((rec.heap_at, self._seq, rec))
        heapq.heapify(self._heap)


def client_key(msg: DhcpMessage) -> bytes | None:
    """Who the client is (§4.2): its client identifier (option 61), else its hardware type
    and address; None when it gives neither.  The first octet keeps the two name spaces
    apart."""
    if msg.client_id is not None:
        return b"i" + msg.client_id
    if msg.hlen == 0:
        return None
    return b"h" + bytes((msg.htype,)) + msg.hwaddr
