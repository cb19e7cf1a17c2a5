"""The gateway's Python cost per relayed round trip and per relayed connection, with no
network: the gateway's Stack (a transparent interface, as tools/gateway/main.py makes it)
over an in-memory TAP -- a SOCK_SEQPACKET pair standing for the TAP's fd, the vnet header
and offloads as the real device has them -- and a lean relayed flow (protocols/tcp/relayed.py)
whose host socket is a fake that takes everything.

  rr    per round trip: a 1-byte guest segment (ACKing our last) read by the device's
        poll_rx down to the host side, then 1 host byte down to the device write
  crr   per connection: SYN (forwarded) -> forward_relay (the SYN-ACK) -> ACK + request in
        one read -> the host's byte and EOF in one segment -> the guest's FIN -> our ACK

What it times is the Python the gateway runs per event, and the socketpair's system
calls (~1-2 µs each, not the TAP's and host sockets' tens): the figure to watch when the
per-frame path changes (README, "Not yet implemented").  Not part of `make bench`.

  python -m tools.bench.relaycost [--rounds N] [rr|crr ...]
"""
from __future__ import annotations

import argparse
import socket
import struct
import sys
import time
from collections.abc import Callable

import trio

from drivers import vnet
from drivers.tuntap import TapNdd
from ndd import constants as C
from ndd.checksum import checksum
from ndd.ndd import StatusBlock
from protocols.tcp.forward import ForwardRequest
from protocols.tcp.relayed import RelayedFlow
from stack import Stack, StackConfig

GUEST_MAC = bytes.fromhex("020000000064")
GUEST, REMOTE = socket.inet_aton("10.0.2.100"), socket.inet_aton("93.184.216.34")
REMOTE_PORT = 80
SYN, FIN, PSH, ACK = 0x02, 0x01, 0x08, 0x10
SYN_OPTIONS = struct.pack("!BBHBBBBBBBB", 2, 4, 1460, 1, 3, 3, 7, 4, 2, 1, 1)   # MSS, wscale 7, SACK ok
_TCP = struct.Struct("!HHIIBBHHH")
_IP = struct.Struct("!BBHHHBBH4s4s")
ISN_AT = vnet.VNET_HDR_LEN + 14 + 20 + 4        # our SYN-ACK's sequence number in a frame we write


class MemoryTap(TapNdd):
    """A TAP whose fd is one end of a socket pair; `kernel` is the guest's end."""

    def _open_device(self) -> None:
        self.ours, self.kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.ours.setblocking(False)
        self.fd, self.vnet = self.ours.fileno(), True
        caps = self.caps
        caps.tx_csum_offload = caps.rx_csum_partial = caps.gso_rx = True
        caps.tso_max = 65535
        self.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_LINK_UP,)))

    def _close_device(self) -> None:
        self.stop_tasks()
        self.kernel.close()
        self.ours.close()
        self.fd = -1


class TakeAll:
    """The host socket (tools/gateway/lean.py's RelayHost): takes every octet."""

    def __init__(self) -> None:
        self.got = 0

    def to_host(self, data: memoryview) -> int:
        self.got += len(data)
        return len(data)

    def shut_host(self) -> None:
        pass

    def host_reads(self, on: bool) -> None:
        pass

    def host_writes(self, on: bool) -> None:
        pass

    def close_host(self, reset: bool) -> None:
        pass


def guest_frame(tap: TapNdd, gport: int, flags: int, seq: int, ack: int, payload: bytes = b"",
                options: bytes = b"") -> bytes:
    """What the guest's kernel writes: vnet header (a partial checksum), Ethernet, IPv4, TCP."""
    thl = 20 + len(options)
    tcp = _TCP.pack(gport, REMOTE_PORT, seq, ack, (thl // 4) << 4, flags, 502, 0, 0) + options
    ip = bytearray(_IP.pack(0x45, 0, 20 + thl + len(payload), 1, 0x4000, 64, 6, 0, GUEST, REMOTE))
    struct.pack_into("!H", ip, 10, checksum(ip))
    hdr = vnet.VNET_HDR.pack(vnet.F_NEEDS_CSUM, 0, 0, 0, 34, 16)
    return hdr + tap.ndd_physaddr + GUEST_MAC + b"\x08\x00" + bytes(ip) + tcp + payload


async def _gateway(run: Callable[[Stack, MemoryTap, list[ForwardRequest]], dict[str, float]]) -> dict[str, float]:
    tap = MemoryTap("relaycost0", mtu=1500)
    async with Stack("gateway", config=StackConfig(ipv6=False)) as st:
        ifp = st.add_interface(tap, "10.0.2.2/24", mtu=1500)
        ifp.transparent = True
        ifp.link.arp.add_static(int.from_bytes(GUEST, "big"), GUEST_MAC, st.now())
        requests: list[ForwardRequest] = []
        st.tcp.forwarder = requests.append
        return run(st, tap, requests)


def _open(st: Stack, tap: MemoryTap, requests: list[ForwardRequest], gport: int) -> tuple[RelayedFlow, TakeAll, int]:
    tap.kernel.send(guest_frame(tap, gport, SYN, 1000, 0, options=SYN_OPTIONS))
    if not tap.poll_rx() or not requests:
        raise RuntimeError("the SYN was not forwarded")
    host = TakeAll()
    flow = st.tcp.forward_relay(requests.pop().id, host, st.now())
    if flow is None:
        raise RuntimeError("forward_relay refused the flow")
    isn = struct.unpack_from("!I", tap.kernel.recv(70000), ISN_AT)[0]
    return flow, host, isn


def round_trips(st: Stack, tap: MemoryTap, requests: list[ForwardRequest], rounds: int) -> dict[str, float]:
    flow, host, isn = _open(st, tap, requests, 40000)
    k, pc = tap.kernel, time.perf_counter_ns
    gseq, gack = 1001, (isn + 1) & 0xFFFFFFFF
    k.send(guest_frame(tap, 40000, ACK, gseq, gack))
    tap.poll_rx()
    t_in = t_out = 0
    for _ in range(rounds):
        k.send(guest_frame(tap, 40000, ACK | PSH, gseq, gack, b"q"))
        t0 = pc()
        tap.poll_rx()
        t1 = pc()
        flow.host_data(b"r", st.now())
        t2 = pc()
        k.recv(70000)
        gseq, gack = gseq + 1, (gack + 1) & 0xFFFFFFFF
        t_in, t_out = t_in + t1 - t0, t_out + t2 - t1
    if host.got != rounds:
        raise RuntimeError(f"the host side got {host.got} octets of {rounds}")
    return {"guest_to_host_us": t_in / rounds / 1000, "host_to_guest_us": t_out / rounds / 1000,
            "round_trip_us": (t_in + t_out) / rounds / 1000}


def connections(st: Stack, tap: MemoryTap, requests: list[ForwardRequest], rounds: int) -> dict[str, float]:
    k, pc = tap.kernel, time.perf_counter_ns
    steps = {"syn_us": 0, "ack_request_us": 0, "reply_eof_us": 0, "fin_us": 0}
    for i in range(rounds):
        gport = 20000 + i % 40000
        t0 = pc()
        flow, host, isn = _open(st, tap, requests, gport)    # the SYN in, forwarded, the SYN-ACK out
        t2 = pc()
        k.send(guest_frame(tap, gport, ACK, 1001, isn + 1))
        k.send(guest_frame(tap, gport, ACK | PSH, 1001, isn + 1, b"q"))
        t3 = pc()
        tap.poll_rx()
        t4 = pc()
        flow.host_data(b"r", st.now(), eof=True)
        t5 = pc()
        k.recv(70000)
        k.send(guest_frame(tap, gport, FIN | ACK, 1002, isn + 3))
        t6 = pc()
        tap.poll_rx()
        t7 = pc()
        k.recv(70000)
        if host.got != 1:
            raise RuntimeError("the request did not reach the host side")
        steps["syn_us"] += t2 - t0
        steps["ack_request_us"] += t4 - t3
        steps["reply_eof_us"] += t5 - t4
        steps["fin_us"] += t7 - t6
    out = {key: v / rounds / 1000 for key, v in steps.items()}
    out["connection_us"] = sum(out.values())
    return out


ROWS: dict[str, Callable[[Stack, MemoryTap, list[ForwardRequest], int], dict[str, float]]] = {
    "rr": round_trips, "crr": connections}


def measure(row: str, rounds: int) -> dict[str, float]:
    """One row's figures (µs per unit), in a fresh gateway Stack."""
    fn = ROWS[row]
    return trio.run(_gateway, lambda st, tap, reqs: fn(st, tap, reqs, rounds))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench.relaycost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20000, metavar="N", help="round trips or connections (20000)")
    p.add_argument("rows", nargs="*", metavar="ROW", help="rr, crr (default both)")
    a = p.parse_args(argv)
    if a.rounds < 1:
        p.error("--rounds must be at least 1")
    for row in a.rows:
        if row not in ROWS:
            p.error(f"unknown row {row!r}: rr or crr")
    for row in a.rows or list(ROWS):
        got = measure(row, a.rounds)
        print(f"{row}: " + "  ".join(f"{k} {v:.1f}" for k, v in got.items()) + f"  ({a.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
