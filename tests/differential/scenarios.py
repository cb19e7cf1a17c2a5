"""The differential scenario table: the same socket calls against Linux and tunstack.

A scenario is a list of steps over named sockets.  A step is `(op, sock, *args)` or
`("sleep", seconds)`.  Addresses are written symbolically -- "LOCAL" (the host under
test), "PEER" (the far end, running a UDP echo on ECHO_PORT and nothing on
CLOSED_PORT) -- and substituted by the runner (tests/differential/runner.py), which
also normalises every outcome so the two lists can be compared with ==.

Ops: socket (spec "dgram" or a (family, type, proto) tuple), bind, connect, disconnect
(connect to AF_UNSPEC), send, sendto, recv/recvfrom (bufsize[, flags[, timeout]] --
"timeout" if nothing arrives), getsockname, getpeername, setsockopt, getsockopt,
listen, shutdown, close, sleep.
"""
from __future__ import annotations

import socket as S
from typing import Any

LOCAL, PEER, OTHER = "10.88.0.1", "10.88.0.2", "10.88.0.7"   # OTHER: on the subnet, nobody's
SUBNET_BCAST = "10.88.0.255"
ECHO_PORT, CLOSED_PORT = 7777, 7778
PORT1, PORT2 = 40001, 40002          # fixed ports below the ephemeral range
SETTLE = 0.2                         # long enough for an ICMP error to come back

Step = tuple[Any, ...]

SCENARIOS: dict[str, list[Step]] = {
    "bind_twice": [
        ("socket", "a", "dgram"), ("bind", "a", ("LOCAL", 0)), ("bind", "a", ("LOCAL", 0)),
        ("bind", "a", ("", PORT1)), ("getsockname", "a")],
    "bind_in_use": [
        ("socket", "a", "dgram"), ("socket", "b", "dgram"),
        ("bind", "a", ("LOCAL", PORT1)), ("bind", "b", ("LOCAL", PORT1)),
        ("bind", "b", ("", PORT1)), ("bind", "b", ("LOCAL", PORT2)), ("getsockname", "b")],
    "bind_wildcard_then_specific": [
        ("socket", "a", "dgram"), ("socket", "b", "dgram"), ("socket", "c", "dgram"),
        ("bind", "a", ("", PORT1)), ("bind", "b", ("LOCAL", PORT1)), ("bind", "c", ("127.0.0.1", PORT1))],
    "reuseaddr_both": [
        ("socket", "a", "dgram"), ("socket", "b", "dgram"),
        ("setsockopt", "a", S.SOL_SOCKET, S.SO_REUSEADDR, 1), ("setsockopt", "b", S.SOL_SOCKET, S.SO_REUSEADDR, 1),
        ("bind", "a", ("LOCAL", PORT1)), ("bind", "b", ("LOCAL", PORT1)),
        ("getsockopt", "b", S.SOL_SOCKET, S.SO_REUSEADDR)],
    "reuseaddr_one_side": [
        ("socket", "a", "dgram"), ("socket", "b", "dgram"), ("socket", "c", "dgram"),
        ("setsockopt", "b", S.SOL_SOCKET, S.SO_REUSEADDR, 1),
        ("bind", "a", ("LOCAL", PORT1)), ("bind", "b", ("LOCAL", PORT1)),
        ("setsockopt", "c", S.SOL_SOCKET, S.SO_REUSEADDR, 1), ("bind", "c", ("LOCAL", PORT2)),
        ("bind", "a", ("LOCAL", PORT2))],
    "reuseport": [
        ("socket", "a", "dgram"), ("socket", "b", "dgram"), ("socket", "c", "dgram"),
        ("setsockopt", "a", S.SOL_SOCKET, S.SO_REUSEPORT, 1), ("setsockopt", "b", S.SOL_SOCKET, S.SO_REUSEPORT, 1),
        ("bind", "a", ("", PORT1)), ("bind", "b", ("", PORT1)), ("bind", "c", ("", PORT1)),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_REUSEPORT)],
    "bind_nonlocal": [
        ("socket", "a", "dgram"), ("bind", "a", (OTHER, 0)), ("bind", "a", ("PEER", PORT1)),
        ("bind", "a", ("LOCAL", PORT1)), ("getsockname", "a")],
    "send_unconnected": [
        ("socket", "a", "dgram"), ("send", "a", b"x"), ("bind", "a", ("LOCAL", 0)), ("send", "a", b"x")],
    "names_unconnected": [
        ("socket", "a", "dgram"), ("getsockname", "a"), ("getpeername", "a"),
        ("bind", "a", ("", 0)), ("getsockname", "a"), ("getpeername", "a")],
    "connect_autobinds": [
        ("socket", "a", "dgram"), ("connect", "a", ("PEER", ECHO_PORT)), ("getsockname", "a"),
        ("getpeername", "a"), ("connect", "a", ("PEER", CLOSED_PORT)), ("getpeername", "a")],
    "connect_unreachable_keeps_nothing": [
        ("socket", "a", "dgram"), ("connect", "a", ("192.0.2.1", 9)), ("getsockname", "a"),
        ("getpeername", "a"), ("sendto", "a", b"x", ("192.0.2.1", 9))],
    "connected_echo": [
        ("socket", "a", "dgram"), ("connect", "a", ("PEER", ECHO_PORT)), ("send", "a", b"hello"),
        ("recvfrom", "a", 100), ("send", "a", b""), ("recv", "a", 100)],
    "unconnected_echo_recvfrom": [
        ("socket", "a", "dgram"), ("bind", "a", ("LOCAL", PORT1)),
        ("sendto", "a", b"ping", ("PEER", ECHO_PORT)), ("recvfrom", "a", 100),
        ("sendto", "a", b"ping", 0, ("PEER", ECHO_PORT)), ("recvfrom", "a", 100, 0)],
    "refused_then_send": [
        ("socket", "a", "dgram"), ("connect", "a", ("PEER", CLOSED_PORT)), ("send", "a", b"x"),
        ("sleep", SETTLE), ("send", "a", b"x"), ("send", "a", b"x"), ("getsockname", "a")],
    "refused_then_recv": [
        ("socket", "a", "dgram"), ("connect", "a", ("PEER", CLOSED_PORT)), ("send", "a", b"x"),
        ("sleep", SETTLE), ("recv", "a", 100), ("recv", "a", 100, 0, 0.2)],
    "refused_so_error": [
        ("socket", "a", "dgram"), ("connect", "a", ("PEER", CLOSED_PORT)), ("send", "a", b"x"),
        ("sleep", SETTLE), ("getsockopt", "a", S.SOL_SOCKET, S.SO_ERROR),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_ERROR), ("send", "a", b"x")],
    "refused_then_reconnect": [
        ("socket", "a", "dgram"), ("connect", "a", ("PEER", CLOSED_PORT)), ("send", "a", b"x"),
        ("sleep", SETTLE), ("connect", "a", ("PEER", ECHO_PORT)), ("send", "a", b"y"), ("recv", "a", 10)],
    "unconnected_hears_no_refusal": [
        ("socket", "a", "dgram"), ("sendto", "a", b"x", ("PEER", CLOSED_PORT)), ("sleep", SETTLE),
        ("sendto", "a", b"x", ("PEER", CLOSED_PORT)), ("recv", "a", 10, 0, 0.2)],
    "listen_dgram": [
        ("socket", "a", "dgram"), ("listen", "a", 5), ("bind", "a", ("LOCAL", 0)), ("listen", "a")],
    "broadcast_needs_so_broadcast": [
        ("socket", "a", "dgram"), ("sendto", "a", b"x", (SUBNET_BCAST, PORT1)),
        ("connect", "a", (SUBNET_BCAST, PORT1)), ("getsockopt", "a", S.SOL_SOCKET, S.SO_BROADCAST),
        ("setsockopt", "a", S.SOL_SOCKET, S.SO_BROADCAST, 1), ("sendto", "a", b"x", (SUBNET_BCAST, PORT1)),
        ("connect", "a", (SUBNET_BCAST, PORT1)), ("getpeername", "a")],
    "limited_broadcast_without_route": [   # no default route: Linux cannot route 255.255.255.255
        ("socket", "a", "dgram"), ("sendto", "a", b"x", ("<broadcast>", PORT1)),
        ("sendto", "a", b"x", ("255.255.255.255", PORT1)), ("connect", "a", ("255.255.255.255", PORT1))],
    "emsgsize": [
        ("socket", "a", "dgram"), ("sendto", "a", bytes(65508), ("PEER", ECHO_PORT)),
        ("send", "a", bytes(70000)), ("sendto", "a", bytes(65508), ("192.0.2.1", 9)),
        ("connect", "a", ("PEER", ECHO_PORT)), ("send", "a", bytes(65508)), ("send", "a", bytes(65507)),
        ("recv", "a", 70000)],
    "fragmented_echo": [
        ("socket", "a", "dgram"), ("connect", "a", ("PEER", ECHO_PORT)),
        ("send", "a", bytes(range(256)) * 16), ("recv", "a", 65535),
        ("send", "a", b"\x5a" * 1473), ("recv", "a", 65535)],
    "use_after_close": [
        ("socket", "a", "dgram"), ("bind", "a", ("LOCAL", PORT1)), ("close", "a"), ("close", "a"),
        ("send", "a", b"x"), ("sendto", "a", b"x", ("PEER", ECHO_PORT)), ("recv", "a", 10),
        ("getsockname", "a"), ("bind", "a", ("LOCAL", 0)), ("connect", "a", ("PEER", ECHO_PORT)),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_TYPE),
        ("socket", "b", "dgram"), ("bind", "b", ("LOCAL", PORT1))],   # the port is free again
    "truncating_recv": [
        ("socket", "a", "dgram"), ("connect", "a", ("PEER", ECHO_PORT)), ("send", "a", b"0123456789"),
        ("send", "a", b"abc"), ("sleep", SETTLE), ("recv", "a", 4), ("recv", "a", 100),
        ("recv", "a", 100, 0, 0.2)],
    "peek": [
        ("socket", "a", "dgram"), ("connect", "a", ("PEER", ECHO_PORT)), ("send", "a", b"peekaboo"),
        ("recv", "a", 4, S.MSG_PEEK), ("recvfrom", "a", 100, S.MSG_PEEK), ("recv", "a", 100),
        ("recv", "a", 100, S.MSG_DONTWAIT, 0.0)],
    "connected_filters_other_sources": [
        ("socket", "a", "dgram"), ("socket", "b", "dgram"), ("bind", "a", ("LOCAL", PORT1)),
        ("connect", "a", ("PEER", ECHO_PORT)), ("bind", "b", ("LOCAL", PORT2)),
        ("sendto", "b", b"from-b", ("LOCAL", PORT1)), ("recv", "a", 100, 0, 0.2),
        ("send", "a", b"from-peer"), ("recvfrom", "a", 100)],
    "disconnect": [
        ("socket", "a", "dgram"), ("connect", "a", ("PEER", ECHO_PORT)), ("disconnect", "a"),
        ("send", "a", b"x"), ("getpeername", "a"), ("getsockname", "a"),
        ("bind", "a", ("LOCAL", PORT1)), ("connect", "a", ("PEER", ECHO_PORT)), ("disconnect", "a"),
        ("getsockname", "a"), ("disconnect", "a")],
    "shutdown": [
        ("socket", "a", "dgram"), ("shutdown", "a", S.SHUT_RDWR), ("shutdown", "a", 7),
        ("connect", "a", ("PEER", ECHO_PORT)), ("shutdown", "a", S.SHUT_WR), ("send", "a", b"x"),
        ("shutdown", "a", S.SHUT_RD), ("recv", "a", 10, 0, 0.2)],
    "getsockopt_basics": [
        ("socket", "a", "dgram"), ("getsockopt", "a", S.SOL_SOCKET, S.SO_TYPE),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_ERROR), ("getsockopt", "a", S.SOL_SOCKET, S.SO_DOMAIN),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_PROTOCOL), ("getsockopt", "a", S.SOL_SOCKET, S.SO_REUSEADDR),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_RCVBUF), ("getsockopt", "a", S.SOL_SOCKET, S.SO_TYPE, 4),
        ("getsockopt", "a", S.IPPROTO_IP, S.IP_TTL), ("setsockopt", "a", S.IPPROTO_IP, S.IP_TTL, 0),
        ("setsockopt", "a", S.IPPROTO_IP, S.IP_TTL, 9), ("getsockopt", "a", S.IPPROTO_IP, S.IP_TTL)],
    "unknown_options": [
        ("socket", "a", "dgram"), ("setsockopt", "a", S.SOL_SOCKET, 9999, 1),
        ("getsockopt", "a", S.SOL_SOCKET, 9999), ("setsockopt", "a", S.IPPROTO_UDP, 9999, 1),
        ("setsockopt", "a", S.SOL_SOCKET, S.SO_TYPE, 1), ("setsockopt", "a", S.SOL_SOCKET, S.SO_REUSEADDR, "x")],
    "so_rcvbuf_doubles": [
        ("socket", "a", "dgram"), ("setsockopt", "a", S.SOL_SOCKET, S.SO_RCVBUF, 4096),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_RCVBUF), ("setsockopt", "a", S.SOL_SOCKET, S.SO_RCVBUF, 1),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_RCVBUF), ("setsockopt", "a", S.SOL_SOCKET, S.SO_SNDBUF, 1),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_SNDBUF),
        ("setsockopt", "a", S.SOL_SOCKET, S.SO_RCVBUF, (100000).to_bytes(4, "little")),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_RCVBUF)],
    "bad_addresses": [
        ("socket", "a", "dgram"), ("bind", "a", "LOCAL"), ("bind", "a", ("LOCAL",)),
        ("bind", "a", ("LOCAL", 70000)), ("bind", "a", ("LOCAL", -1)), ("bind", "a", ("LOCAL", "80")),
        ("bind", "a", (None, 80)), ("connect", "a", ["PEER", ECHO_PORT]), ("sendto", "a", b"x", "PEER"),
        ("sendto", "a", b"x", ("PEER", 0)), ("sendto", "a", "text", ("PEER", ECHO_PORT)),
        ("recv", "a", -1), ("getsockname", "a")],
    "socket_errors": [
        ("socket", "a", (S.AF_INET, S.SOCK_DGRAM, S.IPPROTO_TCP)), ("socket", "b", (S.AF_INET, S.SOCK_DGRAM, 300)),
        ("socket", "c", (S.AF_INET, 99, 0)),
        ("socket", "e", (S.AF_INET, S.SOCK_SEQPACKET, 0)), ("socket", "f", (9999, S.SOCK_DGRAM, 0)),
        ("socket", "g", (S.AF_INET, S.SOCK_DGRAM | S.SOCK_NONBLOCK, 0)), ("getsockopt", "g", S.SOL_SOCKET, S.SO_TYPE), ("socket", "d", (S.AF_INET, S.SOCK_DGRAM, S.IPPROTO_UDP)),
        ("getsockopt", "d", S.SOL_SOCKET, S.SO_PROTOCOL)],
}
