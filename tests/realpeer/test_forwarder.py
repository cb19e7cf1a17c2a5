"""The gateway's protocol hooks against a real guest (issue 13): the Linux kernel in a
namespace, its default route through a TUN device to a Stack whose interface is transparent.
What Linux's connect() reports for each answer of tcp.forwarder (accepted with data, RST,
ICMP host / admin / net unreachable, silence), UDP relayed from and refused by a remote
address, and ping answered only by the forwarder."""
from __future__ import annotations

import socket
import textwrap
from subprocess import CompletedProcess

import trio

from protocols.echo import EchoForward
from protocols.tcp.forward import ForwardRequest
from protocols.udp.forward import UdpForward
from stack.stream import StreamSocket

from .conftest import Peer
from .helpers import loss_percent, run

GUEST_TCP = textwrap.dedent("""
    import errno, socket
    out = []
    for port, timeout in ((80, 10), (81, 10), (82, 10), (83, 10), (84, 10), (85, 3)):
        s = socket.socket()
        s.settimeout(timeout)
        try:
            s.connect(("203.0.113.9", port))
            s.sendall(b"hi")
            out.append(f"{port}:ok:{s.recv(100).decode()}")
        except TimeoutError:
            out.append(f"{port}:timeout")
        except OSError as e:
            out.append(f"{port}:{errno.errorcode[e.errno]}")
        s.close()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.connect(("198.51.100.7", 5353))
    u.send(b"ping")
    data, addr = u.recvfrom(100)
    out.append(f"udp:{data.decode()}:{addr[0]}:{addr[1]}")
    u.send(b"again")
    try:
        u.recv(100)
        out.append("udp:answered")
    except OSError as e:
        out.append(f"udp:{errno.errorcode[e.errno]}")
    print(" ".join(out))
""")
ANSWERS = {81: "rst", 82: "host", 83: "admin", 84: "net", 85: "silent"}


async def test_linux_guest_through_the_forwarders_tun(tun_peer: Peer) -> None:
    tun_peer.host.ip("route", "add", "default", "dev", tun_peer.dev)
    await _guest_through_the_forwarders(tun_peer)


async def test_linux_guest_through_the_forwarders_tap(tap_peer: Peer) -> None:
    tap_peer.host.ip("route", "add", "default", "via", tap_peer.stack_ip)    # resolved by ARP
    await _guest_through_the_forwarders(tap_peer)


async def _forwarding_gateway(peer: Peer, family: int, answers: dict[int, str], guest: str) -> CompletedProcess[bytes]:
    """The stack as a scripted gateway on the peer's device: TCP port 80 accepted and answered
    "hello", other ports rejected as `answers` says; a UDP "ping" answered "pong" from the
    address the guest wrote to, anything else a port unreachable.  Runs `guest` (Python) in
    the namespace meanwhile and returns its result."""
    st = peer.stack
    st.ifnet.get(peer.dev).transparent = True
    send, receive = trio.open_memory_channel[ForwardRequest](16)
    st.tcp.forwarder = send.send_nowait
    pr = st.protosw.find_proto(family, socket.IPPROTO_TCP, socket.SOCK_STREAM)
    assert pr is not None

    def udp_forwarder(f: UdpForward) -> None:
        if f.payload == b"ping":
            assert st.udp.forward_send(f.family, f.dst, f.dport, f.src, f.sport, b"pong", f.now) == 0
        else:
            assert st.udp.forward_error(f.family, f.src, f.sport, f.dst, f.dport, "port", f.now) == 0

    st.udp.forwarder = udp_forwarder

    async def serve(req: ForwardRequest) -> None:
        conn = st.tcp.forward_accept(req.id, st.now())
        assert conn is not None
        sock = StreamSocket(st, family, socket.SOCK_STREAM, socket.IPPROTO_TCP, pr, pcb=conn)
        assert await sock.recv(100) == b"hi"
        await sock.sendall(b"hello")
        sock.close()

    async def gateway(nursery: trio.Nursery) -> None:
        async for req in receive:
            assert req.family == family
            if req.dport == 80:
                nursery.start_soon(serve, req)
            else:
                assert st.tcp.forward_reject(req.id, answers[req.dport], st.now()) == 0

    async with trio.open_nursery() as n:
        n.start_soon(gateway, n)
        result = await run(peer.exec("python3", "-c", guest), timeout=60)
        n.cancel_scope.cancel()
    return result


async def _guest_through_the_forwarders(peer: Peer) -> None:
    st = peer.stack
    result = await _forwarding_gateway(peer, socket.AF_INET, ANSWERS, GUEST_TCP)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == [
        "80:ok:hello", "81:ECONNREFUSED", "82:EHOSTUNREACH", "83:EHOSTUNREACH", "84:ENETUNREACH",
        "85:timeout", "udp:pong:198.51.100.7:5353", "udp:ECONNREFUSED"]
    assert st.tcp.stats.forward_accepted == 1 and st.tcp.stats.forward_rejected_icmp == 3

    # ping: never answered by the stack for a remote address; answered when the forwarder does
    ping = await run(peer.exec("ping", "-c", "1", "-W", "2", "203.0.113.9"))
    assert loss_percent(ping.stdout) == 100 and st.icmp.stats.in_echo_foreign_dropped == 1

    def echo(e: EchoForward) -> None:
        assert st.icmp.send_echo_reply(e.dst, e.src, e.ident, e.seq, e.data, e.now) == 0

    st.icmp.forwarder = echo
    ping = await run(peer.exec("ping", "-c", "2", "-i", "0.2", "-W", "2", "203.0.113.9"))
    assert loss_percent(ping.stdout) == 0, ping.stdout


# --- IPv6, over TAP (the gateway's default device): ND on both sides --------------------------------
GUEST6_SCRIPT = textwrap.dedent("""
    import errno, socket
    out = []
    for port in (80, 81, 82, 83, 84):
        s = socket.socket(socket.AF_INET6)
        s.settimeout(10)
        try:
            s.connect(("2001:db8:5::9", port))
            s.sendall(b"hi")
            out.append(f"{port}:ok:{s.recv(100).decode()}")
        except TimeoutError:
            out.append(f"{port}:timeout")
        except OSError as e:
            out.append(f"{port}:{errno.errorcode[e.errno]}")
        s.close()
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.connect(("2001:db8:5::7", 5353))
    u.send(b"ping")
    data, addr = u.recvfrom(100)
    out.append(f"udp:{data.decode()}:{addr[0]}:{addr[1]}")
    u.send(b"again")
    try:
        u.recv(100)
        out.append("udp:answered")
    except OSError as e:
        out.append(f"udp:{errno.errorcode[e.errno]}")
    print(" ".join(out))
""")
ANSWERS6 = {81: "rst", 82: "host", 83: "admin", 84: "net"}


async def test_linux_guest_through_the_forwarders_ipv6(tap_peer: Peer) -> None:
    peer = tap_peer
    st = peer.stack
    peer.host.ip("-6", "addr", "add", "fd00:77::1/64", "dev", peer.dev, "nodad")
    st.add_address(peer.dev, "fd00:77::2/64", dad=False)
    peer.host.ip("-6", "route", "add", "default", "via", "fd00:77::2", "dev", peer.dev)
    result = await _forwarding_gateway(peer, socket.AF_INET6, ANSWERS6, GUEST6_SCRIPT)
    assert result.returncode == 0, result.stderr
    # RFC 4443 codes 3 / 1 / 0: Linux icmpv6_err_convert's EHOSTUNREACH, EACCES, ENETUNREACH
    assert result.stdout.decode().split() == [
        "80:ok:hello", "81:ECONNREFUSED", "82:EHOSTUNREACH", "83:EACCES", "84:ENETUNREACH",
        "udp:pong:2001:db8:5::7:5353", "udp:ECONNREFUSED"]
    icmp6 = st.inet6.icmp
    ping = await run(peer.exec("ping", "-6", "-c", "1", "-W", "2", "2001:db8:5::9"))
    assert loss_percent(ping.stdout) == 100 and icmp6.stats.in_echo_foreign_dropped == 1

    def echo(e: EchoForward) -> None:
        assert icmp6.send_echo_reply(e.dst, e.src, e.ident, e.seq, e.data, e.now) == 0

    icmp6.forwarder = echo
    ping = await run(peer.exec("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "2001:db8:5::9"))
    assert loss_percent(ping.stdout) == 0, ping.stdout
