"""SSCOP interop with a real implementation: linux-atm's atmsigd (2.5.1, UNI 3.1) is the far end
of tunstack's SAAL (SSCF-UNI + SSCOP) on VC 0/5.

atmsigd runs under tools/lab/atmsigd_shim.c (this kernel has no ATM): its signalling PVC socket
is bridged by tools/lab/atmsigd.py onto "its" emulated adapter, an AtmNdd joined by a
PhyPair to the AtmNdd of the Stack under test, so every SSCOP PDU crosses as AAL5 cells.
Real time throughout (atmsigd has its own clock).  What atmsigd does, as observed: it sends
BGN as soon as it starts (both modes) and again at once after any release, so its BGN opens
the link and re-opens it after ours is released; for our own BGN to be the opener its first
BGNs are lost on a cut VC.

Also here: the atmsvc_msg layout against the compiled UAPI headers, and the harness's call
API between two atmsigds (user side calls network side), for the Q.2931 tests to come.
"""
from __future__ import annotations

import errno
import itertools
import re
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import PhyPair
from drivers.pcap import PcapRecorder
from protocols.atm.saal.endpoint import SaalEndpoint
from protocols.atm.saal.sscf import AalEv, AalEvent, State
from protocols.atm.saal.sscop_pdu import Pdu, Poll, Stat, parse_pdu
from protocols.atm.uni.causes import CAUSE_INCOMPATIBLE_DESTINATION
from protocols.atm.uni.q2931 import (
    AAL_5,
    BCOB_X,
    IE_CAUSE,
    PLAN_AESA,
    RELEASE_COMPLETE,
    SETUP,
    AalParameters,
    BearerCapability,
    CalledNumber,
    Cause,
    Q2931Message,
    QosParameter,
    TrafficDescriptor,
    parse_message,
)
from stack.stack import Stack, StackConfig
from tools.lab import atmsigd as harness
from tools.lab.atmsigd import (
    AS_ACCEPT,
    AS_CLOSE,
    AS_CONNECT,
    AS_ERROR,
    AS_INDICATE,
    AS_LISTEN,
    AS_OKAY,
    AtmsvcMsg,
    Qos,
    SvcAddr,
    atmsigd_peer,
)

from .helpers import require_atmsigd, require_tool

AESA_SIGD = bytes.fromhex("47000580ffe1000000f21a3a4b0020481a3a4b00")
AESA_A = bytes.fromhex("47000580ffe1000000f21a3a4b0020481a3a4b0a")
AESA_B = bytes.fromhex("47000580ffe1000000f21a3a4b0020481a3a4b0b")
AESA_NOBODY = bytes.fromhex("47000580ffe1000000f21a3a4b0020481a3a4b0c")


# --- our SAAL against atmsigd ------------------------------------------------------------------
@dataclass
class Link:
    ep: SaalEndpoint
    peer: harness.AtmsigdPeer
    ours: AtmNdd
    events: list[AalEvent] = field(default_factory=list)
    wire: list[tuple[float, str, Pdu | str]] = field(default_factory=list)   # (time, "out"|"in", PDU)

    def kinds(self) -> list[AalEv]:
        return [e.kind for e in self.events]

    def pdus(self, since: int = 0, keepalive: bool = True) -> list[tuple[str, str]]:
        """(direction, PDU type) after wire[since]; without POLL/STAT unless `keepalive`."""
        return [(d, type(p).__name__ if not isinstance(p, str) else p) for _, d, p in self.wire[since:]
                if keepalive or not isinstance(p, (Poll, Stat))]

    def sscf_states(self) -> list[str]:
        """atmsigd's SSCF state changes from its log ("4/10": established, SSCOP state 10)."""
        return re.findall(r"SSCF: entering state (\d+/\d+)", self.peer.log_text())


async def until(cond: Callable[[], bool], timeout: float) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.01)


@asynccontextmanager
async def saal_vs_atmsigd(mode: str, log_dir: Path, *, sig_blocked: bool = False,
                          pcap: Path | None = None) -> AsyncIterator[Link]:
    async with Stack("ts", StackConfig(seed=1)) as st, Stack("atmsigd-host", StackConfig(seed=2)) as sh:
        phy = PhyPair()
        ours, theirs = AtmNdd("atm0", phy.a), AtmNdd("atm1", phy.b)
        for s, nd in ((st, ours), (sh, theirs)):
            s.ns.ns_attach(nd)
            s.ns.ns_alloc(nd.ndd_name)
        rec = PcapRecorder.attach(ours, str(pcap)) if pcap is not None else None
        wire: list[tuple[float, str, Pdu | str]] = []

        def tap(nd: object, direction: str, pkt: object) -> None:
            v = pkt.view()                                      # type: ignore[attr-defined]
            if (v[1], v[2] << 8 | v[3]) == (0, 5):
                wire.append((trio.current_time(), direction, parse_pdu(bytes(v[4:]))))

        ours.taps.append(tap)
        events: list[AalEvent] = []
        ep = SaalEndpoint.on_stack(st, ours, on_event=events.append)
        try:
            async with atmsigd_peer(theirs, mode=mode, aesa=AESA_SIGD, sig_blocked=sig_blocked,
                                    keep_log=log_dir) as peer:
                yield Link(ep, peer, ours, events, wire)
                assert peer.running, f"atmsigd died:\n{peer.log_text()[-3000:]}"
        finally:
            ep.close()
            if rec is not None:
                rec.close()


def answered(link: Link, since: int, poller: str) -> list[tuple[float, float]]:
    """The POLLs sent by `poller` ("out": us, "in": atmsigd) after wire[since]: (time sent,
    delay of the STAT with the same N(PS) coming back; inf if none came)."""
    other = "in" if poller == "out" else "out"
    res = []
    seg = link.wire[since:]
    for i, (t, d, p) in enumerate(seg):
        if d == poller and isinstance(p, Poll):
            rep = next((t2 for t2, d2, p2 in seg[i + 1:] if d2 == other and isinstance(p2, Stat)
                        and p2.n_ps == p.n_ps), None)
            res.append((t, float("inf") if rep is None else rep - t))
    return res


@pytest.mark.parametrize("mode", ["network", "user"])
async def test_sscop_with_atmsigd_establish_release_resync(mode: str, tmp_path: Path) -> None:
    require_atmsigd()
    async with saal_vs_atmsigd(mode, tmp_path, sig_blocked=True) as link:
        peer, ep = link.peer, link.ep
        # (a) our establish(): atmsigd's opening BGNs die on the cut VC; once it is mended
        # (between two of its Timer_CC retries) our BGN is the one that opens the link
        await until(lambda: peer.sig.stats.blocked >= 1, 5)
        peer.sig.blocked = False
        mark = len(link.wire)
        ep.establish()
        await until(lambda: ep.established, 3)
        assert link.kinds() == [AalEv.ESTABLISH_CONF]
        assert link.pdus(mark, keepalive=False)[:2] == [("out", "Bgn"), ("in", "Bgak")]
        await until(lambda: link.sscf_states()[-1:] == ["4/10"], 3)
        # the link carries keepalive traffic: a POLL each way, answered by a STAT
        await until(lambda: answered(link, mark, "out") and answered(link, mark, "in"), 3)

        # (b) our release (END -> ENDAK); atmsigd opens the link again at once with its own BGN
        link.events.clear()
        mark = len(link.wire)
        ep.release()
        await until(lambda: link.kinds() == [AalEv.RELEASE_CONF, AalEv.ESTABLISH_IND], 5)
        assert link.pdus(mark, keepalive=False)[:4] == [("out", "End"), ("in", "Endak"), ("in", "Bgn"), ("out", "Bgak")]
        assert ep.established
        await until(lambda: link.sscf_states()[-3:] == ["1/2", "2/2", "4/10"], 3)   # released, up again

        # (c) establish() on a live link is a resynchronisation (SSCF-UNI): RS -> RSAK
        link.events.clear()
        mark = len(link.wire)
        ep.establish()
        assert ep.state == State.AWAITING_RESYNC
        await until(lambda: ep.established, 3)
        assert link.kinds() == [AalEv.ESTABLISH_CONF]
        assert link.pdus(mark, keepalive=False)[:2] == [("out", "Rs"), ("in", "Rsak")]
        await until(lambda: answered(link, mark, "out") and answered(link, mark, "in"), 3)
        assert link.sscf_states()[-1] == "4/10"                # atmsigd stayed up throughout
        assert ep.sscf.sscop.stats.rx_malformed == 0 and ep.sscf.sscop.stats.errors == 0
        assert not ep.sscf.maa_errors
        assert peer.sig.stats.drops == 0 and peer.sig.stats.tx_errors == 0


async def test_sscop_idle_link_with_atmsigd_held_by_keepalive(tmp_path: Path) -> None:
    """A minute of idle link: POLL/STAT keep it up (atmsigd releases after Timer_NO-RESPONSE,
    7 s, if a POLL goes unanswered, and so do we)."""
    require_atmsigd()
    idle = 62.0
    async with saal_vs_atmsigd("network", tmp_path) as link:
        ep = link.ep
        await until(lambda: ep.established, 5)
        mark = len(link.wire)
        polls0 = ep.sscf.sscop.stats.polls
        t0 = trio.current_time()
        await trio.sleep(idle)
        assert trio.current_time() - t0 >= idle
        assert ep.established and link.kinds() == [AalEv.ESTABLISH_IND]
        assert {k for _, k in link.pdus(mark)} == {"Poll", "Stat"}      # keepalive and nothing else
        theirs, ours = answered(link, mark, "in"), answered(link, mark, "out")
        # atmsigd polls every Timer_IDLE (15 s) when idle, we every 15 s too (Q.2110 idle phase)
        assert len(theirs) >= 3 and len(ours) >= 3, (theirs, ours)
        assert ep.sscf.sscop.stats.polls - polls0 == len(ours)               # SSCOP's count = the wire's
        # every POLL answered at once, but one sent in the last moment
        assert all(d < 0.5 or t > trio.current_time() - 0.5 for t, d in theirs + ours), (theirs, ours)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(link.wire[mark:])]
        assert max(gaps) < 16.0, gaps                        # never silent for longer than Timer_IDLE
        assert link.sscf_states() == ["2/2", "4/10"]          # atmsigd never left "established"
        assert ep.sscf.sscop.stats.errors == 0 and not ep.sscf.maa_errors


async def test_atmsigd_sscop_pcap_decodes_in_tshark(tmp_path: Path) -> None:
    """SUNATM capture of the signalling VC with atmsigd: BGN/BGAK, SD carrying Q.2931 both ways
    (our SETUP to an address nobody listens on, atmsigd's RELEASE COMPLETE), POLL/STAT,
    RS/RSAK, END/ENDAK; tshark decodes SSCOP and Q.2931 and finds nothing malformed."""
    require_atmsigd()
    require_tool("tshark")
    pcap = tmp_path / "atmsigd-saal.pcap"
    async with saal_vs_atmsigd("network", tmp_path, pcap=pcap) as link:
        ep = link.ep
        await until(lambda: ep.established, 5)
        setup = Q2931Message(SETUP, 7, 0, [
            AalParameters(AAL_5, 9188, 9188),
            TrafficDescriptor(fwd_pcr_01=353207, bwd_pcr_01=353207, best_effort=True), BearerCapability(BCOB_X),
            CalledNumber(AESA_NOBODY, PLAN_AESA), QosParameter(0, 0)])
        assert ep.send(setup.emit())
        await until(lambda: AalEv.DATA_IND in link.kinds(), 5)
        reply = parse_message(next(e.data for e in link.events if e.kind == AalEv.DATA_IND))
        assert isinstance(reply, Q2931Message)
        assert (reply.msg_type, reply.callref, reply.flag) == (RELEASE_COMPLETE, 7, 1)
        cause = reply.get(IE_CAUSE)
        assert isinstance(cause, Cause) and cause.cause == CAUSE_INCOMPATIBLE_DESTINATION    # 88: no listener
        sscop = ep.sscf.sscop
        await until(lambda: sscop.vt_a == sscop.vt_s, 3)          # our SD acknowledged by a STAT
        ep.establish()                                              # RS / RSAK
        await until(lambda: ep.established, 3)
        ep.release()                                                # END / ENDAK, then its BGN
        await until(lambda: link.kinds().count(AalEv.ESTABLISH_IND) == 2, 5)
        await trio.sleep(0.9)                                       # a POLL/STAT round after that
    seen = {k for _, k in link.pdus()}
    assert {"Bgn", "Bgak", "Sd", "Poll", "Stat", "Rs", "Rsak", "End", "Endak"} <= seen, seen

    def tshark(*args: str) -> str:
        r = subprocess.run(["tshark", "-r", str(pcap), *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    rows = [line.split("\t") for line in tshark("-T", "fields", "-e", "sscop.type",
                                                "-e", "q2931.message_type").splitlines()]
    assert len(rows) == len(link.wire) and all(r[0] for r in rows), rows    # every frame is SSCOP
    types = {int(r[0], 0) for r in rows}
    assert {0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x8, 0xA, 0xB} <= types, types
    assert {int(r[1], 0) for r in rows if len(r) > 1 and r[1]} == {SETUP, RELEASE_COMPLETE}
    assert tshark("-Y", "_ws.malformed || _ws.expert.severity == error") == ""


def test_atmsvc_msg_layout_matches_the_headers(tmp_path: Path) -> None:
    """The harness packs struct atmsvc_msg by hand: check every offset and size against the
    compiled <linux/atmsvc.h>."""
    require_tool("gcc")
    src = tmp_path / "probe.c"
    src.write_text(r"""
#include <stdio.h>
#include <stddef.h>
#include <sys/socket.h>
#include <linux/atmsvc.h>
#include <linux/atmdev.h>
#define O(t, f) printf("%s.%s %zu %zu\n", #t, #f, offsetof(struct t, f), sizeof(((struct t *)0)->f))
int main(void) {
    printf("atmsvc_msg %zu\nsockaddr_atmsvc %zu\nsockaddr_atmpvc %zu\natm_qos %zu\natm_sap %zu\n",
           sizeof(struct atmsvc_msg), sizeof(struct sockaddr_atmsvc), sizeof(struct sockaddr_atmpvc),
           sizeof(struct atm_qos), sizeof(struct atm_sap));
    O(atmsvc_msg, type); O(atmsvc_msg, vcc); O(atmsvc_msg, listen_vcc); O(atmsvc_msg, reply);
    O(atmsvc_msg, pvc); O(atmsvc_msg, local); O(atmsvc_msg, qos); O(atmsvc_msg, sap);
    O(atmsvc_msg, session); O(atmsvc_msg, svc);
    O(sockaddr_atmpvc, sap_addr.itf); O(sockaddr_atmpvc, sap_addr.vpi); O(sockaddr_atmpvc, sap_addr.vci);
    O(sockaddr_atmsvc, sas_addr.prv); O(sockaddr_atmsvc, sas_addr.pub); O(sockaddr_atmsvc, sas_addr.lij_type);
    O(sockaddr_atmsvc, sas_addr.lij_id);
    O(atm_qos, txtp); O(atm_qos, rxtp); O(atm_qos, aal);
    O(atm_trafprm, max_pcr); O(atm_trafprm, pcr); O(atm_trafprm, min_pcr); O(atm_trafprm, max_cdv);
    O(atm_trafprm, max_sdu); O(atm_trafprm, icr); O(atm_trafprm, tbe);
    printf("ATM_GETLINKRATE %lu\nATM_GETADDR %lu\n", (unsigned long)ATM_GETLINKRATE, (unsigned long)ATM_GETADDR);
    return 0;
}
""")
    exe = tmp_path / "probe"
    subprocess.run(["gcc", "-o", str(exe), str(src)], check=True, capture_output=True, timeout=60)
    got = {}
    for line in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines():
        name, *nums = line.split()
        got[name] = tuple(int(n) for n in nums)
    H = harness
    want = {
        "atmsvc_msg": (H.MSG_LEN,), "sockaddr_atmsvc": (44,), "sockaddr_atmpvc": (12,),
        "atm_qos": (H.QOS_LEN,), "atm_sap": (H.SAP_LEN,),
        "atmsvc_msg.type": (H.OFF_TYPE, 4), "atmsvc_msg.vcc": (H.OFF_VCC, 8),
        "atmsvc_msg.listen_vcc": (H.OFF_LISTEN_VCC, 8), "atmsvc_msg.reply": (H.OFF_REPLY, 4),
        "atmsvc_msg.pvc": (H.OFF_PVC, 12), "atmsvc_msg.local": (H.OFF_LOCAL, 44),
        "atmsvc_msg.qos": (H.OFF_QOS, H.QOS_LEN), "atmsvc_msg.sap": (H.OFF_SAP, H.SAP_LEN),
        "atmsvc_msg.session": (H.OFF_SESSION, 4), "atmsvc_msg.svc": (H.OFF_SVC, 44),
        "sockaddr_atmpvc.sap_addr.itf": (4, 2), "sockaddr_atmpvc.sap_addr.vpi": (6, 2),
        "sockaddr_atmpvc.sap_addr.vci": (8, 4),
        "sockaddr_atmsvc.sas_addr.prv": (4, 20), "sockaddr_atmsvc.sas_addr.pub": (24, 13),
        "sockaddr_atmsvc.sas_addr.lij_type": (37, 1), "sockaddr_atmsvc.sas_addr.lij_id": (40, 4),
        "atm_qos.txtp": (0, 40), "atm_qos.rxtp": (40, 40), "atm_qos.aal": (80, 1),
        "atm_trafprm.max_pcr": (4, 4), "atm_trafprm.pcr": (8, 4), "atm_trafprm.min_pcr": (12, 4),
        "atm_trafprm.max_cdv": (16, 4), "atm_trafprm.max_sdu": (20, 4), "atm_trafprm.icr": (24, 4),
        "atm_trafprm.tbe": (28, 4),
        "ATM_GETLINKRATE": (0x40106181,), "ATM_GETADDR": (0x40106186,),
    }
    assert got == want
    # and the Python side packs at those offsets
    m = AtmsvcMsg(AS_CONNECT, vcc=0x1122334455667788, listen_vcc=9, reply=-111, pvc=(0, 1, 32),
                  local=SvcAddr(AESA_A), qos=Qos.ubr(9188, 1000), session=5, svc=SvcAddr(AESA_B, "123"))
    b = m.pack()
    assert len(b) == 252 and b[4:12] == bytes.fromhex("8877665544332211")
    assert b[12:20] == bytes.fromhex("0900000000000000") and b[20:24] == (-111).to_bytes(4, "little", signed=True)
    assert b[24:36] == bytes.fromhex("080000000000010020000000")          # AF_ATMPVC, pad, itf 0, vpi 1, vci 32
    assert b[40:60] == AESA_A and b[212:232] == AESA_B and b[232:236] == b"123\0"
    assert b[80] == 1 and b[88:92] == (1000).to_bytes(4, "little") and b[100:104] == (9188).to_bytes(4, "little")
    assert b[160] == 5 and b[204:208] == (5).to_bytes(4, "little")           # aal 5, session 5
    assert AtmsvcMsg.unpack(b) == m


# --- the harness's call API: two atmsigds, user side calling network side ---------------------
async def test_harness_call_between_two_atmsigds(tmp_path: Path) -> None:
    require_atmsigd()
    async with Stack("a", StackConfig(seed=1)) as sa, Stack("b", StackConfig(seed=2)) as sb:
        phy = PhyPair()
        a, b = AtmNdd("atm0", phy.a), AtmNdd("atm1", phy.b)
        for s, nd in ((sa, a), (sb, b)):
            s.ns.ns_attach(nd)
            s.ns.ns_alloc(nd.ndd_name)
        async with atmsigd_peer(a, mode="user", aesa=AESA_A, keep_log=tmp_path / "a") as pa, \
                atmsigd_peer(b, mode="network", aesa=AESA_B, keep_log=tmp_path / "b") as pb:
            await pa.wait_link_up(5)
            await pb.wait_link_up(5)
            lst = await pb.listen(AESA_B)
            with pytest.raises(OSError) as exc:
                await pb.listen(AESA_B)                             # one listener per address
            assert exc.value.errno == errno.EADDRINUSE

            async def place_call() -> tuple[harness.Vcc, harness.Vcc]:
                calls: list[harness.Vcc] = []

                async def call() -> None:
                    calls.append(await pa.connect(AESA_B, Qos.ubr()))

                async with trio.open_nursery() as n:
                    n.start_soon(call)
                    ind = await pb.next_indication()
                    assert ind.listener is lst and ind.caller.prv == AESA_A and ind.called.prv == AESA_B
                    vb = await pb.accept(ind)
                assert calls[0].pvc == vb.pvc == ind.pvc and calls[0].local.prv == AESA_A
                return calls[0], vb

            va, vb = await place_call()
            va2, vb2 = await place_call()
            # the network side picks the VCIs: the first free from 32, not one a live call holds
            assert (va.pvc, va2.pvc) == ((0, 0, 32), (0, 0, 33))
            # the SVCs carry AAL5 SDUs both ways, up to the negotiated 9188 octets
            for sdu in (b"hello from the user side", bytes(range(256)) * 35 + b"x" * 228):
                assert va.send(sdu) == 0 and va2.send(sdu[::-1]) == 0
                assert await vb.receive() == sdu and await vb2.receive() == sdu[::-1]
            assert vb.send(b"hello back") == 0 and await va.receive() == b"hello back"
            # the caller hangs up the first (RELEASE / RELEASE COMPLETE): atmsigd B tells its user
            closed = await pa.close(va)
            assert closed.type == AS_CLOSE and closed.reply == 0
            with trio.fail_after(5):
                await vb.closed.wait()
            assert vb.close_reply == 0 and va.send(b"late") == errno.ENOTCONN
            with pytest.raises(trio.EndOfChannel):
                await vb.receive()
            # the called side hangs up the second
            await pb.close(vb2)
            with trio.fail_after(5):
                await va2.closed.wait()
            assert va2.close_reply == 0
            # nobody listens there: RELEASE COMPLETE cause 88 -> ECONNREFUSED
            with pytest.raises(OSError) as exc:
                await pa.connect(AESA_NOBODY)
            assert exc.value.errno == errno.ECONNREFUSED
            await pb.close(lst)
            seq_a = [(d, m.type) for d, m in pa.messages]
            seq_b = [(d, m.type) for d, m in pb.messages]
            assert seq_a == [("to", AS_CONNECT), ("from", AS_OKAY)] * 2 + [
                ("to", AS_CLOSE), ("from", AS_CLOSE),                # we hang up: confirmed
                ("from", AS_CLOSE), ("to", AS_CLOSE),                # the far end hung up: we close too
                ("to", AS_CONNECT), ("from", AS_ERROR)], seq_a
            assert seq_b == [("to", AS_LISTEN), ("from", AS_OKAY), ("to", AS_LISTEN), ("from", AS_ERROR)] + [
                ("from", AS_INDICATE), ("to", AS_ACCEPT), ("from", AS_OKAY)] * 2 + [
                ("from", AS_CLOSE), ("to", AS_CLOSE), ("to", AS_CLOSE), ("from", AS_CLOSE),
                ("to", AS_CLOSE), ("from", AS_CLOSE)], seq_b
            assert not pa.unexpected and not pb.unexpected


# --- the harness's own shutdown ----------------------------------------------------------------
async def test_vc_bridge_closed_under_its_reader_ends_the_reader(tmp_path: Path) -> None:
    """Regression (CI, 2026-12-07): the peer's stop closed the bridge's socket while `run()`
    still waited on it, and the reader woke on a dead descriptor (EBADF) and failed the test
    it served.  Closing must end the reader quietly and at once."""
    async with Stack("br", StackConfig(seed=1)) as st:
        phy = PhyPair()
        nd = AtmNdd("atm0", phy.a)
        st.ns.ns_attach(nd)
        st.ns.ns_alloc(nd.ndd_name)
        bridge = harness.VcBridge(nd, tmp_path, 0, 5)
        with trio.fail_after(2):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(bridge.run)
                await trio.sleep(0.01)              # the reader is parked in wait_readable
                bridge.close()
