"""The gateway table's `limit` column: a minimal Python TCP relay, the least a single-threaded
Python gateway must do per message (issue 13's request/response and connection rows, read
against issue 15's limit for the stack).

No stack: a TUN device in the guest namespace (so no ARP), one epoll over it and the host
sockets, and for each guest connection just enough TCP to keep Linux happy on a lossless
link --

  - a SYN: a blocking connect of a host socket (a neighbour answers inside connect(2)),
    then a SYN-ACK with an MSS option, window 65535, no scaling, SACK or timestamps;
  - guest text in order: sent to the host socket; its ACK rides on the next segment to the
    guest, or goes alone after 40 ms;
  - host data: one segment per 1460 octets to the guest, with the ACK;
  - a FIN each way (the guest's: SHUT_WR on the host socket, ACKed at once; the host's EOF:
    our FIN); a RST from the guest closes the host socket;
  - the gateway's busy polling (stack/busypoll.py's adaptive window, the same default): the
    epoll is polled without waiting until the window after the last event runs out.  The
    least a Python gateway must do includes what the gateway does to save wake-ups.

It does not retransmit, keeps no send buffer and has no flow control: it cannot carry a
bulk transfer, and the bench runs only the request/response and connection rows through
it.  Checksums of what it sends are computed (the guest's kernel checks them); what it
reads is not verified.  Run as a gateway of tools/lab/gwtopo.py:

  python -m tools.bench.gwrelay --netns /run/netns/GUEST [--mtu 1500] IFNAME

It configures the guest (10.0.2.100/24, default route on the TUN), prints a `ready:` line
and serves until killed.
"""
from __future__ import annotations

import argparse
import os
import select
import socket
import struct
import subprocess
import time

from ndd.checksum import checksum, ones_sum
from stack.busypoll import PollWindow
from tools.gateway.main import DEFAULT_BUSY_POLL
from tools.gateway.nsenter import NamespaceTarget, open_tuntap_in

IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MSS = 1460
WINDOW = 0xFFFF
DELAYED_ACK = 0.04             # a lone ACK after this long without host data to carry it
GUEST_ADDR, GUEST_PREFIX = "10.0.2.100", 24
SEQ_MASK = 0xFFFFFFFF
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_MSS_OPTION = struct.pack("!BBH", 2, 4, MSS)


class Flow:
    """One guest connection and its host socket; addresses packed (4 octets)."""
    __slots__ = ("guest", "gport", "remote", "rport", "sock", "snd_nxt", "rcv_nxt", "ack_at", "fin_in", "fin_out")

    def __init__(self, guest: bytes, gport: int, remote: bytes, rport: int, sock: socket.socket, iss: int,
                 rcv_nxt: int) -> None:
        self.guest, self.gport, self.remote, self.rport = guest, gport, remote, rport
        self.sock = sock
        self.snd_nxt, self.rcv_nxt = iss, rcv_nxt
        self.ack_at = 0.0                         # when the ACK owed to the guest goes alone (0: none)
        self.fin_in = self.fin_out = False


def segment(f: Flow, flags: int, payload: bytes = b"", mss: bool = False) -> bytes:
    """An IPv4 + TCP segment from `f`'s remote end to its guest, checksums filled in."""
    opts = _MSS_OPTION if mss else b""
    tcp_len = 20 + len(opts)
    tcp = bytearray(_TCP.pack(f.rport, f.gport, f.snd_nxt, f.rcv_nxt, (tcp_len // 4) << 4, flags, WINDOW, 0, 0))
    tcp += opts
    pseudo = f.remote + f.guest + struct.pack("!BBH", 0, socket.IPPROTO_TCP, tcp_len + len(payload))
    struct.pack_into("!H", tcp, 16, checksum(payload, ones_sum(tcp, ones_sum(pseudo))))
    ip = bytearray(_IP.pack(0x45, 0, 20 + tcp_len + len(payload), 0, 0x4000, 64, socket.IPPROTO_TCP, 0,
                            f.remote, f.guest))
    struct.pack_into("!H", ip, 10, checksum(ip))
    return bytes(ip + tcp) + payload


class Relay:
    def __init__(self, tun: int, busy_poll: float = DEFAULT_BUSY_POLL) -> None:
        self.tun = tun
        self.window = PollWindow(busy_poll)
        self.epoll = select.epoll()
        self.epoll.register(tun, select.EPOLLIN)
        self.flows: dict[tuple[bytes, int, bytes, int], Flow] = {}
        self.by_fd: dict[int, Flow] = {}
        self.iss = 1000

    def _open(self, key: tuple[bytes, int, bytes, int], seq: int) -> None:
        guest, gport, remote, rport = key
        sock = socket.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.connect((socket.inet_ntoa(remote), rport))
        except OSError:
            sock.close()                          # the guest's SYN retries time out
            return
        sock.setblocking(False)
        f = Flow(guest, gport, remote, rport, sock, self.iss, (seq + 1) & SEQ_MASK)
        self.iss = (self.iss + 100_000) & SEQ_MASK
        self.flows[key] = f
        self.by_fd[sock.fileno()] = f
        self.epoll.register(sock.fileno(), select.EPOLLIN)
        os.write(self.tun, segment(f, SYN | ACK, mss=True))
        f.snd_nxt = (f.snd_nxt + 1) & SEQ_MASK

    def _forget(self, f: Flow) -> None:
        fd = f.sock.fileno()
        if self.by_fd.pop(fd, None) is not None:
            self.epoll.unregister(fd)
        f.sock.close()
        self.flows.pop((f.guest, f.gport, f.remote, f.rport), None)

    def guest_frame(self, frame: bytes, now: float) -> None:
        if len(frame) < 40 or frame[0] != 0x45 or frame[9] != socket.IPPROTO_TCP:
            return
        sport, dport, seq, ack, off, flags, _win, _csum, _urg = _TCP.unpack_from(frame, 20)
        key = (frame[12:16], sport, frame[16:20], dport)
        f = self.flows.get(key)
        if flags & SYN:
            if f is None:
                self._open(key, seq)
            return
        if f is None:
            return
        if flags & RST:
            self._forget(f)
            return
        payload = frame[20 + (off >> 4) * 4:]
        if payload and seq == f.rcv_nxt:
            f.sock.send(payload)
            f.rcv_nxt = (f.rcv_nxt + len(payload)) & SEQ_MASK
            if not f.ack_at:
                f.ack_at = now + DELAYED_ACK
        if flags & FIN and not f.fin_in:
            f.fin_in = True
            f.rcv_nxt = (f.rcv_nxt + 1) & SEQ_MASK
            f.sock.shutdown(socket.SHUT_WR)
            os.write(self.tun, segment(f, ACK))
            f.ack_at = 0.0
        if f.fin_in and f.fin_out and ack == f.snd_nxt:
            self._forget(f)

    def host_readable(self, f: Flow) -> None:
        try:
            data = f.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            for i in range(0, len(data), MSS):
                chunk = data[i:i + MSS]
                os.write(self.tun, segment(f, ACK | PSH, chunk))
                f.snd_nxt = (f.snd_nxt + len(chunk)) & SEQ_MASK
        else:
            fd = f.sock.fileno()
            self.epoll.unregister(fd)
            del self.by_fd[fd]
            os.write(self.tun, segment(f, FIN | ACK))
            f.snd_nxt = (f.snd_nxt + 1) & SEQ_MASK
            f.fin_out = True
        f.ack_at = 0.0

    def run(self) -> None:
        window, clock = self.window, time.perf_counter
        quiet_since = clock()
        while True:
            events = self.epoll.poll(0)
            if not events and clock() - quiet_since >= window.window:
                owed = [f.ack_at for f in self.flows.values() if f.ack_at]
                timeout = max(0.0, min(owed) - time.monotonic()) if owed else -1.0
                events = self.epoll.poll(timeout)
                if events:
                    window.idle_ended(clock() - quiet_since)   # the gateway's adaptive window
            now = time.monotonic()
            for fd, _ in events:
                if fd == self.tun:
                    for _ in range(64):
                        try:
                            frame = os.read(self.tun, 65600)
                        except BlockingIOError:
                            break
                        self.guest_frame(frame, now)
                elif (f := self.by_fd.get(fd)) is not None:
                    self.host_readable(f)
            for f in list(self.flows.values()):
                if f.ack_at and f.ack_at <= now:
                    os.write(self.tun, segment(f, ACK))
                    f.ack_at = 0.0
            if events:
                quiet_since = clock()                 # after their work, as the gateway's poller


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tools.bench.gwrelay", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--netns", required=True, help="the guest's network namespace file (/run/netns/NAME)")
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--busy-poll", type=float, default=DEFAULT_BUSY_POLL * 1e6, metavar="USEC",
                   help=f"poll this long after traffic before sleeping, adapting as the gateway's "
                        f"(default {DEFAULT_BUSY_POLL * 1e6:g}, the gateway's; 0: never)")
    p.add_argument("ifname")
    a = p.parse_args()
    dev = open_tuntap_in(NamespaceTarget.for_path(a.netns), a.ifname, IFF_TUN | IFF_NO_PI)
    os.set_blocking(dev.fd, False)
    name = os.path.basename(a.netns)          # tools/lab/gwtopo.py's guest: /run/netns/NAME
    enter = ["ip", "-n", name] if a.netns == f"/run/netns/{name}" else ["nsenter", f"--net={a.netns}", "ip"]
    for cmd in (["link", "set", a.ifname, "mtu", str(a.mtu), "up"],
                ["addr", "add", f"{GUEST_ADDR}/{GUEST_PREFIX}", "dev", a.ifname],
                ["route", "add", "default", "dev", a.ifname]):
        subprocess.run([*enter, *cmd], check=True)
    print(f"ready: minimal relay on {a.ifname} (TUN), guest {GUEST_ADDR}", flush=True)
    Relay(dev.fd, a.busy_poll / 1e6).run()


if __name__ == "__main__":
    main()
