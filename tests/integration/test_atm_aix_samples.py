"""Issue 16's "AIX sample program" test for the ATM socket API (points 7 and 8): an AIX
program's client/server pairs rewritten in Python over tunstack's API -- a PVC echo pair, an
SVC echo pair with the two-step accept, a server that rejects a call it does not want, and
a rate-enforced client -- each side in its own Stack, cells through the emulated switch.

The call sequence is the one IBM documents for SOCK_CONN_DGRAM sockets over ATM: socket(
AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM); options at level NDD_PROT_ATM; a PVC client/server
connect()s to its sockaddr_ndd_atm (CONN_PVC, VPI, VCI) and moves datagrams; an SVC server
bind()s its ATM address, listen()s, accept()s -- the call still proceeding (IBM's accept():
"a socket is not ready to transmit/receive data until SO_ATM_ACCEPT socket option is
called") --, reads the caller's parameters with getsockopt, may change SO_ATM_AAL_PARM /
SO_ATM_BLLI (<sys/call_ie.h> indaccept_ie_t), then setsockopt(SO_ATM_ACCEPT); an SVC client
sets its call's options and connect()s to the server's address.  IBM's example sources
themselves were not available to us; the programs below are ours.  The programs pass and read
option values as the AIX C structures' bytes (<sys/call_ie.h>: aal_parm_t, traffic_des_t,
bearer_t, bhli_t, blli_t, qos_parm_t, call_pnum_t, cause_t; SO_ATM_MAX_PEND's u_char), built
and taken apart with tunstack's records (issue 16 point 9; the README's Constants section),
and their addresses as sockaddr_ndd_atm's 72 octets (point 10)."""
from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import PhyPair
from ndd import constants as C
from protocols.atm.sockets.sockaddr import (
    BCOB_X,
    CM_USER_SPECIFIED,
    SO_ATM_AAL_PARM,
    SO_ATM_ACCEPT,
    SO_ATM_BEARER,
    SO_ATM_BHLI,
    SO_ATM_BLLI,
    SO_ATM_CALLED,
    SO_ATM_CALLING,
    SO_ATM_CAUSE,
    SO_ATM_MAX_PEND,
    SO_ATM_QOS_PARM,
    SO_ATM_TRAFFIC_DES,
    AalParm,
    AtmAddr,
    AtmCause,
    Bearer,
    Bhli,
    Blli,
    QosParm,
    SockaddrNddAtm,
    TrafficDes,
)
from protocols.atm.sockets.usrreq import SOL_NDD_ATM, svc_manager
from stack.atm_switch import AtmSwitch
from stack.ndd_socket import AtmSocket
from stack.socket import AF_NDD, NDD_PROT_ATM, SOCK_CONN_DGRAM
from stack.stack import Stack, StackConfig

PREFIX_C, PREFIX_S = "47000580ffe1000000f21a0011", "47000580ffe1000000f21a0012"
AESA_CLIENT = bytes.fromhex(PREFIX_C + "0020481a0011" + "00")
AESA_SERVER = bytes.fromhex(PREFIX_S + "0020481a0012" + "05")     # selector 5: the server's
# sockaddr_ndd_atm in its C form (72 octets), as the programs pass it: one PVC, two UNIs
PVC_CLIENT, PVC_SERVER = SockaddrNddAtm.pvc("atm0", 0, 100).pack(), SockaddrNddAtm.pvc("atm0", 0, 200).pack()
LLC_IP = Blli(12, 11, bytes.fromhex("0000000800"))
APP_BHLI = Bhli(CM_USER_SPECIFIED, b"aixecho")                     # which application the caller wants
MESSAGES = [b"hello", bytes(range(48)), b"x" * 1000, b"y" * 4000]


@dataclass
class Net:
    client: Stack
    server: Stack
    switch: AtmSwitch
    cnd: AtmNdd
    snd: AtmNdd

    def socket(self, st: Stack) -> AtmSocket:
        return st.socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM)


@asynccontextmanager
async def switched() -> AsyncIterator[Net]:
    async with Stack("client", StackConfig(seed=11)) as sc, Stack("server", StackConfig(seed=12)) as ss, \
            AtmSwitch("sw") as sw:
        pc, ps = PhyPair(), PhyPair()
        cnd, snd = AtmNdd("atm0", pc.a), AtmNdd("atm0", ps.a)
        for st, nd in ((sc, cnd), (ss, snd)):
            st.ns.ns_attach(nd)
            st.ns.ns_alloc(nd.ndd_name)                  # the administrator's reference
        sw.add_port("c", pc.b, prefixes=[PREFIX_C])
        sw.add_port("s", ps.b, prefixes=[PREFIX_S])
        sw.add_pvc(("c", 0, 100), ("s", 0, 200))
        svc_manager(ss).start("atm0")
        svc_manager(sc).start("atm0")
        await trio.sleep(0.5)                            # both signalling links up
        yield Net(sc, ss, sw, cnd, snd)


# --- the programs -------------------------------------------------------------------------------------
async def pvc_server(net: Net, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    s = net.socket(net.server)
    s.setsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, AalParm(9180, 9180).pack())       # aal_parm_t
    await s.connect(PVC_SERVER)                          # local only: no cell leaves
    task_status.started()
    with s:
        while data := await s.recv(9180):
            await s.send(data.upper())


def peak_kbps(t: TrafficDes) -> str:
    return "none" if t.bak_peakrate_hp == C.NOT_SPECIFIED_L else str(t.bak_peakrate_hp)


async def pvc_client(net: Net) -> list[bytes]:
    s = net.socket(net.client)
    s.setsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, AalParm(9180, 9180).pack())       # aal_parm_t
    s.setsockopt(SOL_NDD_ATM, SO_ATM_TRAFFIC_DES, TrafficDes(fwd_peakrate_hp=42_400).pack())     # traffic_des_t, Kbit/s
    await s.connect(PVC_CLIENT)
    got = []
    with s:
        for m in MESSAGES:
            await s.send(m)
            got.append(await s.recv(9180))
    return got


async def svc_server(net: Net, log: list[str], task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    lst = net.socket(net.server)
    lst.bind(SockaddrNddAtm.svc("atm0", AESA_SERVER).pack())        # sockaddr_ndd_atm
    lst.listen(4)
    task_status.started()
    with lst:
        while True:
            s, caller = await lst.accept()               # proceeding: nothing moves yet
            aal = AalParm.unpack(s.getsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, 12))   # aal_parm_t
            bhli = Bhli.unpack(s.getsockopt(SOL_NDD_ATM, SO_ATM_BHLI, 12))
            traffic = TrafficDes.unpack(s.getsockopt(SOL_NDD_ATM, SO_ATM_TRAFFIC_DES, 60))   # traffic_des_t
            log.append(f"call from {caller[2].hex()}: aal {aal.fwd_max_sdu}/{aal.bwd_max_sdu} "
                       f"peak {peak_kbps(traffic)} bhli {bhli.info!r}")
            if bhli != APP_BHLI:                         # not our application: reject it
                s.setsockopt(SOL_NDD_ATM, SO_ATM_CAUSE, AtmCause(cause=88).pack())   # cause_t
                s.close()
                continue
            # this server takes datagrams of at most 4096 octets, whatever the caller offered
            s.setsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, AalParm(min(aal.fwd_max_sdu, 4096),
                                                               min(aal.bwd_max_sdu, 4096)).pack())
            s.setsockopt(SOL_NDD_ATM, SO_ATM_ACCEPT, 1)  # CONNECT
            with s:
                while data := await s.recv(4096):
                    await s.send(data[::-1])
                log.append(f"call ended: cause {s.getsockopt(SOL_NDD_ATM, SO_ATM_CAUSE, 32)[0]}")


async def svc_client(net: Net, bhli: Bhli = APP_BHLI, *, max_pend: int = 0, kbps: int = 0,
                     count: int = 0) -> tuple[AtmSocket, list[bytes]]:
    s = net.socket(net.client)
    s.setsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, AalParm(9180, 9180).pack())       # aal_parm_t
    s.setsockopt(SOL_NDD_ATM, SO_ATM_TRAFFIC_DES, TrafficDes(kbps, kbps).pack())   # traffic_des_t
    s.setsockopt(SOL_NDD_ATM, SO_ATM_BEARER, Bearer(BCOB_X).pack())                # bearer_t
    s.setsockopt(SOL_NDD_ATM, SO_ATM_BLLI, LLC_IP.pack())                          # blli_t
    s.setsockopt(SOL_NDD_ATM, SO_ATM_BHLI, bhli.pack())                     # bhli_t, as C passes it
    s.setsockopt(SOL_NDD_ATM, SO_ATM_QOS_PARM, QosParm(0, 0).pack())              # qos_parm_t
    s.setsockopt(SOL_NDD_ATM, SO_ATM_CALLING, AtmAddr(AESA_CLIENT).pack()[:26])    # call_pnum_t
    if max_pend:
        s.setsockopt(SOL_NDD_ATM, SO_ATM_MAX_PEND, bytes((max_pend,)))      # a u_char
    await s.connect(SockaddrNddAtm.svc("atm0", AESA_SERVER).pack())   # sockaddr_ndd_atm
    got: list[bytes] = []
    if count:                                             # the rate-enforced sender: no waiting for echoes
        for i in range(count):
            await s.send(i.to_bytes(2, "big") * 1000)
        got = [await s.recv(4096) for _ in range(count)]
    else:
        for m in MESSAGES:
            await s.send(m)
            got.append(await s.recv(4096))
    return s, got


# --- the runs ----------------------------------------------------------------------------------------
async def test_pvc_client_and_server(autojump_clock: trio.testing.MockClock) -> None:
    async with switched() as net, trio.open_nursery() as n:
        await n.start(pvc_server, net)
        with trio.fail_after(5):
            assert await pvc_client(net) == [m.upper() for m in MESSAGES]
        assert net.switch.cells_relayed > 0                 # through the switch's cross-connect
        n.cancel_scope.cancel()


async def test_svc_client_and_server_with_the_two_step_accept(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with switched() as net, trio.open_nursery() as n:
        await n.start(svc_server, net, log)
        with trio.fail_after(5):
            s, got = await svc_client(net)
        assert got == [m[::-1] for m in MESSAGES]
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM) == AalParm(4096, 4096)     # the server's answer
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_CALLED) == AtmAddr(AESA_SERVER)
        with pytest.raises(OSError, match=f"^\\[Errno {errno.EMSGSIZE}\\]"):
            await s.send(bytes(4097))
        s.close()                                             # RELEASE, cause 16: the server reads EOF
        await trio.sleep(1)
        assert log == [f"call from {AESA_CLIENT.hex()}: aal 9180/9180 peak none bhli b'aixecho'",
                       "call ended: cause 16"]
        n.cancel_scope.cancel()


async def test_svc_server_rejects_a_call_before_accepting_it(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with switched() as net, trio.open_nursery() as n:
        await n.start(svc_server, net, log)
        with trio.fail_after(5), pytest.raises(OSError, match=f"^\\[Errno {errno.ECONNREFUSED}\\]"):
            await svc_client(net, Bhli(CM_USER_SPECIFIED, b"other"))
        assert log == [f"call from {AESA_CLIENT.hex()}: aal 9180/9180 peak none bhli b'other'"]
        with trio.fail_after(5):                              # the server goes on serving
            s, got = await svc_client(net)
        assert got == [m[::-1] for m in MESSAGES]
        s.close()
        n.cancel_scope.cancel()


async def test_rate_enforced_svc_client(autojump_clock: trio.testing.MockClock) -> None:
    # 2000-octet SDUs (42 cells) at 178 Kbit/s (~420 cells/s): 10 per second; at most 3 outstanding
    log: list[str] = []
    async with switched() as net, trio.open_nursery() as n:
        await n.start(svc_server, net, log)
        t0 = trio.current_time()
        with trio.fail_after(10):
            s, got = await svc_client(net, max_pend=3, kbps=178, count=20)
        assert got == [i.to_bytes(2, "big")[::-1] * 1000 for i in range(20)]        # all of them, in order
        assert trio.current_time() - t0 >= 1.8
        vc = s.vc
        assert vc is not None
        stats = net.cnd.ndd_ctl(C.NDD_ATM_GET_VC_STATS, vc)
        assert (stats["max_txq"], stats["pcr"]) == (3, 178_000 // 424)   # Kbit/s -> whole cells/s
        assert net.cnd.stats.ndd_xmitque_ovf > 0 and stats["tx_queued_sdus"] == 0   # the limit held the sender
        assert s.getsockopt(SOL_NDD_ATM, SO_ATM_MAX_PEND, 1) == b"\x03"
        s.close()
        n.cancel_scope.cancel()
