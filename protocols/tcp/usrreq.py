"""pr_usrreqs for SOCK_STREAM/IPPROTO_TCP: what the socket layer may ask of TCP
(protocols.contracts.UserRequests).

Every call returns at once (sans-IO): an errno, data, a count, or None / -EAGAIN for
"would block"; the stream socket (stack/stream.py) does the waiting, on the connection's
upcall, and reads TCP's state only as the so_state bits `state()` computes here.

One object per family (docs: dualstack): `TcpUserRequests(tcp)` serves AF_INET with
sockaddrs `(addr32, port)`, `TcpUserRequests(tcp, family=AF_INET6)` serves AF_INET6 with
`(addr128, port, flowinfo, scope_id)`; an AF_INET6 socket whose association runs over IPv4
shows its addresses v4-mapped (Linux: ('::ffff:10.0.0.1', 5000, 0, 0)).
"""
from __future__ import annotations

import errno
import socket as _pysocket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..contracts import (
    SS_CANTRCVMORE,
    SS_CANTSENDMORE,
    SS_ISACCEPTING,
    SS_ISCONNECTED,
    SS_ISCONNECTING,
    SS_ISDISCONNECTING,
)
from ..inet6sock import MREQ_LEN
from ..ipv6.addr import v4_mapped
from ..ipv6.route import needs_scope_id
from ..ipv6.wire import DEFAULT_HOP_LIMIT
from ..sockopt import (
    BUF_MAX,
    IPV6_JOIN_GROUP,
    IPV6_LEAVE_GROUP,
    MIN_RCVBUF,
    MIN_SNDBUF,
    bufsize,
    get_ip_option,
    get_ipv6_option,
    get_socket_option,
    set_ip_option,
    set_ipv6_option,
    set_socket_option,
)
from . import deferaccept, info, rate_conn
from .conn import Connection
from .deferaccept import TCP_DEFER_ACCEPT
from .fastopen import ClientFastOpen, FastOpenQueue, PassiveFastOpen
from .seq import MASK
from .state import State
from .tcp import Tcp
from .urgent import read_seq

TCP_MAXSEG = _pysocket.TCP_MAXSEG
TCP_CONGESTION = _pysocket.TCP_CONGESTION
TCP_INFO = _pysocket.TCP_INFO
TCP_FASTOPEN = _pysocket.TCP_FASTOPEN
TCP_FASTOPEN_CONNECT = 30               # <linux/tcp.h>; not in Python's socket module
TCP_USER_TIMEOUT, TCP_NOTSENT_LOWAT, TCP_INQ = 18, 25, 36          # linux/tcp.h
TCP_CM_INQ = TCP_INQ                    # linux/tcp.h: the control message TCP_INQ turns on
_INQ_CMSG = struct.Struct("=i")
SIOCINQ, SIOCOUTQ, SIOCOUTQNSEQ = 0x541B, 0x5411, 0x894B          # linux/sockios.h (FIONREAD, TIOCOUTQ)
TCP_CORK, TCP_QUICKACK = _pysocket.TCP_CORK, _pysocket.TCP_QUICKACK
_LINGER = struct.Struct("ii")
# Linux caps SO_RCVBUF/SO_SNDBUF at net.core.[rw]mem_max (212992); a stream may ask for up to
# 32 times that here (~6.5 MiB, about tcp_rmem[2]), so a fixed buffer can still be as large as
# an autotuned one -- the Gbit/s of TUN offloads need MiB windows, Linux's cap would not do
STREAM_BUF_MAX = BUF_MAX * 32
EAGAIN = errno.EAGAIN
SIOCATMARK = 0x8905                      # <linux/sockios.h>: is the next byte the urgent one
MSG_MORE, MSG_EOR = int(_pysocket.MSG_MORE), int(_pysocket.MSG_EOR)   # ints: an enum & costs ~1 us

_OPENING = (State.SYN_SENT, State.SYN_RECEIVED)
_CAN_SEND = (State.ESTABLISHED, State.CLOSE_WAIT)   # (Linux: not TIME-WAIT -- the socket is CLOSE then)
_OPEN = _OPENING + _CAN_SEND
_PEER_KNOWN = (State.ESTABLISHED, State.SYN_RECEIVED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT,
               State.LAST_ACK, State.CLOSING)
_CLOSING = SS_ISCONNECTED | SS_ISDISCONNECTING | SS_CANTSENDMORE
# so_state by TCP state (4.4BSD: soisconnecting at SYN-SENT, soisconnected at ESTABLISHED,
# socantsendmore once our FIN is queued); TIME-WAIT is still "disconnecting" for 2 MSL, so a
# socket there is told from one that is CLOSED.  The peer's FIN adds SS_CANTRCVMORE (below).
_SO_STATE = {State.CLOSED: 0, State.LISTEN: SS_ISACCEPTING,
             State.SYN_SENT: SS_ISCONNECTING, State.SYN_RECEIVED: SS_ISCONNECTING,
             State.ESTABLISHED: SS_ISCONNECTED, State.CLOSE_WAIT: SS_ISCONNECTED,
             State.FIN_WAIT_1: _CLOSING, State.FIN_WAIT_2: _CLOSING, State.CLOSING: _CLOSING,
             State.LAST_ACK: _CLOSING, State.TIME_WAIT: SS_ISDISCONNECTING | SS_CANTSENDMORE}


# a sockaddr at this boundary: AF_INET (addr32, port), AF_INET6 (addr128, port, flowinfo, scope_id)
Sockaddr = tuple[int, ...]


class TcpUserRequests:
    def __init__(self, tcp: Tcp, family: int = _pysocket.AF_INET) -> None:
        self.tcp = tcp
        self.family = family
        self.inet6 = family == _pysocket.AF_INET6

    # --- life ----------------------------------------------------------------------------
    def attach(self, now: float) -> Connection:
        return self.tcp.attach(self.family)

    def set_upcall(self, pcb: Connection, upcall: Callable[[], None]) -> None:
        pcb.on_event = upcall                     # any change: data, space, state

    def detach(self, pcb: Connection, now: float) -> None:
        if pcb.state == State.LISTEN:
            # Linux inet_csk_listen_stop: queued children are reset, half-open ones dropped
            self._drop_children(pcb, now)
            self.tcp.stop_listening(pcb)
        pcb.close(now)
        self.tcp.orphaned(pcb, now)         # lives on without an owner, or reset beyond max_orphans
        if pcb.state != State.CLOSED:
            self.tcp.mem.update(pcb)        # the closed socket's receive window is no promise now
            self.tcp.schedule(pcb)
        else:
            self.tcp.unbind(pcb)

    # --- names and connections -----------------------------------------------------------------
    def bind(self, pcb: Connection, addr: Sockaddr, now: float) -> int:
        if self.inet6:
            return self.tcp.bind6(pcb, addr[0], addr[1], addr[3] if len(addr) > 3 else 0, now)
        return self.tcp.bind(pcb, addr[0], addr[1])

    def listen(self, pcb: Connection, backlog: int, now: float) -> int:
        return self.tcp.listen(pcb, backlog)

    def accept(self, pcb: Connection, now: float) -> tuple[Connection, Sockaddr] | None:
        child = self.tcp.pop_accepted(pcb)
        return (child, self._name(child, child.faddr, child.fport)) if child is not None else None

    def _name(self, pcb: Connection, addr: int, port: int) -> Sockaddr:
        """The sockaddr of one end in the socket's family: an IPv4 end of an AF_INET6
        socket v4-mapped; a link-local one with the scope id of its interface (Linux
        ipv6_iface_scope_id); flowinfo 0 (no IPV6_FLOWINFO_SEND)."""
        if not self.inet6:
            return addr, port
        if not pcb.net6:
            return v4_mapped(addr), port, 0, 0
        scope = pcb.oif.index if pcb.oif is not None and needs_scope_id(addr) else 0
        return addr, port, 0, scope

    def connect(self, pcb: Connection, addr: Sockaddr, now: float) -> int:
        err = self._connect_state_error(pcb)
        if err:
            return err
        if pcb.tfo_connect:
            return self._fastopen_connect(pcb, addr, now, defer=False)
        return self._connect(pcb, addr, now)

    @staticmethod
    def _connect_state_error(pcb: Connection) -> int:
        st = pcb.state
        if st == State.LISTEN:
            return errno.EISCONN             # Linux inet_stream_connect: not TCP_CLOSE
        if st in _OPENING:
            return errno.EALREADY
        if st != State.CLOSED:
            return errno.EISCONN
        return 0

    def _connect(self, pcb: Connection, addr: Sockaddr, now: float) -> int:
        if self.inet6:
            return self.tcp.connect6(pcb, addr[0], addr[1], addr[3] if len(addr) > 3 else 0, now)
        return self.tcp.connect(pcb, addr[0], addr[1], now)

    # --- TCP Fast Open, the client (fastopen.py) ---------------------------------------------
    def _fastopen_connect(self, pcb: Connection, addr: Sockaddr, now: float, defer: bool) -> int:
        """connect() with Fast Open: the SYN is held while the cookie cache is read for the
        peer; with TCP_FASTOPEN_CONNECT it stays held (connect returns at once) when it can
        carry data -- a cookie is known, or 0x4 -- until the first write (Linux
        tcp_fastopen_defer_connect); else it goes now, with a cookie request.  MSG_FASTOPEN
        (`defer`) holds it for the data the caller puts in next."""
        pcb.tfo = ClientFastOpen(self.tcp.fastopen.cache)
        err = self._connect(pcb, addr, now)
        if err:
            pcb.tfo = None
            return err
        tfo = pcb.tfo = self.tcp.fastopen.client_start(pcb.net6, pcb.faddr)
        if not (defer or tfo.with_data):
            self._fastopen_go(pcb, now)
        return 0

    def _fastopen_go(self, pcb: Connection, now: float) -> None:
        tfo = pcb.tfo
        assert isinstance(tfo, ClientFastOpen)
        tfo.deferred = False
        pcb.output(now)
        self.tcp.mem.update(pcb)
        self.tcp.schedule(pcb)

    @staticmethod
    def _fastopen_child(pcb: Connection) -> bool:
        """A listener's Fast Open child before its handshake ACK: it may send already."""
        tfo = pcb.tfo
        return pcb.state == State.SYN_RECEIVED and isinstance(tfo, PassiveFastOpen) and tfo.queue is not None

    @staticmethod
    def fastopen_deferred(pcb: Connection) -> bool:
        """connect() returned, the SYN waits for the first write (TCP_FASTOPEN_CONNECT)."""
        tfo = pcb.tfo
        return isinstance(tfo, ClientFastOpen) and tfo.deferred and pcb.state == State.SYN_SENT

    def fastopen_send(self, pcb: Connection, data: memoryview, addr: Sockaddr | None, blocking: bool,
                      now: float) -> int:
        """sendto(MSG_FASTOPEN) (`addr`), or the first write after TCP_FASTOPEN_CONNECT (Linux
        tcp_sendmsg_fastopen): connect, and put in the SYN what it can carry.  The octets
        taken (0: none, the SYN carries a cookie request -- the caller waits for the
        handshake and sends them then), or -errno: EOPNOTSUPP with the client flag off,
        EISCONN / EALREADY as connect() would.  `blocking`: the caller waits for the
        handshake to send the rest, so the handshake's ACK is saved for that data."""
        if not self.fastopen_deferred(pcb):
            if addr is None:
                return -errno.EPIPE
            if not self.tcp.fastopen.client:
                return -errno.EOPNOTSUPP
            err = self._connect_state_error(pcb) or self._fastopen_connect(pcb, addr, now, defer=True)
            if err:
                return -err
        tfo = pcb.tfo
        assert isinstance(tfo, ClientFastOpen)
        n = pcb.snd.write(data[:tfo.room(pcb.our_mss)]) if tfo.with_data else 0
        if n:
            pcb.snd.marks.wrote(n, 0, False, False, pcb.max_snd_wnd >> 1)   # one write: its skb (segmentation.py)
        tfo.write_pending = blocking and n < len(data)
        self._fastopen_go(pcb, now)
        return n

    def abandon_connect(self, pcb: Connection, now: float) -> None:
        """A connect that ended without a connection (cancelled, refused, timed out): forget
        the attempt and the peer, keep the (auto-)bound name."""
        pcb.tfo = None                       # a Fast Open attempt ends with it
        if pcb.state in _OPENING:
            user_closed = pcb.user_closed
            pcb.user_closed = False
            pcb.drop(0)
            pcb.user_closed = user_closed
            pcb.faddr = pcb.fport = 0
            self.tcp.schedule(pcb)
        else:
            pcb.faddr = pcb.fport = 0

    def disconnect(self, pcb: Connection, now: float) -> int:
        return errno.EOPNOTSUPP              # connect(AF_UNSPEC) is not served on a stream here

    def shutdown(self, pcb: Connection, how: int, now: float) -> int:
        """Linux inet_shutdown: a CLOSE socket (never connected, failed, reset or past
        TIME-WAIT) is ENOTCONN; a listener ignores SHUT_WR and stops listening on SHUT_RD;
        in SYN-SENT the connect is aborted and the waiting connect() gets ECONNRESET."""
        st = pcb.state
        if st in (State.CLOSED, State.TIME_WAIT):
            return errno.ENOTCONN
        if st == State.SYN_SENT:
            pcb.drop(errno.ECONNRESET)       # Linux tcp_disconnect: the attempt ends
            return 0
        if st == State.LISTEN:
            if how != _pysocket.SHUT_WR:
                self._unlisten(pcb, now)
            return 0
        if how in (_pysocket.SHUT_WR, _pysocket.SHUT_RDWR):
            pcb.shutdown_write(now)
            self.tcp.schedule(pcb)
        return 0

    def _unlisten(self, pcb: Connection, now: float) -> None:
        """shutdown(SHUT_RD) of a listener (Linux tcp_disconnect): reset the queued
        children, drop the half-open ones, and go back to CLOSED keeping the bound name."""
        self._drop_children(pcb, now)
        self.tcp.stop_listening(pcb)

    def _drop_children(self, pcb: Connection, now: float) -> None:
        """Reset the queued children of a listener that stops, drop the half-open ones.
        They all hold its port: the walk is over that port's sockets, once per listener."""
        for child in [c for c in self.tcp.ports.get(pcb.lport, ()) if c.parent is pcb]:
            child.owned = False
            child.abort(now, 0)

    # --- data ------------------------------------------------------------------------------------
    def send(self, pcb: Connection, data: memoryview, addr: Sockaddr | None, now: float, flags: int = 0) -> int:
        """tcp_sendmsg: the address is ignored; EPIPE once the sending half is shut or the
        connection gone, -EAGAIN while connecting or with a full send buffer.  MSG_MORE and
        MSG_EOR shape the segments (segmentation.py)."""
        return self._send(pcb, data, now, flags, False)

    def _send(self, pcb: Connection, data: memoryview, now: float, flags: int, urgent: bool) -> int:
        st = pcb.state
        if st not in _CAN_SEND or pcb.shut_wr:
            if pcb.tfo is not None and not pcb.shut_wr:
                if self.fastopen_deferred(pcb):
                    return -errno.EINPROGRESS    # the socket's cue to call fastopen_send
                if self._fastopen_child(pcb):
                    return self._queue(pcb, data, now, flags, urgent)   # a Fast Open child (Linux tcp_passive_fastopen)
            return -EAGAIN if st in _OPENING and not pcb.shut_wr else -errno.EPIPE
        return self._queue(pcb, data, now, flags, urgent)

    def _queue(self, pcb: Connection, data: memoryview, now: float, flags: int, urgent: bool) -> int:
        if not data:
            return 0
        # (info.notsent_bytes written out: once per write)
        if pcb.snd.queued - ((pcb.snd_max - pcb.snd_una) & MASK) >= (pcb.notsent_lowat or pcb.config.notsent_lowat):
            return -EAGAIN                   # Linux sk_stream_memory_free: TCP_NOTSENT_LOWAT reached
        if pcb.rack.want_rate:
            rate_conn.check_app_limited(pcb)     # Linux tcp_sendmsg: is sending app-limited? (rate_conn.py)
        n = pcb.send(data, now, urgent, bool(flags & MSG_MORE), bool(flags & MSG_EOR))
        self.tcp.mem.update(pcb)
        self.tcp.schedule(pcb)
        if not n:
            info.chrono_start(pcb, info.CHRONO_SNDBUF_LIMITED, now)
        return n or -EAGAIN

    def recv(self, pcb: Connection, bufsize: int, peek: bool, now: float) -> tuple[bytes, None] | None:
        if pcb.state == State.LISTEN:
            return None
        data = pcb.receive(bufsize, peek, now)
        self.tcp.mem.update(pcb)
        self.tcp.schedule(pcb)
        return (data, None) if data else None

    def recv_control(self, pcb: Connection) -> list[tuple[int, int, bytes]]:
        """The control messages of a recvmsg that read (Linux tcp_recvmsg): with TCP_INQ,
        (SOL_TCP, TCP_CM_INQ, the bytes still queued), as tcp_inq_hint counts them --
        rcv_nxt - copied_seq, so a FIN received adds one, and a stream read to its end
        (SOCK_DONE) says 1 so that the reader comes back for the EOF."""
        if not pcb.recv_inq:
            return []
        inq = pcb.rcv.queued + (1 if pcb.rcv_fin else 0)
        return [(_pysocket.IPPROTO_TCP, TCP_CM_INQ, _INQ_CMSG.pack(inq))]

    # --- urgent data and ioctls (protocols/tcp/urgent.py) -----------------------------------------
    def send_oob(self, pcb: Connection, data: memoryview, now: float) -> int:
        return self._send(pcb, data, now, 0, True)

    def recv_oob(self, pcb: Connection, bufsize: int, peek: bool, now: float) -> bytes | int:
        """Linux tcp_recvmsg with MSG_OOB: ENOTCONN on a listener, then tcp_recv_urg."""
        if pcb.state == State.LISTEN:
            return errno.ENOTCONN
        if pcb.urg is None:
            return errno.EINVAL
        got = pcb.urg.recv_oob(peek, pcb.rcv_fin or pcb.state == State.CLOSED)
        return got[:bufsize] if isinstance(got, bytes) else got

    def control(self, pcb: Connection, request: int, now: float) -> int:
        """ioctl(2) on a TCP socket: SIOCATMARK here, the queue sizes in ioctl()."""
        if request == SIOCATMARK:
            urg = pcb.urg
            return int(urg is not None and urg.at_mark(read_seq(pcb.rcv_nxt, pcb.rcv.queued, pcb.rcv_fin)))
        return self.ioctl(pcb, request, now)

    # --- what the socket may ask ---------------------------------------------------------------------
    def state(self, pcb: Connection) -> int:
        flags = _SO_STATE[pcb.state]
        if pcb.tfo is not None and self.fastopen_deferred(pcb):
            flags = SS_ISCONNECTED           # connect() is done; the SYN waits for a write
        if pcb.rcv_fin:
            flags |= SS_CANTRCVMORE
        if pcb.shut_wr:
            flags |= SS_CANTSENDMORE
        return flags

    def readable(self, pcb: Connection) -> bool:
        # (a listener's live children: its TcbRare read directly, no descriptor per upcall)
        return pcb.readable() or bool(pcb.so_error) or pcb.rare.accept_live > 0

    def writable(self, pcb: Connection) -> bool:
        st = pcb.state
        # Linux tcp_poll: sk_stream_is_writeable -- a third of the buffer free, unsent bytes
        # under TCP_NOTSENT_LOWAT -- not any free byte (issue 14, point 9); DEFER_CONNECT and a
        # Fast Open child are writable before the handshake ends
        return bool(pcb.so_error) or st not in _OPEN or (st in _CAN_SEND and info.stream_writeable(pcb)) \
            or (pcb.tfo is not None and (self.fastopen_deferred(pcb) or self._fastopen_child(pcb))
                and info.stream_writeable(pcb))

    def take_error(self, pcb: Connection) -> int:
        return pcb.take_error()

    def sockaddr(self, pcb: Connection) -> Sockaddr:
        return self._name(pcb, pcb.laddr, pcb.lport)

    def peeraddr(self, pcb: Connection) -> Sockaddr | None:
        return self._name(pcb, pcb.faddr, pcb.fport) if pcb.state in _PEER_KNOWN else None

    # --- options -----------------------------------------------------------------------
    def setsockopt(self, pcb: Connection, level: int, name: int, value: Any, now: float) -> int:
        if level == _pysocket.IPPROTO_TCP:
            return self._set_tcp_option(pcb, name, value, now)
        if level == _pysocket.SOL_SOCKET:
            if name == _pysocket.SO_LINGER:
                if isinstance(value, int) or len(value) < _LINGER.size:
                    return errno.EINVAL
                onoff, seconds = _LINGER.unpack_from(value)
                pcb.linger0 = bool(onoff) and seconds == 0
            elif name == _pysocket.SO_RCVBUF:
                # Linux: an explicit size (doubled) also turns autotuning off (SOCK_RCVBUF_LOCK)
                pcb.set_rcvbuf(bufsize(value, STREAM_BUF_MAX, MIN_RCVBUF))
            elif name == _pysocket.SO_SNDBUF:
                pcb.set_sndbuf(bufsize(value, STREAM_BUF_MAX, MIN_SNDBUF))
            elif name == _pysocket.SO_KEEPALIVE:
                self._set_keepalive(pcb, bool(value), now)
            elif name == _pysocket.SO_OOBINLINE:
                pcb.urgent().inline = bool(value)
            elif name != _pysocket.SO_BROADCAST:   # accepted and meaningless for TCP, as on Linux
                return set_socket_option(pcb, name, value)
            return 0
        if level == _pysocket.IPPROTO_IP:
            return set_ip_option(pcb, name, value, stream=True)
        if level == _pysocket.IPPROTO_IPV6 and self.inet6:
            if name in (IPV6_JOIN_GROUP, IPV6_LEAVE_GROUP):
                # Linux do_ipv6_setsockopt: a short struct ipv6_mreq is EINVAL, then a
                # connection-oriented socket has no memberships (EPROTO)
                return errno.EINVAL if isinstance(value, int) or len(value) < MREQ_LEN else errno.EPROTO
            return set_ipv6_option(pcb, name, value, bound=bool(pcb.lport), stream=True)
        return errno.ENOPROTOOPT

    def _set_tcp_option(self, pcb: Connection, name: int, value: Any, now: float) -> int:
        if name == TCP_CONGESTION:
            algorithm = bytes(value).split(b"\0", 1)[0].decode() if not isinstance(value, int) else ""
            return pcb.set_congestion(algorithm) if algorithm else errno.EINVAL
        if name in (_pysocket.TCP_NODELAY, TCP_CORK):
            # Linux tcp_sock_set_nodelay / __tcp_sock_set_cork: TCP_NODELAY on pushes what
            # waits even on a corked socket (once: the cork holds what comes next); TCP_CORK
            # off pushes the partial segment it held
            if name == TCP_CORK:
                pcb.cork = bool(value)
                push = not pcb.cork
            else:
                pcb.nodelay = push = bool(value)
            if push:
                corked, pcb.cork = pcb.cork, False
                pcb.output(now)
                pcb.cork = corked
                self.tcp.schedule(pcb)
            return 0
        if name == TCP_QUICKACK:
            pcb.set_quickack(bool(value), now)
            self.tcp.schedule(pcb)
            return 0
        if name in (_pysocket.TCP_KEEPIDLE, _pysocket.TCP_KEEPINTVL):
            if not 1 <= value <= 32767:
                return errno.EINVAL
            if name == _pysocket.TCP_KEEPIDLE:
                pcb.keepidle = float(value)
                pcb.keep_at = None
                pcb.arm_keepalive(now)
                self.tcp.schedule(pcb)
            else:
                pcb.keepintvl = float(value)
            return 0
        if name == _pysocket.TCP_KEEPCNT:
            if not 1 <= value <= 127:
                return errno.EINVAL
            pcb.keepcnt = value
            return 0
        if name in (TCP_FASTOPEN, TCP_FASTOPEN_CONNECT):
            return self._set_fastopen(pcb, name, value)
        if name == TCP_MAXSEG:
            if value and not 88 <= value <= 32767:
                return errno.EINVAL
            if value and pcb.state in (State.CLOSED, State.LISTEN):
                pcb.user_mss = pcb.our_mss = value       # kept: connect's route clamps to it (issue 14, 2)
            return 0
        if name in _ISSUE14_OPTIONS:
            return _ISSUE14_OPTIONS[name](pcb, value)
        if name == TCP_DEFER_ACCEPT:
            pcb.defer_accept = deferaccept.secs_to_retrans(value)
            return 0
        return errno.ENOPROTOOPT

    def _set_fastopen(self, pcb: Connection, name: int, value: int) -> int:
        """Linux do_tcp_setsockopt: TCP_FASTOPEN (the queue limit, min(value, somaxconn)) on
        a closed or listening socket -- kept until listen() on a closed one; the server flag
        is checked per SYN.  TCP_FASTOPEN_CONNECT 0/1 on a closed socket, with the client
        flag on (EOPNOTSUPP without it)."""
        if name == TCP_FASTOPEN:
            if value < 0 or pcb.state not in (State.CLOSED, State.LISTEN):
                return errno.EINVAL
            qlen = min(value, self.tcp.config.somaxconn)
            if pcb.tfo_queue is None:
                pcb.tfo_queue = FastOpenQueue(qlen)
            else:
                pcb.tfo_queue.max_qlen = qlen
            return 0
        if not 0 <= value <= 1:
            return errno.EINVAL
        if not self.tcp.fastopen.client:
            return errno.EOPNOTSUPP
        if pcb.state != State.CLOSED:
            return errno.EINVAL
        pcb.tfo_connect = bool(value)
        return 0

    def _set_keepalive(self, pcb: Connection, on: bool, now: float) -> None:
        pcb.keepalive = on
        pcb.keep_at = None
        pcb.arm_keepalive(now)
        self.tcp.schedule(pcb)

    def getsockopt(self, pcb: Connection, level: int, name: int, now: float) -> int | bytes | None:
        """Ints, or the bytes of a struct option: TCP_INFO, TCP_CONGESTION (the name, NUL
        padded), SO_LINGER (struct linger)."""
        if level == _pysocket.IPPROTO_TCP:
            if name == TCP_INFO:
                return info.tcp_info(pcb, now)
            return self._get_tcp_option(pcb, name)
        if level == _pysocket.SOL_SOCKET:
            if name == _pysocket.SO_LINGER:
                return _LINGER.pack(int(pcb.linger0), 0)
            if name == _pysocket.SO_RCVBUF:
                return pcb.rcv.capacity
            if name == _pysocket.SO_SNDBUF:
                return pcb.snd.capacity
            if name == _pysocket.SO_BROADCAST:
                return 0
            if name == _pysocket.SO_ACCEPTCONN:
                return int(pcb.state == State.LISTEN)
            if name == _pysocket.SO_OOBINLINE:
                return int(pcb.urg is not None and pcb.urg.inline)
            return get_socket_option(pcb, name)
        if level == _pysocket.IPPROTO_IP:
            return get_ip_option(pcb, name, self.tcp.ipv4.default_ttl)
        if level == _pysocket.IPPROTO_IPV6 and self.inet6:
            ipv6 = self.tcp.ipv6
            return get_ipv6_option(pcb, name, ipv6.default_hop_limit if ipv6 is not None else DEFAULT_HOP_LIMIT,
                                   stream=True)
        return None

    def _get_tcp_option(self, pcb: Connection, name: int) -> int | bytes | None:
        if name == TCP_CONGESTION:
            return pcb.cc.name.encode() + bytes(16)   # NUL-terminated whatever length is asked
        if name == _pysocket.TCP_NODELAY:
            return int(pcb.nodelay)
        if name == TCP_CORK:
            return int(pcb.cork)
        if name == TCP_QUICKACK:
            return int(not pcb.pingpong)
        if name == _pysocket.TCP_KEEPIDLE:
            return int(pcb.keepidle)
        if name == _pysocket.TCP_KEEPINTVL:
            return int(pcb.keepintvl)
        if name == _pysocket.TCP_KEEPCNT:
            return pcb.keepcnt
        if name == TCP_FASTOPEN:
            return pcb.tfo_queue.max_qlen if pcb.tfo_queue is not None else 0
        if name == TCP_FASTOPEN_CONNECT:
            return int(pcb.tfo_connect)
        if name == TCP_MAXSEG:
            return pcb.mss if pcb.state not in (State.CLOSED, State.LISTEN) else pcb.our_mss
        if name == TCP_USER_TIMEOUT:
            return round(pcb.user_timeout * 1000)
        if name == TCP_NOTSENT_LOWAT:
            return pcb.notsent_lowat - (1 << 32) if pcb.notsent_lowat >= 1 << 31 else pcb.notsent_lowat
        if name == TCP_INQ:
            return int(pcb.recv_inq)
        if name == TCP_DEFER_ACCEPT:
            return deferaccept.retrans_to_secs(pcb.defer_accept)
        return None

    def ioctl(self, pcb: Connection, request: int, now: float) -> int:
        """Linux tcp_ioctl: SIOCINQ the bytes readable, SIOCOUTQ those not yet ACKed (the FIN
        counts, as write_seq does), SIOCOUTQNSEQ those not yet sent; 0 while connecting,
        EINVAL on a listener.  -errno when refused (ENOTTY: not a request TCP knows)."""
        if request not in (SIOCINQ, SIOCOUTQ, SIOCOUTQNSEQ):
            return -errno.ENOTTY
        st = pcb.state
        if st == State.LISTEN:
            return -errno.EINVAL
        if st in _OPENING:
            return 0
        if request == SIOCINQ:
            return pcb.rcv.queued
        fin = 1 if pcb.fin_queued and not pcb.fin_acked else 0
        if request == SIOCOUTQ:
            return pcb.snd.queued + fin
        return info.notsent_bytes(pcb) + (fin if pcb.fin_seq is None else 0)

    def info(self, pcb: Connection) -> dict[str, Any]:
        """TCP_INFO as a dict (state, rtt, cwnd, retransmits, ...)."""
        return pcb.info()


def _set_user_timeout(pcb: Connection, value: int) -> int:
    """TCP_USER_TIMEOUT (RFC 5482), milliseconds: how long sent data may stay unACKed
    before the connection is dropped with ETIMEDOUT (timer.py); 0 turns it off."""
    if value < 0:
        return errno.EINVAL
    pcb.user_timeout = value / 1000
    return 0


def _set_notsent_lowat(pcb: Connection, value: int) -> int:
    """TCP_NOTSENT_LOWAT: any int, kept as Linux's u32 (0: net.ipv4.tcp_notsent_lowat)."""
    pcb.notsent_lowat = value & 0xFFFFFFFF
    pcb.on_event()                          # Linux sk_write_space: a writer may wake now
    return 0


def _set_inq(pcb: Connection, value: int) -> int:
    if value not in (0, 1):
        return errno.EINVAL
    pcb.recv_inq = bool(value)
    return 0


# issue 14's TCP options (setsockopt): one entry each, so others' options merge beside them
_ISSUE14_OPTIONS: dict[int, Callable[[Connection, int], int]] = {
    TCP_USER_TIMEOUT: _set_user_timeout,
    TCP_NOTSENT_LOWAT: _set_notsent_lowat,
    TCP_INQ: _set_inq,
}


if TYPE_CHECKING:
    from ..contracts import StreamUserRequests

    def _implements_the_contract(requests: TcpUserRequests) -> StreamUserRequests:
        return requests     # mypy checks every request's signature against protocols/contracts.py
