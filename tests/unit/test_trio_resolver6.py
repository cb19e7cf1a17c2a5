"""trio over the stack with IPv6 (stack/trio_compat.py), at unit level over recording user
requests: the resolver's answers for IPv6 literals and hosts-table names (literals compared
with this machine's glibc getaddrinfo), and what trio.open_tcp_stream / trio.serve_tcp /
from_stdlib_socket hand an AF_INET6 socket of the stack."""
from __future__ import annotations

import errno
import functools
import socket
from typing import Any

import pytest
import trio

from stack.trio_compat import StackResolver, TrioSocket, tunstack_sockets

from .socket_fakes import V6_TEST, Host

STREAM = socket.SOCK_STREAM


def shapes(info: list[Any]) -> list[tuple[int, Any]]:
    return [(int(i[0]), i[4]) for i in info]


async def lookup(host: Host, name: Any, family: int = 0, flags: int = 0, port: Any = 80) -> list[tuple[int, Any]]:
    return shapes(await StackResolver(host).getaddrinfo(name, port, family, STREAM, 0, flags))


# literals: this machine's getaddrinfo(AI_NUMERICHOST) is the reference (the zones name its interfaces)
LITERALS = [("::1", 0, 0), ("2001:DB8::1", 0, 0), ("::ffff:10.0.0.1", 0, 0), ("fe80::1%lo", 0, 0), ("fe80::1%9", 0, 0),
            ("ff02::1%lo", socket.AF_INET6, 0), ("10.0.0.1", 0, 0), ("127.1", socket.AF_INET, 0),
            ("::ffff:1.2.3.4", socket.AF_INET, 0), ("1.2.3.4", socket.AF_INET6, socket.AI_V4MAPPED),
            ("1.2.3.4", socket.AF_INET6, 0), ("::1", socket.AF_INET, 0), ("::1%lo", socket.AF_INET, 0),
            ("::1%lo", socket.AF_INET6, 0), ("fe80::1%nosuchif0", 0, 0), ("fe80::1%", socket.AF_INET6, 0),
            ("::ffff:1.2.3.4%lo", socket.AF_INET, 0)]


def glibc(name: str, family: int, flags: int) -> Any:
    try:
        return shapes(socket.getaddrinfo(name, 80, family, STREAM, 0, flags | socket.AI_NUMERICHOST))
    except socket.gaierror as exc:
        return exc.args


@pytest.mark.parametrize("name,family,flags", LITERALS)
async def test_literals_equal_glibc(name: str, family: int, flags: int) -> None:
    host = Host(interfaces={"lo": socket.if_nametoindex("lo")})
    try:
        ours: Any = await lookup(host, name, family, flags)
    except socket.gaierror as exc:
        ours = exc.args
    assert ours == glibc(name, family, flags)


async def test_a_zone_names_a_stack_interface() -> None:
    host = Host(interfaces={"ts0": 7})
    assert await lookup(host, "fe80::1%ts0") == [(socket.AF_INET6, ("fe80::1", 80, 0, 7))]
    assert await lookup(host, b"fe80::1%ts0", socket.AF_INET6) == [(socket.AF_INET6, ("fe80::1", 80, 0, 7))]


async def test_names_of_the_hosts_table() -> None:
    host = Host()
    host.hosts.update({"both.test": ("10.0.0.1", "fd00::1", "10.0.0.2"), "localhost": "127.0.0.1"})
    v6 = (socket.AF_INET6, ("2001:db8::1", 80, 0, 0))
    assert await lookup(host, "v6.test") == [v6]
    assert await lookup(host, "v6.test", socket.AF_INET6) == [v6]
    assert await lookup(host, "both.test") == [(socket.AF_INET, ("10.0.0.1", 80)),      # the table's order
                                               (socket.AF_INET6, ("fd00::1", 80, 0, 0)),
                                               (socket.AF_INET, ("10.0.0.2", 80))]
    assert await lookup(host, "both.test", socket.AF_INET) == [(socket.AF_INET, ("10.0.0.1", 80)),
                                                               (socket.AF_INET, ("10.0.0.2", 80))]
    assert await lookup(host, "both.test", socket.AF_INET6) == [(socket.AF_INET6, ("fd00::1", 80, 0, 0))]
    # AF_UNSPEC of "localhost" is what the table says: IPv4 only here, both once it has ::1
    assert await lookup(host, "localhost") == [(socket.AF_INET, ("127.0.0.1", 80))]
    host.hosts["localhost"] = ("::1", "127.0.0.1")
    assert await lookup(host, "localhost") == [(socket.AF_INET6, ("::1", 80, 0, 0)),
                                               (socket.AF_INET, ("127.0.0.1", 80))]
    # AF_INET6 of an IPv4-only name: EAI_NONAME, or mapped with AI_V4MAPPED (and beside IPv6 with AI_ALL)
    with pytest.raises(socket.gaierror) as exc:
        await lookup(host, "v4.test", socket.AF_INET6)
    assert exc.value.args == (socket.EAI_NONAME, "Name or service not known")
    assert await lookup(host, "v4.test", socket.AF_INET6, socket.AI_V4MAPPED) == [
        (socket.AF_INET6, ("::ffff:10.0.0.9", 80, 0, 0))]
    assert await lookup(host, "both.test", socket.AF_INET6, socket.AI_V4MAPPED) == [
        (socket.AF_INET6, ("fd00::1", 80, 0, 0))]
    assert await lookup(host, "both.test", socket.AF_INET6, socket.AI_V4MAPPED | socket.AI_ALL) == [
        (socket.AF_INET6, ("fd00::1", 80, 0, 0)), (socket.AF_INET6, ("::ffff:10.0.0.1", 80, 0, 0)),
        (socket.AF_INET6, ("::ffff:10.0.0.2", 80, 0, 0))]
    with pytest.raises(socket.gaierror) as exc:
        await lookup(host, "v6.test", socket.AF_INET)
    assert exc.value.errno == socket.EAI_NONAME
    with pytest.raises(socket.gaierror) as exc:
        await lookup(host, "v6.test", 0, socket.AI_NUMERICHOST)
    assert exc.value.errno == socket.EAI_NONAME
    with pytest.raises(socket.gaierror) as exc:
        await lookup(host, "v6.test", socket.AF_PACKET)
    assert exc.value.args == (socket.EAI_FAMILY, "ai_family not supported")


async def test_no_host_gives_each_family_the_stack_has() -> None:
    v4_any, v6_any = (socket.AF_INET, ("0.0.0.0", 80)), (socket.AF_INET6, ("::", 80, 0, 0))
    v4_lo, v6_lo = (socket.AF_INET, ("127.0.0.1", 80)), (socket.AF_INET6, ("::1", 80, 0, 0))
    dual, v4only = Host(), Host(inet6=False)
    # glibc's order: the wildcards v4 first, the loopbacks v6 first
    assert await lookup(dual, None, 0, socket.AI_PASSIVE, "http") == [v4_any, v6_any]
    assert await lookup(dual, None, 0, 0, "http") == [v6_lo, v4_lo]
    assert await lookup(dual, None, socket.AF_INET6, 0, "http") == [v6_lo]
    assert await lookup(v4only, None, 0, socket.AI_PASSIVE, "http") == [v4_any]
    assert await lookup(v4only, None, 0, 0, "http") == [v4_lo]


async def test_getnameinfo_of_ipv6_addresses() -> None:
    resolver = StackResolver(Host())
    assert await resolver.getnameinfo(("2001:db8::1", 80, 0, 0), 0) == ("v6.test", "80")
    assert await resolver.getnameinfo(("2001:DB8:0::1", 80, 0, 0), 0) == ("v6.test", "80")
    assert await resolver.getnameinfo(("2001:db8::1", 80, 0, 0), socket.NI_NUMERICHOST) == ("2001:db8::1", "80")
    assert await resolver.getnameinfo(("fe80::1", 80, 0, 4), 0) == ("fe80::1%4", "80")
    with pytest.raises(socket.gaierror):
        await resolver.getnameinfo(("2001:db8::2", 80, 0, 0), socket.NI_NAMEREQD)


async def test_trio_getaddrinfo_reaches_the_table_for_names() -> None:
    host = Host()
    with tunstack_sockets(host):
        assert shapes(await trio.socket.getaddrinfo("v6.test", 443, type=STREAM)) == [
            (socket.AF_INET6, ("2001:db8::1", 443, 0, 0))]
        # literals: trio asks the stdlib first (AI_NUMERICHOST), with the same answer
        assert shapes(await trio.socket.getaddrinfo("2001:db8::1", 443, type=STREAM)) == [
            (socket.AF_INET6, ("2001:db8::1", 443, 0, 0))]


async def test_open_tcp_stream_to_an_ipv6_literal_and_name() -> None:
    host = Host()
    ops = host.requests[(socket.AF_INET6, STREAM)]
    with tunstack_sockets(host):
        stream = await trio.open_tcp_stream("2001:db8::1", 8080)
        assert stream.socket.family == socket.AF_INET6
        assert stream.socket.getpeername() == ("2001:db8::1", 8080, 0, 0)
        await stream.aclose()
        stream = await trio.open_tcp_stream("v6.test", 8081)
        await stream.aclose()
    connects = [c[1] for c in ops.calls if c[0] == "connect"]
    assert connects == [(V6_TEST, 8080, 0, 0), (V6_TEST, 8081, 0, 0)]


async def test_serve_tcp_on_the_ipv6_wildcard() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await stream.aclose()

    host = Host()
    ops = host.requests[(socket.AF_INET6, STREAM)]
    async with trio.open_nursery() as nursery:
        with tunstack_sockets(host):
            listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 8080, host="::"))
        assert len(listeners) == 1
        assert listeners[0].socket.getsockname() == ("::", 8080, 0, 0)
        nursery.cancel_scope.cancel()
    v6only = [c for c in ops.calls if c[0] == "setsockopt" and c[1:3] == (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)]
    assert v6only == [("setsockopt", socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)]   # trio's listeners are V6ONLY
    assert ("bind", (0, 8080, 0, 0)) in ops.calls


async def test_stdlib_ipv6_listener_is_adopted_when_the_stack_has_ipv6() -> None:
    host = Host()
    ops = host.requests[(socket.AF_INET6, STREAM)]
    kernel = socket.socket(socket.AF_INET6, STREAM)
    kernel.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    kernel.bind(("::1", 0))
    kernel.listen()
    port = kernel.getsockname()[1]
    with tunstack_sockets(host):
        adopted = trio.socket.from_stdlib_socket(kernel)
    try:
        assert isinstance(adopted, TrioSocket) and adopted.family == socket.AF_INET6
        assert ops.calls[:2] == [("setsockopt", socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1), ("bind", (1, port, 0, 0))]
        assert adopted.getsockname() == ("::1", port, 0, 0)
        # the kernel socket stays as the port's placeholder: bound, V6ONLY as before, not listening
        assert kernel.getsockname()[:2] == ("::1", port)
        assert kernel.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
        assert kernel.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    finally:
        adopted.close()
    assert kernel.fileno() == -1


async def test_stdlib_ipv6_socket_is_left_to_the_kernel_without_stack_ipv6() -> None:
    kernel = socket.socket(socket.AF_INET6, STREAM)
    try:
        kernel.bind(("::1", 0))
        kernel.listen()
        with tunstack_sockets(Host(inet6=False)):
            wrapped = trio.socket.from_stdlib_socket(kernel)
        assert not isinstance(wrapped, TrioSocket)
        assert kernel.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        kernel.close()


async def test_kernel_bind_to_a_stack_ipv6_address_is_retried_with_freebind() -> None:
    host = Host()      # its recording AF_INET6 entries accept any bind: the stack "owns" 2001:db8::99
    with tunstack_sockets(host), socket.socket(socket.AF_INET6, STREAM) as kernel:
        kernel.bind(("2001:db8::99", 0))
        assert kernel.getsockname()[0] == "2001:db8::99"
    probes = [c for c in host.requests[(socket.AF_INET6, socket.SOCK_DGRAM)].calls if c[0] == "bind"]
    assert probes == [("bind", (0x2001_0DB8 << 96 | 0x99, 0, 0, 0))]
    with tunstack_sockets(Host(inet6=False)), socket.socket(socket.AF_INET6, STREAM) as kernel:
        with pytest.raises(OSError) as exc:
            kernel.bind(("2001:db8::99", 0))       # no IPv6 on the stack: the kernel's answer stands
        assert exc.value.errno == errno.EADDRNOTAVAIL
