"""pr_usrreqs for SOCK_STREAM/IPPROTO_TCP: what the socket layer may ask of TCP.

Every call returns at once (sans-IO): an errno, data, a count, or None for "would
block"; the stream socket (stack/stream.py) does the waiting.
"""
from __future__ import annotations

import errno
import socket as _pysocket
import struct

from .conn import Connection
from .state import State
from .tcp import Tcp

TCP_MAXSEG = _pysocket.TCP_MAXSEG
# struct tcp_info up to tcpi_segs_in (Linux include/uapi/linux/tcp.h)
_TCP_INFO = struct.Struct("<8B24I4Q2I")


class TcpUserRequests:
    def __init__(self, tcp: Tcp) -> None:
        self.tcp = tcp

    def attach(self) -> Connection:
        return self.tcp.attach()

    def bind(self, pcb: Connection, addr: int, port: int) -> int:
        return self.tcp.bind(pcb, addr, port)

    def listen(self, pcb: Connection, backlog: int) -> int:
        return self.tcp.listen(pcb, backlog)

    def connect(self, pcb: Connection, addr: int, port: int, now: float) -> int:
        return self.tcp.connect(pcb, addr, port, now)

    def accept(self, pcb: Connection) -> Connection | None:
        return self.tcp.pop_accepted(pcb)

    def abandon_connect(self, pcb: Connection) -> None:
        """A cancelled connect: forget the attempt, keep the (auto-)bound name."""
        user_closed = pcb.user_closed
        pcb.user_closed = False
        pcb.drop(0)
        pcb.user_closed = user_closed
        pcb.faddr = pcb.fport = 0
        self.tcp.schedule(pcb)

    def abort_connect(self, pcb: Connection, err: int) -> None:
        """shutdown() in SYN-SENT (Linux tcp_disconnect): the attempt ends with `err`."""
        pcb.drop(err)

    def send(self, pcb: Connection, data: memoryview, now: float) -> int:
        n = pcb.send(data, now)
        self.tcp.mem.update(pcb)
        self.tcp.schedule(pcb)
        return n

    def recv(self, pcb: Connection, n: int, peek: bool, now: float) -> bytes:
        data = pcb.receive(n, peek, now)
        self.tcp.mem.update(pcb)
        self.tcp.schedule(pcb)
        return data

    def set_rcvbuf(self, pcb: Connection, size: int) -> None:
        pcb.set_rcvbuf(size)

    def set_sndbuf(self, pcb: Connection, size: int) -> None:
        pcb.set_sndbuf(size)

    def shutdown_write(self, pcb: Connection, now: float) -> None:
        pcb.shutdown_write(now)
        self.tcp.schedule(pcb)

    def readable(self, pcb: Connection) -> bool:
        return pcb.readable() or pcb.accept_live > 0

    def take_error(self, pcb: Connection) -> int:
        return pcb.take_error()

    def unlisten(self, pcb: Connection, now: float) -> None:
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

    # --- options -----------------------------------------------------------------------
    def setopt(self, pcb: Connection, level: int, optname: int, value: int) -> int:
        if level == _pysocket.IPPROTO_TCP:
            if optname == _pysocket.TCP_NODELAY:
                pcb.nodelay = bool(value)
                if pcb.nodelay:
                    pcb.output(self.tcp.clock())
                    self.tcp.schedule(pcb)
                return 0
            if optname in (_pysocket.TCP_KEEPIDLE, _pysocket.TCP_KEEPINTVL):
                if not 1 <= value <= 32767:
                    return errno.EINVAL
                if optname == _pysocket.TCP_KEEPIDLE:
                    pcb.keepidle = float(value)
                    pcb.keep_at = None
                    pcb.arm_keepalive(self.tcp.clock())
                    self.tcp.schedule(pcb)
                else:
                    pcb.keepintvl = float(value)
                return 0
            if optname == _pysocket.TCP_KEEPCNT:
                if not 1 <= value <= 127:
                    return errno.EINVAL
                pcb.keepcnt = value
                return 0
            if optname == TCP_MAXSEG:
                if value and not 88 <= value <= 32767:
                    return errno.EINVAL
                if value and pcb.state in (State.CLOSED, State.LISTEN):
                    pcb.our_mss = value
                return 0
            return errno.ENOPROTOOPT
        return errno.ENOPROTOOPT

    def set_keepalive(self, pcb: Connection, on: bool) -> None:
        pcb.keepalive = on
        pcb.keep_at = None
        pcb.arm_keepalive(self.tcp.clock())
        self.tcp.schedule(pcb)

    def set_congestion(self, pcb: Connection, name: str) -> int:
        return pcb.set_congestion(name)

    def getopt(self, pcb: Connection, level: int, optname: int) -> int | None:
        if level != _pysocket.IPPROTO_TCP:
            return None
        if optname == _pysocket.TCP_NODELAY:
            return int(pcb.nodelay)
        if optname == _pysocket.TCP_KEEPIDLE:
            return int(pcb.keepidle)
        if optname == _pysocket.TCP_KEEPINTVL:
            return int(pcb.keepintvl)
        if optname == _pysocket.TCP_KEEPCNT:
            return pcb.keepcnt
        if optname == TCP_MAXSEG:
            return pcb.mss if pcb.state not in (State.CLOSED, State.LISTEN) else pcb.our_mss
        return None

    @staticmethod
    def tcp_info(pcb: Connection) -> bytes:
        i = pcb.info()
        ca_state = 3 if pcb.in_recovery else 0                  # TCP_CA_Recovery / Open
        wscale = (pcb.snd_wscale & 0xF) | ((pcb.rcv_wscale & 0xF) << 4)
        # Linux hands TIME-WAIT to a minisocket: the socket itself then reports CLOSE
        state = State.CLOSED if pcb.state == State.TIME_WAIT else pcb.state
        return _TCP_INFO.pack(
            int(state), ca_state, pcb.retransmits & 0xFF, pcb.keep_probes & 0xFF, pcb.rtt.backoff & 0xFF,
            int(i["options"]), wscale, 0,
            int(i["rto_us"]), 40000, pcb.mss, pcb.our_mss, int(i["unacked"]) & 0xFFFFFFFF,
            0, 0, 0, 0, 0, 0, 0, 0,
            pcb.ifp.mtu if pcb.ifp is not None else 0, pcb.rcv.capacity, int(i["rtt_us"]), int(i["rttvar_us"]),
            min(pcb.cc.ssthresh // max(pcb.mss, 1), 0xFFFFFFFF), int(i["snd_cwnd"]), pcb.our_mss, 3,
            0, pcb.rcv.free(), pcb.total_retrans,
            0, 0, pcb.bytes_acked, pcb.bytes_received, pcb.segs_out, pcb.segs_in)

