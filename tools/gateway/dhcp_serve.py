"""The gateway's DHCP server on the guest's TAP (issue 13, "Address model"): the sans-IO
`protocols.dhcp.server.DhcpServer` fed from a UDP socket of the gateway's Stack, its replies
sent down that TAP.

Receive: a Stack socket bound to 0.0.0.0:67 with SO_BROADCAST.  A client with no address
sends from 0.0.0.0:68 to 255.255.255.255:67; IPv4 input marks it broadcast and the UDP core
hands a broadcast to every socket bound to its port (protocols/udp/udp.py), so the wildcard
socket gets it; a renewal unicast to the server's address (10.0.2.2) is local and reaches it
too.  The Stack's socket API names no interface (there is no IP_PKTINFO): a gateway Stack has
the guest's TAP and its loopback only, and every reply leaves by the TAP it is given.

Send (RFC 2131 §4.1): each `DhcpReply` is a UDP datagram from the server (10.0.2.2:67)
built here and handed to `Ipv4.output` forced out of the guest's interface:
  * `dst_mac` set -- the client has no address yet: to yiaddr at its chaddr, or to
    255.255.255.255 at ff:ff:ff:ff:ff:ff -- the frame goes to that MAC with no ARP
    (`Ipv4.output(lladdr=...)`, contracts.LinkAddressOutput), since the client cannot answer
    ARP for an address it does not hold yet;
  * `dst_mac` None -- ciaddr, or a relay on the subnet: an ordinary unicast, ARP resolved.
The server is a TimedCore: it is registered with the Stack's timer service while served
(held offers, leases and declines expire there) and unregistered after.

Bounds: the server's table is bounded by its pool (protocols/dhcp/server.py); the socket's
receive buffer by SO_RCVBUF (212992 octets, Linux's rmem_default), beyond which datagrams
are dropped and counted by the UDP core (udp.rcvbuf_errors); a datagram costs one parse and
at most one reply.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import trio

from ndd.counters import Counters
from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.dhcp.server import DhcpConfig, DhcpReply, DhcpServer
from protocols.dhcp.wire import SERVER_PORT
from protocols.ifnet import Interface
from protocols.ipv4 import IPPROTO_UDP
from protocols.udp.wire import UDP_HLEN, udp_checksum
from stack import Stack
from tools.gateway.policy import AddressModel

MAX_DATAGRAM = 65535


@dataclass
class DhcpLinkStats(Counters):
    in_datagrams: int = 0       # UDP payloads that reached port 67
    out_replies: int = 0        # replies handed to the link
    out_errors: int = 0         # replies the IP layer or the link refused (ENOBUFS, ENETDOWN, ...)


def gateway_dhcp_config(model: AddressModel, mtu: int | None = None) -> DhcpConfig:
    """The model's DHCP (slirp4netns's): its /24, router and server .2, DNS .3, guests from .100;
    the link MTU as option 26 when given (a VM on a 65520-octet TAP learns it there)."""
    return DhcpConfig.for_cidr(str(model.network), mtu=mtu)


def udp_datagram(src: int, sport: int, dst: int, dport: int, payload: bytes) -> PacketBuffer:
    """A UDP header with its full checksum (RFC 768) before `payload`, with headroom for the
    IP and Ethernet headers."""
    pkt = PacketBuffer.from_payload(payload)
    struct.pack_into("!HHHH", pkt.prepend(UDP_HLEN), 0, sport, dport, UDP_HLEN + len(payload), 0)
    struct.pack_into("!H", pkt.view(), 6, udp_checksum(src, dst, pkt.view()))
    return pkt


def send_reply(stack: Stack, ifp: Interface, reply: DhcpReply, stats: DhcpLinkStats) -> int:
    """One reply out of `ifp` as RFC 2131 §4.1 directs it (see the module docstring): 0 or
    the errno, counted."""
    pkt = udp_datagram(reply.src_ip, reply.src_port, reply.dst_ip, reply.dst_port, reply.payload)
    err = stack.ipv4.output(pkt, reply.src_ip, reply.dst_ip, IPPROTO_UDP, stack.now(), ifp=ifp,
                                 lladdr=reply.dst_mac)
    if err:
        stats.out_errors += 1
    else:
        stats.out_replies += 1
    return err


async def serve_dhcp(stack: Stack, ifp: Interface, server: DhcpServer, *,
                     stats: DhcpLinkStats | None = None,
                     task_status: trio.TaskStatus[DhcpLinkStats] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve DHCP on the guest's interface `ifp` of `stack` (a tunstack Stack) until
    cancelled; `task_status.started` reports the stats once port 67 is bound (EADDRINUSE
    raises OSError before that)."""
    stats = stats if stats is not None else DhcpLinkStats()
    sock = stack.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind(("0.0.0.0", SERVER_PORT))
        stack.timers.register(server)
        try:
            task_status.started(stats)
            while True:
                data, (src, _port) = await sock.recvfrom(MAX_DATAGRAM)
                stats.in_datagrams += 1
                reply = server.input(data, ip_to_int(src), stack.now())
                if reply is not None:
                    send_reply(stack, ifp, reply, stats)
        finally:
            stack.timers.unregister(server)
    finally:
        sock.close()
