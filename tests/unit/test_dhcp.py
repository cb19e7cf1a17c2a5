"""The DHCPv4 server core (protocols/dhcp): the codec against scapy's BOOTP/DHCP, and the
server RFC 2131 case by case on an explicit clock."""
from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.dhcp import BOOTP, DHCP

from protocols.addr import BROADCAST, MAC_BROADCAST, int_to_ip, ip_to_int
from protocols.dhcp import wire
from protocols.dhcp.server import BOUND, DECLINED, FREE, OFFERED, DhcpConfig, DhcpReply, DhcpServer
from protocols.dhcp.wire import DhcpMessage

MAC_A = b"\x52\x54\x00\x12\x34\x56"
MAC_B = b"\x52\x54\x00\xab\xcd\xef"
SERVER, DNS = ip_to_int("10.0.2.2"), ip_to_int("10.0.2.3")
FIRST, SECOND = ip_to_int("10.0.2.100"), ip_to_int("10.0.2.101")
T0 = 1000.0


# --- helpers ------------------------------------------------------------------------------------
def request(mtype: int, mac: bytes = MAC_A, xid: int = 0x1234, **kw: object) -> bytes:
    msg = DhcpMessage(op=wire.BOOTREQUEST, xid=xid, chaddr=mac + bytes(10), message_type=mtype)
    for name, value in kw.items():
        setattr(msg, name, value)
    return msg.emit()


def scapy_options(data: bytes) -> dict[str, object]:
    """scapy's reading of the options: name -> value (a tuple when it lists several)."""
    return {o[0]: (o[1] if len(o) == 2 else o[1:]) for o in BOOTP(data)[DHCP].options if isinstance(o, tuple)}


def parsed(reply: DhcpReply | None) -> DhcpMessage:
    assert reply is not None
    msg = DhcpMessage.parse(reply.payload)
    assert isinstance(msg, DhcpMessage), msg
    return msg


def bind(srv: DhcpServer, mac: bytes = MAC_A, now: float = T0, **kw: Any) -> int:
    """DISCOVER, OFFER, REQUEST, ACK: the address bound."""
    offer = parsed(srv.input(request(wire.DISCOVER, mac, **kw), 0, now))
    assert offer.message_type == wire.OFFER
    ack = parsed(srv.input(request(wire.REQUEST, mac, server_id=SERVER, requested_ip=offer.yiaddr, **kw), 0, now))
    assert ack.message_type == wire.ACK and ack.yiaddr == offer.yiaddr
    return ack.yiaddr


# --- the codec ------------------------------------------------------------------------------------
def test_parse_reads_a_scapy_discover() -> None:
    pkt = (BOOTP(chaddr=MAC_A, xid=0xDEADBEEF, flags=0x8000, secs=3)
           / DHCP(options=[("message-type", "discover"), ("client_id", b"\x01" + MAC_A),
                           ("requested_addr", "10.0.2.100"), ("param_req_list", [1, 3, 6, 15, 26]),
                           ("hostname", "vm1"), ("max_dhcp_size", 1500), ("lease_time", 3600), "end"]))
    msg = DhcpMessage.parse(bytes(pkt))
    assert isinstance(msg, DhcpMessage)
    assert (msg.op, msg.xid, msg.secs, msg.broadcast, msg.hwaddr) == (1, 0xDEADBEEF, 3, True, MAC_A)
    assert msg.message_type == wire.DISCOVER
    assert msg.client_id == b"\x01" + MAC_A
    assert msg.requested_ip == FIRST
    assert msg.param_request == bytes([1, 3, 6, 15, 26])
    assert (msg.host_name, msg.max_message_size, msg.lease_time) == (b"vm1", 1500, 3600)


def test_emit_is_read_by_scapy_with_every_option() -> None:
    msg = DhcpMessage(op=wire.BOOTREPLY, xid=77, chaddr=MAC_A + bytes(10), yiaddr=FIRST, giaddr=0,
                      message_type=wire.ACK, server_id=SERVER, lease_time=86400, renewal_time=43200,
                      rebinding_time=75600, subnet_mask=0xFFFFFF00, routers=(SERVER,),
                      dns_servers=(DNS, ip_to_int("1.1.1.1")), domain_name=b"example.test",
                      interface_mtu=1500, client_id=b"\x01" + MAC_A, message=b"hello")
    data = msg.emit()
    assert len(data) >= wire.BOOTP_MIN_LEN
    pkt = BOOTP(data)
    assert pkt.op == 2 and pkt.xid == 77 and pkt.yiaddr == "10.0.2.100" and pkt.chaddr[:6] == MAC_A
    opts = scapy_options(data)
    assert opts["message-type"] == 5
    assert opts["server_id"] == "10.0.2.2"
    assert (opts["lease_time"], opts["renewal_time"], opts["rebinding_time"]) == (86400, 43200, 75600)
    assert opts["subnet_mask"] == "255.255.255.0"
    assert opts["router"] == "10.0.2.2"
    assert opts["name_server"] == ("10.0.2.3", "1.1.1.1")
    assert opts["domain"] == b"example.test"
    assert opts["interface-mtu"] == 1500
    assert opts["client_id"] == b"\x01" + MAC_A
    assert opts["error_message"] == b"hello"
    assert "end" in pkt[DHCP].options


def test_round_trip_keeps_every_field_and_unknown_options() -> None:
    msg = DhcpMessage(op=wire.BOOTREQUEST, xid=0xFFFFFFFF, chaddr=MAC_B + bytes(10), hops=2, secs=9,
                      flags=wire.FLAG_BROADCAST, ciaddr=FIRST, yiaddr=1, siaddr=2, giaddr=3,
                      sname=b"srv", file=b"boot.img", message_type=wire.REQUEST, requested_ip=SECOND,
                      host_name=b"h" * 300, param_request=b"\x01\x03", max_message_size=1400,
                      client_id=b"\xff" + bytes(20), other={60: b"vendor", 250: b""})
    again = DhcpMessage.parse(msg.emit(1500))
    assert again == msg


def test_a_long_option_is_split_and_joined_rfc3396() -> None:
    msg = DhcpMessage(message_type=wire.DISCOVER, domain_name=b"d" * 300)
    data = msg.emit(1500)
    pieces = [o for o in BOOTP(data)[DHCP].options if isinstance(o, tuple) and o[0] == "domain"]
    assert [len(p[1]) for p in pieces] == [255, 45]
    again = DhcpMessage.parse(data)
    assert isinstance(again, DhcpMessage) and again.domain_name == b"d" * 300


def test_option_overload_reads_file_then_sname() -> None:
    """RFC 2132 §9.3: with option 52 = 3, options continue in `file`, then in `sname`."""
    file_opts = bytes([wire.OPT_REQUESTED_IP, 4]) + FIRST.to_bytes(4, "big") + bytes([12, 2]) + b"ab" + b"\xff"
    sname_opts = bytes([12, 2]) + b"cd" + bytes([wire.OPT_LEASE_TIME, 4]) + (600).to_bytes(4, "big") + b"\xff"
    pkt = BOOTP(chaddr=MAC_A, xid=5, file=file_opts, sname=sname_opts) / DHCP(
        options=[("message-type", "request"), ("dhcp-option-overload", 3), "end"])
    msg = DhcpMessage.parse(bytes(pkt))
    assert isinstance(msg, DhcpMessage)
    assert msg.overload == 3 and msg.requested_ip == FIRST and msg.lease_time == 600
    assert msg.host_name == b"abcd"             # split across file and sname, joined in that order
    assert msg.file == b"" and msg.sname == b""


def test_option_overload_of_file_only_leaves_sname_a_name() -> None:
    file_opts = bytes([wire.OPT_SERVER_ID, 4]) + SERVER.to_bytes(4, "big") + b"\xff"
    pkt = BOOTP(chaddr=MAC_A, file=file_opts, sname=b"not options") / DHCP(
        options=[("message-type", "request"), ("dhcp-option-overload", 1), "end"])
    msg = DhcpMessage.parse(bytes(pkt))
    assert isinstance(msg, DhcpMessage)
    assert msg.server_id == SERVER and msg.sname == b"not options" and msg.file == b""


@pytest.mark.parametrize("data, counter", [
    (b"", "in_truncated"),
    (bytes(239), "in_truncated"),
    (b"\x03" + bytes(235) + wire.MAGIC_COOKIE, "in_bad_op"),
    (b"\x01\x01\x06" + bytes(233) + b"\x00\x00\x00\x00", "in_bad_cookie"),
    (b"\x01\x01\x11" + bytes(233) + wire.MAGIC_COOKIE, "in_bad_hlen"),
    # an option running past the end of the field
    (b"\x01\x01\x06" + bytes(233) + wire.MAGIC_COOKIE + b"\x35\x05\x01", "in_bad_option"),
    (b"\x01\x01\x06" + bytes(233) + wire.MAGIC_COOKIE + b"\x35", "in_bad_option"),
    # wrong lengths for interpreted options: type 2 octets, server id 3, routers 6, MTU under 68
    (b"\x01\x01\x06" + bytes(233) + wire.MAGIC_COOKIE + b"\x35\x02\x01\x01\xff", "in_bad_option"),
    (b"\x01\x01\x06" + bytes(233) + wire.MAGIC_COOKIE + b"\x36\x03\x0a\x00\x02\xff", "in_bad_option"),
    (b"\x01\x01\x06" + bytes(233) + wire.MAGIC_COOKIE + b"\x03\x06" + bytes(6) + b"\xff", "in_bad_option"),
    (b"\x01\x01\x06" + bytes(233) + wire.MAGIC_COOKIE + b"\x1a\x02\x00\x43\xff", "in_bad_option"),
    (b"\x01\x01\x06" + bytes(233) + wire.MAGIC_COOKIE + b"\x3d\x01\x01\xff", "in_bad_option"),
    (b"\x01\x01\x06" + bytes(233) + wire.MAGIC_COOKIE + b"\x34\x01\x04\xff", "in_bad_overload"),
    (b"\x01\x01\x06" + bytes(233) + wire.MAGIC_COOKIE + b"\x34\x02\x01\x01\xff", "in_bad_overload"),
])
def test_malformed_messages_name_their_counter(data: bytes, counter: str) -> None:
    assert DhcpMessage.parse(data) == counter


def test_overloaded_file_with_a_bad_option_is_malformed() -> None:
    pkt = BOOTP(chaddr=MAC_A, file=bytes(124) + b"\x0c\x09ab") / DHCP(
        options=[("message-type", "request"), ("dhcp-option-overload", 1), "end"])
    assert DhcpMessage.parse(bytes(pkt)) == "in_bad_option"


def test_options_without_an_end_and_pads_are_accepted() -> None:
    data = b"\x01\x01\x06" + bytes(233) + wire.MAGIC_COOKIE + b"\x00\x00\x35\x01\x01\x00\x0c\x01x"
    msg = DhcpMessage.parse(data)
    assert isinstance(msg, DhcpMessage) and msg.message_type == wire.DISCOVER and msg.host_name == b"x"


def test_emit_within_leaves_out_whole_options_that_do_not_fit() -> None:
    msg = DhcpMessage(op=2, message_type=wire.OFFER, server_id=SERVER, lease_time=60, subnet_mask=0xFFFFFF00,
                      routers=(SERVER,), domain_name=b"x" * 255, dns_servers=(DNS,) * 8)
    data, left_out = msg.emit_within(wire.MIN_MESSAGE)
    assert len(data) <= wire.MIN_MESSAGE and left_out == 1
    again = DhcpMessage.parse(data)
    assert isinstance(again, DhcpMessage)
    assert again.domain_name is None and again.lease_time == 60 and len(again.dns_servers) == 8
    whole, none_left = msg.emit_within(1500)
    assert none_left == 0 and len(whole) > wire.MIN_MESSAGE


def test_a_request_list_reorders_without_repeating_an_option() -> None:
    """Regression: codes of the always-first options (53, 54, 51) or repeated codes in the
    request list must not make an option go out twice (joined, it would be malformed)."""
    msg = DhcpMessage(op=2, message_type=wire.ACK, server_id=SERVER, lease_time=60, subnet_mask=0xFFFFFF00,
                      routers=(SERVER,), dns_servers=(DNS,), interface_mtu=9000)
    data = msg.emit(requested=bytes([53, 6, 6, 51, 3, 200, 26, 0, 255]))
    codes = [o[0] for o in BOOTP(data)[DHCP].options if isinstance(o, tuple)]
    assert codes == ["message-type", "server_id", "lease_time", "name_server", "router", "interface-mtu",
                     "subnet_mask"]
    assert DhcpMessage.parse(data) == msg


# --- the server: the four-message exchange ----------------------------------------------------------
def test_discover_offer_request_ack() -> None:
    srv = DhcpServer()
    offer_reply = srv.input(request(wire.DISCOVER, flags=wire.FLAG_BROADCAST), 0, T0)
    assert offer_reply is not None
    assert (offer_reply.src_ip, offer_reply.src_port) == (SERVER, 67)
    assert (offer_reply.dst_ip, offer_reply.dst_port, offer_reply.dst_mac) == (BROADCAST, 68, MAC_BROADCAST)
    pkt = BOOTP(offer_reply.payload)            # scapy reads the offer as a client would
    opts = scapy_options(offer_reply.payload)
    assert pkt.op == 2 and pkt.xid == 0x1234 and pkt.yiaddr == "10.0.2.100" and pkt.ciaddr == "0.0.0.0"
    assert opts["message-type"] == 2 and opts["server_id"] == "10.0.2.2"
    assert opts["subnet_mask"] == "255.255.255.0" and opts["router"] == "10.0.2.2"
    assert opts["name_server"] == "10.0.2.3"
    assert (opts["lease_time"], opts["renewal_time"], opts["rebinding_time"]) == (86400, 43200, 75600)
    assert srv.lease_of(FIRST).state == OFFERED                 # type: ignore[union-attr]
    # the client's REQUEST, built by scapy, selecting us
    req = BOOTP(chaddr=MAC_A, xid=0x1234, flags=0x8000) / DHCP(options=[
        ("message-type", "request"), ("server_id", "10.0.2.2"), ("requested_addr", "10.0.2.100"), "end"])
    ack_reply = srv.input(bytes(req), 0, T0 + 0.5)
    ack = parsed(ack_reply)
    assert ack.message_type == wire.ACK and ack.yiaddr == FIRST and ack.lease_time == 86400
    assert ack.routers == (SERVER,) and ack.dns_servers == (DNS,) and ack.subnet_mask == 0xFFFFFF00
    lease = srv.lease_of(FIRST)
    assert lease is not None and lease.state == BOUND and lease.expires == T0 + 0.5 + 86400
    assert lease.hwaddr == MAC_A
    s = srv.stats
    assert (s.in_discover, s.in_request, s.out_offer, s.out_ack, s.leases_granted) == (1, 1, 1, 1, 1)


def test_offer_without_broadcast_flag_goes_to_yiaddr_at_the_client_mac() -> None:
    """RFC 2131 §4.1: the client has no address to answer ARP with: unicast to chaddr."""
    reply = DhcpServer().input(request(wire.DISCOVER), 0, T0)
    assert reply is not None and (reply.dst_ip, reply.dst_port, reply.dst_mac) == (FIRST, 68, MAC_A)


def test_a_non_ethernet_client_gets_broadcasts() -> None:
    reply = DhcpServer().input(request(wire.DISCOVER, htype=6, client_id=b"\x06ab"), 0, T0)
    assert reply is not None and reply.dst_mac == MAC_BROADCAST and reply.dst_ip == BROADCAST


def test_second_client_gets_the_next_address() -> None:
    srv = DhcpServer()
    assert bind(srv, MAC_A) == FIRST
    assert bind(srv, MAC_B) == SECOND
    assert srv.free_count == 14


def test_discover_honours_a_requested_free_address() -> None:
    srv = DhcpServer()
    wanted = ip_to_int("10.0.2.107")
    assert parsed(srv.input(request(wire.DISCOVER, requested_ip=wanted), 0, T0)).yiaddr == wanted
    # but not one outside the pool
    other = parsed(srv.input(request(wire.DISCOVER, MAC_B, requested_ip=ip_to_int("10.0.2.50")), 0, T0))
    assert other.yiaddr == FIRST


def test_discover_from_a_bound_client_offers_its_binding_and_keeps_it() -> None:
    srv = DhcpServer()
    bind(srv)
    expires = srv.lease_of(FIRST).expires                      # type: ignore[union-attr]
    offer = parsed(srv.input(request(wire.DISCOVER, requested_ip=SECOND), 0, T0 + 10))
    assert offer.yiaddr == FIRST
    lease = srv.lease_of(FIRST)
    assert lease is not None and lease.state == BOUND and lease.expires == expires


def test_repeated_discover_keeps_offering_the_same_address() -> None:
    srv = DhcpServer()
    first = parsed(srv.input(request(wire.DISCOVER), 0, T0)).yiaddr
    again = parsed(srv.input(request(wire.DISCOVER, xid=9), 0, T0 + 4)).yiaddr
    assert first == again == FIRST and srv.free_count == 15


def test_a_shorter_requested_lease_is_granted_not_under_the_minimum() -> None:
    srv = DhcpServer()
    offer = parsed(srv.input(request(wire.DISCOVER, lease_time=600), 0, T0))
    assert (offer.lease_time, offer.renewal_time, offer.rebinding_time) == (600, 300, 525)
    ack = parsed(srv.input(request(wire.REQUEST, server_id=SERVER, requested_ip=FIRST, lease_time=5), 0, T0))
    assert ack.lease_time == 120
    longer = parsed(srv.input(request(wire.DISCOVER, MAC_B, lease_time=10**9), 0, T0))
    assert longer.lease_time == 86400


# --- REQUEST in each client state (RFC 2131 §4.3.2) -----------------------------------------------
def test_selecting_another_server_withdraws_our_offer() -> None:
    srv = DhcpServer()
    srv.input(request(wire.DISCOVER), 0, T0)
    assert srv.input(request(wire.REQUEST, server_id=ip_to_int("10.0.2.9"), requested_ip=FIRST), 0, T0) is None
    assert srv.stats.request_other_server == 1
    assert srv.lease_of(FIRST).state == FREE and srv.free_count == 16   # type: ignore[union-attr]


def test_selecting_an_address_given_away_meanwhile_is_naked() -> None:
    srv = DhcpServer(DhcpConfig(pool_size=1))
    srv.input(request(wire.DISCOVER), 0, T0)
    srv.poll(T0 + 61)                                    # the offer hold (60 s) ran out
    assert srv.stats.offers_expired == 1
    bind(srv, MAC_B, now=T0 + 62)                        # and B took the address
    nak_reply = srv.input(request(wire.REQUEST, server_id=SERVER, requested_ip=FIRST), 0, T0 + 63)
    nak = parsed(nak_reply)
    assert nak.message_type == wire.NAK and nak.yiaddr == 0 and nak.lease_time is None
    assert nak.routers == () and nak.server_id == SERVER and nak.message
    assert nak_reply is not None and (nak_reply.dst_ip, nak_reply.dst_mac) == (BROADCAST, MAC_BROADCAST)
    assert srv.stats.nak_not_available == 1 and srv.stats.out_nak == 1


def test_selecting_after_the_offer_expired_gets_the_still_free_address() -> None:
    srv = DhcpServer()
    srv.input(request(wire.DISCOVER), 0, T0)
    ack = parsed(srv.input(request(wire.REQUEST, server_id=SERVER, requested_ip=FIRST), 0, T0 + 500))
    assert ack.message_type == wire.ACK and srv.stats.offers_expired == 1


def test_renewing_extends_the_lease_and_unicasts_to_ciaddr() -> None:
    srv = DhcpServer()
    bind(srv)
    reply = srv.input(request(wire.REQUEST, ciaddr=FIRST), FIRST, T0 + 43200)
    ack = parsed(reply)
    assert ack.message_type == wire.ACK and ack.ciaddr == FIRST and ack.yiaddr == FIRST
    assert reply is not None and (reply.dst_ip, reply.dst_port, reply.dst_mac) == (FIRST, 68, None)
    assert srv.lease_of(FIRST).expires == T0 + 43200 + 86400       # type: ignore[union-attr]
    assert srv.stats.leases_renewed == 1


def test_rebinding_broadcast_request_is_acked_too() -> None:
    srv = DhcpServer()
    bind(srv)
    reply = srv.input(request(wire.REQUEST, ciaddr=FIRST, flags=wire.FLAG_BROADCAST), FIRST, T0 + 75600)
    assert parsed(reply).message_type == wire.ACK
    assert reply is not None and reply.dst_ip == FIRST      # ciaddr wins over the B flag (§4.1)


def test_renewing_an_address_of_another_client_is_naked() -> None:
    srv = DhcpServer()
    bind(srv, MAC_A)
    nak = parsed(srv.input(request(wire.REQUEST, MAC_B, ciaddr=FIRST), FIRST, T0 + 10))
    assert nak.message_type == wire.NAK
    assert srv.lease_of(FIRST).hwaddr == MAC_A                     # type: ignore[union-attr]


def test_init_reboot_with_a_foreign_address_is_naked() -> None:
    srv = DhcpServer()
    nak = parsed(srv.input(request(wire.REQUEST, requested_ip=ip_to_int("192.168.1.5")), 0, T0))
    assert nak.message_type == wire.NAK and srv.stats.nak_wrong_network == 1


def test_init_reboot_outside_the_pool_is_naked() -> None:
    srv = DhcpServer()
    for addr in ("10.0.2.50", "10.0.2.2", "10.0.2.116"):
        assert parsed(srv.input(request(wire.REQUEST, requested_ip=ip_to_int(addr)), 0, T0)).message_type == wire.NAK
    assert srv.stats.nak_not_available == 3


def test_init_reboot_of_a_free_pool_address_is_acked_authoritatively() -> None:
    """After a gateway restart the guest asks for what it had: it gets it when free."""
    srv = DhcpServer()
    ack = parsed(srv.input(request(wire.REQUEST, requested_ip=SECOND), 0, T0))
    assert ack.message_type == wire.ACK and ack.yiaddr == SECOND
    assert srv.lease_of(SECOND).state == BOUND                      # type: ignore[union-attr]


def test_init_reboot_of_its_own_binding_is_acked() -> None:
    srv = DhcpServer()
    bind(srv)
    assert parsed(srv.input(request(wire.REQUEST, requested_ip=FIRST), 0, T0 + 5)).message_type == wire.ACK
    assert srv.stats.leases_renewed == 1


def test_init_reboot_to_a_new_address_frees_the_old_one() -> None:
    srv = DhcpServer()
    bind(srv)
    assert parsed(srv.input(request(wire.REQUEST, requested_ip=SECOND), 0, T0 + 5)).yiaddr == SECOND
    assert srv.lease_of(FIRST) is None and srv.free_count == 15


def test_a_request_with_no_address_at_all_is_dropped() -> None:
    srv = DhcpServer()
    assert srv.input(request(wire.REQUEST), 0, T0) is None
    assert srv.input(request(wire.REQUEST, server_id=SERVER), 0, T0) is None
    assert srv.stats.request_invalid == 2


# --- DECLINE, RELEASE, INFORM ------------------------------------------------------------------------
def test_decline_keeps_the_address_out_of_the_pool_for_a_while() -> None:
    srv = DhcpServer(DhcpConfig(pool_size=2))
    assert bind(srv) == FIRST
    assert srv.input(request(wire.DECLINE, server_id=SERVER, requested_ip=FIRST), 0, T0 + 1) is None
    assert srv.lease_of(FIRST).state == DECLINED and srv.stats.addresses_declined == 1  # type: ignore[union-attr]
    assert bind(srv, now=T0 + 2) == SECOND                 # the client starts over elsewhere
    assert srv.input(request(wire.DISCOVER, MAC_B), 0, T0 + 3) is None
    assert srv.stats.pool_exhausted == 1
    srv.poll(T0 + 1 + 600)
    assert srv.stats.declines_expired == 1 and srv.lease_of(FIRST) is None
    assert parsed(srv.input(request(wire.DISCOVER, MAC_B), 0, T0 + 602)).yiaddr == FIRST


def test_decline_of_someone_elses_address_is_ignored() -> None:
    srv = DhcpServer()
    bind(srv, MAC_A)
    assert srv.input(request(wire.DECLINE, MAC_B, server_id=SERVER, requested_ip=FIRST), 0, T0) is None
    assert srv.stats.decline_not_owner == 1 and srv.lease_of(FIRST).state == BOUND   # type: ignore[union-attr]
    srv.input(request(wire.DECLINE, server_id=ip_to_int("10.0.2.9"), requested_ip=FIRST), 0, T0)
    assert srv.stats.in_other_server == 1 and srv.lease_of(FIRST).state == BOUND     # type: ignore[union-attr]


def test_release_frees_and_the_client_gets_its_address_back() -> None:
    srv = DhcpServer()
    bind(srv, MAC_A)
    bind(srv, MAC_B)
    assert srv.input(request(wire.RELEASE, ciaddr=FIRST, server_id=SERVER), FIRST, T0 + 5) is None
    assert srv.stats.leases_released == 1 and srv.lease_of(FIRST).state == FREE    # type: ignore[union-attr]
    # a new client gets a never-used address first (the released one went to the back) ...
    mac_c = b"\x52\x54\x00\x00\x00\x0c"
    assert bind(srv, mac_c, now=T0 + 6) == ip_to_int("10.0.2.102")
    # ... and the old client its old one (RFC 2131 §4.3.1: its previous address)
    assert bind(srv, MAC_A, now=T0 + 7) == FIRST


def test_release_of_an_address_not_the_clients_is_ignored() -> None:
    srv = DhcpServer()
    bind(srv, MAC_A)
    srv.input(request(wire.RELEASE, MAC_B, ciaddr=FIRST, server_id=SERVER), FIRST, T0)
    srv.input(request(wire.RELEASE, ciaddr=SECOND, server_id=SERVER), SECOND, T0)
    assert srv.stats.release_unknown == 2 and srv.lease_of(FIRST).state == BOUND   # type: ignore[union-attr]


def test_inform_gets_the_configuration_without_a_lease() -> None:
    srv = DhcpServer(DhcpConfig(domain="vm.test", mtu=65520))
    manual = ip_to_int("10.0.2.15")
    reply = srv.input(request(wire.INFORM, ciaddr=manual), manual, T0)
    ack = parsed(reply)
    assert ack.message_type == wire.ACK and ack.yiaddr == 0 and ack.ciaddr == manual
    assert ack.lease_time is None and ack.renewal_time is None
    assert ack.domain_name == b"vm.test" and ack.interface_mtu == 65520 and ack.routers == (SERVER,)
    assert reply is not None and (reply.dst_ip, reply.dst_mac) == (manual, None)
    assert srv.leases() == [] and srv.stats.in_inform == 1
    # a client that leaves ciaddr empty is answered at the packet's source
    reply = srv.input(request(wire.INFORM), manual, T0)
    assert reply is not None and reply.dst_ip == manual


# --- the pool, the clock -------------------------------------------------------------------------
def test_pool_exhaustion_is_silent_and_counted_until_an_offer_expires() -> None:
    srv = DhcpServer(DhcpConfig(pool_size=2))
    macs = [bytes([2, 0, 0, 0, 0, i]) for i in range(3)]
    assert srv.input(request(wire.DISCOVER, macs[0]), 0, T0) is not None
    assert srv.input(request(wire.DISCOVER, macs[1]), 0, T0) is not None
    assert srv.input(request(wire.DISCOVER, macs[2]), 0, T0) is None
    assert srv.stats.pool_exhausted == 1 and len(srv.leases()) == 2
    assert srv.poll_at() == T0 + 60
    assert parsed(srv.input(request(wire.DISCOVER, macs[2]), 0, T0 + 60)).yiaddr == FIRST


def test_lease_expiry_frees_the_address_on_the_clock() -> None:
    srv = DhcpServer()
    armed: list[float] = []
    srv.kick = lambda *at: armed.extend(at)
    bind(srv)
    assert srv.poll_at() == T0 + 86400 and T0 + 86400 in armed
    srv.poll(T0 + 86399.9)
    assert srv.lease_of(FIRST).state == BOUND                       # type: ignore[union-attr]
    srv.poll(T0 + 86400)
    assert srv.lease_of(FIRST).state == FREE and srv.stats.leases_expired == 1   # type: ignore[union-attr]
    assert srv.poll_at() is None
    # renewing an expired lease of a free address: authoritative, granted again
    assert parsed(srv.input(request(wire.REQUEST, ciaddr=FIRST), FIRST, T0 + 90000)).message_type == wire.ACK


def test_input_sees_expiry_even_before_the_timer_fires() -> None:
    srv = DhcpServer(DhcpConfig(pool_size=1))
    srv.input(request(wire.DISCOVER), 0, T0)
    assert parsed(srv.input(request(wire.DISCOVER, MAC_B), 0, T0 + 61)).yiaddr == FIRST


def test_the_table_and_the_timer_heap_stay_within_the_pool() -> None:
    srv = DhcpServer(DhcpConfig(pool_size=4))
    now = T0
    for i in range(2000):
        mac = bytes([2, 0, 0, 0, i >> 8, i & 255])
        srv.input(request(wire.DISCOVER, mac), 0, now)
        srv.input(request(wire.REQUEST, mac, requested_ip=FIRST + i % 6), 0, now)
        now += 7.0
        srv.poll(now)
        assert len(srv.leases()) <= 4 and len(srv._by_key) <= 4
        assert len(srv._heap) <= 2 * 4 + 64


# --- clients: identifier or hardware address -------------------------------------------------------
def test_the_client_identifier_names_the_client_not_the_mac() -> None:
    srv = DhcpServer()
    one = bind(srv, MAC_A, client_id=b"\x00vm-one")
    two = bind(srv, MAC_A, client_id=b"\x00vm-two")      # same MAC, another client
    assert one != two
    assert bind(srv, MAC_B, client_id=b"\x00vm-one") == one   # same client, a new NIC
    offer = parsed(srv.input(request(wire.DISCOVER, client_id=b"\x00vm-two"), 0, T0))
    assert offer.client_id == b"\x00vm-two"                  # echoed (RFC 6842)


def test_without_client_identifier_the_mac_names_the_client() -> None:
    srv = DhcpServer()
    assert bind(srv, MAC_A) == bind(srv, MAC_A) == FIRST
    assert srv.input(request(wire.DISCOVER, hlen=0), 0, T0) is None
    assert srv.stats.in_no_client_id == 1


# --- relays --------------------------------------------------------------------------------------
def test_replies_through_a_relay_go_to_giaddr_port_67() -> None:
    srv = DhcpServer()
    relay = ip_to_int("10.0.2.1")
    offer = srv.input(request(wire.DISCOVER, giaddr=relay), relay, T0)
    assert offer is not None and (offer.dst_ip, offer.dst_port, offer.dst_mac) == (relay, 67, None)
    assert parsed(offer).giaddr == relay
    nak = srv.input(request(wire.REQUEST, MAC_B, giaddr=relay, requested_ip=ip_to_int("1.2.3.4")), relay, T0)
    assert nak is not None and nak.dst_ip == relay and parsed(nak).broadcast     # §4.3.2: B set for the relay
    assert srv.input(request(wire.DISCOVER, giaddr=ip_to_int("192.168.9.1")), 0, T0) is None
    assert srv.stats.in_foreign_relay == 1


# --- what the server drops --------------------------------------------------------------------------
def test_malformed_and_unexpected_messages_are_counted_never_raised() -> None:
    srv = DhcpServer()
    assert srv.input(b"\x01\x02", 0, T0) is None
    assert srv.input(b"\x01\x01\x06" + bytes(233) + b"\x00\x00\x00\x00", 0, T0) is None
    reply_msg = DhcpMessage(op=wire.BOOTREPLY, message_type=wire.OFFER).emit()
    assert srv.input(reply_msg, 0, T0) is None
    assert srv.input(DhcpMessage(op=wire.BOOTREQUEST).emit(), 0, T0) is None           # BOOTP
    assert srv.input(request(wire.ACK), 0, T0) is None
    assert srv.input(request(13), 0, T0) is None
    s = srv.stats
    assert (s.in_truncated, s.in_bad_cookie, s.in_not_request, s.in_no_message_type) == (1, 1, 1, 1)
    assert s.in_unexpected_type == 2 and s.in_messages == 6
    assert s.out_offer + s.out_ack + s.out_nak == 0


def test_replies_fit_the_clients_message_size() -> None:
    cfg = DhcpConfig(domain="d" * 255, dns=tuple(ip_to_int(f"10.0.2.{i}") for i in range(3, 11)), mtu=1500)
    srv = DhcpServer(cfg)
    small = srv.input(request(wire.DISCOVER), 0, T0)
    assert small is not None and len(small.payload) <= 576 - 28
    assert parsed(small).domain_name is None and parsed(small).interface_mtu == 1500
    assert srv.stats.out_options_left_out == 1
    big = srv.input(request(wire.DISCOVER, MAC_B, max_message_size=1500), 0, T0)
    assert parsed(big).domain_name == b"d" * 255


def test_requested_options_come_first_in_the_clients_order() -> None:
    """RFC 2132 §9.8: in the order requested, after type, server id and lease times; under
    a size limit, what the client asked for first is what is kept."""
    cfg = DhcpConfig(domain="d" * 255, dns=tuple(ip_to_int(f"10.0.2.{i}") for i in range(3, 11)), mtu=1500)
    srv = DhcpServer(cfg)
    reply = srv.input(request(wire.DISCOVER, param_request=bytes([26, 15, 1])), 0, T0)
    assert reply is not None
    names = [o[0] for o in BOOTP(reply.payload)[DHCP].options if isinstance(o, tuple)]
    assert names[:8] == ["message-type", "server_id", "lease_time", "renewal_time", "rebinding_time",
                         "interface-mtu", "domain", "subnet_mask"]
    offer = parsed(reply)
    assert offer.domain_name == b"d" * 255 and offer.dns_servers == () and offer.routers == (SERVER,)
    assert len(reply.payload) <= 576 - 28


# --- configuration -------------------------------------------------------------------------------
def test_for_cidr_follows_slirp4netns() -> None:
    cfg = DhcpConfig.for_cidr("192.168.50.0/24")
    assert [int_to_ip(a) for a in (cfg.server, cfg.gateway, cfg.dns[0], cfg.pool_start)] == [
        "192.168.50.2", "192.168.50.2", "192.168.50.3", "192.168.50.100"]
    assert DhcpConfig.for_cidr() == DhcpConfig()
    srv = DhcpServer(cfg)
    assert parsed(srv.input(request(wire.DISCOVER), 0, T0)).yiaddr == ip_to_int("192.168.50.100")


@pytest.mark.parametrize("kw", [
    {"prefix_len": 31},
    {"network": ip_to_int("10.0.2.1")},
    {"pool_size": 0},
    {"pool_start": ip_to_int("10.0.2.250"), "pool_size": 10},       # past the broadcast address
    {"pool_start": ip_to_int("10.0.2.2")},                          # over the server
    {"server": ip_to_int("10.0.3.2")},
    {"dns": tuple(range(9))},
    {"mtu": 67},
    {"lease_time": 60},                                             # under min_lease_time
    {"domain": "x" * 256},
    {"offer_hold": 0},
])
def test_bad_configurations_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DhcpConfig(**kw)  # type: ignore[arg-type]
