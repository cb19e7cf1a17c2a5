"""linux-atm's atmsigd (2.5.1, Debian atm-tools) as a real signalling peer, on a kernel without ATM.

    async with atmsigd_peer(ndd, mode="network", aesa=AESA) as peer:
        lst = await peer.listen(AESA)                 # as_listen -> as_okay
        ind = await peer.next_indication()            # as_indicate (a SETUP came in)
        vcc = await peer.accept(ind)                  # as_accept -> as_okay: the data VC is open
        vcc.send(b"hello")                            # one AAL5 SDU on the call's VC
        data = await vcc.receive()
        await peer.close(vcc)                         # as_close -> as_close

        vcc = await peer.connect(CALLED)              # as_connect -> as_okay, or OSError(errno)

`ndd` is "atmsigd's adapter": an AtmNdd attached to some NetServices (a Stack's `ns`) and
open (ns_alloc), whose cells go wherever its PHY goes -- a PhyPair to the AtmNdd of the
tunstack Stack under test, say.  The harness

  * compiles shim.c (gcc) and starts atmsigd under it (LD_PRELOAD) in a temp dir of its own,
    tracks its PID, stops that PID only, and removes the dir;
  * bridges atmsigd's signalling VC: each datagram atmsigd writes on its 0/5 PVC socket (a
    UNIX datagram socket, see shim.c) goes out as one AAL5 SDU on 0/5 of `ndd`, each SDU
    arriving there is written back -- so SSCOP PDUs travel as real cells;
  * is the "kernel" on atmsigd's control socket (struct atmsvc_msg, layout below); and
  * opens the data VC of each established call on `ndd` (`Vcc.send` / `Vcc.receive`).

atmsigd command line: `atmsigd -c EMPTY -d -u uni31 -m MODE -l stderr -D DIR -n 0.0.5 DIR/ctl`
(UNI 3.1: the Debian default UNI 3.0 uses the older SSCOP).  Given a socket path, 2.5.1
binds it as a UNIX datagram socket and connects back to the sender of the first datagram it
reads (which it also processes): the harness binds DIR/kernel before it speaks.  atmsigd
starts SSCOP at once, in both modes (a BGN per Timer_CC, 1 s, until answered), and opens the
link again at once whenever it is released.  `peer.wait_link_up()` reads its log for that.

struct atmsvc_msg on x86-64 (<linux/atmsvc.h>, <linux/atm.h>, <linux/atmsap.h>; checked
against the compiled headers by tests/integration/test_atmsigd_saal.py), 252 octets,
little-endian, no packing pragmas:

    off size
      0   4  type          enum atmsvc_msg_type: as_catch_null 0, as_bind 1, as_connect 2,
                           as_accept 3, as_reject 4, as_listen 5, as_okay 6, as_error 7,
                           as_indicate 8, as_close 9, as_itf_notify 10, as_modify 11,
                           as_identify 12, as_terminate 13, as_addparty 14, as_dropparty 15
      4   8  vcc           atm_kptr_t: the kernel's socket pointer, opaque to atmsigd (here: an id)
     12   8  listen_vcc    the listening socket (as_indicate, as_accept, as_reject)
     20   4  reply         int: 0 ok, -errno
     24  12  pvc           sockaddr_atmpvc: family u16 (8), pad 2, itf s16, vpi s16, vci s32
     36  44  local         sockaddr_atmsvc: family u16 (20), pad 2, prv[20] (AESA), pub[13]
                           (E.164, NUL-terminated), lij_type s8, lij_id u32 (at +40)
     80  84  qos           atm_qos: txtp (40) | rxtp (40) | aal u8 | pad 3; atm_trafprm =
                           traffic_class u8, pad 3, max_pcr, pcr, min_pcr, max_cdv, max_sdu (s32),
                           icr, tbe (u32), two u32 words of ABR bit-fields
    164  40  sap           atm_sap: bhli (hl_type, hl_length, hl_info[8]) | blli[3] x 10 octets
                           (l2_proto, l2[2], l3_proto, l3[6])
    204   4  session       u32 (point-to-multipoint)
    208  44  svc           sockaddr_atmsvc: the remote (as_connect, as_indicate) or the address
                           listened on (as_listen)

The exchanges, as atmsigd 2.5.1 answers them (what the kernel's net/atm/svc.c sends):

    listen   -> as_listen  vcc=L, svc=address (family 20 required, else as_error -EAFNOSUPPORT),
                           qos class ANYCLASS, aal 5
             <- as_okay    vcc=L reply=0   |  as_error vcc=L reply=-errno (-EADDRINUSE: taken)
    incoming <- as_indicate vcc=0, listen_vcc=L, pvc (the call's VC), svc (caller), local
                           (called), qos, sap
    accept   -> as_accept  vcc=N (new), listen_vcc=L, qos/local/sap of the indication
             <- as_okay    vcc=N  (sent once CONNECT ACKNOWLEDGE arrives)
    reject   -> as_reject  vcc=0, listen_vcc=L, reply=-errno
                           Both name the listener only: atmsigd takes the OLDEST call pending
                           on L (seen: accepting the 2nd indication first connected the 1st),
                           so the harness insists on arrival order.
    connect  -> as_connect vcc=C, svc=called, qos (a real class, not ANYCLASS), sap, local
                           (zero: atmsigd fills in its address)
             <- as_okay    vcc=C, pvc (the call's VC), local  (after CONNECT)
              | as_error   vcc=C reply=-errno (RELEASE COMPLETE's cause mapped as causes.py says:
                           cause 88 -> -ECONNREFUSED); as_close is handled the same way
    close    -> as_close   vcc=X  <- as_close vcc=X reply=0 (after RELEASE COMPLETE)
    released <- as_close   vcc=X reply=0 for normal clearing (cause 16), else -errno
             -> as_close   vcc=X (the socket's close; atmsigd then sends RELEASE COMPLETE and
                           frees the call) -- the harness answers at once
"""
from __future__ import annotations

import errno
import itertools
import math
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import trio

from drivers.atm.adapter import AtmNdd
from ndd import constants as C
from ndd.atm import RESERVED_VCI_MAX, VcParams
from ndd.demux import NsFilter, NsUser
from ndd.services import NetServices

SHIM_SRC = Path(__file__).with_name("atmsigd_shim.c")


def _ns(ndd: AtmNdd) -> NetServices:
    """The network services an attached adapter belongs to: a device only knows them as
    DeviceServices (spawn, clock); the harness, like a protocol, claims VCs through them."""
    return cast(NetServices, ndd.services)

AF_ATMPVC, AF_ATMSVC = 8, 20
ATM_NONE, ATM_UBR, ATM_CBR, ATM_VBR, ATM_ABR, ATM_ANYCLASS = range(6)
ATM_AAL5 = 5
ATM_MAX_PCR = -1
OC3_PCR = 353207                       # cells/s (ATM_OC3_PCR)

(AS_CATCH_NULL, AS_BIND, AS_CONNECT, AS_ACCEPT, AS_REJECT, AS_LISTEN, AS_OKAY, AS_ERROR, AS_INDICATE,
 AS_CLOSE, AS_ITF_NOTIFY, AS_MODIFY, AS_IDENTIFY, AS_TERMINATE, AS_ADDPARTY, AS_DROPPARTY) = range(16)
AS_NAMES = ("as_catch_null", "as_bind", "as_connect", "as_accept", "as_reject", "as_listen", "as_okay",
            "as_error", "as_indicate", "as_close", "as_itf_notify", "as_modify", "as_identify",
            "as_terminate", "as_addparty", "as_dropparty")

# --- struct atmsvc_msg (layout in the module docstring) ------------------------------------
MSG_LEN = 252
OFF_TYPE, OFF_VCC, OFF_LISTEN_VCC, OFF_REPLY = 0, 4, 12, 20
OFF_PVC, OFF_LOCAL, OFF_QOS, OFF_SAP, OFF_SESSION, OFF_SVC = 24, 36, 80, 164, 204, 208
PVC_FMT = "<H2xhhi"                    # sockaddr_atmpvc, 12
SVC_FMT = "<H2x20s13sb2xI"             # sockaddr_atmsvc, 44 (lij_id aligned to +40)
TRAFPRM_FMT = "<B3xiiiiiIIII"          # atm_trafprm, 40
QOS_LEN, SAP_LEN = 84, 40
SOCKADDR_ATMSVC_LEN = struct.calcsize(SVC_FMT)
assert struct.calcsize(PVC_FMT) == 12 and SOCKADDR_ATMSVC_LEN == 44 and struct.calcsize(TRAFPRM_FMT) == 40


@dataclass(frozen=True)
class TrafficParams:
    """struct atm_trafprm (one direction).  pcr 0 with max_pcr 0: "link rate" (UBR)."""
    traffic_class: int = ATM_UBR
    max_pcr: int = 0
    pcr: int = 0
    min_pcr: int = 0
    max_cdv: int = 0
    max_sdu: int = 0
    icr: int = 0
    tbe: int = 0
    abr_word1: int = 0                 # frtt:24 rif:4 rdf:4, raw
    abr_word2: int = 0                 # nrm_pres ... spare bit-fields, raw

    def pack(self) -> bytes:
        return struct.pack(TRAFPRM_FMT, self.traffic_class, self.max_pcr, self.pcr, self.min_pcr,
                           self.max_cdv, self.max_sdu, self.icr, self.tbe, self.abr_word1, self.abr_word2)

    @classmethod
    def unpack(cls, b: bytes) -> TrafficParams:
        return cls(*struct.unpack(TRAFPRM_FMT, b))


@dataclass(frozen=True)
class Qos:
    """struct atm_qos."""
    txtp: TrafficParams = TrafficParams()
    rxtp: TrafficParams = TrafficParams()
    aal: int = ATM_AAL5

    @classmethod
    def ubr(cls, max_sdu: int = 9188, pcr: int = 0) -> Qos:
        tp = TrafficParams(ATM_UBR, pcr=pcr, max_sdu=max_sdu)
        return cls(tp, tp)

    @classmethod
    def anyclass(cls, max_sdu: int = 0) -> Qos:
        """What a listening socket offers: "compatible with everything"."""
        tp = TrafficParams(ATM_ANYCLASS, max_sdu=max_sdu)
        return cls(tp, tp)

    def pack(self) -> bytes:
        return self.txtp.pack() + self.rxtp.pack() + bytes((self.aal, 0, 0, 0))

    @classmethod
    def unpack(cls, b: bytes) -> Qos:
        return cls(TrafficParams.unpack(b[0:40]), TrafficParams.unpack(b[40:80]), b[80])


@dataclass(frozen=True)
class SvcAddr:
    """struct sockaddr_atmsvc: a private AESA (20 octets) and/or a public E.164 number."""
    prv: bytes = b""
    pub: str = ""
    lij_type: int = 0
    lij_id: int = 0
    family: int = AF_ATMSVC

    def pack(self) -> bytes:
        if len(self.prv) not in (0, 20):
            raise ValueError("an AESA is 20 octets")
        if len(self.pub) > 12:
            raise ValueError("an E.164 number has at most 12 digits")
        return struct.pack(SVC_FMT, self.family, self.prv.ljust(20, b"\0"), self.pub.encode().ljust(13, b"\0"),
                           self.lij_type, self.lij_id)

    @classmethod
    def unpack(cls, b: bytes) -> SvcAddr:
        family, prv, pub, lij_type, lij_id = struct.unpack(SVC_FMT, b)
        return cls(prv if any(prv) else b"", pub.split(b"\0", 1)[0].decode(), lij_type, lij_id, family)

    def __bool__(self) -> bool:
        return bool(self.prv or self.pub)


def aesa(addr: bytes | str) -> SvcAddr:
    return SvcAddr(bytes.fromhex(addr.replace(".", "")) if isinstance(addr, str) else addr)


@dataclass(frozen=True)
class AtmsvcMsg:
    type: int
    vcc: int = 0
    listen_vcc: int = 0
    reply: int = 0
    pvc: tuple[int, int, int] | None = None        # (itf, vpi, vci)
    local: SvcAddr = SvcAddr(family=0)
    qos: Qos = Qos(TrafficParams(ATM_NONE), TrafficParams(ATM_NONE), 0)
    sap: bytes = bytes(SAP_LEN)
    session: int = 0
    svc: SvcAddr = SvcAddr(family=0)

    def pack(self) -> bytes:
        b = bytearray(MSG_LEN)
        struct.pack_into("<iQQi", b, OFF_TYPE, self.type, self.vcc, self.listen_vcc, self.reply)
        if self.pvc is not None:
            struct.pack_into(PVC_FMT, b, OFF_PVC, AF_ATMPVC, *self.pvc)
        b[OFF_LOCAL:OFF_LOCAL + 44] = self.local.pack()
        b[OFF_QOS:OFF_QOS + QOS_LEN] = self.qos.pack()
        if len(self.sap) != SAP_LEN:
            raise ValueError("struct atm_sap is 40 octets")
        b[OFF_SAP:OFF_SAP + SAP_LEN] = self.sap
        struct.pack_into("<I", b, OFF_SESSION, self.session)
        b[OFF_SVC:OFF_SVC + 44] = self.svc.pack()
        return bytes(b)

    @classmethod
    def unpack(cls, b: bytes) -> AtmsvcMsg:
        if len(b) != MSG_LEN:
            raise ValueError(f"atmsvc_msg is {MSG_LEN} octets, got {len(b)}")
        type_, vcc, listen_vcc, reply = struct.unpack_from("<iQQi", b, OFF_TYPE)
        family, itf, vpi, vci = struct.unpack_from(PVC_FMT, b, OFF_PVC)
        # The kernel reads pvc's itf/vpi/vci without looking at its family, and atmsigd
        # relies on that: -m network answers as_connect with as_okay whose pvc has family 0
        # but the VCI it chose (seen: 0.0.32, sap_family 0).  A non-zero VC counts.
        has_pvc = family == AF_ATMPVC or (family == 0 and (vpi or vci))
        return cls(type_, vcc, listen_vcc, reply, (itf, vpi, vci) if has_pvc else None,
                   SvcAddr.unpack(b[OFF_LOCAL:OFF_LOCAL + 44]), Qos.unpack(b[OFF_QOS:OFF_QOS + QOS_LEN]),
                   bytes(b[OFF_SAP:OFF_SAP + SAP_LEN]), struct.unpack_from("<I", b, OFF_SESSION)[0],
                   SvcAddr.unpack(b[OFF_SVC:OFF_SVC + 44]))

    @property
    def name(self) -> str:
        return AS_NAMES[self.type] if 0 <= self.type < len(AS_NAMES) else f"as_{self.type}"

    def __str__(self) -> str:
        s = f"{self.name} vcc={self.vcc:#x}"
        if self.listen_vcc:
            s += f" listen_vcc={self.listen_vcc:#x}"
        if self.reply:
            s += f" reply={self.reply} ({errno.errorcode.get(-self.reply, '?')})"
        if self.pvc is not None:
            s += " pvc={}.{}.{}".format(*self.pvc)
        return s


# --- the shim and the process --------------------------------------------------------------
def find_atmsigd() -> str | None:
    """atmsigd lives in /usr/sbin, which a non-root PATH may lack."""
    return shutil.which("atmsigd") or next((p for p in ("/usr/sbin/atmsigd", "/sbin/atmsigd")
                                             if os.access(p, os.X_OK)), None)


def build_shim(out_dir: Path | str) -> Path:
    so = Path(out_dir) / "atmshim.so"
    r = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(so), str(SHIM_SRC), "-ldl"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"gcc could not build {SHIM_SRC.name}:\n{r.stderr}")
    return so


@dataclass
class BridgeStats:
    to_net: int = 0          # datagrams from atmsigd sent as SDUs
    from_net: int = 0        # SDUs delivered to atmsigd
    tx_errors: int = 0       # ndd_output refused an SDU
    drops: int = 0           # SDU for atmsigd with its socket absent or full
    blocked: int = 0         # PDUs lost (either way) while the bridge was `blocked`


class VcBridge:
    """atmsigd's PVC socket for vpi.vci <-> that VC on `ndd`: one datagram = one AAL5 SDU.
    Binds DIR/vc-<vpi>.<vci> (where the shim connects the PVC socket) and answers the
    sender of the last datagram, or DIR/atm-<pid>-<vpi>.<vci> before the first.
    `blocked = True` cuts the VC: what crosses it either way is counted and dropped."""

    def __init__(self, ndd: AtmNdd, directory: Path, vpi: int, vci: int) -> None:
        self.ndd, self.vpi, self.vci = ndd, vpi, vci
        self.dir = directory
        self.stats = BridgeStats()
        self.pid: int | None = None
        self.blocked = False
        self._peer: str | None = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind(str(directory / f"vc-{vpi}.{vci}"))
        self._filter = NsFilter(C.NS_ATM_VC, vpi=vpi, vci=vci)
        ndd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(vpi, vci, reserved=vci <= RESERVED_VCI_MAX))
        try:
            _ns(ndd).ns_add_filter(ndd, self._filter, NsUser(self._isr, None))
        except OSError:
            ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, (vpi, vci))
            raise

    def _peer_path(self) -> str | None:
        if self._peer is not None:
            return self._peer
        if self.pid is None:
            return None
        return str(self.dir / f"atm-{self.pid}-{self.vpi}.{self.vci}")

    def _isr(self, ndd: Any, pkt: Any, arg: Any) -> None:
        if self.blocked:
            self.stats.blocked += 1
            return
        path = self._peer_path()
        try:
            if path is None:
                raise FileNotFoundError
            self.sock.sendto(pkt.tobytes(), path)
            self.stats.from_net += 1
        except OSError:                       # atmsigd's socket absent, gone or full
            self.stats.drops += 1

    async def run(self) -> None:
        while True:
            try:
                await trio.lowlevel.wait_readable(self.sock)
            except trio.ClosedResourceError:  # close() ran first (the peer stops before its nursery)
                return
            try:
                data, addr = self.sock.recvfrom(1 << 16)
            except BlockingIOError:
                continue
            if addr:
                self._peer = addr
            if not data:
                continue
            if self.blocked:
                self.stats.blocked += 1
                continue
            if self.ndd.atm_output(self.vpi, self.vci, data):
                self.stats.tx_errors += 1
            else:
                self.stats.to_net += 1

    def close(self) -> None:
        for undo in (lambda: _ns(self.ndd).ns_del_filter(self.ndd, self._filter),
                     lambda: self.ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, (self.vpi, self.vci))):
            try:
                undo()
            except OSError:
                pass
        _close_watched(self.sock)


def _close_watched(sock: socket.socket) -> None:
    """Close a socket a task may be waiting on: trio must hear of it first (its waiter gets
    ClosedResourceError), else the waiter can wake on a closed -- or reused -- descriptor and
    fail with EBADF (CI, 2026-12-07: the SSCOP-with-atmsigd test)."""
    trio.lowlevel.notify_closing(sock)
    sock.close()


# --- calls ---------------------------------------------------------------------------------
@dataclass(eq=False)
class Listener:
    id: int
    addr: SvcAddr
    qos: Qos
    pending: list[Indication] = field(default_factory=list)    # indicated, not yet accepted/rejected


@dataclass(eq=False)
class Indication:
    """An incoming call (as_indicate), waiting for accept() or reject()."""
    listener: Listener
    msg: AtmsvcMsg

    @property
    def pvc(self) -> tuple[int, int, int] | None:
        return self.msg.pvc

    @property
    def caller(self) -> SvcAddr:
        return self.msg.svc

    @property
    def called(self) -> SvcAddr:
        return self.msg.local


@dataclass(eq=False)
class Vcc:
    """An established SVC: its data VC is open on the peer's adapter."""
    id: int
    pvc: tuple[int, int, int]
    local: SvcAddr
    remote: SvcAddr
    qos: Qos
    ndd: AtmNdd
    closed: trio.Event = field(default_factory=trio.Event)
    close_reply: int | None = None        # the as_close reply (-errno) when atmsigd closed it
    closing: bool = False
    marker: Path | None = None            # DIR/vc-<vpi>.<vci>: tells the shim the VCI is taken
    _send_ch: Any = None
    _recv_ch: Any = None
    _filter: NsFilter | None = None
    _own_marker: bool = False

    @property
    def vpi(self) -> int:
        return self.pvc[1]

    @property
    def vci(self) -> int:
        return self.pvc[2]

    def _open(self) -> None:
        self._send_ch, self._recv_ch = trio.open_memory_channel(math.inf)
        sdus = [tp.max_sdu for tp in (self.qos.txtp, self.qos.rxtp) if tp.max_sdu > 0]
        self.ndd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(self.vpi, self.vci, max_sdu=max(sdus) if sdus else None))
        flt = NsFilter(C.NS_ATM_VC, vpi=self.vpi, vci=self.vci)
        try:
            _ns(self.ndd).ns_add_filter(self.ndd, flt, NsUser(self._isr, None))
        except OSError:
            self.ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, (self.vpi, self.vci))
            raise
        self._filter = flt
        if self.marker is not None and not self.marker.exists():
            self.marker.touch()
            self._own_marker = True

    def _isr(self, ndd: Any, pkt: Any, arg: Any) -> None:
        self._send_ch.send_nowait(pkt.tobytes())

    def _close_vc(self) -> None:
        if self._filter is None:
            return
        flt, self._filter = self._filter, None
        self._send_ch.close()                  # receive() drains, then raises trio.EndOfChannel
        if self._own_marker and self.marker is not None:
            self.marker.unlink(missing_ok=True)
            self._own_marker = False
        for undo in (lambda: _ns(self.ndd).ns_del_filter(self.ndd, flt),
                     lambda: self.ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, (self.vpi, self.vci))):
            try:
                undo()
            except OSError:
                pass

    def send(self, sdu: bytes) -> int:
        """One AAL5 SDU on the call's VC; 0 or an errno (ENOTCONN once closed)."""
        if self._filter is None:
            return errno.ENOTCONN
        return self.ndd.atm_output(self.vpi, self.vci, sdu)

    async def receive(self, timeout: float = 10.0) -> bytes:
        """The next SDU received on the call's VC; trio.EndOfChannel once the call is closed
        and what arrived before is read."""
        with trio.fail_after(timeout):
            return await self._recv_ch.receive()


@dataclass(eq=False)
class _Pending:
    event: trio.Event = field(default_factory=trio.Event)
    reply: AtmsvcMsg | None = None


class AtmsigdError(Exception):
    pass


class AtmsigdPeer:
    """One running atmsigd and the harness around it (use `atmsigd_peer`)."""

    def __init__(self, ndd: AtmNdd, directory: Path, mode: str, aesas: list[bytes], itf: int = 0) -> None:
        self.ndd, self.dir, self.mode, self.aesas, self.itf = ndd, directory, mode, aesas, itf
        self.proc: trio.Process | None = None
        self.log_path = directory / "atmsigd.log"
        self.ctl_path = directory / "ctl"
        self.sig = VcBridge(ndd, directory, 0, 5)
        self.messages: list[tuple[str, AtmsvcMsg]] = []   # ("to" | "from", msg), in order
        self.unexpected: list[AtmsvcMsg] = []
        self._ids = itertools.count(0x5E00_0001)
        self._pending: dict[int, _Pending] = {}
        self._early_close: dict[int, AtmsvcMsg] = {}   # as_close read before its Vcc exists
        self._listeners: dict[int, Listener] = {}
        self._vccs: dict[int, Vcc] = {}
        self._ind_send, self._ind_recv = trio.open_memory_channel[Indication](math.inf)
        self._ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._ctl.setblocking(False)
        self._ctl.bind(str(directory / "kernel"))

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def sscf_state(self) -> tuple[int, int] | None:
        """atmsigd's last logged (SSCF, SSCOP) state (needs debug=True): (4, 10) = link up."""
        states = re.findall(r"SSCF: entering state (\d+)/(\d+)", self.log_text())
        return (int(states[-1][0]), int(states[-1][1])) if states else None

    async def wait_link_up(self, timeout: float = 10.0) -> None:
        """Wait until atmsigd's SAAL is established (its log says so; needs debug=True)."""
        with trio.fail_after(timeout):
            while self.sscf_state() != (4, 10):
                if not self.running:
                    raise AtmsigdError(f"atmsigd exited:\n{self.log_text()[-3000:]}")
                await trio.sleep(0.02)

    # --- the control socket ----------------------------------------------------------------
    def _send(self, msg: AtmsvcMsg) -> None:
        if not self.running:
            raise AtmsigdError(f"atmsigd is not running (exit {self.proc and self.proc.returncode})\n"
                               + self.log_text()[-3000:])
        self.messages.append(("to", msg))
        self._ctl.sendto(msg.pack(), str(self.ctl_path))

    async def _request(self, msg: AtmsvcMsg, timeout: float) -> AtmsvcMsg:
        p = _Pending()
        self._pending[msg.vcc] = p
        try:
            self._send(msg)
            with trio.fail_after(timeout):
                await p.event.wait()
        finally:
            self._pending.pop(msg.vcc, None)
        assert p.reply is not None
        return p.reply

    async def _control_reader(self) -> None:
        while True:
            try:
                await trio.lowlevel.wait_readable(self._ctl)
            except trio.ClosedResourceError:  # _stop() closed it
                return
            try:
                data = self._ctl.recv(4096)
            except BlockingIOError:
                continue
            try:
                msg = AtmsvcMsg.unpack(data)
            except ValueError:
                continue
            self.messages.append(("from", msg))
            self._dispatch(msg)

    def _dispatch(self, msg: AtmsvcMsg) -> None:
        if msg.type == AS_INDICATE:
            lst = self._listeners.get(msg.listen_vcc)
            if lst is None:
                self.unexpected.append(msg)
                return
            ind = Indication(lst, msg)
            lst.pending.append(ind)
            self._ind_send.send_nowait(ind)
            return
        p = self._pending.get(msg.vcc)
        if msg.type in (AS_OKAY, AS_ERROR, AS_CLOSE) and p is not None and p.reply is None:
            p.reply = msg
            p.event.set()
            return
        vcc = self._vccs.get(msg.vcc)
        if msg.type == AS_CLOSE and vcc is None and p is not None:
            # as_okay was read but the task awaiting it has not registered the Vcc yet
            self._early_close[msg.vcc] = msg
            return
        if msg.type == AS_CLOSE and vcc is not None:
            self._passive_close(vcc, msg)
            return
        self.unexpected.append(msg)

    def _register(self, vcc: Vcc) -> None:
        self._vccs[vcc.id] = vcc
        early = self._early_close.pop(vcc.id, None)
        if early is not None:
            self._passive_close(vcc, early)

    def _passive_close(self, vcc: Vcc, msg: AtmsvcMsg) -> None:
        # the far end (or atmsigd) released an active call: the kernel would close the
        # socket when its user does; here the harness closes it at once
        vcc.close_reply = msg.reply
        self._vccs.pop(vcc.id, None)
        vcc._close_vc()
        vcc.closed.set()
        if not vcc.closing and self.running:
            self._send(AtmsvcMsg(AS_CLOSE, vcc.id))

    @staticmethod
    def _take(ind: Indication) -> None:
        # as_accept / as_reject name only the listener (as_indicate carries vcc 0): atmsigd
        # answers the oldest call pending on it, so indications must be taken in order
        pending = ind.listener.pending
        if not pending or pending[0] is not ind:
            raise AtmsigdError("accept/reject the indications of a listener in arrival order")
        pending.pop(0)

    def _marker(self, pvc: tuple[int, int, int]) -> Path:
        return self.dir / f"vc-{pvc[1]}.{pvc[2]}"

    # --- the API -------------------------------------------------------------------------
    async def listen(self, addr: SvcAddr | bytes, qos: Qos | None = None, sap: bytes = bytes(SAP_LEN),
                     timeout: float = 5.0) -> Listener:
        """as_listen on `addr`; raises OSError(errno) when atmsigd answers as_error."""
        addr = addr if isinstance(addr, SvcAddr) else SvcAddr(addr)
        lst = Listener(next(self._ids), addr, qos or Qos.anyclass())
        r = await self._request(AtmsvcMsg(AS_LISTEN, lst.id, qos=lst.qos, sap=sap, svc=addr), timeout)
        if r.type != AS_OKAY or r.reply:
            raise OSError(-r.reply or errno.EIO, f"as_listen: {r}")
        self._listeners[lst.id] = lst
        return lst

    async def next_indication(self, timeout: float = 10.0) -> Indication:
        with trio.fail_after(timeout):
            return await self._ind_recv.receive()

    async def accept(self, ind: Indication, timeout: float = 10.0) -> Vcc:
        """as_accept for the oldest indication on its listener: opens the call's VC first (as
        the kernel does), then waits for as_okay.  OSError(errno) on as_error / as_close."""
        self._take(ind)
        m = ind.msg
        if m.pvc is None:
            raise AtmsigdError(f"indication without a VC: {m}")
        vcc = Vcc(next(self._ids), m.pvc, m.local, m.svc, m.qos, self.ndd, marker=self._marker(m.pvc))
        vcc._open()
        try:
            r = await self._request(AtmsvcMsg(AS_ACCEPT, vcc.id, ind.listener.id, qos=m.qos, local=m.local,
                                              sap=m.sap), timeout)
        except BaseException:
            vcc._close_vc()
            raise
        if r.type != AS_OKAY or r.reply:
            vcc._close_vc()
            raise OSError(-r.reply or errno.EIO, f"as_accept: {r}")
        self._register(vcc)
        return vcc

    def reject(self, ind: Indication, err: int = errno.ECONNREFUSED) -> None:
        """as_reject for the oldest indication on its listener (no answer comes back)."""
        self._take(ind)
        self._send(AtmsvcMsg(AS_REJECT, 0, ind.listener.id, reply=-err, qos=ind.listener.qos))

    async def connect(self, called: SvcAddr | bytes, qos: Qos | None = None, sap: bytes = bytes(SAP_LEN),
                      local: SvcAddr | None = None, timeout: float = 20.0) -> Vcc:
        """as_connect: place a call.  Returns the Vcc once as_okay arrives (its VC open on the
        adapter); raises OSError(errno) for as_error / as_close (the call failed)."""
        called = called if isinstance(called, SvcAddr) else SvcAddr(called)
        qos = qos or Qos.ubr()
        vid = next(self._ids)
        r = await self._request(AtmsvcMsg(AS_CONNECT, vid, qos=qos, sap=sap, local=local or SvcAddr(family=0),
                                          svc=called), timeout)
        if r.type != AS_OKAY or r.reply:
            raise OSError(-r.reply or errno.EIO, f"as_connect: {r}")
        if r.pvc is None:
            raise AtmsigdError(f"as_okay without a VC: {r}")
        qos_v = r.qos if r.qos.aal else qos
        vcc = Vcc(vid, r.pvc, r.local, called, qos_v, self.ndd, marker=self._marker(r.pvc))
        vcc._open()
        self._register(vcc)
        return vcc

    async def close(self, what: Vcc | Listener, timeout: float = 10.0) -> AtmsvcMsg:
        """as_close for a call or a listener; returns atmsigd's as_close confirmation."""
        if isinstance(what, Vcc):
            what.closing = True
            if what.closed.is_set():
                return AtmsvcMsg(AS_CLOSE, what.id, reply=what.close_reply or 0)
        r = await self._request(AtmsvcMsg(AS_CLOSE, what.id), timeout)
        if isinstance(what, Vcc):
            self._vccs.pop(what.id, None)
            what._close_vc()
            what.closed.set()
        else:
            self._listeners.pop(what.id, None)
        return r

    # --- process -------------------------------------------------------------------------
    async def _start(self, nursery: trio.Nursery, *, uni: str, debug: bool, extra_args: list[str],
                     shim_log: bool) -> None:
        exe = find_atmsigd()
        if exe is None:
            raise AtmsigdError("atmsigd is not installed (Debian package atm-tools)")
        so = build_shim(self.dir)
        conf = self.dir / "atmsigd.conf"
        conf.write_text("")                       # not /etc/atmsigd.conf: nothing from the host
        argv = [exe, "-c", str(conf), *(["-d"] if debug else []), "-u", uni, "-m", self.mode, "-l", "stderr",
                "-D", str(self.dir), "-n", *extra_args, f"{self.itf}.0.5", str(self.ctl_path)]
        env = dict(os.environ, LD_PRELOAD=str(so), TUNSTACK_ATMSHIM_DIR=str(self.dir),
                   TUNSTACK_ATMSHIM_AESA=",".join(a.hex() for a in self.aesas),
                   TUNSTACK_ATMSHIM_ITF=str(self.itf), TUNSTACK_ATMSHIM_LOG="1" if shim_log else "0")
        with open(self.log_path, "wb") as log:
            self.proc = await trio.lowlevel.open_process(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                                         stderr=log, cwd=str(self.dir))
        self.sig.pid = self.proc.pid
        with trio.fail_after(10):
            while not self.ctl_path.exists():
                if self.proc.poll() is not None:
                    raise AtmsigdError(f"atmsigd exited ({self.proc.returncode}):\n{self.log_text()}")
                await trio.sleep(0.01)
        nursery.start_soon(self.sig.run)
        nursery.start_soon(self._control_reader)

    async def _stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.terminate()                      # SIGTERM to our atmsigd's PID, nothing else
            with trio.move_on_after(3):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for v in list(self._vccs.values()):
            v._close_vc()
        self.sig.close()
        _close_watched(self._ctl)


@asynccontextmanager
async def atmsigd_peer(ndd: AtmNdd, *, mode: str = "network", aesa: bytes | list[bytes] = b"",
                       uni: str = "uni31", debug: bool = True, extra_args: list[str] | None = None,
                       keep_log: Path | str | None = None, itf: int = 0, sig_blocked: bool = False,
                       shim_log: bool = False) -> AsyncIterator[AtmsigdPeer]:
    """Run atmsigd (-m `mode`) on `ndd` with local address(es) `aesa` until the block ends.
    `keep_log`: copy atmsigd's log (and trace dumps) there before the temp dir goes.
    `sig_blocked`: start with the signalling VC cut (`peer.sig.blocked`), so that atmsigd's
    first BGNs are lost.  `shim_log`: the shim logs each emulated call into atmsigd's log."""
    if mode not in ("user", "network"):
        raise ValueError("mode is 'user' or 'network'")
    aesas = [aesa] if isinstance(aesa, bytes) else list(aesa)
    aesas = [a for a in aesas if a]
    if any(len(a) != 20 for a in aesas):
        raise ValueError("an AESA is 20 octets")
    # a short path: the shim's socket paths must fit sun_path (108)
    directory = Path(tempfile.mkdtemp(prefix="atmsigd-", dir="/tmp"))
    peer: AtmsigdPeer | None = None
    try:
        peer = AtmsigdPeer(ndd, directory, mode, aesas, itf)
        peer.sig.blocked = sig_blocked
        try:
            async with trio.open_nursery() as nursery:
                try:
                    await peer._start(nursery, uni=uni, debug=debug, extra_args=list(extra_args or ()),
                                      shim_log=shim_log)
                    yield peer
                finally:
                    with trio.CancelScope(shield=True):
                        await peer._stop()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:          # the body's own failure, unwrapped
                raise group.exceptions[0] from None
            raise
    finally:
        if keep_log is not None:
            dst = Path(keep_log)
            dst.mkdir(parents=True, exist_ok=True)
            for f in directory.glob("atmsigd*"):
                if f.is_file() and f.suffix != ".conf":
                    shutil.copy(f, dst / f.name)
        shutil.rmtree(directory, ignore_errors=True)
