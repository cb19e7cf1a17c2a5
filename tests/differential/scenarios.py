"""The differential scenario table: the same socket calls against Linux and tunstack.

A scenario is a list of steps over named sockets.  A step is `(op, sock, *args)` or
`("sleep", seconds)`.  Addresses are written symbolically -- "LOCAL" (the host under
test), "PEER" (the far end, running a UDP and a TCP echo on ECHO_PORT and nothing on
CLOSED_PORT; the TCP echo closes its side after the client's FIN) -- and substituted
by the runner (tests/differential/runner.py), which also normalises every outcome so
the two lists can be compared with ==.

Ops: socket (spec "dgram", "stream", "dgram6", "stream6" -- the last two AF_INET6 -- or a
(family, type, proto) tuple), bind, connect,
disconnect (connect to AF_UNSPEC), send, sendall, sendto, recv/recvfrom (bufsize[, flags[,
timeout]] -- "timeout" if nothing arrives), accept (listener, name for the accepted
socket[, timeout]; the outcome is the peer address), getsockname, getpeername,
setsockopt, getsockopt, listen, shutdown, close, sleep.

Stream scenarios each use their own fixed ports (TP + n): a connection closed at the end
of one scenario may linger in TIME-WAIT on its port, which would change the next
scenario's bind outcome.
"""
from __future__ import annotations

import socket as S
from typing import Any

LOCAL, PEER, OTHER = "10.88.0.1", "10.88.0.2", "10.88.0.7"   # OTHER: on the subnet, nobody's
LOCAL6, PEER6, OTHER6 = "fd00:88::1", "fd00:88::2", "fd00:88::7"
LOCALLL, PEERLL = "fe80::88:1", "fe80::88:2"     # link-local, on the interface joining them
UNROUTABLE6 = "2001:db8::1"                      # no route (neither side has a default route)
SUBNET_BCAST = "10.88.0.255"
ECHO_PORT, CLOSED_PORT = 7777, 7778
PORT1, PORT2 = 40001, 40002          # fixed ports below the ephemeral range
SETTLE = 0.2                         # long enough for an ICMP error to come back
TP = 30100                           # stream scenarios: TP + n (below the ephemeral range)
LINGER0 = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")    # struct linger {1, 0}: close sends RST
TCP_INQ = 36                         # linux/tcp.h (not in Python's socket module)

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
        ("socket", "g", (S.AF_INET, S.SOCK_DGRAM | S.SOCK_NONBLOCK, 0)), ("getsockopt", "g", S.SOL_SOCKET, S.SO_TYPE),
        ("socket", "d", (S.AF_INET, S.SOCK_DGRAM, S.IPPROTO_UDP)), ("getsockopt", "d", S.SOL_SOCKET, S.SO_PROTOCOL)],
}

# --- stream sockets (TCP) ------------------------------------------------------------------
STREAM_SCENARIOS: dict[str, list[Step]] = {
    "tcp_unconnected": [
        ("socket", "a", "stream"), ("send", "a", b"x"), ("sendall", "a", b"x"), ("recv", "a", 10),
        ("recvfrom", "a", 10), ("getpeername", "a"), ("getsockname", "a"), ("shutdown", "a", S.SHUT_WR),
        ("shutdown", "a", S.SHUT_RD), ("shutdown", "a", S.SHUT_RDWR), ("shutdown", "a", 7),
        ("sendto", "a", b"x", ("PEER", ECHO_PORT)), ("accept", "a", "b"),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_ERROR)],
    "tcp_connect_refused": [
        ("socket", "a", "stream"), ("connect", "a", ("PEER", CLOSED_PORT)), ("getpeername", "a"),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_ERROR), ("send", "a", b"x"), ("recv", "a", 10),
        ("shutdown", "a", S.SHUT_WR), ("connect", "a", ("PEER", CLOSED_PORT)), ("connect", "a", ("PEER", ECHO_PORT)),
        ("getpeername", "a"),
        ("getsockname", "a"), ("send", "a", b"again"), ("recv", "a", 100)],
    "tcp_connect_refused_keeps_bound_name": [
        ("socket", "a", "stream"), ("bind", "a", ("LOCAL", TP + 1)), ("connect", "a", ("PEER", CLOSED_PORT)),
        ("getsockname", "a"), ("connect", "a", ("PEER", ECHO_PORT)), ("getsockname", "a"), ("getpeername", "a")],
    "tcp_connect_names": [
        ("socket", "a", "stream"), ("connect", "a", ("PEER", ECHO_PORT)), ("getsockname", "a"),
        ("getpeername", "a"), ("getsockopt", "a", S.SOL_SOCKET, S.SO_ERROR),
        ("connect", "a", ("PEER", ECHO_PORT)), ("connect", "a", ("PEER", CLOSED_PORT)),
        ("bind", "a", ("LOCAL", 0)), ("listen", "a", 5), ("accept", "a", "b"),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_ACCEPTCONN)],
    "tcp_echo_half_close": [
        ("socket", "a", "stream"), ("connect", "a", ("PEER", ECHO_PORT)), ("send", "a", b"hello"),
        ("recv", "a", 100), ("sendall", "a", b"world"), ("recvfrom", "a", 100), ("send", "a", b""),
        ("shutdown", "a", S.SHUT_WR), ("send", "a", b"x"), ("recv", "a", 100), ("recv", "a", 100),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_ERROR)],
    "tcp_names_after_close_exchange": [   # both FINs exchanged: our side is in TIME-WAIT
        ("socket", "a", "stream"), ("connect", "a", ("PEER", ECHO_PORT)), ("shutdown", "a", S.SHUT_WR),
        ("recv", "a", 100), ("sleep", SETTLE), ("getpeername", "a"), ("getsockname", "a"), ("send", "a", b"x"),
        ("recv", "a", 100), ("shutdown", "a", S.SHUT_WR), ("shutdown", "a", S.SHUT_RDWR),
        ("connect", "a", ("PEER", ECHO_PORT)), ("listen", "a")],
    "tcp_recv_is_a_stream": [
        ("socket", "a", "stream"), ("connect", "a", ("PEER", ECHO_PORT)), ("send", "a", b"0123456789"),
        ("send", "a", b"abc"), ("sleep", SETTLE), ("recv", "a", 4, S.MSG_PEEK), ("recv", "a", 4),
        ("recv", "a", 100), ("recv", "a", 100, S.MSG_DONTWAIT, 0.0), ("recv", "a", 100, 0, 0.2),
        ("recv", "a", 0)],
    "tcp_sendto_connected": [
        ("socket", "a", "stream"), ("connect", "a", ("PEER", ECHO_PORT)),
        ("sendto", "a", b"x", ("PEER", ECHO_PORT)), ("sendto", "a", b"y", ("PEER", CLOSED_PORT)),
        ("sendto", "a", b"z", 0, ("LOCAL", 9)), ("sendto", "a", b"!", "PEER"), ("sendto", "a", b"!", "x", ("PEER", 1)),
        ("sleep", SETTLE), ("recv", "a", 100)],
    "tcp_shutdown_connected": [
        ("socket", "a", "stream"), ("connect", "a", ("PEER", ECHO_PORT)), ("shutdown", "a", 7),
        ("shutdown", "a", S.SHUT_RD), ("recv", "a", 10), ("send", "a", b"abc"), ("sleep", SETTLE),
        ("recv", "a", 10), ("recv", "a", 10), ("shutdown", "a", S.SHUT_WR), ("send", "a", b"x"),
        ("sleep", SETTLE), ("getpeername", "a"), ("shutdown", "a", S.SHUT_RDWR)],   # past TIME-WAIT: CLOSE
    "tcp_listen_connect_accept_local": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("bind", "a", ("LOCAL", TP + 2)),
        ("listen", "a", 5), ("getsockopt", "a", S.SOL_SOCKET, S.SO_ACCEPTCONN), ("getsockname", "a"),
        ("getpeername", "a"), ("recv", "a", 10), ("send", "a", b"x"),
        ("connect", "b", ("LOCAL", TP + 2)), ("getsockname", "b"), ("getpeername", "b"),
        ("accept", "a", "c"), ("getsockname", "c"), ("getpeername", "c"),
        ("getsockopt", "c", S.SOL_SOCKET, S.SO_ACCEPTCONN), ("send", "b", b"ping"), ("recv", "c", 100),
        ("send", "c", b"pong"), ("recv", "b", 100), ("accept", "a", "d", 0.2)],
    "tcp_peer_close_then_send": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("bind", "a", ("LOCAL", TP + 3)),
        ("listen", "a", 5), ("connect", "b", ("LOCAL", TP + 3)), ("accept", "a", "c"),
        ("close", "c"), ("recv", "b", 100), ("recv", "b", 100), ("send", "b", b"x"), ("sleep", SETTLE),
        ("send", "b", b"x"), ("getsockopt", "b", S.SOL_SOCKET, S.SO_ERROR), ("send", "b", b"x"),
        ("recv", "b", 100), ("getpeername", "b"), ("shutdown", "b", S.SHUT_RD)],
    "tcp_close_with_unread_data_resets": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("bind", "a", ("LOCAL", TP + 4)),
        ("listen", "a", 5), ("connect", "b", ("LOCAL", TP + 4)), ("accept", "a", "c"),
        ("send", "b", b"unread"), ("sleep", SETTLE), ("close", "c"), ("sleep", SETTLE),
        ("recv", "b", 100), ("recv", "b", 100), ("send", "b", b"x"), ("getsockopt", "b", S.SOL_SOCKET, S.SO_ERROR),
        ("getpeername", "b"), ("shutdown", "b", S.SHUT_WR), ("connect", "b", ("LOCAL", TP + 4))],
    "tcp_linger0_resets": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("bind", "a", ("LOCAL", TP + 5)),
        ("listen", "a", 5), ("connect", "b", ("LOCAL", TP + 5)), ("accept", "a", "c"),
        ("setsockopt", "c", S.SOL_SOCKET, S.SO_LINGER, LINGER0),
        ("getsockopt", "c", S.SOL_SOCKET, S.SO_LINGER, 8), ("close", "c"), ("sleep", SETTLE),
        ("getsockopt", "b", S.SOL_SOCKET, S.SO_ERROR), ("recv", "b", 100), ("send", "b", b"x")],
    "tcp_listen_loopback": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("socket", "d", "stream"),
        ("bind", "a", ("127.0.0.1", TP + 6)), ("listen", "a"), ("connect", "b", ("127.0.0.1", TP + 6)),
        ("getsockname", "b"), ("accept", "a", "c"), ("getpeername", "c"), ("getsockname", "c"),
        ("connect", "b", ("LOCAL", TP + 6)), ("connect", "d", ("LOCAL", TP + 6))],
    "tcp_connect_any_means_this_host": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("bind", "a", ("", TP + 7)), ("listen", "a"),
        ("connect", "b", ("", TP + 7)), ("getpeername", "b"), ("getsockname", "b"), ("accept", "a", "c"),
        ("getsockname", "c")],
    "tcp_listen_states": [
        ("socket", "a", "stream"), ("listen", "a", 3), ("getsockname", "a"), ("listen", "a", 10),
        ("bind", "a", ("LOCAL", 0)), ("connect", "a", ("PEER", ECHO_PORT)), ("send", "a", b"x"),
        ("sendto", "a", b"x", ("PEER", ECHO_PORT)), ("recv", "a", 10), ("getpeername", "a"),
        ("accept", "a", "b", 0.2)],
    "tcp_shutdown_listener": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("bind", "a", ("LOCAL", TP + 8)), ("listen", "a"),
        ("shutdown", "a", S.SHUT_WR), ("getsockopt", "a", S.SOL_SOCKET, S.SO_ACCEPTCONN),
        ("shutdown", "a", S.SHUT_RD), ("getsockopt", "a", S.SOL_SOCKET, S.SO_ACCEPTCONN),
        ("accept", "a", "c", 0.2), ("connect", "b", ("LOCAL", TP + 8)), ("shutdown", "a", S.SHUT_RD),
        ("getsockname", "a"), ("listen", "a"), ("getsockopt", "a", S.SOL_SOCKET, S.SO_ACCEPTCONN),
        ("socket", "d", "stream"), ("connect", "d", ("LOCAL", TP + 8)), ("accept", "a", "e")],
    "tcp_listen_on_connected_and_accept_unlistened": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("connect", "a", ("PEER", ECHO_PORT)),
        ("listen", "a", 5), ("accept", "a", "c"), ("bind", "b", ("LOCAL", TP + 9)), ("accept", "b", "d"),
        ("getsockopt", "b", S.SOL_SOCKET, S.SO_ACCEPTCONN)],
    "tcp_bind": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("socket", "c", "stream"),
        ("bind", "a", ("LOCAL", TP + 10)), ("bind", "a", ("LOCAL", TP + 10)), ("bind", "a", ("LOCAL", 0)),
        ("bind", "b", ("LOCAL", TP + 10)), ("bind", "b", ("", TP + 10)), ("bind", "b", ("127.0.0.1", TP + 10)),
        ("getsockname", "b"), ("bind", "c", (OTHER, 0)), ("bind", "c", ("PEER", TP + 10)),
        ("bind", "c", ("LOCAL", 0)), ("getsockname", "c")],
    "tcp_bind_in_use_by_connection": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("connect", "a", ("PEER", ECHO_PORT)),
        ("getsockname", "a"), ("bind", "b", ("LOCAL", 0)), ("getsockname", "b")],
    "tcp_reuseaddr_rules": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("socket", "c", "stream"), ("socket", "d", "stream"),
        ("setsockopt", "a", S.SOL_SOCKET, S.SO_REUSEADDR, 1), ("setsockopt", "b", S.SOL_SOCKET, S.SO_REUSEADDR, 1),
        ("setsockopt", "c", S.SOL_SOCKET, S.SO_REUSEADDR, 1),
        ("bind", "a", ("LOCAL", TP + 11)), ("bind", "b", ("LOCAL", TP + 11)), ("listen", "a"), ("listen", "b"),
        ("bind", "c", ("LOCAL", TP + 11)), ("bind", "c", ("", TP + 11)), ("bind", "d", ("", TP + 11)),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_REUSEADDR)],
    "tcp_reuseaddr_one_side": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("setsockopt", "b", S.SOL_SOCKET, S.SO_REUSEADDR, 1),
        ("bind", "a", ("LOCAL", TP + 12)), ("bind", "b", ("LOCAL", TP + 12))],
    "tcp_reuseaddr_after_listener_closed": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("socket", "c", "stream"),
        ("bind", "a", ("LOCAL", TP + 13)), ("listen", "a"), ("close", "a"), ("bind", "b", ("LOCAL", TP + 13)),
        ("listen", "b"), ("bind", "c", ("LOCAL", TP + 13))],
    "tcp_reuseaddr_over_accepted": [   # the accepted socket inherits SO_REUSEADDR (issue 14, point 11)
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("socket", "c", "stream"), ("socket", "e", "stream"),
        ("setsockopt", "a", S.SOL_SOCKET, S.SO_REUSEADDR, 1), ("bind", "a", ("LOCAL", TP + 31)), ("listen", "a"),
        ("connect", "b", ("LOCAL", TP + 31)), ("accept", "a", "d"), ("getsockopt", "d", S.SOL_SOCKET, S.SO_REUSEADDR),
        ("close", "a"), ("bind", "c", ("LOCAL", TP + 31)), ("setsockopt", "e", S.SOL_SOCKET, S.SO_REUSEADDR, 1),
        ("bind", "e", ("LOCAL", TP + 31)), ("listen", "e")],
    "tcp_urgent_data": [              # MSG_OOB, SO_OOBINLINE and their errnos (issue 14, urgent data)
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("socket", "c", "stream"),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_OOBINLINE), ("recv", "a", 1, S.MSG_OOB), ("send", "a", b"x", S.MSG_OOB),
        ("bind", "a", ("LOCAL", TP + 41)), ("listen", "a"), ("recv", "a", 1, S.MSG_OOB),
        ("connect", "b", ("LOCAL", TP + 41)), ("accept", "a", "d"), ("recv", "d", 1, S.MSG_OOB),
        ("send", "b", b"ab", S.MSG_OOB), ("sleep", SETTLE), ("recv", "d", 10), ("recv", "d", 1, S.MSG_OOB),
        ("recv", "d", 1, S.MSG_OOB), ("setsockopt", "d", S.SOL_SOCKET, S.SO_OOBINLINE, 1),
        ("getsockopt", "d", S.SOL_SOCKET, S.SO_OOBINLINE), ("send", "b", b"cd", S.MSG_OOB), ("sleep", SETTLE),
        ("recv", "d", 1, S.MSG_OOB), ("recv", "d", 10), ("recv", "d", 10)],
    "tcp_cork_quickack_send_flags": [  # TCP_CORK, TCP_QUICKACK, MSG_MORE / MSG_EOR (issue 14, point 1)
        ("socket", "a", "stream"), ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_CORK),
        ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_CORK, 1), ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_CORK),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_QUICKACK), ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_QUICKACK, 0),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_QUICKACK), ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_QUICKACK, 1),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_QUICKACK), ("connect", "a", ("PEER", ECHO_PORT)),
        ("send", "a", b"par", S.MSG_MORE), ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_CORK, 0),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_CORK), ("send", "a", b"t", S.MSG_EOR), ("sleep", SETTLE),
        ("recv", "a", 100)],
    "tcp_maxseg_before_connect": [     # the SYN offers it, the route does not override it (issue 14, 2)
        ("socket", "a", "stream"), ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_MAXSEG, 1100),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_MAXSEG), ("connect", "a", ("PEER", ECHO_PORT)),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_MAXSEG), ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_MAXSEG, 80)],
    "tcp_fastopen_options": [          # TCP Fast Open's options and MSG_FASTOPEN (issue 14, TFO); 30 is
        # TCP_FASTOPEN_CONNECT (not in Python's socket module).  The peer's server side is
        # off (Linux's default): the cookie request gets none, the data goes after the handshake
        ("socket", "a", "stream"), ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_FASTOPEN),
        ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_FASTOPEN, 5), ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_FASTOPEN),
        ("setsockopt", "a", S.IPPROTO_TCP, 30, 2), ("setsockopt", "a", S.IPPROTO_TCP, 30, 1),
        ("getsockopt", "a", S.IPPROTO_TCP, 30), ("sendto", "a", b"ping", S.MSG_FASTOPEN, ("PEER", ECHO_PORT)),
        ("recv", "a", 100), ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_FASTOPEN, 1),
        ("setsockopt", "a", S.IPPROTO_TCP, 30, 0),
        ("sendto", "a", b"pong", S.MSG_FASTOPEN, ("PEER", ECHO_PORT)), ("recv", "a", 100)],
    # issue 14's options: Linux's defaults (0), values read back, the EINVALs, the clone's copy
    "tcp_user_timeout_notsent_lowat_inq": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("bind", "a", ("LOCAL", TP + 32)),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_USER_TIMEOUT),
        ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_USER_TIMEOUT, -1),
        ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_USER_TIMEOUT, 30000),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_USER_TIMEOUT), ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_NOTSENT_LOWAT),
        ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_NOTSENT_LOWAT, -1),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_NOTSENT_LOWAT),
        ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_NOTSENT_LOWAT, 16384), ("getsockopt", "a", S.IPPROTO_TCP, TCP_INQ),
        ("setsockopt", "a", S.IPPROTO_TCP, TCP_INQ, 2), ("setsockopt", "a", S.IPPROTO_TCP, TCP_INQ, 1),
        ("listen", "a"), ("connect", "b", ("LOCAL", TP + 32)), ("accept", "a", "c"),
        ("getsockopt", "c", S.IPPROTO_TCP, S.TCP_USER_TIMEOUT), ("getsockopt", "c", S.IPPROTO_TCP, S.TCP_NOTSENT_LOWAT),
        ("getsockopt", "c", S.IPPROTO_TCP, TCP_INQ), ("getsockopt", "b", S.IPPROTO_TCP, S.TCP_USER_TIMEOUT),
        ("getsockopt", "b", S.IPPROTO_TCP, TCP_INQ)],
    # TCP_INQ's control message (issue 14): recvmsg's ancillary (SOL_TCP, TCP_CM_INQ, bytes
    # still queued -- plus one once the FIN is in), cut to the ancillary buffer with MSG_CTRUNC
    "tcp_inq_recvmsg": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("bind", "a", ("LOCAL", TP + 33)), ("listen", "a"),
        ("connect", "b", ("LOCAL", TP + 33)), ("accept", "a", "c"), ("send", "b", b"q" * 300), ("sleep", SETTLE),
        ("recvmsg", "c", 10), ("setsockopt", "c", S.IPPROTO_TCP, TCP_INQ, 1), ("recvmsg", "c", 10, -1),
        ("recvmsg", "c", 10, 0), ("recvmsg", "c", 10, 8), ("recvmsg", "c", 10, 16), ("recvmsg", "c", 10, 18),
        ("recvmsg", "c", 10, 20), ("recvmsg", "c", 10, 64), ("recvmsg", "c", 10, 64, S.MSG_PEEK),
        ("shutdown", "b", S.SHUT_WR), ("sleep", SETTLE), ("recvmsg", "c", 100, 64), ("recvmsg", "c", 1000, 64),
        ("recvmsg", "c", 1000, 64), ("setsockopt", "c", S.IPPROTO_TCP, TCP_INQ, 0), ("recvmsg", "c", 1000, 64)],
    # TCP_DEFER_ACCEPT (issue 14): seconds as SYN-ACK retransmissions and back; the listener
    # hands over the connection at its first data; the accepted socket does not inherit it
    "tcp_defer_accept": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_DEFER_ACCEPT),
        ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_DEFER_ACCEPT, 10),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_DEFER_ACCEPT),
        ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_DEFER_ACCEPT, -1),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_DEFER_ACCEPT),
        ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_DEFER_ACCEPT, 2), ("bind", "a", ("LOCAL", TP + 34)), ("listen", "a"),
        ("connect", "b", ("LOCAL", TP + 34)), ("send", "b", b"x"), ("accept", "a", "c"), ("recv", "c", 10),
        ("getsockopt", "c", S.IPPROTO_TCP, S.TCP_DEFER_ACCEPT), ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_DEFER_ACCEPT)],
    "tcp_reuseport": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("socket", "c", "stream"),
        ("setsockopt", "a", S.SOL_SOCKET, S.SO_REUSEPORT, 1), ("setsockopt", "b", S.SOL_SOCKET, S.SO_REUSEPORT, 1),
        ("bind", "a", ("", TP + 14)), ("bind", "b", ("", TP + 14)), ("listen", "a"), ("listen", "b"),
        ("bind", "c", ("", TP + 14))],
    "tcp_getsockopt": [
        ("socket", "a", "stream"), ("getsockopt", "a", S.SOL_SOCKET, S.SO_TYPE),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_ERROR), ("getsockopt", "a", S.SOL_SOCKET, S.SO_DOMAIN),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_PROTOCOL), ("getsockopt", "a", S.SOL_SOCKET, S.SO_ACCEPTCONN),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_NODELAY), ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_NODELAY, 1),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_NODELAY), ("getsockopt", "a", S.SOL_SOCKET, S.SO_KEEPALIVE),
        ("setsockopt", "a", S.SOL_SOCKET, S.SO_KEEPALIVE, 1), ("getsockopt", "a", S.SOL_SOCKET, S.SO_KEEPALIVE),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_KEEPIDLE), ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_KEEPINTVL),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_KEEPCNT), ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_KEEPIDLE, 0),
        ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_KEEPCNT, 5), ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_KEEPCNT),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_LINGER, 8), ("setsockopt", "a", S.SOL_SOCKET, S.SO_RCVBUF, 4096),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_RCVBUF), ("setsockopt", "a", S.SOL_SOCKET, S.SO_SNDBUF, 8192),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_SNDBUF), ("getsockopt", "a", S.IPPROTO_IP, S.IP_TTL),
        ("setsockopt", "a", S.IPPROTO_TCP, 9999, 1), ("getsockopt", "a", S.IPPROTO_TCP, 9999),
        ("connect", "a", ("PEER", ECHO_PORT)), ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_NODELAY),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_ERROR), ("getsockopt", "a", S.SOL_SOCKET, S.SO_TYPE, 4)],
    "tcp_use_after_close": [
        ("socket", "a", "stream"), ("close", "a"), ("close", "a"), ("send", "a", b"x"), ("recv", "a", 10),
        ("connect", "a", ("PEER", ECHO_PORT)), ("listen", "a"), ("accept", "a", "b"), ("shutdown", "a", S.SHUT_RD),
        ("getpeername", "a"), ("getsockopt", "a", S.SOL_SOCKET, S.SO_TYPE)],
    "tcp_connect_to_itself": [            # simultaneous open with itself (RFC 9293 §3.5, Figure 7)
        ("socket", "a", "stream"), ("bind", "a", ("LOCAL", TP + 15)), ("connect", "a", ("LOCAL", TP + 15)),
        ("getpeername", "a"), ("send", "a", b"me"), ("recv", "a", 10), ("shutdown", "a", S.SHUT_WR),
        ("recv", "a", 10)],
    "tcp_listener_close_resets_pending": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("socket", "c", "stream"),
        ("bind", "a", ("LOCAL", TP + 16)), ("listen", "a"), ("connect", "b", ("LOCAL", TP + 16)),
        ("connect", "c", ("LOCAL", TP + 16)), ("send", "c", b"queued"), ("sleep", SETTLE), ("close", "a"),
        ("sleep", SETTLE), ("recv", "b", 10), ("recv", "b", 10), ("send", "c", b"x"), ("send", "c", b"x"),
        ("socket", "d", "stream"), ("connect", "d", ("LOCAL", TP + 16))],
    "tcp_shutdown_listener_resets_pending": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("bind", "a", ("LOCAL", TP + 17)), ("listen", "a"),
        ("connect", "b", ("LOCAL", TP + 17)), ("sleep", SETTLE), ("shutdown", "a", S.SHUT_RDWR), ("sleep", SETTLE),
        ("getsockopt", "b", S.SOL_SOCKET, S.SO_ERROR), ("recv", "b", 10)],
    "tcp_bad_addresses": [
        ("socket", "a", "stream"), ("connect", "a", "PEER"), ("connect", "a", ("PEER",)),
        ("connect", "a", ("PEER", 70000)), ("connect", "a", ("PEER", "80")), ("bind", "a", ("LOCAL", -1)),
        ("connect", "a", ["PEER", ECHO_PORT]), ("send", "a", "text"), ("recv", "a", -1), ("getsockname", "a")],
    "tcp_connect_unroutable": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("socket", "c", "stream"), ("socket", "d", "stream"),
        ("connect", "a", ("192.0.2.1", 80)), ("getsockname", "a"), ("connect", "b", ("224.0.0.1", 80)),
        ("connect", "c", ("255.255.255.255", 80)), ("connect", "d", (SUBNET_BCAST, 80)),
        ("socket", "e", "stream"), ("connect", "e", ("PEER", 0))],
    "tcp_accepted_inherits_options": [
        ("socket", "a", "stream"), ("socket", "b", "stream"), ("bind", "a", ("LOCAL", TP + 18)),
        ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_NODELAY, 1), ("setsockopt", "a", S.SOL_SOCKET, S.SO_KEEPALIVE, 1),
        ("setsockopt", "a", S.SOL_SOCKET, S.SO_RCVBUF, 65536), ("setsockopt", "a", S.IPPROTO_TCP, S.TCP_KEEPIDLE, 77),
        ("listen", "a"), ("connect", "b", ("LOCAL", TP + 18)), ("accept", "a", "c"),
        ("getsockopt", "c", S.IPPROTO_TCP, S.TCP_NODELAY), ("getsockopt", "c", S.SOL_SOCKET, S.SO_KEEPALIVE),
        ("getsockopt", "c", S.SOL_SOCKET, S.SO_RCVBUF), ("getsockopt", "c", S.IPPROTO_TCP, S.TCP_KEEPIDLE),
        ("getsockopt", "b", S.IPPROTO_TCP, S.TCP_NODELAY), ("getsockopt", "c", S.SOL_SOCKET, S.SO_REUSEADDR)],
    "tcp_info_state": [
        ("socket", "a", "stream"), ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_INFO, 1),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_MAXSEG), ("connect", "a", ("PEER", ECHO_PORT)),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_INFO, 1), ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_MAXSEG),
        ("shutdown", "a", S.SHUT_WR), ("recv", "a", 10), ("sleep", SETTLE),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_INFO, 1),
        ("socket", "b", "stream"), ("listen", "b"), ("getsockopt", "b", S.IPPROTO_TCP, S.TCP_INFO, 1)],
    "tcp_socket_protocols": [
        ("socket", "a", (S.AF_INET, S.SOCK_STREAM, S.IPPROTO_TCP)),
        ("socket", "b", (S.AF_INET, S.SOCK_STREAM, S.IPPROTO_UDP)),
        ("socket", "c", (S.AF_INET, S.SOCK_STREAM | S.SOCK_NONBLOCK, 0)),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_PROTOCOL), ("getsockopt", "c", S.SOL_SOCKET, S.SO_TYPE)],
}
SCENARIOS.update(STREAM_SCENARIOS)

# --- IPv6 and dual stack (AF_INET6, both kinds) ---------------------------------------------
# More symbols: LOCAL6/PEER6 (global), LOCALLL/PEERLL (link-local on the LOCAL-PEER link),
# MAPPED_LOCAL/MAPPED_PEER (::ffff:LOCAL, ::ffff:PEER), SCOPE (that link's interface index,
# a scope id; an outcome's scope id equal to it reads "SCOPE") and "PEERLL%DEV" /
# "LOCALLL%DEV" (the address with the interface's name as its zone).  UNKNOWN_SCOPE is an
# interface index neither side has.
V6 = S.IPPROTO_IPV6
UNKNOWN_SCOPE = 999
V6_SCENARIOS: dict[str, list[Step]] = {
    # bind conflicts across families: one port space per protocol (Linux inet_rcv_saddr_equal)
    "v6_bind_any6_then_v4": [
        ("socket", "a", "dgram6"), ("socket", "b", "dgram"), ("socket", "c", "dgram"),
        ("bind", "a", ("::", PORT1)), ("bind", "b", ("", PORT1)), ("bind", "c", ("LOCAL", PORT1)),
        ("bind", "c", ("LOCAL", PORT2)), ("getsockname", "a"), ("getsockname", "c")],
    "v6_bind_v4_then_any6": [
        ("socket", "a", "dgram"), ("socket", "b", "dgram6"), ("socket", "c", "dgram6"), ("socket", "d", "dgram6"),
        ("bind", "a", ("LOCAL", PORT1)), ("bind", "b", ("::", PORT1)),
        ("setsockopt", "c", V6, S.IPV6_V6ONLY, 1), ("bind", "c", ("::", PORT1)),
        ("bind", "d", ("LOCAL6", PORT1)), ("getsockname", "c"), ("getsockname", "d")],
    "v6_bind_v6only_any6_leaves_v4_free": [
        ("socket", "a", "dgram6"), ("socket", "b", "dgram"), ("socket", "c", "dgram6"), ("socket", "d", "dgram6"),
        ("setsockopt", "a", V6, S.IPV6_V6ONLY, 1), ("bind", "a", ("::", PORT1)), ("bind", "b", ("", PORT1)),
        ("bind", "c", ("::", PORT1)), ("bind", "d", ("LOCAL6", PORT1)), ("bind", "d", ("MAPPED_LOCAL", PORT1)),
        ("getsockname", "d")],
    "v6_bind_reuseaddr_across_families": [
        ("socket", "a", "dgram6"), ("socket", "b", "dgram"), ("socket", "c", "dgram"),
        ("setsockopt", "a", S.SOL_SOCKET, S.SO_REUSEADDR, 1), ("setsockopt", "b", S.SOL_SOCKET, S.SO_REUSEADDR, 1),
        ("bind", "a", ("::", PORT1)), ("bind", "b", ("", PORT1)), ("bind", "c", ("LOCAL", PORT1))],
    "v6_bind_mapped_vs_v4": [
        ("socket", "a", "dgram"), ("socket", "b", "dgram6"), ("socket", "c", "dgram6"),
        ("bind", "a", ("LOCAL", PORT1)), ("bind", "b", ("MAPPED_LOCAL", PORT1)),
        ("bind", "b", ("MAPPED_PEER", PORT1)), ("bind", "b", ("::ffff:0.0.0.0", PORT1)),
        ("bind", "c", ("LOCAL6", PORT1)), ("bind", "b", ("MAPPED_LOCAL", PORT2)), ("getsockname", "b"),
        ("getsockname", "c")],
    "v6_bind_mapped_needs_dual_stack": [
        ("socket", "a", "dgram6"), ("setsockopt", "a", V6, S.IPV6_V6ONLY, 1),
        ("bind", "a", ("MAPPED_LOCAL", PORT1)), ("bind", "a", ("LOCAL6", PORT1)), ("getsockname", "a")],
    "v6_bind_specific6_vs_any": [   # a v6-only association reads as 127.0.0.6 to IPv4's bind test
        ("socket", "a", "dgram6"), ("socket", "b", "dgram6"), ("socket", "c", "dgram"), ("socket", "d", "dgram"),
        ("bind", "a", ("LOCAL6", PORT1)), ("bind", "b", ("::", PORT1)), ("bind", "c", ("LOCAL", PORT1)),
        ("bind", "d", ("", PORT1)), ("bind", "b", ("LOCALLL", PORT1, 0, "SCOPE")), ("getsockname", "b")],
    "v6_bind_nonlocal_and_bad": [
        ("socket", "a", "dgram6"), ("bind", "a", (OTHER6, 0)), ("bind", "a", ("PEER6", PORT1)),
        ("bind", "a", ("LOCAL", 0)), ("bind", "a", ("<broadcast>", 0)), ("bind", "a", ("LOCAL6",)),
        ("bind", "a", ("LOCAL6", 0, 0x100000)), ("bind", "a", ("LOCAL6", 0, 0, 0, 0)),
        ("bind", "a", ("LOCAL6", 0, 7, 0)), ("getsockname", "a")],
    "v6_tcp_bind_across_families": [
        ("socket", "a", "stream6"), ("socket", "b", "stream"), ("socket", "c", "stream6"), ("socket", "d", "stream"),
        ("bind", "a", ("::", TP + 20)), ("bind", "b", ("LOCAL", TP + 20)), ("bind", "b", ("", TP + 20)),
        ("listen", "a"), ("setsockopt", "c", V6, S.IPV6_V6ONLY, 1), ("bind", "c", ("::", TP + 20)),
        ("bind", "c", ("LOCAL6", TP + 20)), ("close", "a"), ("bind", "d", ("LOCAL", TP + 20)), ("getsockname", "d")],
    "v6_tcp_reuseaddr_across_families": [
        ("socket", "a", "stream6"), ("socket", "b", "stream"), ("socket", "c", "stream"),
        ("setsockopt", "a", S.SOL_SOCKET, S.SO_REUSEADDR, 1), ("setsockopt", "b", S.SOL_SOCKET, S.SO_REUSEADDR, 1),
        ("setsockopt", "c", S.SOL_SOCKET, S.SO_REUSEADDR, 1),
        ("bind", "a", ("::", TP + 21)), ("bind", "b", ("", TP + 21)), ("listen", "a"), ("listen", "b"),
        ("bind", "c", ("LOCAL", TP + 21))],
    "v6_tcp_v6only_listener_beside_v4": [
        ("socket", "a", "stream6"), ("socket", "b", "stream"), ("socket", "c", "stream"), ("socket", "d", "stream6"),
        ("setsockopt", "a", V6, S.IPV6_V6ONLY, 1), ("bind", "a", ("::", TP + 22)), ("listen", "a"),
        ("connect", "c", ("LOCAL", TP + 22)), ("bind", "b", ("", TP + 22)), ("listen", "b"),
        ("connect", "d", ("LOCAL6", TP + 22)), ("accept", "a", "e"), ("getsockname", "e"),
        ("accept", "b", "f", 0.2)],
    # IPV6_V6ONLY and the other IPPROTO_IPV6 options
    "v6_v6only_option": [
        ("socket", "a", "dgram6"), ("getsockopt", "a", V6, S.IPV6_V6ONLY), ("setsockopt", "a", V6, S.IPV6_V6ONLY, 1),
        ("getsockopt", "a", V6, S.IPV6_V6ONLY), ("setsockopt", "a", V6, S.IPV6_V6ONLY, 0),
        ("setsockopt", "a", V6, S.IPV6_V6ONLY, 7), ("getsockopt", "a", V6, S.IPV6_V6ONLY),
        ("bind", "a", ("::", 0)), ("setsockopt", "a", V6, S.IPV6_V6ONLY, 0), ("getsockopt", "a", V6, S.IPV6_V6ONLY),
        ("socket", "b", "stream6"), ("getsockopt", "b", V6, S.IPV6_V6ONLY), ("bind", "b", ("::", 0)),
        ("setsockopt", "b", V6, S.IPV6_V6ONLY, 1), ("getsockopt", "b", V6, S.IPV6_V6ONLY),
        ("socket", "c", "dgram6"), ("connect", "c", ("PEER6", ECHO_PORT)), ("setsockopt", "c", V6, S.IPV6_V6ONLY, 1)],
    "v6_options_on_ipv4_sockets": [
        ("socket", "a", "dgram"), ("getsockopt", "a", V6, S.IPV6_V6ONLY), ("setsockopt", "a", V6, S.IPV6_V6ONLY, 1),
        ("getsockopt", "a", V6, S.IPV6_UNICAST_HOPS), ("socket", "b", "stream"),
        ("getsockopt", "b", V6, S.IPV6_V6ONLY), ("setsockopt", "b", V6, S.IPV6_TCLASS, 1),
        ("getsockopt", "a", S.IPPROTO_TCP, S.TCP_NODELAY), ("getsockopt", "b", S.IPPROTO_UDP, 1),
        ("socket", "c", "dgram6"), ("getsockopt", "c", S.IPPROTO_TCP, S.TCP_NODELAY),
        ("getsockopt", "c", S.IPPROTO_IP, S.IP_TTL), ("setsockopt", "c", S.IPPROTO_IP, S.IP_TTL, 9),
        ("getsockopt", "c", S.IPPROTO_IP, S.IP_TTL)],
    "v6_hop_limits": [
        ("socket", "a", "dgram6"), ("getsockopt", "a", V6, S.IPV6_UNICAST_HOPS),
        ("setsockopt", "a", V6, S.IPV6_UNICAST_HOPS, 255), ("getsockopt", "a", V6, S.IPV6_UNICAST_HOPS),
        ("setsockopt", "a", V6, S.IPV6_UNICAST_HOPS, 256), ("setsockopt", "a", V6, S.IPV6_UNICAST_HOPS, -2),
        ("setsockopt", "a", V6, S.IPV6_UNICAST_HOPS, 0), ("getsockopt", "a", V6, S.IPV6_UNICAST_HOPS),
        ("setsockopt", "a", V6, S.IPV6_UNICAST_HOPS, -1), ("getsockopt", "a", V6, S.IPV6_UNICAST_HOPS),
        ("getsockopt", "a", V6, S.IPV6_MULTICAST_HOPS), ("setsockopt", "a", V6, S.IPV6_MULTICAST_HOPS, 9),
        ("getsockopt", "a", V6, S.IPV6_MULTICAST_HOPS), ("setsockopt", "a", V6, S.IPV6_MULTICAST_HOPS, 256),
        ("setsockopt", "a", V6, S.IPV6_MULTICAST_HOPS, -1), ("getsockopt", "a", V6, S.IPV6_MULTICAST_HOPS),
        ("connect", "a", ("PEER6", ECHO_PORT)), ("getsockopt", "a", V6, S.IPV6_UNICAST_HOPS)],
    "v6_tclass": [
        ("socket", "a", "dgram6"), ("getsockopt", "a", V6, S.IPV6_TCLASS), ("setsockopt", "a", V6, S.IPV6_TCLASS, 0xb8),
        ("getsockopt", "a", V6, S.IPV6_TCLASS), ("setsockopt", "a", V6, S.IPV6_TCLASS, 256),
        ("setsockopt", "a", V6, S.IPV6_TCLASS, -2), ("setsockopt", "a", V6, S.IPV6_TCLASS, -1),
        ("getsockopt", "a", V6, S.IPV6_TCLASS), ("socket", "b", "stream6"), ("getsockopt", "b", V6, S.IPV6_TCLASS),
        ("setsockopt", "b", V6, S.IPV6_TCLASS, 0x20), ("getsockopt", "b", V6, S.IPV6_TCLASS),
        ("getsockopt", "b", V6, S.IPV6_UNICAST_HOPS), ("setsockopt", "b", V6, S.IPV6_UNICAST_HOPS, 300),
        ("setsockopt", "b", V6, 9999, 1), ("getsockopt", "b", V6, 9999)],
    # the ECN bits of IP_TOS / IPV6_TCLASS are TCP's own on a stream socket, the user's on UDP
    "tos_ecn_bits_by_socket_type": [
        ("socket", "a", "stream"), ("setsockopt", "a", S.IPPROTO_IP, S.IP_TOS, 0x2B),
        ("getsockopt", "a", S.IPPROTO_IP, S.IP_TOS), ("socket", "b", "dgram"),
        ("setsockopt", "b", S.IPPROTO_IP, S.IP_TOS, 0x2B), ("getsockopt", "b", S.IPPROTO_IP, S.IP_TOS),
        ("socket", "c", "stream6"), ("setsockopt", "c", V6, S.IPV6_TCLASS, 0x23),
        ("getsockopt", "c", V6, S.IPV6_TCLASS), ("socket", "d", "dgram6"),
        ("setsockopt", "d", V6, S.IPV6_TCLASS, 0x23), ("getsockopt", "d", V6, S.IPV6_TCLASS)],
    "v6_getsockopt_basics": [
        ("socket", "a", "dgram6"), ("getsockopt", "a", S.SOL_SOCKET, S.SO_DOMAIN),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_TYPE), ("getsockopt", "a", S.SOL_SOCKET, S.SO_PROTOCOL),
        ("socket", "b", "stream6"), ("getsockopt", "b", S.SOL_SOCKET, S.SO_DOMAIN),
        ("getsockopt", "b", S.SOL_SOCKET, S.SO_PROTOCOL), ("getsockopt", "b", S.IPPROTO_TCP, S.TCP_MAXSEG),
        ("socket", "c", (S.AF_INET6, S.SOCK_DGRAM, S.IPPROTO_TCP)),
        ("socket", "d", (S.AF_INET6, S.SOCK_STREAM, S.IPPROTO_UDP))],
    # IPv4-mapped destinations from AF_INET6 sockets: IPv4 on the wire, IPv6 shapes
    "v6_mapped_udp_connect": [
        ("socket", "a", "dgram6"), ("connect", "a", ("MAPPED_PEER", ECHO_PORT)), ("getsockname", "a"),
        ("getpeername", "a"), ("send", "a", b"mapped"), ("recvfrom", "a", 100),
        ("connect", "a", ("PEER6", ECHO_PORT)), ("getsockname", "a"), ("getpeername", "a")],
    "v6_mapped_udp_sendto": [
        ("socket", "a", "dgram6"), ("sendto", "a", b"v4", ("MAPPED_PEER", ECHO_PORT)), ("getsockname", "a"),
        ("recvfrom", "a", 100), ("sendto", "a", b"v6", ("PEER6", ECHO_PORT)), ("recvfrom", "a", 100),
        ("sendto", "a", b"x", ("MAPPED_PEER", CLOSED_PORT)), ("sleep", SETTLE), ("recv", "a", 10, 0, 0.2)],
    "v6_mapped_with_v6only": [
        ("socket", "a", "dgram6"), ("setsockopt", "a", V6, S.IPV6_V6ONLY, 1),
        ("connect", "a", ("MAPPED_PEER", ECHO_PORT)), ("sendto", "a", b"x", ("MAPPED_PEER", ECHO_PORT)),
        ("getsockname", "a"), ("socket", "b", "stream6"), ("setsockopt", "b", V6, S.IPV6_V6ONLY, 1),
        ("connect", "b", ("MAPPED_PEER", ECHO_PORT)), ("getpeername", "b")],
    "v6_mapped_tcp_connect": [
        ("socket", "a", "stream6"), ("connect", "a", ("MAPPED_PEER", ECHO_PORT)), ("getsockname", "a"),
        ("getpeername", "a"), ("send", "a", b"over ipv4"), ("recv", "a", 100), ("shutdown", "a", S.SHUT_WR),
        ("recv", "a", 100), ("getsockopt", "a", V6, S.IPV6_V6ONLY)],
    "v6_mapped_connected_refused": [
        ("socket", "a", "dgram6"), ("connect", "a", ("MAPPED_PEER", CLOSED_PORT)), ("send", "a", b"x"),
        ("sleep", SETTLE), ("send", "a", b"x"), ("send", "a", b"x"), ("socket", "b", "stream6"),
        ("connect", "b", ("MAPPED_PEER", CLOSED_PORT)), ("getsockopt", "b", S.SOL_SOCKET, S.SO_ERROR)],
    "v6_bound6_then_mapped": [
        ("socket", "a", "dgram6"), ("bind", "a", ("LOCAL6", 0)), ("connect", "a", ("MAPPED_PEER", ECHO_PORT)),
        ("sendto", "a", b"x", ("MAPPED_PEER", ECHO_PORT)), ("socket", "b", "dgram6"),
        ("bind", "b", ("MAPPED_LOCAL", 0)), ("connect", "b", ("PEER6", ECHO_PORT)),
        ("sendto", "b", b"x", ("PEER6", ECHO_PORT)), ("connect", "b", ("MAPPED_PEER", ECHO_PORT)),
        ("send", "b", b"y"), ("recv", "b", 10), ("getsockname", "b")],
    # scope ids: a link-local address names its interface by index
    "v6_scope_bind": [
        ("socket", "a", "dgram6"), ("bind", "a", ("LOCALLL", 0)), ("bind", "a", ("LOCALLL%DEV", 0)),
        ("bind", "a", ("LOCALLL", 0, 0, UNKNOWN_SCOPE)), ("socket", "b", "dgram6"),
        ("bind", "b", ("LOCALLL", 0, 0, 1)), ("bind", "b", ("LOCALLL", PORT1, 0, "SCOPE")), ("getsockname", "b"),
        ("socket", "c", "dgram6"), ("bind", "c", ("LOCAL6", PORT2, 0, "SCOPE")), ("getsockname", "c"),
        ("socket", "d", "dgram6"), ("bind", "d", ("PEERLL", 0, 0, "SCOPE"))],
    "v6_scope_connect": [
        ("socket", "a", "dgram6"), ("connect", "a", ("PEERLL", ECHO_PORT)), ("connect", "a", ("PEERLL%DEV", ECHO_PORT)),
        ("getsockname", "a"), ("connect", "a", ("PEERLL", ECHO_PORT, 0, "SCOPE")), ("getsockname", "a"),
        ("getpeername", "a"), ("send", "a", b"link"), ("recvfrom", "a", 100),
        ("connect", "a", ("PEERLL", ECHO_PORT, 0, UNKNOWN_SCOPE))],
    "v6_scope_unknown": [
        ("socket", "a", "dgram6"), ("connect", "a", ("PEERLL", ECHO_PORT, 0, UNKNOWN_SCOPE)), ("getsockname", "a"),
        ("getpeername", "a"), ("sendto", "a", b"x", ("PEER6", ECHO_PORT)),   # still bound to that device
        ("connect", "a", ("PEERLL", ECHO_PORT, 0, "SCOPE")), ("socket", "b", "dgram6"),
        ("sendto", "b", b"x", ("PEERLL", ECHO_PORT, 0, UNKNOWN_SCOPE)),
        ("socket", "c", "stream6"), ("connect", "c", ("PEERLL", ECHO_PORT, 0, UNKNOWN_SCOPE))],
    "v6_scope_sendto": [
        ("socket", "a", "dgram6"), ("sendto", "a", b"x", ("PEERLL", ECHO_PORT)),
        ("sendto", "a", b"x", ("PEERLL%DEV", ECHO_PORT)), ("sendto", "a", b"link", ("PEERLL", ECHO_PORT, 0, "SCOPE")),
        ("recvfrom", "a", 100), ("getsockname", "a"), ("sendto", "a", b"x", ("PEER6", ECHO_PORT, 0, 1)),
        ("recvfrom", "a", 100), ("sendto", "a", b"x", ("ff02::1", CLOSED_PORT))],
    "v6_scope_tcp_connect": [
        ("socket", "a", "stream6"), ("connect", "a", ("PEERLL", ECHO_PORT)),
        ("connect", "a", ("PEERLL", ECHO_PORT, 0, "SCOPE")), ("getsockname", "a"), ("getpeername", "a"),
        ("send", "a", b"link"), ("recv", "a", 100), ("shutdown", "a", S.SHUT_WR), ("recv", "a", 100)],
    # connect and sendto errors
    "v6_udp_refused": [
        ("socket", "a", "dgram6"), ("connect", "a", ("PEER6", CLOSED_PORT)), ("send", "a", b"x"),
        ("sleep", SETTLE), ("send", "a", b"x"), ("send", "a", b"x"), ("sleep", SETTLE),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_ERROR), ("recv", "a", 100, 0, 0.2), ("getsockname", "a")],
    "v6_udp_unconnected_hears_no_refusal": [
        ("socket", "a", "dgram6"), ("sendto", "a", b"x", ("PEER6", CLOSED_PORT)), ("sleep", SETTLE),
        ("sendto", "a", b"x", ("PEER6", CLOSED_PORT)), ("recv", "a", 10, 0, 0.2)],
    "v6_unroutable": [
        ("socket", "a", "dgram6"), ("connect", "a", (UNROUTABLE6, 9)), ("getsockname", "a"), ("getpeername", "a"),
        ("sendto", "a", b"x", (UNROUTABLE6, 9)), ("socket", "b", "stream6"), ("connect", "b", (UNROUTABLE6, 80)),
        ("getsockname", "b"), ("connect", "b", ("PEER6", 0))],
    "v6_tcp_connect_refused": [
        ("socket", "a", "stream6"), ("connect", "a", ("PEER6", CLOSED_PORT)), ("getpeername", "a"),
        ("getsockopt", "a", S.SOL_SOCKET, S.SO_ERROR), ("send", "a", b"x"), ("recv", "a", 10),
        ("connect", "a", ("PEER6", ECHO_PORT)), ("getsockname", "a"), ("getpeername", "a"),
        ("send", "a", b"again"), ("recv", "a", 100)],
    "v6_tcp_refused_by_ourselves": [
        ("socket", "a", "stream6"), ("connect", "a", ("LOCAL6", TP + 23)), ("socket", "b", "stream6"),
        ("connect", "b", ("::1", TP + 23)), ("socket", "c", "dgram6"), ("connect", "c", ("::1", TP + 23)),
        ("send", "c", b"x"), ("sleep", SETTLE), ("send", "c", b"x")],
    # socket names
    "v6_names_unbound_bound_connected": [
        ("socket", "a", "dgram6"), ("getsockname", "a"), ("getpeername", "a"), ("bind", "a", ("", 0)),
        ("getsockname", "a"), ("connect", "a", ("PEER6", ECHO_PORT, 0x12345, 0)), ("getsockname", "a"),
        ("getpeername", "a"), ("disconnect", "a"), ("getsockname", "a"), ("getpeername", "a"),
        ("socket", "b", "stream6"), ("getsockname", "b"), ("getpeername", "b"), ("bind", "b", ("LOCAL6", 0)),
        ("getsockname", "b")],
    "v6_connect_any_means_loopback": [
        ("socket", "a", "dgram6"), ("connect", "a", ("::", PORT1)), ("getpeername", "a"), ("getsockname", "a"),
        ("socket", "b", "stream6"), ("socket", "c", "stream6"), ("bind", "b", ("::", TP + 24)), ("listen", "b"),
        ("connect", "c", ("::", TP + 24)), ("getpeername", "c"), ("accept", "b", "d"), ("getsockname", "d")],
    "v6_udp_dual_stack_socket": [
        ("socket", "a", "dgram6"), ("socket", "b", "dgram"), ("socket", "c", "dgram6"),
        ("bind", "a", ("::", PORT1)), ("bind", "b", ("LOCAL", PORT2)), ("sendto", "b", b"four", ("LOCAL", PORT1)),
        ("recvfrom", "a", 100), ("sendto", "a", b"back", ("MAPPED_LOCAL", PORT2)), ("recvfrom", "b", 100),
        ("sendto", "c", b"six", ("LOCAL6", PORT1)), ("recvfrom", "a", 100), ("sendto", "c", b"one", ("::1", PORT1)),
        ("recvfrom", "a", 100)],
    "v6_udp_v6only_socket_ignores_v4": [
        ("socket", "a", "dgram6"), ("socket", "b", "dgram"), ("setsockopt", "a", V6, S.IPV6_V6ONLY, 1),
        ("bind", "a", ("::", PORT1)), ("connect", "b", ("LOCAL", PORT1)), ("send", "b", b"x"), ("sleep", SETTLE),
        ("send", "b", b"x"), ("recv", "a", 10, 0, 0.2)],
    "v6_dual_stack_listener_v4_client": [
        ("socket", "a", "stream6"), ("socket", "b", "stream"), ("socket", "c", "stream6"),
        ("bind", "a", ("::", TP + 25)), ("listen", "a"), ("connect", "b", ("LOCAL", TP + 25)),
        ("accept", "a", "d"), ("getsockname", "d"), ("getpeername", "d"), ("getsockname", "b"),
        ("getpeername", "b"), ("send", "b", b"from v4"), ("recv", "d", 100), ("send", "d", b"to v4"),
        ("recv", "b", 100), ("connect", "c", ("LOCAL6", TP + 25)), ("accept", "a", "e"), ("getpeername", "e"),
        ("getsockname", "e")],
    "v6_tcp_echo_names": [
        ("socket", "a", "stream6"), ("connect", "a", ("PEER6", ECHO_PORT)), ("getsockname", "a"),
        ("getpeername", "a"), ("send", "a", b"hello"), ("recv", "a", 100), ("sendall", "a", bytes(range(256)) * 64),
        ("sleep", SETTLE), ("recv", "a", 65536), ("shutdown", "a", S.SHUT_WR), ("send", "a", b"x"),
        ("recv", "a", 100), ("getsockopt", "a", S.SOL_SOCKET, S.SO_ERROR)],
    # shutdown and close on IPv6 streams
    "v6_tcp_peer_close_then_send": [
        ("socket", "a", "stream6"), ("socket", "b", "stream6"), ("bind", "a", ("LOCAL6", TP + 26)),
        ("listen", "a", 5), ("connect", "b", ("LOCAL6", TP + 26)), ("accept", "a", "c"),
        ("close", "c"), ("recv", "b", 100), ("send", "b", b"x"), ("sleep", SETTLE),
        ("send", "b", b"x"), ("getsockopt", "b", S.SOL_SOCKET, S.SO_ERROR), ("getpeername", "b"),
        ("shutdown", "b", S.SHUT_RD)],
    "v6_tcp_linger0_resets": [
        ("socket", "a", "stream6"), ("socket", "b", "stream6"), ("bind", "a", ("LOCAL6", TP + 27)),
        ("listen", "a", 5), ("connect", "b", ("LOCAL6", TP + 27)), ("accept", "a", "c"),
        ("setsockopt", "c", S.SOL_SOCKET, S.SO_LINGER, LINGER0), ("close", "c"), ("sleep", SETTLE),
        ("getsockopt", "b", S.SOL_SOCKET, S.SO_ERROR), ("recv", "b", 100), ("send", "b", b"x")],
    "v6_tcp_shutdown": [
        ("socket", "a", "stream6"), ("shutdown", "a", S.SHUT_WR), ("connect", "a", ("PEER6", ECHO_PORT)),
        ("shutdown", "a", 7), ("shutdown", "a", S.SHUT_RD), ("recv", "a", 10), ("send", "a", b"abc"),
        ("sleep", SETTLE), ("recv", "a", 10), ("shutdown", "a", S.SHUT_WR), ("send", "a", b"x"),
        ("recv", "a", 10), ("close", "a"), ("getsockname", "a"), ("send", "a", b"x")],
    "v6_shutdown_before_connect": [   # Linux inet_shutdown: ENOTCONN, yet the halves stay shut
        ("socket", "a", "dgram6"), ("shutdown", "a", S.SHUT_RD), ("connect", "a", ("PEER6", ECHO_PORT)),
        ("recv", "a", 10, 0, 0.2), ("send", "a", b"x"), ("sleep", SETTLE), ("recv", "a", 10),
        ("socket", "b", "dgram6"), ("shutdown", "b", S.SHUT_WR), ("connect", "b", ("PEER6", ECHO_PORT)),
        ("send", "b", b"x"), ("socket", "c", "stream6"), ("shutdown", "c", S.SHUT_RD),
        ("connect", "c", ("PEER6", ECHO_PORT)), ("recv", "c", 10), ("send", "c", b"abc"), ("sleep", SETTLE),
        ("recv", "c", 10), ("socket", "d", "stream6"), ("shutdown", "d", S.SHUT_WR),
        ("connect", "d", ("PEER6", CLOSED_PORT)), ("connect", "d", ("PEER6", ECHO_PORT)), ("send", "d", b"x"),
        ("recv", "d", 10)],
    "v6_udp_connected_filters_other_sources": [
        ("socket", "a", "dgram6"), ("socket", "b", "dgram6"), ("bind", "a", ("LOCAL6", PORT1)),
        ("connect", "a", ("PEER6", ECHO_PORT)), ("bind", "b", ("LOCAL6", PORT2)),
        ("sendto", "b", b"from-b", ("LOCAL6", PORT1)), ("recv", "a", 100, 0, 0.2),
        ("send", "a", b"from-peer"), ("recvfrom", "a", 100), ("sendto", "b", b"x", ("LOCAL6", PORT1, 0, 1)),
        ("recvfrom", "a", 100, 0, 0.2)],
    "v6_bound_link_local_to_global": [
        ("socket", "a", "dgram6"), ("bind", "a", ("LOCALLL", 0, 0, "SCOPE")),
        ("sendto", "a", b"ll", ("PEER6", ECHO_PORT)), ("recvfrom", "a", 100), ("getsockname", "a"),
        ("sendto", "a", b"x", ("::1", PORT1)), ("socket", "b", "stream6"), ("bind", "b", ("LOCALLL", 0, 0, "SCOPE")),
        ("connect", "b", ("PEER6", ECHO_PORT)), ("getsockname", "b"), ("getpeername", "b"), ("send", "b", b"ll"),
        ("recv", "b", 100)],
    "v6_bind_v6only_pairs": [
        ("socket", "a", "dgram6"), ("socket", "b", "dgram6"), ("socket", "c", "dgram6"), ("socket", "d", "dgram"),
        ("setsockopt", "a", V6, S.IPV6_V6ONLY, 1), ("setsockopt", "b", V6, S.IPV6_V6ONLY, 1),
        ("bind", "a", ("::", PORT1)), ("bind", "b", ("::", PORT1)),
        ("setsockopt", "c", S.SOL_SOCKET, S.SO_REUSEPORT, 1), ("setsockopt", "d", S.SOL_SOCKET, S.SO_REUSEPORT, 1),
        ("bind", "c", ("::", PORT2)), ("bind", "d", ("", PORT2)), ("getsockopt", "c", V6, S.IPV6_V6ONLY)],
    "v6_mapped_loopback": [
        ("socket", "a", "stream"), ("socket", "b", "stream6"), ("socket", "c", "stream6"),
        ("bind", "a", ("127.0.0.1", TP + 28)), ("listen", "a"), ("connect", "b", ("::ffff:127.0.0.1", TP + 28)),
        ("getsockname", "b"), ("accept", "a", "d"), ("getpeername", "d"), ("connect", "c", ("::1", TP + 28)),
        ("socket", "e", "dgram6"), ("connect", "e", ("::ffff:127.0.0.1", PORT1)), ("getsockname", "e"),
        ("socket", "f", "dgram"), ("bind", "f", ("::ffff:127.0.0.1", 0)), ("getsockname", "f")],
    "v6_multicast_membership": [
        ("socket", "a", "dgram6"), ("setsockopt", "a", V6, S.IPV6_JOIN_GROUP, "MREQ_LL_GROUP"),
        ("setsockopt", "a", V6, S.IPV6_JOIN_GROUP, "MREQ_LL_GROUP"),
        ("setsockopt", "a", V6, S.IPV6_LEAVE_GROUP, "MREQ_LL_GROUP"),
        ("setsockopt", "a", V6, S.IPV6_LEAVE_GROUP, "MREQ_LL_GROUP"),
        ("setsockopt", "a", V6, S.IPV6_JOIN_GROUP, "MREQ_UNKNOWN_IF"),
        ("setsockopt", "a", V6, S.IPV6_JOIN_GROUP, "MREQ_UNICAST"),
        ("setsockopt", "a", V6, S.IPV6_JOIN_GROUP, b"\xff\x02"), ("setsockopt", "a", V6, S.IPV6_JOIN_GROUP, 1),
        ("socket", "b", "stream6"), ("setsockopt", "b", V6, S.IPV6_JOIN_GROUP, "MREQ_LL_GROUP")],
    "v6_link_local_to_ourselves": [
        ("socket", "a", "dgram6"), ("socket", "b", "dgram6"), ("bind", "a", ("LOCALLL", PORT1, 0, "SCOPE")),
        ("sendto", "b", b"self", ("LOCALLL", PORT1, 0, "SCOPE")), ("recvfrom", "a", 100, 0, 0.5),
        ("socket", "c", "stream6"), ("socket", "d", "stream6"), ("bind", "c", ("::", TP + 29)), ("listen", "c"),
        ("connect", "d", ("LOCALLL", TP + 29, 0, "SCOPE")), ("getsockname", "d"), ("accept", "c", "e"),
        ("getsockname", "e")],
    "v6_tcp_mapped_and_v6_bindings": [
        ("socket", "a", "stream6"), ("bind", "a", ("MAPPED_LOCAL", 0)), ("connect", "a", ("PEER6", ECHO_PORT)),
        ("connect", "a", ("MAPPED_PEER", ECHO_PORT)), ("getsockname", "a"), ("getpeername", "a"),
        ("socket", "b", "stream6"), ("bind", "b", ("LOCAL6", 0)), ("connect", "b", ("MAPPED_PEER", ECHO_PORT)),
        ("connect", "b", ("PEER6", ECHO_PORT)), ("getsockname", "b"), ("socket", "c", "stream6"),
        ("bind", "c", ("LOCALLL", 0, 0, "SCOPE")), ("connect", "c", ("PEERLL", ECHO_PORT, 0, 1)),
        ("connect", "c", ("PEERLL", ECHO_PORT)), ("getpeername", "c")],
    "v6_tcp_mapped_listener": [
        ("socket", "a", "stream6"), ("socket", "b", "stream"), ("socket", "c", "stream6"),
        ("bind", "a", ("MAPPED_LOCAL", TP + 30)), ("listen", "a"), ("connect", "b", ("LOCAL", TP + 30)),
        ("accept", "a", "d"), ("getsockname", "d"), ("connect", "c", ("LOCAL6", TP + 30)),
        ("getsockname", "a")],
    "v6_dontfrag": [
        ("socket", "a", "dgram6"), ("getsockopt", "a", V6, S.IPV6_DONTFRAG),
        ("setsockopt", "a", V6, S.IPV6_DONTFRAG, 1), ("getsockopt", "a", V6, S.IPV6_DONTFRAG),
        ("connect", "a", ("PEER6", ECHO_PORT)), ("send", "a", bytes(1452)),
        ("recv", "a", 2000), ("send", "a", bytes(1453)), ("setsockopt", "a", V6, S.IPV6_DONTFRAG, 0),
        ("send", "a", bytes(1453)), ("recv", "a", 2000)],
    "v6_tcp_unknown_scope_then_global": [
        ("socket", "a", "stream6"), ("connect", "a", ("PEERLL", ECHO_PORT, 0, UNKNOWN_SCOPE)), ("getsockname", "a"),
        ("connect", "a", ("PEER6", ECHO_PORT)), ("getsockname", "a")],
    "v6_udp_echo_sizes": [
        ("socket", "a", "dgram6"), ("connect", "a", ("PEER6", ECHO_PORT)), ("send", "a", b""), ("recv", "a", 100),
        ("send", "a", bytes(range(256)) * 16), ("recv", "a", 65535), ("send", "a", bytes(65528)),
        ("send", "a", bytes(65527)), ("recv", "a", 70000)],
}
SCENARIOS.update(V6_SCENARIOS)
