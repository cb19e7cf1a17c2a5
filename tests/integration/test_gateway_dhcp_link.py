"""The gateway's DHCP glue (tools/gateway/dhcp_serve.py) in a Stack over a memory link: a
client speaks raw Ethernet frames from the far end (as a VM's DHCP client does before it has an
address).  The OFFER and ACK go to the client's MAC with no ARP (RFC 2131 §4.1), a broadcast
request gets a broadcast answer, a renewal unicast to the server is answered by unicast
(resolved by ARP), the server's timers run in the Stack's timer service, and port 67 bound
twice is EADDRINUSE."""
from __future__ import annotations

import errno
import struct

import pytest
import trio
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.dhcp.server import BOUND, DhcpConfig, DhcpServer
from protocols.dhcp.wire import ACK, DISCOVER, FLAG_BROADCAST, OFFER, REQUEST, DhcpMessage
from stack.stack import Stack, StackConfig
from tools.gateway.dhcp_serve import serve_dhcp

from .helpers import MAC_A, MAC_B, link_pair

BCAST = b"\xff" * 6


def client_message(mtype: int, *, xid: int = 0x1234, flags: int = 0, ciaddr: int = 0, **opts: object) -> bytes:
    chaddr = MAC_B + bytes(10)
    return DhcpMessage(xid=xid, chaddr=chaddr, flags=flags, ciaddr=ciaddr, message_type=mtype,
                       **opts).emit_within(548, b"")[0]  # type: ignore[arg-type]


def frame(payload: bytes, *, src: str = "0.0.0.0", dst: str = "255.255.255.255", dst_mac: bytes = BCAST) -> bytes:
    return bytes(Ether(dst=dst_mac, src=MAC_B) / IP(src=src, dst=dst) / UDP(sport=68, dport=67) / payload)


def asked_for(client: Client, ip: str) -> bool:
    """Has the gateway sent an ARP request for `ip` (not its own announcements)?"""
    return any(g.haslayer(ARP) and g[ARP].op == 1 and g[ARP].pdst == ip and g[ARP].psrc != ip for g in client.got)


class Client:
    """The far end of the cable: frames in by its tap, frames out by ndd_output."""

    def __init__(self, ndd: object) -> None:
        self.ndd = ndd
        self.got: list[Ether] = []
        self.arrived = trio.Event()

    def tap(self, ndd: object, direction: str, pkt: PacketBuffer) -> None:
        if direction == "in":
            self.got.append(Ether(pkt.tobytes()))
            self.arrived.set()

    def send(self, data: bytes) -> None:
        assert self.ndd.ndd_output(PacketBuffer(data)) == 0  # type: ignore[attr-defined]

    async def dhcp(self) -> tuple[Ether, DhcpMessage]:
        with trio.fail_after(5):
            while True:
                for i, f in enumerate(self.got):
                    if f.haslayer(UDP) and f[UDP].dport == 68:
                        del self.got[i]
                        msg = DhcpMessage.parse(bytes(f[UDP].payload))
                        assert isinstance(msg, DhcpMessage)
                        return f, msg
                self.arrived = trio.Event()
                await self.arrived.wait()


async def test_offer_ack_to_the_client_mac_then_a_unicast_renewal() -> None:
    a, b = link_pair()
    server = DhcpServer(DhcpConfig.for_cidr())
    async with Stack("gateway", StackConfig(seed=1, ipv6=False)) as gw, \
            Stack("vm", StackConfig(seed=2, ipv6=False)) as vm:
        ifp = gw.add_interface(a, "10.0.2.2/24")
        ifp.transparent = True
        vm.add_interface(b)                       # the VM has no address yet
        client = Client(b)
        b.taps.append(client.tap)
        async with trio.open_nursery() as nursery:
            stats = await nursery.start(serve_dhcp, gw, ifp, server)
            assert server in gw.timers.timed
            client.send(frame(client_message(DISCOVER)))
            f, offer = await client.dhcp()
            # §4.1: no address yet and no B flag: to yiaddr at chaddr, with no ARP first
            assert offer.message_type == OFFER and offer.yiaddr == ip_to_int("10.0.2.100")
            assert (f.dst, f[IP].src, f[IP].dst, f[UDP].sport) == (MAC_B.hex(":"), "10.0.2.2", "10.0.2.100", 67)
            assert not asked_for(client, "10.0.2.100")
            assert gw.timers.timed and server.poll_at() is not None        # the offer is held
            # a REQUEST with the B flag: the ACK is broadcast
            client.send(frame(client_message(REQUEST, flags=FLAG_BROADCAST, server_id=ip_to_int("10.0.2.2"),
                                             requested_ip=ip_to_int("10.0.2.100"))))
            f, ack = await client.dhcp()
            assert ack.message_type == ACK and (f.dst, f[IP].dst) == ("ff:ff:ff:ff:ff:ff", "255.255.255.255")
            assert ack.routers == (ip_to_int("10.0.2.2"),) and ack.dns_servers == (ip_to_int("10.0.2.3"),)
            lease = server.lease_of(ip_to_int("10.0.2.100"))
            assert lease is not None and lease.state == BOUND
            # RENEWING: unicast from the bound address to the server; the answer to ciaddr is an
            # ordinary unicast, so the gateway resolves the client's MAC by ARP (answered here)
            client.send(frame(client_message(REQUEST, xid=0x99, ciaddr=ip_to_int("10.0.2.100")),
                              src="10.0.2.100", dst="10.0.2.2", dst_mac=MAC_A))
            with trio.fail_after(5):
                while not asked_for(client, "10.0.2.100"):
                    client.arrived = trio.Event()
                    await client.arrived.wait()
            client.send(bytes(Ether(dst=MAC_A, src=MAC_B) / ARP(op=2, hwsrc=MAC_B.hex(":"), psrc="10.0.2.100",
                                                                hwdst=MAC_A.hex(":"), pdst="10.0.2.2")))
            f, renewed = await client.dhcp()
            assert renewed.message_type == ACK and renewed.xid == 0x99
            assert (f.dst, f[IP].dst) == (MAC_B.hex(":"), "10.0.2.100")
            assert server.stats.leases_renewed == 1
            assert (stats.in_datagrams, stats.out_replies, stats.out_errors) == (3, 3, 0)
            nursery.cancel_scope.cancel()
        assert server not in gw.timers.timed


async def test_port_67_taken_is_eaddrinuse() -> None:
    a, _ = link_pair()
    async with Stack("gateway", StackConfig(seed=1, ipv6=False)) as gw:
        ifp = gw.add_interface(a, "10.0.2.2/24")
        taken = gw.socket(2, 2)
        taken.bind(("0.0.0.0", 67))
        server = DhcpServer(DhcpConfig.for_cidr())
        with pytest.raises(OSError) as info:
            await serve_dhcp(gw, ifp, server)
        assert info.value.errno == errno.EADDRINUSE and server not in gw.timers.timed
        taken.close()


def test_udp_datagram_checksum_is_valid() -> None:
    from tools.gateway.dhcp_serve import udp_datagram
    pkt = udp_datagram(ip_to_int("10.0.2.2"), 67, ip_to_int("255.255.255.255"), 68, b"hello")
    raw = pkt.tobytes()
    assert struct.unpack("!HHH", raw[:6]) == (67, 68, 13)
    rebuilt = IP(src="10.0.2.2", dst="255.255.255.255") / UDP(sport=67, dport=68) / b"hello"
    assert IP(bytes(rebuilt))[UDP].chksum == struct.unpack("!H", raw[6:8])[0]
