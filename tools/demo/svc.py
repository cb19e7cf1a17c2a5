"""The SVC part of `tunstack demo` (called at the end of the ATM section; no root needed).

An emulated ATM switch with two ports and two stacks, every link cells over UDP on
127.0.0.1.  Each stack runs the user side of UNI 3.1 signalling (SSCOP + SSCF-UNI on VC
0/5, Q.2931 call control); the switch runs the network side per port and routes SETUPs
by the called AESA.  Stack b listens on an SVC socket; stack a connects -- SETUP, CALL
PROCEEDING, CONNECT, CONNECT ACKNOWLEDGE -- exchanges datagrams over the VC the switch
assigned, and closes (RELEASE / RELEASE COMPLETE).  Then two calls that fail with their
cause: nobody listens on selector 0x88 (88 -> ECONNREFUSED) and a number no port leads to
(3 -> EHOSTUNREACH).  SUNATM captures of both stacks and both switch ports, signalling
included, go to the output directory; tshark (when installed) must decode SSCOP and
Q.2931 in them and find nothing malformed.
"""
from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import UdpPhy
from drivers.pcap import PcapRecorder
from ndd.atm import DEFAULT_MTU
from protocols.atm.sockets.sockaddr import CONN_SVC, SO_ATM_AAL_PARM, SO_ATM_ACCEPT, SO_ATM_CAUSE, AalParm
from protocols.atm.sockets.usrreq import SOL_NDD_ATM, svc_manager
from protocols.atm.uni.causes import cause_text
from protocols.atm.uni.q2931 import MESSAGE_NAMES
from stack import Stack
from stack.atm_switch import AtmSwitch
from stack.ndd_socket import AtmSocket
from stack.socket import AF_NDD, NDD_PROT_ATM, SOCK_CONN_DGRAM

if TYPE_CHECKING:
    from .report import Report

NET = "47000580ffe1000000f21a"
AESA_A = bytes.fromhex(f"{NET}0001" "0020481a0001" "00")
AESA_B = bytes.fromhex(f"{NET}0002" "0020481a0002" "00")
NO_LISTENER = AESA_B[:19] + b"\x88"
NO_ROUTE = bytes.fromhex("39" + "00" * 18 + "01")
SIZES = (1, 48, 1000, DEFAULT_MTU)
WANT = ["SETUP", "CALL PROCEEDING", "CONNECT", "CONNECT ACKNOWLEDGE", "RELEASE", "RELEASE COMPLETE"]


def _svc(ndd: str, aesa: bytes) -> tuple[str, int, bytes, bytes]:
    return (ndd, CONN_SVC, aesa, b"")


async def _echo_server(lst: AtmSocket, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    while True:
        conn, _ = await lst.accept()
        conn.setsockopt(SOL_NDD_ATM, SO_ATM_ACCEPT, 1)     # AIX's second step: CONNECT goes out
        with conn:
            while data := await conn.recv(65535):
                await conn.send(data)


async def _refused(report: Report, sa: Stack, called: bytes, want: tuple[int, int], what: str) -> None:
    got_errno, cause = 0, 0
    with sa.socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM) as s:
        try:
            with trio.fail_after(10):
                await s.connect(_svc("atm0", called))
        except OSError as exc:
            got_errno = exc.errno or 0
        cause = s.getsockopt(SOL_NDD_ATM, SO_ATM_CAUSE).cause
    name = errno.errorcode.get(got_errno, str(got_errno))
    report.step(f"ATM SVC: a call to {what} is refused with its cause", (cause, got_errno) == want,
                f"cause {cause} ({cause_text(cause)}) -> {name}")


async def _tshark_signalling(pcap: Path) -> tuple[bool, str]:
    """(ok, detail): SSCOP and Q.2931 decoded on 0/5, the call's messages in order, nothing
    malformed or in error (Wireshark 4.0 warns about our traffic descriptor IE: it reads
    one octet past it; a warning, not an error)."""
    async def run(*args: str) -> tuple[int, list[str]]:
        with trio.fail_after(60):
            r = await trio.run_process(["tshark", "-n", "-r", str(pcap), *args], capture_stdout=True,
                                       capture_stderr=True, check=False)
        return r.returncode, [ln for ln in r.stdout.decode().splitlines() if ln.strip()]

    rc, rows = await run("-Y", "atm.vci == 5", "-T", "fields", "-e", "sscop.type", "-e", "q2931.message_type")
    rc2, bad = await run("-Y", "_ws.malformed || _ws.expert.severity >= error")
    types = [r.split("\t")[1] for r in rows if "\t" in r and r.split("\t")[1]]
    names = [MESSAGE_NAMES.get(int(t, 0), t) for t in types]
    # the first complete call: SETUP ... RELEASE COMPLETE (refused calls follow it)
    seen = names[:len(WANT)]
    ok = rc == rc2 == 0 and not bad and len(rows) > 0 and seen[:1] == ["SETUP"] and \
        set(WANT) <= set(names) and "RELEASE COMPLETE" in names
    return ok, f"{len(rows)} SSCOP PDUs on 0/5, Q.2931: {', '.join(names)}; {len(bad)} malformed or in error"


async def svc_demo(report: Report, out: Path) -> None:
    print("== ATM SVCs: an emulated switch (network side of UNI 3.1) and two stacks, cells over UDP")
    t_start = trio.current_time()
    phys = {p: UdpPhy() for p in ("a", "b", "sw-a", "sw-b")}
    for host, port in (("a", "sw-a"), ("b", "sw-b")):
        phys[host].connect(phys[port].local_address)
        phys[port].connect(phys[host].local_address)
    paths = {n: out / f"svc-{n}.pcap" for n in ("a", "b", "switch-a", "switch-b")}
    recs: list[PcapRecorder] = []
    try:
        async with AtmSwitch("demo-sw") as sw, Stack("demo-svc-a") as sa, Stack("demo-svc-b") as sb:
            sw.add_port("a", phys["sw-a"], prefixes=[f"{NET}0001"], pcap=str(paths["switch-a"]))
            sw.add_port("b", phys["sw-b"], prefixes=[f"{NET}0002"], pcap=str(paths["switch-b"]))
            a, b = AtmNdd("atm0", phys["a"]), AtmNdd("atm0", phys["b"])
            for st, nd, name in ((sa, a, "a"), (sb, b, "b")):
                st.ns.ns_attach(nd)
                st.ns.ns_alloc(nd.ndd_name)
                recs.append(PcapRecorder.attach(nd, str(paths[name])))
            ends = {"a": svc_manager(sa).start("atm0"), "b": svc_manager(sb).start("atm0")}
            with trio.move_on_after(10):
                while not all(e.link_up for e in ends.values()):
                    await trio.sleep(0.01)
            report.step("ATM SVC: SSCOP links up on VC 0/5 between each stack and its switch port",
                        all(e.link_up for e in ends.values()),
                        f"in {(trio.current_time() - t_start) * 1000:.0f} ms")
            async with trio.open_nursery() as n:
                lst = sb.socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM)
                lst.bind(_svc("atm0", AESA_B))
                lst.listen(4)
                await n.start(_echo_server, lst)
                await _call(report, sa)
                await _refused(report, sa, NO_LISTENER, (88, errno.ECONNREFUSED), "selector 0x88 (no listener)")
                await _refused(report, sa, NO_ROUTE, (3, errno.EHOSTUNREACH), "an AESA no port leads to")
                n.cancel_scope.cancel()
            lst.close()
            for nd in (a, b):
                with trio.move_on_after(2):
                    await nd.wait_tx_idle()
            await trio.sleep(0.05)   # the last signalling PDUs reach the taps
            stats = sw.stats()
            print(f"    switch: calls routed {stats.get('calls_routed')}, connected {stats.get('calls_connected')}, "
                  f"refused by cause {stats.get('refused_by_cause')}, cells relayed {stats.get('cells_relayed')}")
            for rec in recs:
                rec.close()
    finally:
        for rec in recs:
            rec.close()
        for phy in phys.values():
            phy.shutdown()
    frames = {n: p.stat().st_size if p.exists() else 0 for n, p in paths.items()}
    report.step("ATM SVC: SUNATM captures of both stacks and both switch ports written (0/5 included)",
                all(frames.values()), ", ".join(f"{paths[n].name}" for n in paths))
    if shutil.which("tshark"):
        checks: dict[str, tuple[bool, str]] = {}

        async def check(name: str) -> None:
            checks[name] = await _tshark_signalling(paths[name])

        async with trio.open_nursery() as n:
            for name in paths:
                n.start_soon(check, name)
        for name in paths:
            report.step(f"ATM SVC: tshark decodes SSCOP + Q.2931 in {paths[name].name}, nothing malformed",
                        *checks[name])
    print(f"    SVC section: {trio.current_time() - t_start:.2f} s")


async def _call(report: Report, sa: Stack) -> None:
    ok, detail = False, ""
    with sa.socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM) as s:
        s.setsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, AalParm(9188, 9188))
        t0 = trio.current_time()
        try:
            with trio.fail_after(10):
                await s.connect(_svc("atm0", AESA_B))
            setup_ms = (trio.current_time() - t0) * 1000
            vc = s.vc
            report.step("ATM SVC: stack a calls stack b's AESA through the switch "
                        "(SETUP … CONNECT ACKNOWLEDGE)", True,
                        f"VC {vc[0]}/{vc[1]} assigned by the switch, set up in {setup_ms:.1f} ms")
            rtts = []
            good = True
            with trio.fail_after(10):
                for size in SIZES:
                    # text, not random octets: Wireshark guesses IP in a raw AAL5 SDU whose
                    # first nibble is 4 or 6 and would call random data malformed
                    data = (b"svc datagram %d " % size * (size // 16 + 1))[:size]
                    t1 = trio.current_time()
                    await s.send(data)
                    good &= await s.recv(65535) == data
                    rtts.append((trio.current_time() - t1) * 1000)
            ok = good
            detail = ", ".join(f"{n} B {r:.2f} ms" for n, r in zip(SIZES, rtts, strict=True))
        except (OSError, trio.TooSlowError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            report.step("ATM SVC: stack a calls stack b's AESA through the switch", False, detail)
            return
        report.step(f"ATM SVC: datagrams of {'/'.join(map(str, SIZES))} bytes echoed over the SVC "
                    "(cells cross-connected by the switch)", ok, detail)
    # close() sent RELEASE; the cause the call ended with is on record for the next socket
    print("    stack a closed the call: RELEASE (cause 16, normal call clearing) / RELEASE COMPLETE")
