"""IP_TRANSPARENT / IPV6_TRANSPARENT (protocols/sockopt.py) on TCP and UDP, sans-IO with an
explicit clock: Linux's rule -- bind() to an address that is not the host's only with the
option set, EADDRNOTAVAIL without -- and this stack's: a foreign source leaves only by a
transparent interface, whose replies to it reach the connection by its 4-tuple before the
gateway's forwarder sees them (issue 13: a port forward connects to the guest as the real
client)."""
from __future__ import annotations

import errno
import random
import socket
import struct

from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.contracts import Protosw
from protocols.ipv4 import IPPROTO_UDP, Ipv4Repr
from protocols.sockopt import IP_TRANSPARENT, IPV6_TRANSPARENT
from protocols.tcp.conn import Connection, State
from protocols.tcp.usrreq import TcpUserRequests
from protocols.tcp.wire import ACK, SYN
from protocols.udp.udp import Udp
from protocols.udp.usrreq import UdpUserRequests
from protocols.udp.wire import UdpRepr

from .fakes import ip_packet
from .test_tcp_listen import PEER, Net

CLIENT = ip_to_int("198.51.100.7")       # the real client, on no interface of this host
CLIENT_PORT = 41000


def transparent_conn(net: Net) -> tuple[TcpUserRequests, Connection]:
    ur = TcpUserRequests(net.tcp)
    conn = ur.attach(net.now)
    assert ur.setsockopt(conn, socket.IPPROTO_IP, IP_TRANSPARENT, 1, net.now) == 0
    return ur, conn


def test_tcp_bind_to_a_foreign_address_needs_the_option() -> None:
    net = Net()
    ur = TcpUserRequests(net.tcp)
    plain = ur.attach(net.now)
    assert ur.getsockopt(plain, socket.IPPROTO_IP, IP_TRANSPARENT, net.now) == 0
    assert ur.bind(plain, (CLIENT, CLIENT_PORT), net.now) == errno.EADDRNOTAVAIL    # Linux inet_bind
    ur, conn = transparent_conn(net)
    assert ur.getsockopt(conn, socket.IPPROTO_IP, IP_TRANSPARENT, net.now) == 1
    assert ur.bind(conn, (CLIENT, CLIENT_PORT), net.now) == 0
    assert ur.sockaddr(conn) == (CLIENT, CLIENT_PORT)
    # the flag is one for both levels, as Linux's inet->transparent
    v6 = TcpUserRequests(net.tcp, family=socket.AF_INET6)
    c6 = v6.attach(net.now)
    assert v6.setsockopt(c6, socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1, net.now) == 0
    assert v6.getsockopt(c6, socket.IPPROTO_IP, IP_TRANSPARENT, net.now) == 1
    assert v6.bind(c6, (0x20010DB8 << 96 | 7, 80, 0, 0), net.now) == 0
    c6b = v6.attach(net.now)
    assert v6.bind(c6b, (0x20010DB8 << 96 | 8, 80, 0, 0), net.now) == errno.EADDRNOTAVAIL


def test_tcp_connect_from_the_client_address_through_a_transparent_interface() -> None:
    net = Net()
    net.host.eth0.transparent = True
    ur, conn = transparent_conn(net)
    assert ur.bind(conn, (CLIENT, CLIENT_PORT), net.now) == 0
    assert ur.connect(conn, (PEER, 80), net.now) == 0
    (raw_syn,) = [data for data, _, _ in net.host.link.sent]
    ip = Ipv4Repr.parse(raw_syn)
    assert isinstance(ip, Ipv4Repr) and (ip.src, ip.dst) == (CLIENT, PEER)    # the client's address
    ((syn, _),) = net.take()
    assert syn.flags == SYN and (syn.src_port, syn.dst_port) == (CLIENT_PORT, 80)
    # the guest's SYN-ACK to the foreign address finds the connection by its 4-tuple, not the
    # forwarder (which would hold it as a new flow)
    held: list[object] = []
    net.tcp.forwarder = held.append
    ((ack, _),) = net.rx(SYN | ACK, 777, syn.seq + 1, sport=80, dport=CLIENT_PORT, dst=CLIENT, mss=1400)
    assert conn.state == State.ESTABLISHED and held == [] and ack.flags == ACK
    assert net.tcp.stats.forward_requests == 0
    assert ur.sockaddr(conn) == (CLIENT, CLIENT_PORT) and ur.peeraddr(conn) == (PEER, 80)
    assert ur.send(conn, memoryview(b"hi"), None, net.now) == 2
    ((seg, payload),) = net.take()
    assert payload == b"hi" and seg.src_port == CLIENT_PORT


def test_tcp_connect_from_a_foreign_address_elsewhere_is_refused() -> None:
    """The route leaves by an ordinary interface: no reply could ever come back to it here."""
    net = Net()
    ur, conn = transparent_conn(net)
    assert ur.bind(conn, (CLIENT, CLIENT_PORT), net.now) == 0
    assert ur.connect(conn, (PEER, 80), net.now) == errno.EADDRNOTAVAIL
    assert net.take() == []
    # its own address stays usable with the option set
    ur2, own = transparent_conn(net)
    assert ur2.bind(own, (ip_to_int("10.0.0.2"), 0), net.now) == 0
    assert ur2.connect(own, (PEER, 80), net.now) == 0


def test_transparent_is_inherited_by_accepted_children() -> None:
    net = Net()
    ur, lst = transparent_conn(net)
    assert ur.bind(lst, (0, 80), net.now) == 0 and ur.listen(lst, 5, net.now) == 0
    net.rx(SYN, 1000)
    assert net.child().transparent                     # Linux: the flag is cloned with the socket


def udp_host(transparent: bool) -> tuple[Net, Udp, UdpUserRequests]:
    net = Net()
    net.host.eth0.transparent = transparent
    udp = Udp(net.host.ipv4, random.Random(3))
    return net, udp, UdpUserRequests(udp)


def test_udp_bind_send_and_receive_as_a_foreign_address() -> None:
    net, udp, ur = udp_host(True)
    pcb = ur.attach(net.now)
    assert ur.bind(pcb, (CLIENT, CLIENT_PORT), net.now) == errno.EADDRNOTAVAIL
    assert ur.setsockopt(pcb, socket.IPPROTO_IP, IP_TRANSPARENT, 1, net.now) == 0
    assert ur.getsockopt(pcb, socket.IPPROTO_IP, IP_TRANSPARENT, net.now) == 1
    assert ur.bind(pcb, (CLIENT, CLIENT_PORT), net.now) == 0
    assert ur.connect(pcb, (PEER, 53), net.now) == 0
    assert ur.send(pcb, memoryview(b"query"), None, net.now) == 5
    ((data, _, _),) = net.host.link.sent
    ip = Ipv4Repr.parse(data)
    assert isinstance(ip, Ipv4Repr) and (ip.src, ip.dst) == (CLIENT, PEER)
    hdr = UdpRepr.parse(data[ip.hdr_len:])
    assert isinstance(hdr, UdpRepr) and (hdr.src_port, hdr.dst_port) == (CLIENT_PORT, 53)
    # the guest's answer to the foreign address is the socket's, before any forwarder
    forwarded: list[object] = []
    udp.forwarder = forwarded.append
    body = struct.pack("!HHHH", 53, CLIENT_PORT, 8 + 6, 0) + b"answer"     # checksum 0: none (RFC 768)
    net.host.protosw.add(socket.AF_INET, Protosw("udp", socket.SOCK_DGRAM, IPPROTO_UDP, input=udp.input))
    net.host.ipv4.input(net.host.eth0, PacketBuffer(ip_packet(PEER, CLIENT, IPPROTO_UDP, body)), net.now)
    assert forwarded == [] and pcb.dequeue() == (b"answer", (PEER, 53))


def test_udp_foreign_source_by_an_ordinary_interface_is_refused() -> None:
    net, udp, ur = udp_host(False)
    pcb = ur.attach(net.now)
    assert ur.setsockopt(pcb, socket.IPPROTO_IP, IP_TRANSPARENT, 1, net.now) == 0
    assert ur.bind(pcb, (CLIENT, CLIENT_PORT), net.now) == 0          # Linux: the bind is allowed
    assert ur.connect(pcb, (PEER, 53), net.now) == errno.EADDRNOTAVAIL
    assert ur.send(pcb, memoryview(b"x"), (PEER, 53), net.now) == -errno.EADDRNOTAVAIL
    assert net.host.link.sent == [] and udp.stats.out_errors == 1
