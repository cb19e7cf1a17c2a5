"""The ATM socket family (AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM): PVCs between two Stacks,
each with an emulated ATM adapter attached to its NetServices (not an IP interface)."""
from __future__ import annotations

import errno
import socket as pysocket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing

from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import Phy, PhyPair, UdpPhy
from ndd import constants as C
from ndd.atm import VcParams
from protocols.atm.sockets.sockaddr import (
    CONN_PVC,
    CONN_SVC,
    SO_ATM_AAL_PARM,
    SO_ATM_BLLI,
    SO_ATM_CALLED,
    SO_ATM_MAX_PEND,
    SO_ATM_TRAFFIC_DES,
    AalParm,
    AtmAddr,
    Blli,
    SockaddrNddAtm,
    TrafficDes,
)
from protocols.atm.sockets.usrreq import SOL_NDD_ATM
from stack.ndd_socket import AtmSocket
from stack.socket import AF_NDD, NDD_PROT_ATM, SOCK_CONN_DGRAM
from stack.stack import Stack, StackConfig

VC = (1, 42)
PVC = ("atm0", CONN_PVC, *VC)


@dataclass
class Env:
    sa: Stack
    sb: Stack
    a: AtmNdd
    b: AtmNdd

    def sock(self, st: Stack) -> AtmSocket:
        return st.socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM)

    async def pvc(self, addr: Any = PVC, *, rcvbuf: int | None = None) -> tuple[AtmSocket, AtmSocket]:
        x, y = self.sock(self.sa), self.sock(self.sb)
        for s in (x, y):
            if rcvbuf is not None:
                s.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_RCVBUF, rcvbuf)
            await s.connect(addr)
        return x, y


@asynccontextmanager
async def atm_stacks(phys: tuple[Phy, Phy] | None = None, **kw: Any) -> AsyncIterator[Env]:
    async with Stack("a", StackConfig(seed=1)) as sa, Stack("b", StackConfig(seed=2)) as sb:
        pair = PhyPair()
        pa, pb = phys or (pair.a, pair.b)
        a, b = AtmNdd("atm0", pa, **kw), AtmNdd("atm0", pb, **kw)
        sa.ns.ns_attach(a)
        sb.ns.ns_attach(b)
        # the administrator's reference: the adapters stay open between sockets
        sa.ns.ns_alloc("atm0")
        sb.ns.ns_alloc("atm0")
        try:
            yield Env(sa, sb, a, b)
        finally:
            for st in (sa, sb):
                st.ns.ns_free(st.ns.ndds["atm0"])


def raises_errno(code: int) -> Any:
    return pytest.raises(OSError, match=f"^\\[Errno {code}\\]")


def cells(nd: AtmNdd) -> tuple[int, ...]:
    return (nd.atm_stats.xmt_cells, nd.atm_stats.rcv_cells, nd.phy.stats.tx_cells, nd.phy.stats.rx_cells)


async def test_socket_through_the_protocol_switch(autojump_clock: trio.testing.MockClock) -> None:
    async with atm_stacks() as env:
        s = env.sa.socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM)
        assert isinstance(s, AtmSocket) and (AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM) == (23, 6, 5)
        assert isinstance(env.sa.socket(AF_NDD, SOCK_CONN_DGRAM, 0), AtmSocket)   # proto 0: the default
        assert [s.getsockopt(pysocket.SOL_SOCKET, o) for o in
                (pysocket.SO_DOMAIN, pysocket.SO_TYPE, pysocket.SO_PROTOCOL)] == [23, 6, 5]
        with raises_errno(errno.ESOCKTNOSUPPORT):
            env.sa.socket(AF_NDD, pysocket.SOCK_STREAM, NDD_PROT_ATM)
        with raises_errno(errno.EPROTONOSUPPORT):
            env.sa.socket(AF_NDD, SOCK_CONN_DGRAM, 6)
        assert s.getsockname() == ("", 0, 0, 0)
        s.bind(("atm0",))
        assert s.getsockname() == ("atm0", 0, 0, 0)
        await s.connect(SockaddrNddAtm.pvc("atm0", *VC))              # the dataclass form
        assert s.getsockname() == s.getpeername() == PVC


async def test_pvc_datagrams_both_ways_keep_boundaries(autojump_clock: trio.testing.MockClock) -> None:
    sizes = [1, 2, 39, 40, 41, 47, 48, 49, 88, 89, 1500, 9180, 65527, 65528, 65535]
    async with atm_stacks(mtu=65535) as env:
        x, y = await env.pvc(rcvbuf=1 << 20)    # doubled and clamped to 425984: every SDU fits
        for src, dst in ((x, y), (y, x)):
            sdus = [bytes((n * 7 + i) & 0xFF for i in range(n)) for n in sizes]
            for sdu in sdus:                      # back to back: boundaries must survive the queue
                assert await src.send(sdu) == len(sdu)
            with trio.fail_after(5):
                got = [await dst.recvfrom(70000) for _ in sdus]
            assert [d for d, _ in got] == sdus
            assert {a for _, a in got} == {PVC}
        assert x.stats()["sdus_out"] == y.stats()["sdus_in"] == len(sizes)
        assert x.stats()["rcvq_drops"] == y.stats()["rcvq_drops"] == 0


async def test_sockaddr_ndd_atm_in_its_c_form(autojump_clock: trio.testing.MockClock) -> None:
    # connect/sendto/bind take the 72-octet sockaddr_ndd_atm wherever they take the tuple;
    # addresses come back as tuples (CPython's way)
    async with atm_stacks() as env:
        c_form = SockaddrNddAtm.pvc("atm0", *VC).pack()
        x, y = env.sock(env.sa), env.sock(env.sb)
        y.bind(SockaddrNddAtm.pvc("atm0", 0, 0).pack())              # a PVC address names the adapter
        await x.connect(c_form)
        await y.connect(PVC)
        assert x.getpeername() == PVC
        assert await x.sendto(b"c form", c_form) == 6
        assert await y.recvfrom(100) == (b"c form", PVC)
        with pytest.raises(OSError, match=f"^\\[Errno {errno.EISCONN}\\]"):   # not the VC's far end
            await x.sendto(b"x", SockaddrNddAtm.pvc("atm0", 1, 43).pack())


async def test_pvc_connect_sends_no_cells(autojump_clock: trio.testing.MockClock) -> None:
    async with atm_stacks() as env:
        await trio.sleep(1)
        before = (cells(env.a), cells(env.b))
        x, y = await env.pvc()
        await trio.sleep(1)                       # anything connect queued would have left by now
        assert (cells(env.a), cells(env.b)) == before
        assert env.a.ndd_ctl(C.NDD_ATM_LIST_VCS) == [VC] == env.b.ndd_ctl(C.NDD_ATM_LIST_VCS)
        assert env.a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, VC)["cells_out"] == 0
        await x.send(b"now the line is used")
        with trio.fail_after(1):
            assert await y.recv(100) == b"now the line is used"
        assert env.a.atm_stats.xmt_cells == before[0][0] + 1


async def test_recv_truncates_peeks_and_bounds_its_queue(autojump_clock: trio.testing.MockClock) -> None:
    async with atm_stacks() as env:
        x, y = await env.pvc()
        await x.send(bytes(range(100)))
        await x.send(b"second")
        with trio.fail_after(1):
            assert await y.recv(100, pysocket.MSG_PEEK) == bytes(range(100))
            assert await y.recv(10) == bytes(range(10))        # the other 90 octets are lost
            assert await y.recv(100) == b"second"
        with pytest.raises(BlockingIOError):
            await y.recv(100, pysocket.MSG_DONTWAIT)
        y.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_RCVBUF, 0)   # -> SOCK_MIN_RCVBUF 2304: one 1000-octet SDU
        for _ in range(10):
            await x.send(bytes(1000))
        await env.a.wait_tx_idle()
        await trio.sleep(0.01)
        assert y.stats()["rcvq_drops"] == 9
        assert await y.recv(2000) == bytes(1000)
        with pytest.raises(BlockingIOError):
            await y.recv(100, pysocket.MSG_DONTWAIT)


@pytest.mark.parametrize("addr", [
    ("atm0", CONN_PVC, 0, 5),          # signalling
    ("atm0", CONN_PVC, 0, 16),         # ILMI
    ("atm0", CONN_PVC, 1, 0),
    ("atm0", CONN_PVC, 1, 31),         # the last reserved VCI
    ("atm0", CONN_PVC, 256, 40),       # UNI VPI is 8 bits
    ("atm0", CONN_PVC, -1, 40),
    ("atm0", CONN_PVC, 1, 65536),
    ("atm0", 3, 1, 40),                # vc_type neither PVC nor SVC
])
async def test_connect_einval(addr: tuple[Any, ...], autojump_clock: trio.testing.MockClock) -> None:
    async with atm_stacks() as env:
        s = env.sock(env.sa)
        with raises_errno(errno.EINVAL):
            await s.connect(addr)
        assert env.a.ndd_ctl(C.NDD_ATM_LIST_VCS) == []
        await s.connect(PVC)               # still usable


async def test_connect_errors(autojump_clock: trio.testing.MockClock) -> None:
    async with atm_stacks() as env:
        x = env.sock(env.sa)
        await x.connect(PVC)
        with raises_errno(errno.EISCONN):
            await x.connect(("atm0", CONN_PVC, 1, 43))
        with raises_errno(errno.EADDRINUSE):                     # another socket holds the VC
            await env.sock(env.sa).connect(PVC)
        env.a.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(1, 50))        # another NDD user opened it
        with raises_errno(errno.EADDRINUSE):
            await env.sock(env.sa).connect(("atm0", CONN_PVC, 1, 50))
        with raises_errno(errno.ENODEV):                         # unknown adapter, via connect
            await env.sock(env.sa).connect(("atm9", CONN_PVC, 1, 60))
        s = env.sock(env.sa)
        with raises_errno(errno.ENODEV):
            s.bind(("atm9",))
        with raises_errno(errno.EADDRNOTAVAIL):                  # an NDD, but not an ATM adapter
            s.bind(("lo",))
        s.bind(("atm0",))
        with raises_errno(errno.EINVAL):                         # bound already
            s.bind(("atm0",))
        env.sa.ns.ns_attach(AtmNdd("atm1", PhyPair().a))
        with raises_errno(errno.EINVAL):                         # bound to atm0, VC on atm1
            await s.connect(("atm1", CONN_PVC, 1, 60))
        with raises_errno(errno.EHOSTDOWN):          # an SVC, but no network answers (cause 27): test_atm_svc.py
            await s.connect(SockaddrNddAtm.svc("atm0", bytes(20), bytes(20)))
        with raises_errno(errno.EDESTADDRREQ):       # listen wants an ATM address, not just the adapter
            s.listen(1)
        with raises_errno(errno.EOPNOTSUPP):         # a PVC is never called
            x.listen(1)
        assert env.a.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 5), VC, (1, 50)]   # 0/5: the SVC signalling


@pytest.mark.parametrize("addr, exc", [
    ("atm0", TypeError),
    (["atm0", CONN_PVC, 1, 40], TypeError),
    (("atm0", CONN_PVC, 1), TypeError),
    (("atm0", CONN_PVC, "1", 40), TypeError),
    ((7, CONN_PVC, 1, 40), TypeError),
    (("", CONN_PVC, 1, 40), ValueError),
    (("a" * 17, CONN_PVC, 1, 40), ValueError),
    (("atm0", CONN_SVC, bytes(19), b""), ValueError),          # an ATM address is 20 octets
    (("atm0", CONN_SVC, b"12a4", b""), ValueError),            # ... or 1..15 E.164 digits
    (("atm0", CONN_SVC, b"1" * 16, b""), ValueError),
    (("atm0", CONN_SVC, bytes(20), bytes(3)), ValueError),
    (("atm0", CONN_SVC, "x" * 20, b""), TypeError),
    (("atm0",), TypeError),                                     # the name alone is for bind only
    (SockaddrNddAtm.pvc("atm0", 1, 40).pack()[:71], ValueError),  # sockaddr_ndd_atm is 72 octets
    (b"\x48\x17\x01" + b"\xff" * 16 + bytes(53), UnicodeDecodeError),   # nddname not ASCII
])
async def test_bad_address_shapes(addr: Any, exc: type[Exception], autojump_clock: trio.testing.MockClock) -> None:
    async with atm_stacks() as env:
        with pytest.raises(exc):
            await env.sock(env.sa).connect(addr)


async def test_send_errors(autojump_clock: trio.testing.MockClock) -> None:
    async with atm_stacks() as env:
        s = env.sock(env.sa)
        with raises_errno(errno.ENOTCONN):
            await s.send(b"x")
        with raises_errno(errno.ENOTCONN):
            await s.sendto(b"x", PVC)
        with raises_errno(errno.ENOTCONN):
            s.getpeername()
        s.setsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, AalParm(100, 200))
        await s.connect(PVC)
        with raises_errno(errno.EINVAL):                 # AAL5 Length 0 is "abort"
            await s.send(b"")
        with raises_errno(errno.EMSGSIZE):               # the forward maximum, not the larger backward one
            await s.send(bytes(101))
        assert await s.send(bytes(100)) == 100
        assert await s.sendto(b"ok", PVC) == 2
        with raises_errno(errno.EISCONN):
            await s.sendto(b"x", ("atm0", CONN_PVC, 1, 43))
        s.shutdown(pysocket.SHUT_WR)
        with raises_errno(errno.EPIPE):
            await s.send(b"x")
        s.close()
        with raises_errno(errno.EBADF):
            await s.send(b"x")


async def test_send_waits_while_the_adapter_queue_is_full(autojump_clock: trio.testing.MockClock) -> None:
    # a 150-cell adapter queue holds one 100-cell SDU: each further send waits for it to drain
    async with atm_stacks(tx_queue_cells=150, line_rate=1_000_000) as env:
        x, y = await env.pvc()
        t0 = trio.current_time()
        for i in range(5):
            assert await x.send(bytes([i]) * 4792) == 4792
        assert env.a.stats.ndd_xmitque_ovf >= 4
        with trio.fail_after(5):
            assert [await y.recv(5000) for _ in range(5)] == [bytes([i]) * 4792 for i in range(5)]
        assert trio.current_time() - t0 >= 4 * 100 * 424 / 1_000_000      # four SDUs had left first
        with pytest.raises(BlockingIOError):                              # MSG_DONTWAIT: EAGAIN, not a wait
            for _ in range(2):
                await x.send(bytes(4792), pysocket.MSG_DONTWAIT)


async def test_backward_max_sdu_drops_oversized(autojump_clock: trio.testing.MockClock) -> None:
    async with atm_stacks() as env:
        x, y = env.sock(env.sa), env.sock(env.sb)
        y.setsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, AalParm(9180, 500))
        await x.connect(PVC)
        await y.connect(PVC)
        await x.send(bytes(501))
        await x.send(bytes(500))
        with trio.fail_after(1):
            assert await y.recv(1000) == bytes(500)
        assert y.stats()["oversize_drops"] == 1


async def test_options(autojump_clock: trio.testing.MockClock) -> None:
    async with atm_stacks(mtu=4000) as env:
        s = env.sock(env.sa)
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM) == AalParm(9180, 9180)   # unbound: the default
        s.bind(("atm0",))
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM) == AalParm(4000, 4000)   # the adapter's MTU
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_TRAFFIC_DES) == TrafficDes()           # every field NOT_SPECIFIED_L
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_BLLI) == Blli()
        s.setsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, AalParm(65535, 1).pack())       # the packed form
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM) == AalParm(65535, 1)
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, 12) == bytes.fromhex("0008 0005 ffff 0001 0001 0000")
        blli = Blli(12, 11, bytes.fromhex("0000000800"))                            # LLC, TR 9577, SNAP IPv4
        s.setsockopt(SOL_NDD_ATM, SO_ATM_BLLI, blli)
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_BLLI) == blli
        assert Blli.unpack(s.getsockopt(SOL_NDD_ATM, SO_ATM_BLLI, 18)) == blli
        s.setsockopt(SOL_NDD_ATM, SO_ATM_TRAFFIC_DES, TrafficDes(2120).pack())      # 2120 Kbit/s: 5000 cells/s
        for bad in (AalParm(65536, 100), AalParm(100, 0), AalParm(100, 100, aal_type=3), 1500, b"\x05\x00",
                    Blli(l2_proto=32), Blli(snap=b"\x00")):
            opt = SO_ATM_BLLI if isinstance(bad, Blli) else SO_ATM_AAL_PARM
            with raises_errno(errno.EINVAL):
                s.setsockopt(SOL_NDD_ATM, opt, bad)
        with pytest.raises(TypeError):
            s.setsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, "big")
        for name in (99,):                                         # not served (SVC options: test_atm_svc.py)
            with raises_errno(errno.ENOPROTOOPT):
                s.setsockopt(SOL_NDD_ATM, name, b"")
            with raises_errno(errno.ENOPROTOOPT):
                s.getsockopt(SOL_NDD_ATM, name)
        with raises_errno(errno.ENOPROTOOPT):                      # read-only, as SO_ERROR
            s.setsockopt(SOL_NDD_ATM, SO_ATM_CALLED, AtmAddr())
        with raises_errno(errno.ENOPROTOOPT):                      # IP options do not apply
            s.setsockopt(pysocket.IPPROTO_IP, pysocket.IP_TTL, 5)
        await s.connect(PVC)
        assert env.a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, VC)["max_sdu"] == 65535
        assert env.a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, VC)["pcr"] == 5000
        for opt, v in ((SO_ATM_AAL_PARM, AalParm(100, 100)), (SO_ATM_TRAFFIC_DES, TrafficDes()),
                       (SO_ATM_BLLI, Blli())):
            with raises_errno(errno.EISCONN):                      # fixed once the VC is open
                s.setsockopt(SOL_NDD_ATM, opt, v)
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM) == AalParm(65535, 1)


async def test_closed_vc_is_reusable(autojump_clock: trio.testing.MockClock) -> None:
    async with atm_stacks() as env:
        x, y = await env.pvc()
        await x.send(b"one")
        with trio.fail_after(1):
            assert await y.recv(10) == b"one"
        x.close()
        assert env.a.ndd_ctl(C.NDD_ATM_LIST_VCS) == []
        assert env.sa.ns.demuxers[C.NDD_ATM].filters["atm0"] == {}
        x2 = env.sock(env.sa)
        await x2.connect(PVC)
        await x2.send(b"two")
        with trio.fail_after(1):
            assert await y.recv(10) == b"two"
        await y.connect(pysocket.AF_UNSPEC)          # disconnect also closes the VC ...
        assert env.b.ndd_ctl(C.NDD_ATM_LIST_VCS) == []
        await y.connect(PVC)                         # ... and it opens again
        assert env.b.ndd_ctl(C.NDD_ATM_LIST_VCS) == [VC]


async def test_last_socket_releases_the_adapter(autojump_clock: trio.testing.MockClock) -> None:
    async with atm_stacks() as env:
        other = AtmNdd("atm1", PhyPair().a)
        env.sa.ns.ns_attach(other)
        s = env.sock(env.sa)
        await s.connect(("atm1", CONN_PVC, *VC))
        assert env.sa.ns.refcount["atm1"] == 1 and other.is_open
        s.close()
        assert env.sa.ns.refcount["atm1"] == 0 and not other.is_open
        env.sa.ns.ns_detach(other)


async def test_peak_cell_rate_paces_the_vc(autojump_clock: trio.testing.MockClock) -> None:
    # 424 Kbit/s = PCR 1000 cells/s: 10 SDUs of 100 cells take ~1 s of virtual time; an unshaped VC is line-rate fast
    async with atm_stacks() as env:
        slow_a, fast_a = env.sock(env.sa), env.sock(env.sa)
        slow_a.setsockopt(SOL_NDD_ATM, SO_ATM_TRAFFIC_DES, TrafficDes(fwd_peakrate_hp=424))
        await slow_a.connect(("atm0", CONN_PVC, 1, 50))
        await fast_a.connect(("atm0", CONN_PVC, 1, 51))
        slow_b, fast_b = env.sock(env.sb), env.sock(env.sb)
        await slow_b.connect(("atm0", CONN_PVC, 1, 50))
        await fast_b.connect(("atm0", CONN_PVC, 1, 51))
        t0 = trio.current_time()
        for _ in range(10):
            await slow_a.send(bytes(4792))          # 4792 + 8 = 100 cells
            await fast_a.send(bytes(4792))
        done: dict[str, float] = {}

        async def drain(name: str, s: AtmSocket) -> None:
            for _ in range(10):
                assert await s.recv(5000) == bytes(4792)
            done[name] = trio.current_time() - t0

        with trio.fail_after(5):
            async with trio.open_nursery() as n:
                n.start_soon(drain, "slow", slow_b)
                n.start_soon(drain, "fast", fast_b)
        assert done["slow"] == pytest.approx(1.0, abs=0.02)    # 1000 cells at 1000 cells/s
        assert done["fast"] < 0.01                             # 1000 cells at OC-3c: ~2.8 ms
        assert env.a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, (1, 50))["cells_out"] == 1000


async def test_max_pend_holds_a_rate_enforced_vc(autojump_clock: trio.testing.MockClock) -> None:
    # issue 16 point 7: SO_ATM_MAX_PEND is AIX's u_char limit on a rate-enforced VC's outstanding
    # writes (<sys/atmsock.h> atm_pcb.max_pend), not a listen backlog
    async with atm_stacks() as env:
        slow_a, fast_a = env.sock(env.sa), env.sock(env.sa)
        assert slow_a.getsockopt(SOL_NDD_ATM, SO_ATM_MAX_PEND) == 0              # tunstack's default: no limit
        slow_a.setsockopt(SOL_NDD_ATM, SO_ATM_TRAFFIC_DES, TrafficDes(fwd_peakrate_hp=424))
        slow_a.setsockopt(SOL_NDD_ATM, SO_ATM_MAX_PEND, b"\x02")                # a u_char, as a C program passes it
        assert slow_a.getsockopt(SOL_NDD_ATM, SO_ATM_MAX_PEND) == 2
        assert slow_a.getsockopt(SOL_NDD_ATM, SO_ATM_MAX_PEND, 4) == b"\x02"     # one octet back
        fast_a.setsockopt(SOL_NDD_ATM, SO_ATM_MAX_PEND, 2)                      # no peak rate: not rate-enforced
        for bad in (256, -1, b"\x01\x00"):
            with raises_errno(errno.EINVAL):
                slow_a.setsockopt(SOL_NDD_ATM, SO_ATM_MAX_PEND, bad)
        await slow_a.connect(("atm0", CONN_PVC, 1, 50))
        await fast_a.connect(("atm0", CONN_PVC, 1, 51))
        with raises_errno(errno.EISCONN):                                       # fixed when the VC opens
            slow_a.setsockopt(SOL_NDD_ATM, SO_ATM_MAX_PEND, 3)
        assert env.a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, (1, 50))["max_txq"] == 2
        assert env.a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, (1, 51))["max_txq"] == 0
        slow_b = env.sock(env.sb)
        await slow_b.connect(("atm0", CONN_PVC, 1, 50))
        # 100-cell SDUs at 1000 cells/s: 0.1 s each, an SDU outstanding until its last cell left
        for _ in range(2):
            await slow_a.send(bytes(4792), pysocket.MSG_DONTWAIT)
        with pytest.raises(BlockingIOError):
            await slow_a.send(bytes(4792), pysocket.MSG_DONTWAIT)
        assert env.a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, (1, 50))["tx_queued_sdus"] <= 2
        for _ in range(20):                                                      # the unshaped VC takes them all
            await fast_a.send(bytes(4792), pysocket.MSG_DONTWAIT)
        t0 = trio.current_time()
        with trio.fail_after(5):
            for _ in range(4):                                                   # a blocking send waits for room
                await slow_a.send(bytes(4792))
        assert trio.current_time() - t0 >= 0.3
        assert env.a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, (1, 50))["tx_queued_sdus"] <= 2
        with trio.fail_after(5):
            for _ in range(6):
                assert await slow_b.recv(5000) == bytes(4792)                    # nothing was lost


async def test_pvc_over_udp_phy() -> None:
    # real UDP on 127.0.0.1 between the two adapters, real time
    pa, pb = UdpPhy(), UdpPhy()
    pa.connect(pb.local_address)
    pb.connect(pa.local_address)
    try:
        async with atm_stacks((pa, pb), line_rate=0, mtu=65535) as env:
            x, y = await env.pvc(rcvbuf=1 << 20)
            sdus = [bytes([n & 0xFF]) * n for n in (1, 40, 41, 1500, 9180, 65535)]
            with trio.fail_after(10):
                for src, dst in ((x, y), (y, x)):
                    for sdu in sdus:
                        await src.send(sdu)
                        assert await dst.recv(65535) == sdu
            assert pa.stats.tx_cells > 0 and pb.stats.bad_datagrams == 0
    finally:
        pa.shutdown()
        pb.shutdown()
