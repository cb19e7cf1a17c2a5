"""Fuzz target for the DHCPv4 server core (protocols/dhcp): client messages of every type
built from a few clients, addresses and flags (then perhaps mutated), raw bytes, and time
steps past offer holds, declines and leases, into one DhcpServer with a small pool."""
from __future__ import annotations

from protocols.dhcp import wire
from protocols.dhcp.server import BOUND, DECLINED, OFFERED, DhcpConfig, DhcpReply, DhcpServer
from protocols.dhcp.wire import DhcpMessage

from . import check, target
from .harness import TIME_STEPS, Fdp, mutate, pick, run_timers, steps

POOL = 4
CFG = DhcpConfig(pool_size=POOL, lease_time=3600, min_lease_time=120)
SERVER = CFG.server
POOL_ADDRS = tuple(range(CFG.pool_start, CFG.pool_start + POOL))
ADDRS = (0, *POOL_ADDRS, CFG.pool_start + POOL, 0x0A000232, SERVER, 0xC0A80105, 0xFFFFFFFF)
SERVER_IDS = (None, SERVER, SERVER, 0x0A000209, 0)
RELAYS = (0, 0, 0, 0x0A000201, 0xC0A80901)
MACS = tuple(bytes((0x52, 0x54, 0, 0, 0, i)) for i in range(6))
CLIENT_IDS = (None, None, b"\x00one", b"\x00two", b"\x01" + MACS[0], b"x")
TYPES = (wire.DISCOVER, wire.REQUEST, wire.DECLINE, wire.RELEASE, wire.INFORM, wire.OFFER, wire.ACK, 0, 200)
LEASES = (None, None, 0, 60, 600, 7200, 0xFFFFFFFF)
SIZES = (None, 0, 300, 576, 1500, 65535)
# parameter request lists: none, udhcpc's and dhclient's kinds, repeats and the always-sent codes
REQUEST_LISTS = (None, bytes([1, 3, 6, 12, 15, 28, 42]), bytes([1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121]),
                 bytes([53, 54, 51, 6, 6, 15, 255, 0]), bytes(range(1, 80)))
STEPS = (*TIME_STEPS, 59.0, 60.0, 600.0, 3600.0, 86400.0)


def client_message(fdp: Fdp) -> bytes:
    """A BOOTREQUEST from one of a few clients, with the options a client sends."""
    msg = DhcpMessage(op=pick(fdp, (wire.BOOTREQUEST,) * 5 + (wire.BOOTREPLY,)),
                      xid=fdp.ConsumeIntInRange(0, 3), chaddr=pick(fdp, MACS) + bytes(10),
                      hlen=pick(fdp, (6, 6, 6, 0, 16)), htype=pick(fdp, (1, 1, 1, 6)),
                      flags=pick(fdp, (0, wire.FLAG_BROADCAST, 0xFFFF)),
                      ciaddr=pick(fdp, ADDRS), giaddr=pick(fdp, RELAYS),
                      message_type=pick(fdp, TYPES) or None, server_id=pick(fdp, SERVER_IDS),
                      requested_ip=pick(fdp, (None, *ADDRS)), client_id=pick(fdp, CLIENT_IDS),
                      lease_time=pick(fdp, LEASES), max_message_size=pick(fdp, SIZES),
                      param_request=pick(fdp, REQUEST_LISTS))
    if msg.client_id == b"x":
        msg.client_id = None
        msg.other[wire.OPT_CLIENT_ID] = b"x"        # too short: RFC 2132 §9.14
    if fdp.ConsumeBool():
        msg.host_name = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 300)) or b"h"
    data = msg.emit(1500)
    if fdp.ConsumeBool():
        data = overload(fdp, data)
    return mutate(fdp, data, 6) if fdp.ConsumeIntInRange(0, 3) == 0 else data


def overload(fdp: Fdp, data: bytes) -> bytes:
    """Move a few options into file and/or sname behind option 52 (RFC 2132 §9.3)."""
    which = fdp.ConsumeIntInRange(0, 4)
    file_ = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, wire.FILE_LEN))
    sname = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, wire.SNAME_LEN))
    buf = bytearray(data)
    buf[wire.FILE_AT:wire.FILE_AT + wire.FILE_LEN] = file_.ljust(wire.FILE_LEN, b"\0")
    buf[wire.SNAME_AT:wire.SNAME_AT + wire.SNAME_LEN] = sname.ljust(wire.SNAME_LEN, b"\0")
    buf[wire.HDR_LEN:wire.HDR_LEN] = bytes((wire.OPT_OVERLOAD, 1, which))
    return bytes(buf)


def check_reply(reply: DhcpReply, request: bytes) -> None:
    msg = DhcpMessage.parse(reply.payload)
    check(isinstance(msg, DhcpMessage), f"a reply does not parse: {msg!r}")
    assert isinstance(msg, DhcpMessage)
    check(msg.op == wire.BOOTREPLY and msg.message_type == reply.message_type, "reply type")
    check(msg.message_type in (wire.OFFER, wire.ACK, wire.NAK) and msg.server_id == SERVER, "reply options")
    check(len(reply.payload) >= wire.BOOTP_MIN_LEN, "reply under 300 octets")
    req = DhcpMessage.parse(request)
    assert isinstance(req, DhcpMessage)
    room = max(wire.MIN_DATAGRAM, req.max_message_size or 0) - 28
    check(len(reply.payload) <= max(room, wire.BOOTP_MIN_LEN), f"reply of {len(reply.payload)} > {room}")
    check(msg.xid == req.xid and msg.chaddr == req.chaddr.ljust(16, b"\0"), "reply xid/chaddr")
    if msg.message_type == wire.NAK:
        check(msg.yiaddr == 0 and msg.lease_time is None, "a NAK carries no address")
    elif msg.yiaddr:
        check(msg.yiaddr in POOL_ADDRS, f"yiaddr {msg.yiaddr:#x} outside the pool")
        check(msg.lease_time is not None and CFG.min_lease_time <= msg.lease_time <= CFG.lease_time, "lease time")


def check_table(srv: DhcpServer) -> None:
    leases = srv.leases()
    check(len(leases) <= POOL and len(srv._by_key) <= POOL, "lease table over the pool")
    check(len(srv._heap) <= 2 * POOL + 65, f"timer heap of {len(srv._heap)}")
    held = {info.addr for info in leases if info.state in (OFFERED, BOUND, DECLINED)}
    check(held.isdisjoint(srv._free) and len(held) + srv.free_count == POOL, "pool accounting")
    for key, rec in srv._by_key.items():
        check(rec.key == key and srv._leases.get(rec.addr) is rec, "client index out of step")
    at = srv.poll_at()
    check(at is None or any(info.expires == at for info in leases), "a deadline for no record")


@target("dhcp_server")
def dhcp_server(data: bytes) -> None:
    """DHCP client messages (every type, a few clients, relays, overload, mutations) and raw
    bytes into a DhcpServer with a pool of 4, with time steps; no exception, every reply
    parses and fits the client, the table stays within the pool and its accounts agree."""
    fdp = Fdp(data)
    srv = DhcpServer(CFG)
    now = 1000.0
    for _ in steps(fdp, 64):
        op = fdp.ConsumeIntInRange(0, 5)
        if op <= 3:
            message = client_message(fdp)
            reply = srv.input(message, pick(fdp, ADDRS), now)
            if reply is not None:
                check_reply(reply, message)
        elif op == 4:
            srv.input(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 600)), 0, now)
        else:
            now += pick(fdp, STEPS)
            run_timers([srv], now)
        check_table(srv)
