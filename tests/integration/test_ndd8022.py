"""Issue 16 point 10: the AF_NDD 802.2 datagram family (protocols/ndd8022.py) between two
Stacks on a memory Ethernet link -- socket(AF_NDD, SOCK_DGRAM, NDD_PROT_ETHER), bound to an
ethertype, an LLC DSAP or a SNAP orgcode/type, frames sent and received whole; its errnos,
its bounded receive queue.  Against Linux's AF_PACKET over a TAP:
tests/realpeer/test_tap_ndd8022.py."""
from __future__ import annotations

import errno
import socket as pysocket
import struct

import pytest
import trio

from drivers.memlink import MemoryNdd
from ndd import constants as C
from protocols.ndd8022 import SOCKADDR_NDD_8022, SockaddrNdd8022, parse_sockaddr_8022
from stack.ndd_socket import Ndd8022Socket
from stack.socket import AF_NDD, NDD_PROT_ETHER

from .helpers import MAC_A, MAC_B, ether_frame, llc_frame, two_stacks

ETHERTYPE_TEST = 0x88B5      # IEEE 802 local experimental ethertype 1
SAP_TEST = 0xF0              # an LLC SAP no protocol of ours uses (NetBIOS's, on AIX)
ORG_TEST = b"\x00\x80\xc2"
SNAP_TYPE_TEST = 0x0007


def test_sockaddr_ndd_8022_byte_form() -> None:
    """<sys/ndd_var.h> sockaddr_ndd_8022 with <sys/cdli.h> ns_8022, big-endian: 36 octets."""
    assert SOCKADDR_NDD_8022.size == 36
    sa = SockaddrNdd8022("en0", C.NS_8022_LLC_DSAP_SNAP, 0xAA, ORG_TEST, SNAP_TYPE_TEST)
    raw = sa.pack()
    assert raw[0] == 36 and raw[1] == 23 and raw[2:18] == b"en0" + bytes(13)
    assert raw[18:20] == b"\0\0" and struct.unpack(">I", raw[20:24]) == (12,)   # filterlen: sizeof(ns_8022)
    assert struct.unpack(">I", raw[24:28]) == (2,) and raw[28] == 0xAA and raw[29:32] == ORG_TEST
    assert raw[32:34] == b"\x00\x07" and raw[34:] == b"\0\0"
    assert SockaddrNdd8022.unpack(raw) == sa
    assert parse_sockaddr_8022(raw) == sa == parse_sockaddr_8022(sa.astuple())
    assert parse_sockaddr_8022(("en0", 0x0800)) == SockaddrNdd8022("en0", C.NS_ETHERTYPE, 0, b"\0\0\0", 0x0800)
    with pytest.raises(ValueError):
        SockaddrNdd8022.unpack(raw[:30])
    with pytest.raises(ValueError):
        SockaddrNdd8022.unpack(raw[:1] + b"\x02" + raw[2:])      # AF_INET is not this family
    with pytest.raises(TypeError):
        parse_sockaddr_8022("en0")
    with pytest.raises(ValueError):
        parse_sockaddr_8022(("en0", C.NS_ETHERTYPE, 0, b"\0\0\0", 0x10000))


async def test_socket_kinds() -> None:
    async with two_stacks(ipv6=False) as p:
        s = p.sa.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER)
        assert isinstance(s, Ndd8022Socket) and (AF_NDD, NDD_PROT_ETHER) == (23, 1)
        assert s.getsockopt(pysocket.SOL_SOCKET, pysocket.SO_PROTOCOL) == 1
        s.close()
        s0 = p.sa.socket(AF_NDD, pysocket.SOCK_DGRAM, 0)   # proto 0: the family's datagram protocol (dhcpd)
        assert isinstance(s0, Ndd8022Socket) and s0.proto == NDD_PROT_ETHER
        s0.close()
        with pytest.raises(OSError) as info:
            p.sa.socket(AF_NDD, pysocket.SOCK_DGRAM, C.NDD_PROT_TOK)
        assert info.value.errno == errno.EPROTONOSUPPORT


async def test_ethertype_frames_whole_both_ways() -> None:
    async with two_stacks(ipv6=False) as p:
        with p.sa.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER) as a, \
                p.sb.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER) as b:
            # libdnet's eth_open: bind then connect with the same sockaddr, in its C form
            addr_b = SockaddrNdd8022("m1", C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST).pack()
            b.bind(addr_b)
            await b.connect(addr_b)
            assert b.getsockname() == ("m1", C.NS_ETHERTYPE, 0, b"\0\0\0", ETHERTYPE_TEST)
            a.bind(("m0", ETHERTYPE_TEST))
            frame = ether_frame(MAC_B, MAC_A, ETHERTYPE_TEST, b"hello 802.2" + bytes(40))
            assert await a.send(frame) == len(frame)
            with trio.fail_after(5):
                got, src = await b.recvfrom(2048)
            assert got == frame                                      # MAC header and all
            assert src == ("m1", C.NS_ETHERTYPE, 0, b"\0\0\0", ETHERTYPE_TEST)
            reply = ether_frame(MAC_A, MAC_B, ETHERTYPE_TEST, b"back" + bytes(50))
            await b.send(reply)
            with trio.fail_after(5):
                assert await a.recv(2048) == reply
            # a frame of another ethertype is no socket's: counted by the demuxer, not queued
            before = p.b.ndd_nsdemux.nd_dmxstats.nd_nofilter
            await a.send(ether_frame(MAC_B, MAC_A, ETHERTYPE_TEST + 1, bytes(46)))
            await trio.sleep(0.05)
            assert p.b.ndd_nsdemux.nd_dmxstats.nd_nofilter == before + 1
            with pytest.raises(BlockingIOError):
                await b.recv(2048, pysocket.MSG_DONTWAIT)
            assert a.stats()["frames_out"] == 2 and b.stats()["frames_in"] == 1
            # IP keeps working beside it
            await p.sa.ping("10.0.0.2", timeout=3)


async def test_llc_dsap_and_snap() -> None:
    async with two_stacks(ipv6=False) as p:
        with p.sa.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER) as a, \
                p.sb.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER) as dsap, \
                p.sb.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER) as snap:
            dsap.bind(("m1", C.NS_8022_LLC_DSAP, SAP_TEST, b"\0\0\0", 0))
            snap.bind(("m1", C.NS_8022_LLC_DSAP_SNAP, 0xAA, ORG_TEST, SNAP_TYPE_TEST))
            await a.connect(("m0", C.NS_ETHERTYPE, 0, b"\0\0\0", 0xFEED))   # dhcpd: connect only, to send
            llc = llc_frame(MAC_B, MAC_A, bytes((SAP_TEST, SAP_TEST, 0x03)), b"llc data")
            snapf = llc_frame(MAC_B, MAC_A, b"\xaa\xaa\x03" + ORG_TEST + struct.pack("!H", SNAP_TYPE_TEST),
                              b"snap data")
            await a.send(llc)
            await a.send(snapf)
            with trio.fail_after(5):
                got_llc = await dsap.recv(2048)
                got_snap = await snap.recv(2048)
            # whole, less the padding beyond the 802.3 length
            assert got_llc == llc[:14 + 3 + len(b"llc data")]
            assert got_snap == snapf[:14 + 8 + len(b"snap data")]
            # a SNAP filter wants DSAP 0xAA
            with p.sb.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER) as bad:
                with pytest.raises(OSError) as info:
                    bad.bind(("m1", C.NS_8022_LLC_DSAP_SNAP, 0x42, ORG_TEST, 1))
                assert info.value.errno == errno.EINVAL


async def test_errnos() -> None:
    async with two_stacks(ipv6=False) as p:
        st = p.sa

        def sock() -> Ndd8022Socket:
            s = st.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER)
            assert isinstance(s, Ndd8022Socket)
            return s

        def bind_errno(s: Ndd8022Socket, addr: object) -> int:
            with pytest.raises(OSError) as info:
                s.bind(addr)
            return info.value.errno or 0

        with sock() as s:
            assert bind_errno(s, ("nosuch0", ETHERTYPE_TEST)) == errno.ENODEV
            assert bind_errno(s, ("m0", 0x0800)) == errno.EADDRINUSE       # IPv4's filter
            assert bind_errno(s, ("m0", 0x0806)) == errno.EADDRINUSE       # ARP's
            assert bind_errno(s, ("m0", C.NS_TAP, 0, b"\0\0\0", 0)) == errno.EINVAL
            assert bind_errno(s, ("lo", ETHERTYPE_TEST)) == errno.EADDRNOTAVAIL   # not Ethernet
            with pytest.raises(OSError) as info:
                await s.send(bytes(60))
            assert info.value.errno == errno.EDESTADDRREQ
            s.bind(("m0", ETHERTYPE_TEST))
            assert bind_errno(s, ("m0", ETHERTYPE_TEST + 1)) == errno.EINVAL   # bound already
            with sock() as other:
                assert bind_errno(other, ("m0", ETHERTYPE_TEST)) == errno.EADDRINUSE
            for frame, err in ((bytes(13), errno.EINVAL),
                               (bytes(1500 + 14 + 1), errno.EMSGSIZE)):
                with pytest.raises(OSError) as info:
                    await s.send(frame)
                assert info.value.errno == err
            assert await s.send(ether_frame(MAC_B, MAC_A, ETHERTYPE_TEST, bytes(1500))) == 1514
        # closed: the filter is free again
        with sock() as again:
            again.bind(("m0", ETHERTYPE_TEST))
        # an NDD nobody has open: ENETDOWN
        idle = MemoryNdd("m9")
        st.ns.ns_attach(idle)
        with sock() as s:
            await s.connect(("m9", ETHERTYPE_TEST))
            with pytest.raises(OSError) as info:
                await s.send(ether_frame(MAC_B, MAC_A, ETHERTYPE_TEST, bytes(46)))
            assert info.value.errno == errno.ENETDOWN


async def test_receive_queue_is_bounded() -> None:
    async with two_stacks(ipv6=False) as p:
        with p.sa.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER) as a, \
                p.sb.socket(AF_NDD, pysocket.SOCK_DGRAM, NDD_PROT_ETHER) as b:
            b.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_RCVBUF, 4096)    # 8192 once doubled
            b.bind(("m1", ETHERTYPE_TEST))
            a.bind(("m0", ETHERTYPE_TEST))
            frame = ether_frame(MAC_B, MAC_A, ETHERTYPE_TEST, bytes(1000))
            for _ in range(10):
                await a.send(frame)
            await trio.sleep(0.1)
            st = b.stats()
            kept = st["frames_in"]
            assert kept == 8192 // (len(frame) + 768) and st["rcvq_drops"] == 10 - kept
            for _ in range(kept):
                assert await b.recv(2048) == frame
            with pytest.raises(BlockingIOError):
                await b.recv(2048, pysocket.MSG_DONTWAIT)
