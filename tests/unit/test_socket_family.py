"""The socket layer by family (stack/socket.py, stream.py, domains.py) over recording user
requests: an AF_INET6 socket hands its protocol (addr128, port, flowinfo, scope_id) and shows
the protocol's 4-tuples as CPython shows a real AF_INET6 socket's; an AF_INET socket keeps its
pairs; IPPROTO_IPV6 options reach the protocol as IPPROTO_IP ones do."""
from __future__ import annotations

import errno
import socket

import pytest

from protocols.sockopt import IPV6_JOIN_GROUP, IPV6_LEAVE_GROUP, IPV6_RECVERR
from stack import socket as ss
from stack.domains import create
from stack.socket import Socket
from stack.stream import StreamSocket

from .socket_fakes import FD00_1, LL_1, MAPPED, V6_TEST, Host, Pcb


@pytest.fixture
def host() -> Host:
    return Host()


def test_family_chooses_the_class_and_reports_itself(host: Host) -> None:
    dgram, stream = create(host, socket.AF_INET6, socket.SOCK_DGRAM), create(host, socket.AF_INET6, socket.SOCK_STREAM)
    assert type(dgram) is Socket and type(stream) is StreamSocket
    for sock in (dgram, stream):
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET6
        assert sock.getsockname() == ("::", 0, 0, 0)        # unbound, as a fresh Linux AF_INET6 socket
        with pytest.raises(OSError) as exc:
            sock.getpeername()
        assert exc.value.errno == errno.ENOTCONN


async def test_datagram_addresses_both_ways(host: Host) -> None:
    ops = host.requests[(socket.AF_INET6, socket.SOCK_DGRAM)]
    s = create(host, socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("fe80::1%eth0", 53, 0, 2))
    await s.connect(("v6.test", 7, 5))
    assert await s.sendto(b"x", ("::ffff:10.0.0.1", 9)) == 1
    await s.send(b"y")
    assert ops.calls == [("bind", (LL_1, 53, 0, 2)), ("connect", (V6_TEST, 7, 5, 0)),
                         ("send", b"x", (MAPPED, 9, 0, 0)), ("send", b"y", None)]
    assert s.getsockname() == ("fe80::1", 53, 0, 2)           # the zone is the scope_id, not text
    assert s.getpeername() == ("2001:db8::1", 7, 5, 0)
    pcb = s._pcb
    pcb.datagrams += [(b"v4 peer", (MAPPED, 5000, 0, 0)), (b"ll", (LL_1, 1, 0, 4)), (b"abc", (FD00_1, 2, 0, 0))]
    assert await s.recvfrom(100) == (b"v4 peer", ("::ffff:10.0.0.1", 5000, 0, 0))
    assert await s.recvfrom(100) == (b"ll", ("fe80::1", 1, 0, 4))
    buf = bytearray(8)
    assert await s.recvfrom_into(buf) == (3, ("fd00::1", 2, 0, 0))
    s.close()


async def test_address_errors_are_cpythons_and_reach_nothing(host: Host) -> None:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = create(host, socket.AF_INET6, kind)
        with pytest.raises(TypeError, match=r"^bind\(\): AF_INET6 address must be tuple, not str$"):
            s.bind("::1")
        with pytest.raises(socket.gaierror) as gai:
            s.bind(("10.0.0.9", 0))                         # an IPv4 literal: not an AF_INET6 address
        assert gai.value.errno == socket.EAI_ADDRFAMILY
        with pytest.raises(socket.gaierror) as gai:
            s.bind(("v4.test", 0))                          # a name with IPv4 values only
        assert gai.value.errno == socket.EAI_NONAME
        with pytest.raises(OverflowError, match=r"^connect\(\): port must be 0-65535\.$"):
            await s.connect(("::1", 70000))
        with pytest.raises(OverflowError, match=r"^sendto\(\): flowinfo must be 0-1048575\.$"):
            await s.sendto(b"x", ("::1", 1, 1 << 20))
        with pytest.raises(TypeError, match=r"^AF_INET6 address must be a tuple \(host, port\[, flowinfo"):
            await s.connect(("::1",))
        with pytest.raises(OSError, match="address family mismatched"):
            await s.connect(("<broadcast>", 1))
        with pytest.raises(socket.gaierror):
            s.bind(("fe80::1%eth9", 0))                     # a zone that names no interface
        assert host.requests[(socket.AF_INET6, kind)].calls == []
        s.close()


async def test_stream_accept_gives_family_sockets_and_4_tuples(host: Host) -> None:
    listener = create(host, socket.AF_INET6, socket.SOCK_STREAM)
    assert isinstance(listener, StreamSocket)
    listener.bind(("", 8080))
    listener.listen()
    child = Pcb(name=(FD00_1, 8080, 0, 0), peer=(MAPPED, 40000, 0, 0))
    listener._pcb.children.append((child, child.peer))
    sock, peer = await listener.accept()
    assert peer == ("::ffff:10.0.0.1", 40000, 0, 0)
    assert sock.family == socket.AF_INET6 and isinstance(sock, StreamSocket)
    assert sock.getsockname() == ("fd00::1", 8080, 0, 0)
    assert sock.getpeername() == ("::ffff:10.0.0.1", 40000, 0, 0)
    with pytest.raises(socket.gaierror):
        await sock.sendto(b"x", ("1.2.3.4", 1))             # a stream sendto still parses, as CPython
    assert host.requests[(socket.AF_INET6, socket.SOCK_STREAM)].calls == [("bind", (0, 8080, 0, 0))]


@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM])
def test_ipv6_options_reach_the_protocol(host: Host, kind: int) -> None:
    ops = host.requests[(socket.AF_INET6, kind)]
    s = create(host, socket.AF_INET6, kind)
    v6 = socket.IPPROTO_IPV6
    s.setsockopt(v6, socket.IPV6_V6ONLY, 1)
    s.setsockopt(v6, socket.IPV6_UNICAST_HOPS, (-1).to_bytes(4, "little", signed=True))   # decoded as an int
    s.setsockopt(v6, socket.IPV6_TCLASS, True)
    s.setsockopt(v6, IPV6_RECVERR, 1)
    mreq = (0xFF02 << 112 | 0x1234).to_bytes(16, "big") + (2).to_bytes(4, "little")
    s.setsockopt(v6, IPV6_JOIN_GROUP, mreq)                  # struct ipv6_mreq: the caller's octets
    s.setsockopt(v6, IPV6_LEAVE_GROUP, 7)                    # an int is 4 octets: the protocol's EINVAL
    assert ops.calls == [("setsockopt", v6, socket.IPV6_V6ONLY, 1), ("setsockopt", v6, socket.IPV6_UNICAST_HOPS, -1),
                         ("setsockopt", v6, socket.IPV6_TCLASS, 1), ("setsockopt", v6, IPV6_RECVERR, 1),
                         ("setsockopt", v6, IPV6_JOIN_GROUP, mreq),
                         ("setsockopt", v6, IPV6_LEAVE_GROUP, b"\x07\x00\x00\x00")]
    assert s.getsockopt(v6, socket.IPV6_V6ONLY) == 1
    assert s.getsockopt(v6, socket.IPV6_V6ONLY, 4) == b"\x01\x00\x00\x00"
    with pytest.raises(OSError) as exc:
        s.getsockopt(v6, socket.IPV6_MULTICAST_HOPS)          # the protocol's None: ENOPROTOOPT
    assert exc.value.errno == errno.ENOPROTOOPT
    with pytest.raises(OverflowError):
        s.setsockopt(v6, socket.IPV6_V6ONLY, 2**40)
    with pytest.raises(TypeError):
        s.setsockopt(v6, IPV6_JOIN_GROUP, "ff02::1")


def test_ipv6_constant_names_are_exported() -> None:
    assert (ss.IPV6_V6ONLY, ss.IPV6_UNICAST_HOPS, ss.IPV6_MULTICAST_HOPS, ss.IPV6_TCLASS) == (26, 16, 18, 67)
    assert (ss.IPV6_JOIN_GROUP, ss.IPV6_LEAVE_GROUP, ss.IPV6_RECVERR, ss.IPV6_MTU_DISCOVER) == (20, 21, 25, 23)


async def test_inet_sockets_keep_pairs(host: Host) -> None:
    ops = host.requests[(socket.AF_INET, socket.SOCK_DGRAM)]
    s = create(host, socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("v4.test", 5))
    await s.sendto(b"x", ("127.1", 9))
    assert ops.calls == [("bind", (0x0A000009, 5)), ("send", b"x", (0x7F000001, 9))]
    assert s.getsockname() == ("10.0.0.9", 5)
    s._pcb.datagrams.append((b"d", (0x0A000001, 7)))
    assert await s.recvfrom(10) == (b"d", ("10.0.0.1", 7))
    with pytest.raises(TypeError, match=r"^bind\(\): AF_INET address must be tuple, not str$"):
        s.bind("10.0.0.1")
    with pytest.raises(socket.gaierror) as gai:
        s.bind(("v6.test", 0))
    assert gai.value.errno == socket.EAI_NONAME
    with pytest.raises(TypeError, match=r"^AF_INET address must be a pair \(host, port\)$"):
        s.bind(("::1", 0, 0, 0))


@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM])
def test_unknown_option_errno_by_family(host: Host, kind: int) -> None:
    """Linux: an AF_INET socket passes a level that is not its own to ip_getsockopt, which says
    EOPNOTSUPP (getsockopt(IPPROTO_IPV6, IPV6_V6ONLY) on a UDP or TCP IPv4 socket); the levels
    it knows answer ENOPROTOOPT for an unknown name, and an AF_INET6 socket always does."""
    v4, v6 = create(host, socket.AF_INET, kind), create(host, socket.AF_INET6, kind)
    other = socket.IPPROTO_UDP if kind == socket.SOCK_STREAM else socket.IPPROTO_TCP
    own = socket.IPPROTO_TCP if kind == socket.SOCK_STREAM else socket.IPPROTO_UDP
    cases = ((v4, socket.IPPROTO_IPV6, errno.EOPNOTSUPP), (v4, other, errno.EOPNOTSUPP),
             (v4, socket.SOL_SOCKET, errno.ENOPROTOOPT), (v4, socket.IPPROTO_IP, errno.ENOPROTOOPT),
             (v4, own, errno.ENOPROTOOPT), (v6, 9999, errno.ENOPROTOOPT), (v6, other, errno.ENOPROTOOPT))
    for sock, level, expected in cases:
        with pytest.raises(OSError) as exc:
            sock.getsockopt(level, 9999)
        assert exc.value.errno == expected, (sock.family, level)
