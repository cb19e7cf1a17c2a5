"""SVC sockets (AF_NDD, SOCK_CONN_DGRAM, CONN_SVC): bind/listen/accept/connect over Q.2931.

Two host Stacks, each with an emulated ATM adapter on a PhyPair to the network: the
emulated switch (stack/atm_switch.py: cell relay, routing by prefix) -- "switch" -- or
`MiniNet` below, the network side of both UNIs in a few lines (relaying SDUs), which
can also stay silent -- "mini".  Most tests run over both.  Timers run on trio's
MockClock; the CLI tests at the end run real processes."""
from __future__ import annotations

import errno
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import PairEnd, PhyPair
from ndd import constants as C
from ndd.atm import VcParams
from ndd.demux import NsFilter, NsUser
from protocols.atm.sockets.sockaddr import (
    BCOB_C,
    CM_E164,
    CM_USER_SPECIFIED,
    CM_VENDOR_SPECIFIC,
    CONN_PVC,
    CONN_SVC,
    SO_ATM_AAL_PARM,
    SO_ATM_ACCEPT,
    SO_ATM_BEARER,
    SO_ATM_BHLI,
    SO_ATM_BLLI,
    SO_ATM_CALLED,
    SO_ATM_CALLING,
    SO_ATM_CAUSE,
    SO_ATM_MAX_PEND,
    SO_ATM_PARAM,
    SO_ATM_QOS_PARM,
    SO_ATM_TRAFFIC_DES,
    SO_ATM_TRANSIT_SEL,
    AalParm,
    AtmAddr,
    AtmCause,
    Bearer,
    Bhli,
    Blli,
    ConnectIe,
    QosParm,
    SockaddrNddAtm,
    TrafficDes,
    TransitSel,
)
from protocols.atm.sockets.usrreq import SOL_NDD_ATM, svc_manager
from protocols.atm.uni.call import Call, CallEv, CallEvent, Side
from protocols.atm.uni.endpoint import UniEndpoint
from protocols.atm.uni.q2931 import IE_AAL, IE_BLLI, IE_CALLED, IE_CONN_ID, ConnectionId
from stack.atm_switch import AtmSwitch
from stack.ndd_socket import AtmSocket
from stack.socket import AF_NDD, NDD_PROT_ATM, SOCK_CONN_DGRAM
from stack.stack import Stack, StackConfig

PREFIX_A, PREFIX_B = bytes.fromhex("47000580ffe1000000f21a0001"), bytes.fromhex("47000580ffe1000000f21a0002")
ESI_A, ESI_B = bytes.fromhex("0020481a0001"), bytes.fromhex("0020481a0002")
AESA_A, AESA_B = PREFIX_A + ESI_A + b"\x00", PREFIX_B + ESI_B + b"\x01"
LLC_IP = Blli(12, 11, bytes.fromhex("0000000800"))       # LLC, TR 9577, SNAP IPv4 (as CLIP)
# traffic_des_t in Kbit/s with peak, CLP=0 peak, sustainable, burst (whole cells) and tagging:
# each comes back to the called side, turned, through the SETUP's traffic descriptor in cells
RICH_TRAFFIC = TrafficDes(42400, 21200, fwd_peakrate_lp=21200, fwd_sus_rate_hp=10000, bak_sus_rate_hp=5000,
                          fwd_bur_size_hp=4800, bak_bur_size_hp=960, tagging_fwd=1)


def svc(aesa: bytes, sub: bytes = b"") -> tuple[Any, ...]:
    return ("atm0", CONN_SVC, aesa, sub)


def raises_errno(code: int) -> Any:
    return pytest.raises(OSError, match=f"^\\[Errno {code}\\]")


class CutEnd(PairEnd):
    """A PhyPair end whose fibre can be cut (both ways: a one-way cut lets the far end's
    BGN bring SSCOP back up here at once): cells sent while `pair.cut` vanish."""

    def send(self, cells: bytes) -> int:
        return 0 if getattr(self.pair, "cut", False) else super().send(cells)


class CutPair(PhyPair):
    def __init__(self) -> None:
        super().__init__()
        self.cut = False
        self.a, self.b = CutEnd(self), CutEnd(self)
        self.a.peer, self.b.peer = self.b, self.a


class MiniNet:
    """The network side of one UNI per port, in one Stack.  A SETUP goes to the port whose
    host has the called AESA's first 19 octets (prefix + ESI): a known prefix with another
    ESI is cause 1, an unknown prefix 3, a port whose signalling is down 27.  `silent`:
    SETUPs are never answered."""

    def __init__(self, st: Stack, ports: dict[str, tuple[AtmNdd, bytes]]) -> None:
        self.st = st
        self.ndds = {p: nd for p, (nd, _) in ports.items()}
        self.hosts = {aesa19: p for p, (_, aesa19) in ports.items()}
        self.silent = False
        self.legs: dict[Call, tuple[str, Call, str]] = {}    # call -> (its port, other leg, other port)
        self.vcs: dict[Call, tuple[str, int]] = {}
        self.next_vci = {p: 32 for p in ports}
        self.eps = {p: UniEndpoint.on_stack(st, nd, side=Side.NETWORK, on_event=partial(self.event, p))
                    for p, nd in self.ndds.items()}

    def _vc(self, port: str) -> int:
        self.next_vci[port] += 1
        return self.next_vci[port]

    def event(self, port: str, ev: CallEvent) -> None:
        call = ev.call
        if ev.kind is CallEv.SETUP_IND and call is not None and ev.msg is not None:
            if not self.silent:
                self.route(port, call, ev.msg)
        elif ev.kind is CallEv.SETUP_CONF and call in self.legs:     # the called user's CONNECT
            _, other, oport = self.legs[call]
            answer = [ie for ie in ev.msg.ies if ie.id in (IE_AAL, IE_BLLI)] if ev.msg is not None else []
            self.eps[oport].connect(other, answer)                   # its AAL/B-LLI answer goes on
        elif ev.kind in (CallEv.RELEASE_IND, CallEv.RELEASE_CONF) and call is not None:
            self.unrelay(call)
            leg = self.legs.pop(call, None)
            if leg is not None:
                _, other, oport = leg
                self.legs.pop(other, None)
                self.unrelay(other)
                if ev.kind is CallEv.RELEASE_IND:
                    self.eps[oport].release(other, ev.cause or 31, call.diagnostics)

    def route(self, port: str, call: Call, msg: Any) -> None:
        called = msg.get(IE_CALLED).address
        dest = self.hosts.get(called[:19])
        ep = self.eps[port]
        if dest is None:
            ep.release(call, 1 if any(h[:13] == called[:13] for h in self.hosts) else 3)
            return
        if not self.eps[dest].link_up:
            ep.release(call, 27)
            return
        vx, vy = self._vc(port), self._vc(dest)
        ep.proceeding(call, ConnectionId(0, vx))
        other = self.eps[dest].setup([ie for ie in msg.ies if ie.id != IE_CONN_ID], conn_id=ConnectionId(0, vy))
        self.legs[call], self.legs[other] = (port, other, dest), (dest, call, port)
        for p, v, op, ov in ((port, vx, dest, vy), (dest, vy, port, vx)):
            nd, out = self.ndds[p], self.ndds[op]
            nd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(0, v, max_sdu=65535))
            fwd = partial(lambda o, ov_, n, pkt, d: o.atm_output(0, ov_, pkt.tobytes()), out, ov)
            self.st.ns.ns_add_filter(nd, NsFilter(C.NS_ATM_VC, vpi=0, vci=v), NsUser(fwd))
        self.vcs[call], self.vcs[other] = (port, vx), (dest, vy)

    def unrelay(self, call: Call) -> None:
        pv = self.vcs.pop(call, None)
        if pv is not None:
            nd = self.ndds[pv[0]]
            self.st.ns.ns_del_filter(nd, NsFilter(C.NS_ATM_VC, vpi=0, vci=pv[1]))
            nd.ndd_ctl(C.NDD_ATM_CLOSE_VC, (0, pv[1]))


NETS = ["mini", "switch"]


@dataclass
class Env:
    sa: Stack
    sb: Stack
    net: MiniNet | AtmSwitch
    a: AtmNdd
    b: AtmNdd
    line_a: CutPair

    def network_side(self, port: str) -> UniEndpoint:
        return self.net.eps[port] if isinstance(self.net, MiniNet) else self.net.ports[port].sig

    def sock(self, st: Stack) -> AtmSocket:
        return st.socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM)

    def listener(self, aesa: bytes = AESA_B, backlog: int = 4, blli: Blli | None = None) -> AtmSocket:
        s = self.sock(self.sb)
        if blli is not None:
            s.setsockopt(SOL_NDD_ATM, SO_ATM_BLLI, blli)
        s.bind(svc(aesa))
        s.listen(backlog)
        return s

    async def pair(self) -> tuple[AtmSocket, AtmSocket]:
        """A connected pair: the caller on A, the accepted socket on B."""
        lst = self.listener()
        c = self.sock(self.sa)
        got: list[AtmSocket] = []
        async with trio.open_nursery() as n:
            async def acc() -> None:
                got.append((await accept_call(lst))[0])
            n.start_soon(acc)
            await c.connect(svc(AESA_B))
        lst.close()
        return c, got[0]


@asynccontextmanager
async def svc_net(kind: str = "mini", *, b_signalling: bool = True) -> AsyncIterator[Env]:
    async with Stack("a", StackConfig(seed=1)) as sa, Stack("b", StackConfig(seed=2)) as sb, \
            Stack("net", StackConfig(seed=3)) as sn, AtmSwitch("sw") as sw:
        pair_a, pair_b = CutPair(), PhyPair()
        a, b = AtmNdd("atm0", pair_a.a), AtmNdd("atm0", pair_b.a)
        for st, nd in ((sa, a), (sb, b)):
            st.ns.ns_attach(nd)
            st.ns.ns_alloc(nd.ndd_name)
        net: MiniNet | AtmSwitch
        if kind == "mini":
            pa, pb = AtmNdd("pa", pair_a.b), AtmNdd("pb", pair_b.b)
            for nd in (pa, pb):
                sn.ns.ns_attach(nd)
                sn.ns.ns_alloc(nd.ndd_name)
            net = MiniNet(sn, {"pa": (pa, AESA_A[:19]), "pb": (pb, AESA_B[:19])})
        else:           # B's prefix with B the only address behind it: another ESI is cause 1
            sw.add_port("pa", pair_a.b, prefixes=[PREFIX_A.hex()])
            sw.add_port("pb", pair_b.b, prefixes=[PREFIX_B.hex()], addresses=[AESA_B[:19].hex()])
            net = sw
        if b_signalling:
            svc_manager(sb).start("atm0")           # the server's UNI is up before anyone calls
        await trio.sleep(0.5)
        yield Env(sa, sb, net, a, b, pair_a)


async def accept_call(lst: AtmSocket) -> tuple[AtmSocket, Any]:
    """accept() and SO_ATM_ACCEPT at once (AIX's two steps, nothing changed in between)."""
    s, addr = await lst.accept()
    s.setsockopt(SOL_NDD_ATM, SO_ATM_ACCEPT, 1)
    return s, addr


def cause(s: AtmSocket) -> int:
    return s.getsockopt(SOL_NDD_ATM, SO_ATM_CAUSE).cause


# --- calls that work -------------------------------------------------------------------------
@pytest.mark.parametrize("net", NETS)
async def test_connect_accept_carries_the_options(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        lst = env.listener(blli=LLC_IP)
        c = env.sock(env.sa)
        opts = {SO_ATM_AAL_PARM: AalParm(2000, 3000), SO_ATM_TRAFFIC_DES: RICH_TRAFFIC,
                SO_ATM_BEARER: Bearer(BCOB_C, clipping=1), SO_ATM_QOS_PARM: QosParm(1, 3),
                SO_ATM_BLLI: LLC_IP, SO_ATM_CALLING: AtmAddr(AESA_A)}
        for name, v in opts.items():
            c.setsockopt(SOL_NDD_ATM, name, v)
        got: list[Any] = []
        async with trio.open_nursery() as n:
            async def acc() -> None:
                got.extend(await accept_call(lst))
            n.start_soon(acc)
            with trio.fail_after(5):
                await c.connect(svc(AESA_B))
        s, addr = got
        assert addr == s.getpeername() == svc(AESA_A) and s.getsockname() == svc(AESA_B)
        assert c.getpeername() == svc(AESA_B) and c.getsockname() == svc(AESA_A)
        assert isinstance(s, AtmSocket)
        seen = {name: s.getsockopt(SOL_NDD_ATM, name) for name in opts}
        assert seen == {SO_ATM_AAL_PARM: AalParm(3000, 2000),            # the called side's view: turned
                        SO_ATM_TRAFFIC_DES: RICH_TRAFFIC.reversed(),
                        SO_ATM_BEARER: Bearer(BCOB_C, clipping=1), SO_ATM_QOS_PARM: QosParm(3, 1),
                        SO_ATM_BLLI: LLC_IP, SO_ATM_CALLING: AtmAddr(AESA_A)}
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_CALLED) == c.getsockopt(SOL_NDD_ATM, SO_ATM_CALLED) == AtmAddr(AESA_B)
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_CALLED, 52) == AtmAddr(AESA_B).pack()
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_CALLED, 26) == bytes.fromhex("0014" "00" "02" "00" "00") + AESA_B
        vc_a = [v for v in env.a.ndd_ctl(C.NDD_ATM_LIST_VCS) if v != (0, 5)]
        vc_b = [v for v in env.b.ndd_ctl(C.NDD_ATM_LIST_VCS) if v != (0, 5)]
        assert len(vc_a) == len(vc_b) == 1 and vc_a[0][1] >= 32         # the network's choice on each UNI
        stats = env.a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, vc_a[0])
        assert (stats["max_sdu"], stats["pcr"]) == (3000, 100000)        # honoured on the data VC
        assert env.b.ndd_ctl(C.NDD_ATM_GET_VC_STATS, vc_b[0])["pcr"] == 50000
        with trio.fail_after(5):
            for src, dst, sizes in ((c, s, (1, 48, 2000)), (s, c, (1, 1500, 3000))):
                for n_ in sizes:
                    await src.send(bytes([n_ & 0xFF]) * n_)
                    assert await dst.recv(70000) == bytes([n_ & 0xFF]) * n_
        with raises_errno(errno.EMSGSIZE):
            await c.send(bytes(2001))                                    # the forward maximum
        with raises_errno(errno.EISCONN):
            c.setsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, AalParm(100, 100))
        c.close()                                                        # RELEASE, cause 16
        with trio.fail_after(5):
            assert await s.recv(100) == b""                              # EOF, no error
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_CAUSE).cause == 16
        with raises_errno(errno.EPIPE):
            await s.send(b"x")
        assert env.a.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 5)] == env.b.ndd_ctl(C.NDD_ATM_LIST_VCS)
        await trio.sleep(1)
        assert not env.network_side("pa").calls and not env.network_side("pb").calls
        assert not svc_manager(env.sa).endpoints["atm0"].calls


@pytest.mark.parametrize("net", NETS)
async def test_data_then_eof_after_the_callers_close(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        c, s = await env.pair()
        for i in range(5):
            await c.send(bytes([i]) * 100)
        await env.a.wait_tx_idle()          # close discards what the adapter still holds, as for a PVC
        c.close()
        with trio.fail_after(5):
            assert [await s.recv(200) for _ in range(5)] == [bytes([i]) * 100 for i in range(5)]
            assert await s.recv(200) == b""                              # data first, then EOF
        s.close()


@pytest.mark.parametrize("net", NETS)
async def test_blli_selects_the_listener(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        ip = env.listener(blli=LLC_IP)
        other = env.sock(env.sb)
        other.bind(svc(AESA_B))                                          # same AESA, no B-LLI: the wildcard
        other.listen(4)
        for blli, want in ((LLC_IP, ip), (Blli(12, 0), other), (Blli(), other)):
            c = env.sock(env.sa)
            c.setsockopt(SOL_NDD_ATM, SO_ATM_BLLI, blli)
            async with trio.open_nursery() as n:
                n.start_soon(c.connect, svc(AESA_B))
                with trio.fail_after(5):
                    s, _ = await accept_call(want)
            assert s.getsockopt(SOL_NDD_ATM, SO_ATM_BLLI) == blli
            c.close()
            s.close()
        other.close()
        c = env.sock(env.sa)
        c.setsockopt(SOL_NDD_ATM, SO_ATM_BLLI, Blli(12, 0))
        with raises_errno(errno.ECONNREFUSED):                           # only the IP listener is left
            await c.connect(svc(AESA_B))
        assert cause(c) == 88


# --- AIX's two-step accept (issue 16 point 8) -----------------------------------------------------------
BHLI_USER = Bhli(CM_USER_SPECIFIED, b"tunstack")


@pytest.mark.parametrize("net", NETS)
async def test_accept_returns_the_proceeding_call_and_so_atm_accept_connects(
        net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        lst = env.listener(blli=LLC_IP)
        c = env.sock(env.sa)
        for name, v in ((SO_ATM_AAL_PARM, AalParm(2000, 3000)), (SO_ATM_TRAFFIC_DES, TrafficDes(42400, 21200)),
                        (SO_ATM_BLLI, LLC_IP), (SO_ATM_BHLI, BHLI_USER), (SO_ATM_CALLING, AtmAddr(AESA_A))):
            c.setsockopt(SOL_NDD_ATM, name, v)
        async with trio.open_nursery() as n:
            n.start_soon(c.connect, svc(AESA_B))
            with trio.fail_after(5):
                s, addr = await lst.accept()
            # the call is still proceeding: the caller waits, the called socket moves no data yet
            await trio.sleep(1)
            with raises_errno(errno.ENOTCONN):
                c.getpeername()
            assert addr == s.getpeername() == svc(AESA_A)
            seen = {name: s.getsockopt(SOL_NDD_ATM, name)
                    for name in (SO_ATM_AAL_PARM, SO_ATM_TRAFFIC_DES, SO_ATM_BLLI, SO_ATM_BHLI, SO_ATM_CALLING)}
            assert seen == {SO_ATM_AAL_PARM: AalParm(3000, 2000), SO_ATM_TRAFFIC_DES: TrafficDes(21200, 42400),
                            SO_ATM_BLLI: LLC_IP, SO_ATM_BHLI: BHLI_USER, SO_ATM_CALLING: AtmAddr(AESA_A)}
            with raises_errno(errno.ENOTCONN):
                await s.send(b"early")
            with raises_errno(errno.EISCONN):                        # not what indaccept_ie_t carries
                s.setsockopt(SOL_NDD_ATM, SO_ATM_TRAFFIC_DES, TrafficDes())
            s.setsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, AalParm(1000, 1500))   # this side sends 1000, takes 1500
            assert s.getsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM) == AalParm(1000, 1500)
            s.setsockopt(SOL_NDD_ATM, SO_ATM_ACCEPT, 1)               # CONNECT goes out
            with raises_errno(errno.EISCONN):
                s.setsockopt(SOL_NDD_ATM, SO_ATM_ACCEPT, 1)
            with trio.fail_after(5):
                assert await s.send(b"hello") == 5                    # waits for CONNECT ACKNOWLEDGE
        assert c.getpeername() == svc(AESA_B)
        assert c.getsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM) == AalParm(1500, 1000)   # the answer reached the caller
        with trio.fail_after(5):
            assert await c.recv(100) == b"hello"
        with raises_errno(errno.EMSGSIZE):
            await c.send(bytes(1501))
        await c.send(bytes(1500))
        with raises_errno(errno.EMSGSIZE):
            await s.send(bytes(1001))
        with trio.fail_after(5):
            assert await s.recv(2000) == bytes(1500)
        vc_b = [v for v in env.b.ndd_ctl(C.NDD_ATM_LIST_VCS) if v != (0, 5)]
        assert env.b.ndd_ctl(C.NDD_ATM_GET_VC_STATS, vc_b[0])["max_sdu"] >= 1500


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("set_cause, want", [(None, 21), (17, 17)])
async def test_closing_an_accepted_call_before_so_atm_accept_rejects_it(
        net: str, set_cause: int | None, want: int, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        lst = env.listener()
        c = env.sock(env.sa)
        async with trio.open_nursery() as n:
            async def call() -> None:
                with raises_errno(errno.ECONNREFUSED), trio.fail_after(5):
                    await c.connect(svc(AESA_B))
            n.start_soon(call)
            s, _ = await lst.accept()
            if set_cause is not None:
                s.setsockopt(SOL_NDD_ATM, SO_ATM_CAUSE, AtmCause(cause=set_cause))
            s.close()
        assert cause(c) == want                                      # 21: call rejected, else as set
        assert env.b.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 5)]         # the call's VC is gone


@pytest.mark.parametrize("net", NETS)
async def test_a_call_cleared_before_so_atm_accept(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        lst = env.listener()
        c = env.sock(env.sa)
        async with trio.open_nursery() as n:
            n.start_soon(c.connect, svc(AESA_B))
            s, _ = await lst.accept()
            n.cancel_scope.cancel()                                   # the caller gives up: RELEASE
        await trio.sleep(1)
        with raises_errno(errno.ECONNABORTED):
            s.setsockopt(SOL_NDD_ATM, SO_ATM_ACCEPT, 1)
        with trio.fail_after(1):
            assert await s.recv(10) == b""                            # then EOF
        s.close()
        assert env.b.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 5)]


@pytest.mark.parametrize("net", NETS)
async def test_a_listener_with_bhli_takes_only_calls_carrying_it(
        net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        lst = env.sock(env.sb)
        lst.setsockopt(SOL_NDD_ATM, SO_ATM_BHLI, BHLI_USER)
        lst.bind(svc(AESA_B))
        lst.listen(2)
        plain = env.sock(env.sa)
        with raises_errno(errno.ECONNREFUSED), trio.fail_after(5):
            await plain.connect(svc(AESA_B))
        assert cause(plain) == 88                                    # incompatible destination
        other = env.sock(env.sa)
        other.setsockopt(SOL_NDD_ATM, SO_ATM_BHLI, Bhli(CM_VENDOR_SPECIFIC, bytes.fromhex("0000a0" "00000001")))
        with raises_errno(errno.ECONNREFUSED), trio.fail_after(5):
            await other.connect(svc(AESA_B))
        c = env.sock(env.sa)
        c.setsockopt(SOL_NDD_ATM, SO_ATM_BHLI, BHLI_USER.pack())     # <sys/call_ie.h> bhli_t bytes
        async with trio.open_nursery() as n:
            n.start_soon(c.connect, svc(AESA_B))
            with trio.fail_after(5):
                s, _ = await accept_call(lst)
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_BHLI) == BHLI_USER
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_BHLI, 12) == bytes.fromhex("0008" "01" "00") + b"tunstack"


# --- calls that fail ------------------------------------------------------------------------------
@pytest.mark.parametrize("called, code, why", [
    (PREFIX_B + ESI_A + b"\x01", errno.EADDRNOTAVAIL, 1),              # the prefix exists, the ESI does not
    (bytes.fromhex("47000580ffe1000000f21a0099") + ESI_B + b"\x01", errno.EHOSTUNREACH, 3),
    (AESA_B[:19] + b"\x07", errno.ECONNREFUSED, 88),                     # nobody listens on selector 7
])
@pytest.mark.parametrize("net", NETS)
async def test_refused_calls(net: str, called: bytes, code: int, why: int,
                             autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        lst = env.listener()
        c = env.sock(env.sa)
        with trio.fail_after(5), raises_errno(code):
            await c.connect(svc(called))
        assert cause(c) == why
        with raises_errno(errno.ENOTCONN):
            c.getpeername()
        with raises_errno(errno.ENOTCONN):
            await c.send(b"x")
        assert env.a.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 5)]
        async with trio.open_nursery() as n:                             # the socket may call again
            n.start_soon(accept_call, lst)
            await c.connect(svc(AESA_B))
        assert c.getpeername() == svc(AESA_B)


@pytest.mark.parametrize("net", NETS)
async def test_network_vc_taken_locally(net: str, autojump_clock: trio.testing.MockClock) -> None:
    first_vci = 33 if net == "mini" else 32          # what each network hands out first
    async with svc_net(net) as env:
        lst = env.listener()
        pvc_a = env.sock(env.sa)
        await pvc_a.connect(("atm0", CONN_PVC, 0, first_vci))
        c = env.sock(env.sa)
        with raises_errno(errno.EADDRINUSE):          # the caller must clear: 36, VPCI/VCI assignment failure
            await c.connect(svc(AESA_B))
        assert cause(c) == 36
        pvc_a.close()
        await trio.sleep(1)
        assert not env.network_side("pb").calls and not lst._pcb.pending      # B's leg is gone as well
        pvc_b = env.sock(env.sb)                      # the next call's VC on B is in use there
        await pvc_b.connect(("atm0", CONN_PVC, 0, first_vci + 1))
        c2 = env.sock(env.sa)
        with raises_errno(errno.ECONNREFUSED):        # B refuses with 35, requested VPCI/VCI not available
            await c2.connect(svc(AESA_B))
        assert cause(c2) == 35 and not lst._pcb.pending and svc_manager(env.sb).stats.refused_vc == 1


@pytest.mark.parametrize("net", NETS)
async def test_backlog_full_is_user_busy(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        lst = env.listener(backlog=1)
        assert lst._pcb.backlog == 1 and lst.getsockopt(SOL_NDD_ATM, SO_ATM_MAX_PEND) == 0   # not the backlog
        first, second = env.sock(env.sa), env.sock(env.sa)
        async with trio.open_nursery() as n:
            n.start_soon(first.connect, svc(AESA_B))
            await trio.sleep(0.5)                                        # first waits in the queue
            with raises_errno(errno.ECONNREFUSED):
                await second.connect(svc(AESA_B))
            assert cause(second) == 17
            lst.listen(2)                                                # room for one more now
            third = env.sock(env.sa)
            n.start_soon(third.connect, svc(AESA_B))
            await trio.sleep(0.5)
            s1, _ = await accept_call(lst)
            s2, _ = await accept_call(lst)
        await first.send(b"1")
        await third.send(b"3")
        assert (await s1.recv(10), await s2.recv(10)) == (b"1", b"3")    # accepted in order


@pytest.mark.parametrize("net", NETS)
async def test_closing_a_listener_refuses_its_queue(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        lst = env.listener()
        c = env.sock(env.sa)
        async with trio.open_nursery() as n:
            async def call() -> None:
                with raises_errno(errno.ECONNREFUSED):
                    await c.connect(svc(AESA_B))
            n.start_soon(call)
            await trio.sleep(0.5)
            assert env.b.ndd_ctl(C.NDD_ATM_LIST_VCS) != [(0, 5)]         # the queued call's VC is open
            lst.close()
        assert cause(c) == 21
        assert env.b.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 5)]


async def test_no_answer_is_etimedout(autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net() as env:
        env.net.silent = True
        c = env.sock(env.sa)
        t0 = trio.current_time()
        with raises_errno(errno.ETIMEDOUT):
            await c.connect(svc(AESA_B))
        assert trio.current_time() - t0 == pytest.approx(8.0, abs=0.1)   # T303, SETUP again, T303
        assert cause(c) == 102


@pytest.mark.parametrize("net", NETS)
async def test_unanswered_queue_times_out_at_t310(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        lst = env.listener()
        c = env.sock(env.sa)
        t0 = trio.current_time()
        with raises_errno(errno.ETIMEDOUT):                              # CALL PROCEEDING, then nothing
            await c.connect(svc(AESA_B))
        assert trio.current_time() - t0 == pytest.approx(10.0, abs=0.1)
        await trio.sleep(1)
        assert not lst._pcb.pending                                      # the network cleared B's leg too


@pytest.mark.parametrize("net", NETS)
async def test_destination_down_is_ehostdown(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net, b_signalling=False) as env:                  # B's UNI never comes up
        c = env.sock(env.sa)
        with raises_errno(errno.EHOSTDOWN):
            await c.connect(svc(AESA_B))
        assert cause(c) == 27


@pytest.mark.parametrize("net", NETS)
async def test_own_signalling_link_down_is_ehostdown(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        env.line_a.cut = True
        c = env.sock(env.sa)
        with raises_errno(errno.EHOSTDOWN):
            await c.connect(svc(AESA_B))
        assert cause(c) == 27


@pytest.mark.parametrize("net", NETS)
async def test_cancelled_connect_clears_the_call(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        lst = env.listener()
        c = env.sock(env.sa)
        with trio.move_on_after(1):
            await c.connect(svc(AESA_B))
        await trio.sleep(0.5)
        assert not lst._pcb.pending and env.b.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 5)]
        assert env.a.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 5)]
        async with trio.open_nursery() as n:
            n.start_soon(accept_call, lst)
            await c.connect(svc(AESA_B))                                 # unconnected again: may retry


# --- open calls that end under the socket ---------------------------------------------------------
@pytest.mark.parametrize("net", NETS)
async def test_abnormal_release_is_econnreset(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        c, s = await env.pair()
        await s.send(b"last")
        await trio.sleep(0.1)
        s.setsockopt(SOL_NDD_ATM, SO_ATM_CAUSE, AtmCause(cause=21))
        s.close()
        await trio.sleep(1)
        with raises_errno(errno.ECONNRESET):
            await c.recv(10)
        assert await c.recv(10) == b"last"                               # what had arrived is kept
        assert await c.recv(10) == b""
        with raises_errno(errno.EPIPE):
            await c.send(b"x")
        assert cause(c) == 21


@pytest.mark.parametrize("net", NETS)
async def test_an_e164_calling_number(net: str, autojump_clock: trio.testing.MockClock) -> None:
    # SO_ATM_CALLING as a call_pnum_t with plan CM_E164: the SETUP's calling party number is
    # E.164 (international, IA5 digits) and the called side reads it back with its plan
    async with svc_net(net) as env:
        lst = env.listener()
        c = env.sock(env.sa)
        number = b"4930123456"
        c.setsockopt(SOL_NDD_ATM, SO_ATM_CALLING, bytes.fromhex("000a" "01" "01" "00" "00") + number + bytes(10))
        assert c.getsockopt(SOL_NDD_ATM, SO_ATM_CALLING) == AtmAddr(number, plan=CM_E164)
        got: list[Any] = []
        async with trio.open_nursery() as n:
            async def acc() -> None:
                got.extend(await accept_call(lst))
            n.start_soon(acc)
            with trio.fail_after(5):
                await c.connect(svc(AESA_B))
        s, _ = got
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_CALLING) == AtmAddr(number, plan=CM_E164)
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_CALLING, 26)[:6] == bytes.fromhex("000a" "01" "01" "00" "00")
        for bad in (AtmAddr(b"12ab", plan=CM_E164), AtmAddr(b"1" * 16, plan=CM_E164), AtmAddr(b"123")):
            with raises_errno(errno.EINVAL):
                env.sock(env.sa).setsockopt(SOL_NDD_ATM, SO_ATM_CALLING, bad)


@pytest.mark.parametrize("net", NETS)
async def test_so_atm_param_sets_and_shows_a_whole_connect_ie_t(net: str,
                                                                autojump_clock: trio.testing.MockClock) -> None:
    # SO_ATM_PARAM: connect_ie_t (260 octets) sets every call option at once; read on the
    # called side it shows the call as it arrived, turned to that side's view
    async with svc_net(net) as env:
        lst = env.listener(blli=LLC_IP)
        c = env.sock(env.sa)
        ie = ConnectIe(AalParm(2000, 3000), RICH_TRAFFIC, Bearer(BCOB_C, clipping=1), BHLI_USER,
                       (X25_BLLI, LLC_IP), AtmAddr(), AtmAddr(AESA_A), QosParm(1, 3))
        c.setsockopt(SOL_NDD_ATM, SO_ATM_PARAM, ie.pack())
        assert c.getsockopt(SOL_NDD_ATM, SO_ATM_PARAM) == ie
        assert len(c.getsockopt(SOL_NDD_ATM, SO_ATM_PARAM, 260)) == 260
        got: list[Any] = []
        async with trio.open_nursery() as n:
            async def acc() -> None:
                got.extend(await accept_call(lst))
            n.start_soon(acc)
            with trio.fail_after(5):
                await c.connect(svc(AESA_B))
        s, _ = got
        seen = ConnectIe.unpack(s.getsockopt(SOL_NDD_ATM, SO_ATM_PARAM, 260))
        assert seen == ConnectIe(AalParm(3000, 2000), RICH_TRAFFIC.reversed(), Bearer(BCOB_C, clipping=1), BHLI_USER,
                                 (LLC_IP,), AtmAddr(AESA_B), AtmAddr(AESA_A), QosParm(3, 1))
        assert c.getsockopt(SOL_NDD_ATM, SO_ATM_PARAM).blli == (LLC_IP,)        # the one the called side took
        with raises_errno(errno.EISCONN):
            c.setsockopt(SOL_NDD_ATM, SO_ATM_PARAM, ie)
        with raises_errno(errno.EINVAL):
            env.sock(env.sa).setsockopt(SOL_NDD_ATM, SO_ATM_PARAM, ie.pack()[:259])
        with raises_errno(errno.EINVAL):
            env.sock(env.sa).setsockopt(SOL_NDD_ATM, SO_ATM_PARAM, replace(ie, qos=QosParm(9, 0)))


async def test_an_e164_called_number(autojump_clock: trio.testing.MockClock) -> None:
    # an SVC address may be an E.164 number (1-15 digits; sockaddr_ndd_atm's call_pnum_t with
    # plan CM_E164): the listener binds it, the caller connects to it in the C form, the
    # SETUP's called party number is E.164 and the switch routes it on a '+' prefix
    number = b"4930123456"
    async with svc_net("switch") as env:
        assert isinstance(env.net, AtmSwitch)
        core = env.net.core
        core.routes.add("+4930", "pb")
        port = core.ports["pb"]
        port.addresses = (port.addresses or frozenset()) | {"+" + number.decode()}   # B answers to it too
        lst = env.listener(aesa=number)
        c = env.sock(env.sa)
        c.setsockopt(SOL_NDD_ATM, SO_ATM_CALLING, AtmAddr(AESA_A))
        got: list[Any] = []
        async with trio.open_nursery() as n:
            async def acc() -> None:
                got.extend(await accept_call(lst))
            n.start_soon(acc)
            with trio.fail_after(5):
                await c.connect(SockaddrNddAtm.svc("atm0", number).pack())
        s, addr = got
        assert c.getpeername() == ("atm0", CONN_SVC, number, b"") and s.getsockname() == ("atm0", CONN_SVC, number, b"")
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_CALLED) == AtmAddr(number, plan=CM_E164)
        raw = SockaddrNddAtm.svc("atm0", number).pack()
        assert raw[20:26] == bytes.fromhex("000a" "01" "01" "0000") and raw[26:36] == number
        await c.send(b"e.164")
        assert await s.recv(10) == b"e.164"


async def test_transit_network_selection(autojump_clock: trio.testing.MockClock) -> None:
    # SO_ATM_TRANSIT_SEL (transit_sel_t): the SETUP carries a transit network selection IE; the
    # switch routes only to carrier codes it knows (cause 2 otherwise) and keeps the IE to itself
    async with svc_net("switch") as env:
        assert isinstance(env.net, AtmSwitch)
        lst = env.listener()
        c = env.sock(env.sa)
        c.setsockopt(SOL_NDD_ATM, SO_ATM_TRANSIT_SEL, TransitSel(net_id=b"0123").pack())
        assert c.getsockopt(SOL_NDD_ATM, SO_ATM_TRANSIT_SEL, 10) == bytes.fromhex("0004" "02" "01") + b"0123\0\0"
        with raises_errno(errno.ECONNREFUSED), trio.fail_after(5):
            await c.connect(svc(AESA_B))
        assert cause(c) == 2                                           # no route to the transit network
        env.net.core.transit_networks.add(b"0123")
        c = env.sock(env.sa)
        c.setsockopt(SOL_NDD_ATM, SO_ATM_TRANSIT_SEL, TransitSel(net_id=b"0123"))
        got: list[Any] = []
        async with trio.open_nursery() as n:
            async def acc() -> None:
                got.extend(await accept_call(lst))
            n.start_soon(acc)
            with trio.fail_after(5):
                await c.connect(svc(AESA_B))
        s, _ = got
        calls = list(svc_manager(env.sb).endpoints["atm0"].uni.calls.values())
        assert calls and all(call.setup is not None and call.setup.get(0x78) is None for call in calls)   # kept
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_TRANSIT_SEL) == TransitSel()
        for bad in (TransitSel(net_id=b"123456"), TransitSel(net_id=b"\x80"), bytes.fromhex("0006") + bytes(8)):
            with raises_errno(errno.EINVAL):
                env.sock(env.sa).setsockopt(SOL_NDD_ATM, SO_ATM_TRANSIT_SEL, bad)


# B-LLI choices with blli_t's modes, window sizes and user information
X25_BLLI = Blli(0x0B, 0x06, l2_mode=2, l2_win_size=7, l3_mode=1, l3_def_pkt_size=7, l3_pkt_win_size=2)
USER_BLLI = Blli(0x10, l2_info=0x42)


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("taken", [0, 1, 2])
async def test_a_caller_offers_three_blli_choices(net: str, taken: int, autojump_clock: trio.testing.MockClock) -> None:
    # up to CM_MAX_BLLI blli_t (54 octets), in order of preference: a listener bound to any one
    # of them takes the call (its modes and window sizes make it through the IE), its CONNECT
    # names the one taken and the caller holds that one
    choices = (X25_BLLI, LLC_IP, USER_BLLI)
    async with svc_net(net) as env:
        lst = env.listener(blli=choices[taken])
        c = env.sock(env.sa)
        c.setsockopt(SOL_NDD_ATM, SO_ATM_BLLI, b"".join(b.pack() for b in choices))
        assert c.getsockopt(SOL_NDD_ATM, SO_ATM_BLLI) == X25_BLLI               # the first, preferred
        got: list[Any] = []
        async with trio.open_nursery() as n:
            async def acc() -> None:
                got.extend(await accept_call(lst))
            n.start_soon(acc)
            with trio.fail_after(5):
                await c.connect(svc(AESA_B))
        s, _ = got
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_BLLI) == choices[taken]
        assert Blli.unpack(c.getsockopt(SOL_NDD_ATM, SO_ATM_BLLI, 18)) == choices[taken]
        await c.send(b"over the chosen B-LLI")
        assert await s.recv(100) == b"over the chosen B-LLI"
        with raises_errno(errno.EINVAL):             # a call holds one B-LLI now: EISCONN for one
            c.setsockopt(SOL_NDD_ATM, SO_ATM_BLLI, (LLC_IP, X25_BLLI))
        for bad in (b"\x00" * 17, bytes(72), (LLC_IP,) * 4, (LLC_IP, Blli())):
            with raises_errno(errno.EINVAL):
                env.sock(env.sa).setsockopt(SOL_NDD_ATM, SO_ATM_BLLI, bad)


@pytest.mark.parametrize("net", NETS)
async def test_cause_diagnostics_reach_the_other_side_as_cause_t(net: str,
                                                                 autojump_clock: trio.testing.MockClock) -> None:
    # SO_ATM_CAUSE as <sys/call_ie.h>'s cause_t (32 octets): the diagnostics ride the RELEASE's
    # Cause IE (through the switch too) and come back in the other socket's cause_t
    async with svc_net(net) as env:
        c, s = await env.pair()
        s.setsockopt(SOL_NDD_ATM, SO_ATM_CAUSE, AtmCause(cause=21, diag=b"\x81").pack())   # rejected by the user
        s.close()
        await trio.sleep(1)
        raw = c.getsockopt(SOL_NDD_ATM, SO_ATM_CAUSE, 32)
        assert raw == bytes.fromhex("15" "00" "0001" "81") + bytes(27)
        got = c.getsockopt(SOL_NDD_ATM, SO_ATM_CAUSE)                 # the friendly form keeps the location
        assert (got.cause, got.diag) == (21, b"\x81") and got.location == (0 if net == "switch" else 1)
        with raises_errno(errno.EINVAL):
            c.setsockopt(SOL_NDD_ATM, SO_ATM_CAUSE, AtmCause(cause=16, diag=bytes(29)))
        with raises_errno(errno.EINVAL):
            c.setsockopt(SOL_NDD_ATM, SO_ATM_CAUSE, bytes.fromhex("10" "00" "001d") + bytes(28))   # length 29


@pytest.mark.parametrize("net", NETS)
async def test_signalling_loss_resets_open_calls_after_t309(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        c, s = await env.pair()
        t0 = trio.current_time()
        env.line_a.cut = True
        with trio.fail_after(60), raises_errno(errno.ENETRESET):
            await c.recv(10)
        # SSCOP notices the silence (no response 7 s, give or take a poll), then T309 runs 10 s
        assert 17.0 <= trio.current_time() - t0 <= 19.0
        assert cause(c) == 27 and await c.recv(10) == b""
        with trio.fail_after(5), raises_errno(errno.ECONNRESET):         # the network cleared B's leg
            await s.recv(10)
        assert cause(s) == 27


@pytest.mark.parametrize("net", NETS)
async def test_link_back_before_t309_keeps_the_call(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        c, s = await env.pair()
        env.line_a.cut = True
        await trio.sleep(9)                                              # the link is down, T309 runs
        env.line_a.cut = False
        await trio.sleep(15)
        await c.send(b"still here")
        with trio.fail_after(2):
            assert await s.recv(20) == b"still here"


@pytest.mark.parametrize("net", NETS)
async def test_restart_resets_open_calls(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        c, s = await env.pair()
        env.network_side("pa").restart()                                 # the network restarts A's interface
        with trio.fail_after(5), raises_errno(errno.ENETRESET):
            await c.recv(10)
        with trio.fail_after(5), raises_errno(errno.ECONNRESET):         # B's leg: cleared by the network
            await s.recv(10)
        c2, s2 = await env.pair()
        svc_manager(env.sa).endpoints["atm0"].restart()                 # and A restarts itself
        with trio.fail_after(5), raises_errno(errno.ENETRESET):
            await c2.recv(10)


@pytest.mark.parametrize("net", NETS)
async def test_stopping_the_signalling_resets_open_calls(net: str, autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net(net) as env:
        c, _ = await env.pair()
        svc_manager(env.sa).stop("atm0")
        with raises_errno(errno.ENETRESET):
            await c.recv(10)


# --- names and misuse ---------------------------------------------------------------------------------
async def test_bind_listen_accept_errors(autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net() as env:
        s1 = env.sock(env.sb)
        s1.bind(svc(AESA_B))
        assert s1.getsockname() == svc(AESA_B)
        with raises_errno(errno.EINVAL):                                 # bound already
            s1.bind(svc(AESA_B[:19] + b"\x02"))
        with raises_errno(errno.EADDRINUSE):                             # the same AESA and selector
            env.sock(env.sb).bind(svc(AESA_B))
        s2 = env.sock(env.sb)
        s2.bind(svc(AESA_B[:19] + b"\x02"))                              # another selector
        s3 = env.sock(env.sb)
        s3.setsockopt(SOL_NDD_ATM, SO_ATM_BLLI, LLC_IP)
        s3.bind(svc(AESA_B))                                             # another B-LLI: another SAP
        s4 = env.sock(env.sb)
        s4.bind(svc(AESA_B, bytes(range(20))))                           # a subaddress too
        with raises_errno(errno.EADDRINUSE):                             # re-keying onto a taken SAP
            s3.setsockopt(SOL_NDD_ATM, SO_ATM_BLLI, Blli())
        with raises_errno(errno.ENODEV):
            env.sock(env.sb).bind(("atm9", CONN_SVC, AESA_B, b""))
        with raises_errno(errno.EINVAL):                                 # vc_type neither PVC nor SVC
            await env.sock(env.sb).connect(("atm0", 3, 0, 40))
        with raises_errno(errno.EINVAL):                                 # accept before listen
            await s1.accept()
        nobody = env.sock(env.sb)
        with raises_errno(errno.EDESTADDRREQ):
            nobody.listen(1)
        nobody.bind(("atm0",))
        with raises_errno(errno.EDESTADDRREQ):                           # the adapter is no ATM address
            nobody.listen(1)
        with raises_errno(errno.EINVAL):
            await nobody.accept()
        with raises_errno(errno.EINVAL):                                 # a PVC on an ATM-address socket
            await s2.connect(("atm0", CONN_PVC, 0, 40))
        s1.listen(0)
        assert s1._pcb.backlog == 32                                     # Linux's ATM default backlog
        s1.listen(3)
        assert s1._pcb.backlog == 3 and s1.getsockopt(SOL_NDD_ATM, SO_ATM_MAX_PEND, 4) == b"\0"   # a u_char
        with raises_errno(errno.EOPNOTSUPP):                             # POSIX: listening, cannot connect
            await s1.connect(svc(AESA_A))
        with raises_errno(errno.EINVAL):
            s1.setsockopt(SOL_NDD_ATM, SO_ATM_MAX_PEND, 256)
        for bad, opt in ((Bearer(up_config=1), SO_ATM_BEARER), (Bearer(7), SO_ATM_BEARER),
                         (QosParm(5, 0), SO_ATM_QOS_PARM), (AtmCause(cause=0), SO_ATM_CAUSE),
                         (AtmAddr(b"x"), SO_ATM_CALLING)):
            with raises_errno(errno.EINVAL):
                s2.setsockopt(SOL_NDD_ATM, opt, bad)
        pvc = env.sock(env.sb)
        await pvc.connect(("atm0", CONN_PVC, 0, 40))
        with raises_errno(errno.EOPNOTSUPP):                             # a PVC is never called
            pvc.listen(1)
        s1.close()
        again = env.sock(env.sb)
        again.bind(svc(AESA_B))                                          # close frees the SAP
        for s in (s2, s3, s4, nobody, pvc, again):
            s.close()


async def test_option_defaults_and_packed_forms(autojump_clock: trio.testing.MockClock) -> None:
    async with svc_net() as env:
        s = env.sock(env.sa)
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_BEARER) == Bearer(0x10, 0, 0, 0, 0)   # BCOB-X, point-to-point
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_QOS_PARM) == QosParm(0, 0)
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_CAUSE) == AtmCause(0, 0)            # no call yet
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_CALLING) == AtmAddr() == s.getsockopt(SOL_NDD_ATM, SO_ATM_CALLED)
        s.setsockopt(SOL_NDD_ATM, SO_ATM_QOS_PARM, b"\x01\x02")
        s.setsockopt(SOL_NDD_ATM, SO_ATM_BEARER, Bearer(BCOB_C).pack())
        s.setsockopt(SOL_NDD_ATM, SO_ATM_CALLING, AtmAddr(AESA_A, bytes(20)).pack())
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_QOS_PARM) == QosParm(1, 2)
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_BEARER, 5) == bytes([3, 0, 0, 0, 0])
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_CALLING) == AtmAddr(AESA_A, bytes(20))
        with raises_errno(errno.EINVAL):                                  # lengths 0 or 20 only
            s.setsockopt(SOL_NDD_ATM, SO_ATM_CALLING, bytes([19, 0]) + bytes(40))
        with raises_errno(errno.EINVAL):
            s.setsockopt(SOL_NDD_ATM, SO_ATM_CAUSE, b"\x00")
        s.setsockopt(SOL_NDD_ATM, SO_ATM_CAUSE, AtmCause(0, 31).pack())
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_CAUSE) == AtmCause(0, 0)  # get: the last call's, not ours


# --- the command line: switch, svc-server and svc-call as three processes ---------------------------
async def test_cli_server_and_calls_through_the_switch() -> None:
    from .test_atm_cli import Proc, run
    sw, ready = await Proc.start("atm", "switch", "--port", f"a=127.0.0.1:0,prefix={PREFIX_B.hex()}",
                                 "--port", "b=127.0.0.1:0", "-v")
    ports = dict(f.split("=", 1) for f in ready.split() if f.startswith("port."))
    srv: Proc | None = None
    try:
        srv, sready = await Proc.start("atm", "svc-server", "--switch", ports["port.a"], "--addr", AESA_B[:19].hex(),
                                       "--selector", "1", "--backlog", "2")
        assert sready.startswith("ready: ") and f"addr={AESA_B.hex()}" in sready and "backlog=2" in sready
        call = ("atm", "svc-call", "--switch", ports["port.b"], "--calling", AESA_A.hex())
        ok = await run(*call, AESA_B.hex(), "-n", "5", "--size", "100", "-i", "0")
        out = ok.stdout.decode()
        assert ok.returncode == 0, ok.stderr
        assert out.startswith(f"connected: called={AESA_B.hex()} vc=0/")
        assert [line.split("seq=")[1].split()[0] for line in out.splitlines() if "seq=" in line] == \
            ["1", "2", "3", "4", "5"]
        assert "5 sent, 5 received, 0% loss" in out and "rtt min/avg/max = " in out
        for called, text in ((AESA_B[:19] + b"\x07", "cause 88 (incompatible destination): ECONNREFUSED"),
                             (bytes(20), "cause 3 (no route to destination): EHOSTUNREACH")):
            refused = await run(*call, called.hex(), "-n", "1")
            assert refused.returncode == 2 and text in refused.stderr.decode(), refused.stderr
            assert "connected" not in refused.stdout.decode()
        assert await srv.stop() == 128 + signal.SIGTERM
        log = (srv.buf + await srv.rest(srv.proc.stderr)).decode()
        assert f"call from {AESA_A.hex()}: 5 SDUs echoed, released (cause 16" in log
    finally:
        if srv is not None:
            await srv.kill()
        assert await sw.stop() == 128 + signal.SIGTERM


async def test_cli_help_has_examples() -> None:
    from .test_atm_cli import run
    for cmd in ("svc-server", "svc-call"):
        r = await run("atm", cmd, "--help")
        assert r.returncode == 0 and b"examples" in r.stdout and b"tunstack atm svc-call --switch" in r.stdout
    bad = await run("atm", "svc-call", "--switch", "127.0.0.1:9", "4700")
    assert bad.returncode == 2 and b"an AESA is 20 octets" in bad.stderr
