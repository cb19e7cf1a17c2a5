"""Network services (AIX CDLI `ns_*`): the NDD chain of one Stack.

  ns_attach / ns_detach      a driver makes its NDD known / withdraws it
  ns_alloc / ns_free         a user takes / releases a reference (first opens, last closes)
  ns_add_demux / ns_del_demux  the demuxer for one NDD type
  ns_add_filter / ns_del_filter  claim frames (ethertype, DSAP/SNAP, IP version, tap ...)
  ns_add_status / ns_del_status  receive status blocks (link up/down, hard failure)

No module state: every Stack owns one NetServices, so several stacks share a process.
"""
from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import constants as C
from .atm import AtmDemuxer
from .demux import Demuxer, EtherDemuxer, NsFilter, NsUser, RawIpDemuxer
from .ndd import Ndd, StatusBlock, ndd_error

StatusFn = Callable[[Ndd, StatusBlock], None]


@dataclass(eq=False)
class _StatusUser:
    codes: frozenset[int] | None
    fn: StatusFn


class NetServices:
    def __init__(self, spawn: Callable[..., Any], clock: Callable[[], float]) -> None:
        self.spawn = spawn          # start a task in the owning Stack's nursery
        self.clock = clock          # the Stack's clock (trio time, MockClock in tests)
        self.ndds: dict[str, Ndd] = {}
        self.refcount: dict[str, int] = {}
        self.demuxers: dict[int, Demuxer] = {}
        self.status_users: dict[str, list[_StatusUser]] = {}
        raw = RawIpDemuxer()
        self.ns_add_demux(C.NDD_ISO88023, EtherDemuxer())
        self.ns_add_demux(C.NDD_RAWIP, raw)
        self.ns_add_demux(C.NDD_SOFTWARE_LOOPBACK, raw)
        self.ns_add_demux(C.NDD_ATM, AtmDemuxer())

    # --- the NDD chain -----------------------------------------------------
    def ns_attach(self, ndd: Ndd) -> None:
        if ndd.ndd_name in self.ndds:
            raise ndd_error(errno.EEXIST, f"NDD {ndd.ndd_name} already attached")
        ndd.services = self
        self.ndds[ndd.ndd_name] = ndd
        self.refcount[ndd.ndd_name] = 0

    def ns_detach(self, ndd: Ndd) -> None:
        if self.ndds.get(ndd.ndd_name) is not ndd:
            raise ndd_error(errno.ENOENT, f"NDD {ndd.ndd_name} not attached")
        if self.refcount[ndd.ndd_name]:
            raise ndd_error(errno.EBUSY, f"NDD {ndd.ndd_name} still in use")
        del self.ndds[ndd.ndd_name], self.refcount[ndd.ndd_name]

    def ns_alloc(self, name: str) -> Ndd:
        ndd = self.ndds.get(name)
        if ndd is None:
            raise ndd_error(errno.ENODEV, f"no NDD named {name!r}")
        if self.refcount[name] == 0:
            demux = self.demuxers.get(ndd.ndd_type)
            if demux is None:
                raise ndd_error(errno.ENXIO, f"no demuxer for NDD type {ndd.ndd_type:#x}")
            ndd.nd_receive = demux.receive
            ndd.nd_status = self._status
            ndd.ndd_open()
        self.refcount[name] += 1
        return ndd

    def ns_free(self, ndd: Ndd) -> None:
        name = ndd.ndd_name
        if self.refcount.get(name, 0) <= 0:
            raise ndd_error(errno.EINVAL, f"NDD {name} not allocated")
        self.refcount[name] -= 1
        if self.refcount[name] == 0:
            ndd.ndd_close()
            ndd.nd_receive = None
            demux = self.demuxers.get(ndd.ndd_type)
            if demux is not None:
                demux.forget(ndd)
            self.status_users.pop(name, None)

    # --- demuxers and filters ---------------------------------------------
    def ns_add_demux(self, ndd_type: int, demuxer: Demuxer) -> None:
        if ndd_type in self.demuxers:
            raise ndd_error(errno.EEXIST, f"demuxer for type {ndd_type:#x} exists")
        self.demuxers[ndd_type] = demuxer

    def ns_del_demux(self, ndd_type: int) -> None:
        if self.demuxers.pop(ndd_type, None) is None:
            raise ndd_error(errno.ENOENT, f"no demuxer for type {ndd_type:#x}")

    def _demux_for(self, ndd: Ndd) -> Demuxer:
        if self.refcount.get(ndd.ndd_name, 0) <= 0:
            raise ndd_error(errno.ENODEV, f"NDD {ndd.ndd_name} not allocated")
        return self.demuxers[ndd.ndd_type]

    def ns_add_filter(self, ndd: Ndd, flt: NsFilter, user: NsUser) -> None:
        self._demux_for(ndd).add_filter(ndd, flt, user)

    def ns_del_filter(self, ndd: Ndd, flt: NsFilter, user: NsUser | None = None) -> None:
        self._demux_for(ndd).del_filter(ndd, flt, user)

    # --- status ------------------------------------------------------------
    def ns_add_status(self, ndd: Ndd, fn: StatusFn, codes: frozenset[int] | None = None) -> None:
        users = self.status_users.setdefault(ndd.ndd_name, [])
        if any(u.fn == fn for u in users):
            raise ndd_error(errno.EEXIST, "status user already registered")
        users.append(_StatusUser(codes, fn))
        ndd.ndd_ctl(C.NDD_ADD_STATUS, codes)

    def ns_del_status(self, ndd: Ndd, fn: StatusFn) -> None:
        users = self.status_users.get(ndd.ndd_name, [])
        for i, u in enumerate(users):
            if u.fn == fn:
                del users[i]
                ndd.ndd_ctl(C.NDD_DEL_STATUS, u.codes)
                return
        raise ndd_error(errno.ENOENT, "no such status user")

    def _status(self, ndd: Ndd, block: StatusBlock) -> None:
        for u in list(self.status_users.get(ndd.ndd_name, ())):
            if u.codes is None or block.code in u.codes:
                u.fn(ndd, block)
