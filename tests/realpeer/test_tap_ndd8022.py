"""Over TAP: the AF_NDD 802.2 datagram family (issue 16 point 10) against Linux's AF_PACKET.
A Python AF_PACKET socket in the namespace, on the TAP's kernel side, and tunstack's
socket(AF_NDD, SOCK_DGRAM, NDD_PROT_ETHER) sockets on the stack side exchange whole frames
both ways: Ethernet II by ethertype, 802.3 frames by 802.2 DSAP, and by DSAP 0xAA + SNAP."""
from __future__ import annotations

import socket as pysocket
import struct
import sys

import trio

from ndd import constants as C
from stack.socket import AF_NDD, NDD_PROT_ETHER

from .conftest import Peer
from .helpers import Lines, some_of, start_linux

ETHERTYPE_TEST = 0x88B5          # IEEE 802 local experimental
SAP_TEST = 0xF0
ORG_TEST = b"\x00\x80\xc2"
SNAP_TYPE_TEST = 0x0007

# argv: dev, stack MAC, kernel MAC (hex).  Collects the stack's three frames (any order, by
# kind), prints each as "<kind> <hex>", then sends its own three and says "sent".
LINUX_PACKET_PEER = r"""
import socket, struct, sys
dev, stack_mac, kern_mac = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
ETH_P_ALL = 3
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
s.bind((dev, ETH_P_ALL))
print("bound", flush=True)
want = {"etype", "llc", "snap"}
while want:
    f = s.recv(4096)
    if f[6:12] != stack_mac or f[0:6] != kern_mac:
        continue
    (t,) = struct.unpack("!H", f[12:14])
    kind = "etype" if t == 0x88B5 else "snap" if t < 0x600 and f[14:17] == b"\xaa\xaa\x03" else \
        "llc" if t < 0x600 and f[14] == 0xF0 else None
    if kind in want:
        want.discard(kind)
        print(kind, f.hex(), flush=True)
def llc(body):
    f = stack_mac + kern_mac + struct.pack("!H", len(body)) + body
    return f + bytes(max(0, 60 - len(f)))
s.send(stack_mac + kern_mac + struct.pack("!H", 0x88B5) + b"linux etype".ljust(46, b"."))
s.send(llc(bytes((0xF0, 0xF0, 0x03)) + b"linux llc"))
s.send(llc(b"\xaa\xaa\x03\x00\x80\xc2\x00\x07" + b"linux snap"))
print("sent", flush=True)
"""


async def test_frames_both_ways_with_af_packet(tap_peer: Peer) -> None:
    st, dev = tap_peer.stack, tap_peer.dev
    us, kern = tap_peer.ndd.ndd_physaddr, tap_peer.ndd.kernel_mac
    etype = st.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER)
    dsap = st.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER)
    snap = st.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER)
    with etype, dsap, snap:
        etype.bind((dev, C.NS_ETHERTYPE, 0, b"\0\0\0", ETHERTYPE_TEST))
        dsap.bind((dev, C.NS_8022_LLC_DSAP, SAP_TEST, b"\0\0\0", 0))
        snap.bind((dev, C.NS_8022_LLC_DSAP_SNAP, 0xAA, ORG_TEST, SNAP_TYPE_TEST))
        proc = await start_linux(tap_peer.exec(sys.executable, "-c", LINUX_PACKET_PEER, dev, us.hex(), kern.hex()))
        try:
            out = Lines(proc.stdout)  # type: ignore[arg-type]
            ours = {
                "etype": kern + us + struct.pack("!H", ETHERTYPE_TEST) + b"tunstack etype".ljust(46, b"."),
                "llc": kern + us + struct.pack("!H", 3 + 12) + bytes((SAP_TEST, SAP_TEST, 0x03)) + b"tunstack llc",
                "snap": kern + us + struct.pack("!H", 8 + 13) + b"\xaa\xaa\x03" + ORG_TEST
                + struct.pack("!H", SNAP_TYPE_TEST) + b"tunstack snap",
            }
            ours = {k: f + bytes(max(0, 60 - len(f))) for k, f in ours.items()}
            got: dict[str, bytes] = {}
            with trio.fail_after(20):
                while len(got) < 3:
                    # the helper may start reading after our first frames: send until it has them
                    for kind, frame in ours.items():
                        if kind not in got:
                            await etype.sendto(frame, (dev, C.NS_ETHERTYPE, 0, b"\0\0\0", ETHERTYPE_TEST))
                    with trio.move_on_after(0.5):
                        line = await out.next()
                        assert line, f"helper ended: {await some_of(proc.stderr)!r}"
                        kind, hexframe = line.decode().split()
                        got[kind] = bytes.fromhex(hexframe)
            assert got == ours                      # Linux saw each frame exactly as written
            with trio.fail_after(20):
                assert await out.next() == b"sent"
                e = await etype.recv(2048)
                d = await dsap.recv(2048)
                n = await snap.recv(2048)
            assert e == us + kern + struct.pack("!H", ETHERTYPE_TEST) + b"linux etype".ljust(46, b".")
            assert d == us + kern + struct.pack("!H", 3 + 9) + bytes((SAP_TEST, SAP_TEST, 0x03)) + b"linux llc"
            assert n == (us + kern + struct.pack("!H", 8 + 10) + b"\xaa\xaa\x03" + ORG_TEST
                         + struct.pack("!H", SNAP_TYPE_TEST) + b"linux snap")
            assert etype.stats()["frames_in"] == 1 and dsap.stats()["frames_in"] == 1
            assert snap.stats()["frames_in"] == 1 and etype.stats()["frames_out"] >= 3
        finally:
            with trio.move_on_after(5):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
