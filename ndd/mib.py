"""The generic interface MIB of an NDD: ndd_ctl NDD_MIB_QUERY / NDD_MIB_GET / NDD_MIB_SET /
NDD_MIB_ADDR (AIX <sys/ndd.h>).

An AIX driver answers these with its MAC's MIB structure (Ethernet: the generic part,
RFC 1213's ifEntry and RFC 2863's ifXEntry, then dot3); tunstack gives every NDD the
generic part, computed from its ndd_genstats and the demuxer's nd_dmxstats, as a dict of MIB object names:

  NDD_MIB_QUERY  -> {name: MIB_READ_ONLY}          the access of each variable
  NDD_MIB_GET    -> {name: value}                  the variables now
  NDD_MIB_SET    -> EACCES: the MIB is read-only (an AIX caller's per-variable status
                    would be MIB_NOT_SETTABLE); an unknown name is EINVAL
  NDD_MIB_ADDR   -> [(status, address), ...]       the addresses the device receives:
                    its own and enabled group addresses NDD_MIB_VOLATILE,
                    broadcast NDD_MIB_NONVOLATILE (as AIX's Ethernet drivers list them)

Counters are Python ints, so the 32-bit RFC 1213 counters and their 64-bit RFC 2863
ifHC* twins read the same (nothing wraps).  Pure functions of the NDD: no I/O.
"""
from __future__ import annotations

import errno
import os
from typing import Any, Protocol

from . import constants as C


class _GenStats(Protocol):
    """The ndd_genstats counters the MIB reads (ndd.ndd.GenStats)."""
    ndd_ipackets: int
    ndd_ibytes: int
    ndd_opackets: int
    ndd_obytes: int
    ndd_ierrors: int
    ndd_oerrors: int
    ndd_xmitque_ovf: int
    ndd_ipackets_drop: int
    ndd_ibadpackets: int
    ndd_opackets_drop: int
    ndd_ifOutUcastPkts: int
    ndd_ifOutMcastPkts: int
    ndd_ifOutBcastPkts: int


class _DmxStats(Protocol):
    """nd_dmxstats (ndd.ndd.NdDmxStats): what the demuxer counted."""
    nd_nofilter: int
    nd_nobufs: int
    nd_bcast: int
    nd_mcast: int


class _NsDmxCtl(Protocol):
    @property
    def nd_dmxstats(self) -> _DmxStats: ...


class Ndd(Protocol):
    """What the MIB reads of an NDD (ndd.ndd.Ndd, which imports this module)."""
    @property
    def ndd_name(self) -> str: ...
    @property
    def ndd_type(self) -> int: ...
    @property
    def ndd_mtu(self) -> int: ...
    @property
    def ndd_flags(self) -> int: ...
    @property
    def ndd_addrlen(self) -> int: ...
    @property
    def ndd_physaddr(self) -> bytes: ...
    @property
    def alt_addrs(self) -> dict[bytes, int]: ...
    @property
    def stats(self) -> _GenStats: ...
    @property
    def ndd_nsdemux(self) -> _NsDmxCtl: ...

# RFC 1213 ifType (IANAifType) by ndd_type; a TUN's bare-IP frames have no IANA type (other)
_IF_TYPE = {C.NDD_ISO88023: 6, C.NDD_SOFTWARE_LOOPBACK: 24, C.NDD_ATM: 37}
_UP, _DOWN = 1, 2            # ifAdminStatus / ifOperStatus (RFC 2863)
_TRUE, _FALSE = 1, 2         # TruthValue (RFC 2579)
BROADCAST = b"\xff\xff\xff\xff\xff\xff"


def mib_get(ndd: Ndd) -> dict[str, Any]:
    """RFC 1213 ifEntry and RFC 2863 ifXEntry for `ndd`, from its generic statistics."""
    s = ndd.stats
    d = ndd.ndd_nsdemux.nd_dmxstats
    in_ucast = max(s.ndd_ipackets - d.nd_bcast - d.nd_mcast - s.ndd_ibadpackets, 0)
    out_group = s.ndd_ifOutMcastPkts + s.ndd_ifOutBcastPkts
    return {
        # RFC 1213 ifEntry
        "ifDescr": ndd.ndd_name,
        "ifType": _IF_TYPE.get(ndd.ndd_type, 1),
        "ifMtu": ndd.ndd_mtu,
        "ifSpeed": 0,                       # unknown: an emulated or virtual device
        "ifPhysAddress": bytes(ndd.ndd_physaddr),
        "ifAdminStatus": _UP if ndd.ndd_flags & C.NDD_UP else _DOWN,
        "ifOperStatus": _UP if ndd.ndd_flags & C.NDD_RUNNING else _DOWN,
        "ifInOctets": s.ndd_ibytes,
        "ifInUcastPkts": in_ucast,
        "ifInNUcastPkts": d.nd_bcast + d.nd_mcast,       # the demuxer's nd_dmxstats
        "ifInDiscards": s.ndd_ipackets_drop + d.nd_nobufs,
        "ifInErrors": s.ndd_ierrors + s.ndd_ibadpackets,
        "ifInUnknownProtos": d.nd_nofilter,  # no filter wanted them
        "ifOutOctets": s.ndd_obytes,
        "ifOutUcastPkts": s.ndd_ifOutUcastPkts,          # requested, sent or not (RFC 2863)
        "ifOutNUcastPkts": out_group,
        "ifOutDiscards": s.ndd_xmitque_ovf + s.ndd_opackets_drop,   # queue full, or the NDD down
        "ifOutErrors": s.ndd_oerrors,
        # RFC 2863 ifXEntry
        "ifName": ndd.ndd_name,
        "ifInMulticastPkts": d.nd_mcast,
        "ifInBroadcastPkts": d.nd_bcast,
        "ifOutMulticastPkts": s.ndd_ifOutMcastPkts,
        "ifOutBroadcastPkts": s.ndd_ifOutBcastPkts,
        "ifHCInOctets": s.ndd_ibytes,
        "ifHCInUcastPkts": in_ucast,
        "ifHCInMulticastPkts": d.nd_mcast,
        "ifHCInBroadcastPkts": d.nd_bcast,
        "ifHCOutOctets": s.ndd_obytes,
        "ifHCOutUcastPkts": s.ndd_ifOutUcastPkts,
        "ifHCOutMulticastPkts": s.ndd_ifOutMcastPkts,
        "ifHCOutBroadcastPkts": s.ndd_ifOutBcastPkts,
        "ifPromiscuousMode": _TRUE if ndd.ndd_flags & C.NDD_PROMISC else _FALSE,
        "ifHighSpeed": 0,
    }


def mib_query(ndd: Ndd) -> dict[str, int]:
    return dict.fromkeys(mib_get(ndd), C.MIB_READ_ONLY)


def mib_set(ndd: Ndd, arg: Any) -> int:
    """Refused: every variable is read-only.  A name the MIB lacks is EINVAL first."""
    names = list(arg) if isinstance(arg, (dict, list, tuple)) else None
    if not names:
        raise _error(errno.EINVAL, "NDD_MIB_SET takes {name: value} of MIB variables")
    unknown = [n for n in names if n not in mib_get(ndd)]
    if unknown:
        raise _error(errno.EINVAL, f"no MIB variable {unknown[0]!r}")
    raise _error(errno.EACCES, f"MIB variable {names[0]!r} is read-only (MIB_NOT_SETTABLE)")


def mib_addr(ndd: Ndd) -> list[tuple[int, bytes]]:
    """The receive address table: (NDD_MIB_* status, address) per address."""
    table: list[tuple[int, bytes]] = []
    if ndd.ndd_physaddr:
        table.append((C.NDD_MIB_VOLATILE, bytes(ndd.ndd_physaddr)))   # it can be changed
    if ndd.ndd_flags & C.NDD_BROADCAST and ndd.ndd_addrlen == len(BROADCAST):
        table.append((C.NDD_MIB_NONVOLATILE, BROADCAST))
    table.extend((C.NDD_MIB_VOLATILE, mac) for mac in sorted(ndd.alt_addrs))
    return table


def mib_ctl(ndd: Ndd, cmd: int, arg: Any) -> Any:
    if cmd == C.NDD_MIB_QUERY:
        return mib_query(ndd)
    if cmd == C.NDD_MIB_GET:
        return mib_get(ndd)
    if cmd == C.NDD_MIB_SET:
        return mib_set(ndd, arg)
    return mib_addr(ndd)


def _error(code: int, what: str) -> OSError:
    return OSError(code, f"{os.strerror(code)}: {what}")   # as ndd.ndd_error (which imports us)
