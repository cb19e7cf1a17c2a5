"""The gateway's protocol hooks (issue 13) end to end: stack a is the gateway, its m0 a
transparent interface (ifnet.Interface.transparent); stack b is the guest, whose default
route leads to a.  What the guest's sockets see of a SYN held by a's tcp.forwarder and then
accepted (a connection to 203.0.113.9:80 that carries data both ways), refused by RST,
refused by ICMP, or left unanswered; UDP to any address and replies from it (udp.forwarder,
forward_send, forward_error); echo requests to remote addresses (icmp.forwarder); IPv4 and
IPv6."""
from __future__ import annotations

import errno
import socket
from typing import Any

import pytest
import trio

from protocols.addr import ip_to_int
from protocols.echo import EchoForward
from protocols.ipv6.addr import ip6_to_int
from protocols.tcp.forward import ForwardRequest
from protocols.udp.forward import UdpForward
from stack.stream import StreamSocket

from .helpers import Pair, two_stacks

REMOTE, REMOTE6 = "203.0.113.9", "2001:db8:5::9"
GW6, GUEST6 = "fd00::1", "fd00::2"


def _gateway(p: Pair, *, ipv6: bool = False) -> list[ForwardRequest]:
    """Make a's m0 transparent and b's default route lead to a; record what a's forwarder gets."""
    p.ifa.transparent = True
    p.sb.add_route("0.0.0.0/0", "10.0.0.1")
    if ipv6:
        p.sa.add_address(p.ifa, f"{GW6}/64", dad=False)
        p.sb.add_address(p.ifb, f"{GUEST6}/64", dad=False)
        p.sb.add_route("::/0", GW6)
    requests: list[ForwardRequest] = []
    p.sa.tcp.forwarder = requests.append
    return requests


async def _wait_for(requests: list[Any], n: int = 1) -> None:
    with trio.fail_after(10):
        while len(requests) < n:
            await trio.sleep(0.01)


def _adopt(p: Pair, family: int, conn: Any) -> StreamSocket:
    """The forwarded connection as a stream socket of the gateway's stack (what a relay does)."""
    pr = p.sa.protosw.find_proto(family, socket.IPPROTO_TCP, socket.SOCK_STREAM)
    assert pr is not None
    return StreamSocket(p.sa, family, socket.SOCK_STREAM, socket.IPPROTO_TCP, pr, pcb=conn)


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
async def test_held_syn_accepted_carries_data_both_ways(family: int) -> None:
    v6 = family == socket.AF_INET6
    remote = REMOTE6 if v6 else REMOTE
    async with two_stacks(seed=3) as p:
        requests = _gateway(p, ipv6=v6)
        guest = p.sb.socket(family, socket.SOCK_STREAM)
        accepted: list[tuple[str, int]] = []

        async def gateway() -> None:
            await _wait_for(requests)
            await trio.sleep(0.5)                         # the host side "connects" meanwhile
            req = requests[0]
            conn = p.sa.tcp.forward_accept(req.id, p.sa.now())
            assert conn is not None
            sock = _adopt(p, family, conn)
            accepted.append(sock.getsockname()[:2])
            assert await sock.recv(100) == b"GET /"
            await sock.sendall(b"200 OK")
            sock.shutdown(socket.SHUT_WR)
            assert await sock.recv(100) == b""
            sock.close()

        async with trio.open_nursery() as n:
            n.start_soon(gateway)
            with trio.fail_after(20):
                await guest.connect((remote, 80))
            assert guest.getpeername()[:2] == (remote, 80)
            await guest.sendall(b"GET /")
            assert await guest.recv(100) == b"200 OK"
            assert await guest.recv(100) == b""
            guest.close()
        req = requests[0]
        assert req.family == family and req.dport == 80
        assert req.dst == (ip6_to_int(remote) if v6 else ip_to_int(remote))
        assert req.src == (ip6_to_int(GUEST6) if v6 else ip_to_int("10.0.0.2"))
        assert req.ifp is p.ifa and req.options.mss is not None
        assert accepted == [(remote, 80)]
        st = p.sa.tcp.stats
        assert st.forward_requests == 1 and st.forward_accepted == 1
        assert st.no_ports == 0 and st.out_rsts == 0
        assert p.sa.tcp.forward_pending == 0


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
@pytest.mark.parametrize(("how", "expected"), [("rst", errno.ECONNREFUSED), ("host", errno.EHOSTUNREACH),
                                               ("net", errno.ENETUNREACH), ("port", errno.ECONNREFUSED)])
async def test_held_syn_rejected(family: int, how: str, expected: int) -> None:
    v6 = family == socket.AF_INET6
    async with two_stacks(seed=4) as p:
        requests = _gateway(p, ipv6=v6)
        guest = p.sb.socket(family, socket.SOCK_STREAM)

        async def gateway() -> None:
            await _wait_for(requests)
            assert p.sa.tcp.forward_reject(requests[0].id, how, p.sa.now()) == 0

        async with trio.open_nursery() as n:
            n.start_soon(gateway)
            with trio.fail_after(20), pytest.raises(OSError) as exc:
                await guest.connect((REMOTE6 if v6 else REMOTE, 443))
        assert exc.value.errno == expected
        st = p.sa.tcp.stats
        assert (st.forward_rejected_rst if how == "rst" else st.forward_rejected_icmp) == 1
        assert p.sa.tcp.forward_reject(requests[0].id, how, p.sa.now()) == errno.ENOENT   # answered once


async def test_admin_prohibited_ipv6_is_eacces() -> None:
    async with two_stacks(seed=5) as p:
        requests = _gateway(p, ipv6=True)
        guest = p.sb.socket(socket.AF_INET6, socket.SOCK_STREAM)

        async def gateway() -> None:
            await _wait_for(requests)
            assert p.sa.tcp.forward_reject(requests[0].id, "admin", p.sa.now()) == 0

        async with trio.open_nursery() as n:
            n.start_soon(gateway)
            with trio.fail_after(20), pytest.raises(OSError) as exc:
                await guest.connect((REMOTE6, 22))
        assert exc.value.errno == errno.EACCES           # RFC 4443 code 1, Linux icmpv6_err_convert


async def test_silent_reject_ignores_the_guests_retries() -> None:
    """A silent refusal sends nothing, and the guest's retransmitted SYNs ask nobody again."""
    async with two_stacks(seed=6) as p:
        requests = _gateway(p)
        guest = p.sb.socket(socket.AF_INET, socket.SOCK_STREAM)

        async def gateway() -> None:
            await _wait_for(requests)
            assert p.sa.tcp.forward_reject(requests[0].id, "silent", p.sa.now()) == 0

        async with trio.open_nursery() as n:
            n.start_soon(gateway)
            with trio.move_on_after(4.5):                 # the SYN and its retries at 1 s and 3 s
                await guest.connect((REMOTE, 80))
                pytest.fail("connected")
        st = p.sa.tcp.stats
        assert len(requests) == 1 and st.forward_rejected_silent == 1
        assert st.forward_syn_retransmits >= 2
        assert st.out_rsts == 0 and p.sa.icmp.stats.out_dest_unreachs == 0


async def test_wildcard_listener_serves_only_our_addresses() -> None:
    """A listener on 0.0.0.0:80 of the gateway takes the guest's SYN to the gateway's own
    address, not one to a remote address (Linux delivers those to no socket without TPROXY):
    that goes to the forwarder."""
    async with two_stacks(seed=7) as p:
        requests = _gateway(p)
        srv = p.sa.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("", 80))
        srv.listen(4)
        guest = p.sb.socket(socket.AF_INET, socket.SOCK_STREAM)
        with trio.fail_after(10):
            await guest.connect(("10.0.0.1", 80))
            conn, _ = await srv.accept()
        conn.close()
        guest.close()
        assert requests == []
        other = p.sb.socket(socket.AF_INET, socket.SOCK_STREAM)
        refused: list[int] = []

        async def connect() -> None:
            try:
                await other.connect((REMOTE, 80))
            except OSError as e:
                refused.append(e.errno)

        async with trio.open_nursery() as n:
            n.start_soon(connect)
            await _wait_for(requests)
            assert p.sa.tcp.forward_reject(requests[0].id, "rst", p.sa.now()) == 0
        assert refused == [errno.ECONNREFUSED]


# --- UDP ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
async def test_udp_to_any_address_reaches_the_forwarder_and_replies_come_from_it(family: int) -> None:
    v6 = family == socket.AF_INET6
    remote = REMOTE6 if v6 else REMOTE
    async with two_stacks(seed=8) as p:
        _gateway(p, ipv6=v6)
        flows: list[UdpForward] = []
        p.sa.udp.forwarder = flows.append
        guest = p.sb.socket(family, socket.SOCK_DGRAM)
        await guest.connect((remote, 53))
        await guest.send(b"query")
        await _wait_for(flows)
        (f,) = flows
        assert (f.family, f.dport, f.payload, f.ifp) == (family, 53, b"query", p.ifa)
        assert f.sport == guest.getsockname()[1]
        udp = p.sa.udp
        big = bytes(range(256)) * 12                      # 3072 octets: fragmented on the way
        assert udp.forward_send(family, f.dst, f.dport, f.src, f.sport, b"answer", p.sa.now()) == 0
        assert udp.forward_send(family, f.dst, f.dport, f.src, f.sport, big, p.sa.now()) == 0
        with trio.fail_after(10):
            data, addr = await guest.recvfrom(4096)
            assert data == b"answer" and addr[:2] == (remote, 53)
            assert await guest.recv(4096) == big
        # the host socket's error comes back as the network's: a port unreachable
        assert udp.forward_error(family, f.src, f.sport, f.dst, f.dport, "port", p.sa.now()) == 0
        with trio.fail_after(10), pytest.raises(OSError) as exc:
            while True:
                await guest.send(b"again")
                await trio.sleep(0.05)
        assert exc.value.errno == errno.ECONNREFUSED
        assert udp.stats.no_ports == 0 and udp.stats.forward_out == 2


async def test_udp_forward_send_needs_a_transparent_route() -> None:
    async with two_stacks(seed=9) as p:
        now = p.sa.now()
        guest, remote = ip_to_int("10.0.0.2"), ip_to_int(REMOTE)
        assert p.sa.udp.forward_send(socket.AF_INET, remote, 53, guest, 4000, b"x", now) == errno.EADDRNOTAVAIL
        p.ifa.transparent = True
        assert p.sa.udp.forward_send(socket.AF_INET, remote, 53, guest, 4000, b"x", now) == 0
        assert p.sa.udp.forward_error(socket.AF_INET, guest, 4000, remote, 53, "bogus", now) == errno.EINVAL


# --- ICMP echo --------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
async def test_echo_to_a_remote_address_is_the_forwarders(family: int) -> None:
    v6 = family == socket.AF_INET6
    remote = REMOTE6 if v6 else REMOTE
    async with two_stacks(seed=10) as p:
        _gateway(p, ipv6=v6)
        icmp = p.sa.inet6.icmp if v6 else p.sa.icmp
        # no forwarder: dropped, never answered by the stack (the gateway forges nothing)
        with pytest.raises(OSError) as exc:
            await p.sb.ping(remote, timeout=1.5)
        assert exc.value.errno == errno.ETIMEDOUT
        assert icmp.stats.in_echo_foreign_dropped == 1
        # the gateway's own address is still the stack's to answer
        await p.sb.ping(GW6 if v6 else "10.0.0.1", timeout=5)
        echoes: list[EchoForward] = []

        def answer(e: EchoForward) -> None:
            echoes.append(e)
            assert icmp.send_echo_reply(e.dst, e.src, e.ident, e.seq, e.data, e.now) == 0

        icmp.forwarder = answer
        await p.sb.ping(remote, timeout=5)
        (e,) = echoes
        assert e.family == family and e.dst == (ip6_to_int(remote) if v6 else ip_to_int(remote))
        assert icmp.stats.in_echo_forwarded == 1


async def test_wildcard_udp_socket_serves_only_our_addresses() -> None:
    """The gateway's DNS socket on 0.0.0.0:53 answers the guest's queries to the gateway, not
    those to a remote resolver: those go to the forwarder."""
    async with two_stacks(seed=11) as p:
        _gateway(p)
        flows: list[UdpForward] = []
        p.sa.udp.forwarder = flows.append
        dns = p.sa.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dns.bind(("", 53))
        guest = p.sb.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await guest.sendto(b"to the gateway", ("10.0.0.1", 53))
        await guest.sendto(b"to a remote", (REMOTE, 53))
        with trio.fail_after(10):
            data, _ = await dns.recvfrom(100)
            await _wait_for(flows)
        assert data == b"to the gateway"
        assert [(f.dst, f.payload) for f in flows] == [(ip_to_int(REMOTE), b"to a remote")]
