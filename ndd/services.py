"""Network services (AIX CDLI `ns_*`): the NDD chain of one Stack.

  ns_attach / ns_detach      a driver makes its NDD known / withdraws it
  ns_alloc / ns_free         a user takes / releases a reference (first opens, last closes)
  ns_add_demux / ns_del_demux  the demuxer for one NDD type
  ns_add_filter / ns_del_filter  claim frames (ethertype, DSAP/SNAP, IP version, tap ...)
  ns_add_status / ns_del_status  receive status blocks (link up/down, hard failure)
  add_netisr / del_netisr / schednetisr   the software interrupts that drain ns_user protoqs

Status users, as AIX <sys/cdli.h> has them: `ns_add_status(nddp, NsComStatus(NS_STATUS_MASK,
mask), NsStatuser(isr, isr_data))` delivers the blocks whose code is in `mask` (the codes are
one bit each, <sys/ndd.h>) as `isr(nddp, block, isr_data)`, and returns the user's `sid`
(also stored in the NsComStatus, AIX's "returned user status id"); `ns_del_status(nddp,
that NsComStatus)` or `ns_del_status(nddp, sid)` deletes it.  The Python form
`ns_add_status(nddp, fn, mask)` registers `fn(nddp, block)` (mask defaults to every code)
and `ns_del_status(nddp, fn)` deletes it; a function is registered at most once per NDD.

A user whose ns_user has a `protoq` gets its frames queued there; the demuxer then calls
`schednetisr(netisr)`, which runs the handler `add_netisr(netisr, handler)` registered (AIX
add_netisr/schednetisr).  There is one thread, so the handler runs at once, as a software
interrupt would once the receive interrupt returns; a number with no handler leaves the
frames queued (the protoq's bound then drops and counts the excess).

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


@dataclass
class NsComStatus:
    """ns_com_status (<sys/cdli.h>): the status filter; ns_add_status fills in `sid`."""
    filtertype: int = C.NS_STATUS_MASK
    mask: int = C.NS_STATUS_ALL
    sid: int = 0


@dataclass(eq=False)
class NsStatuser:
    """ns_statuser (<sys/cdli.h>): called as isr(nddp, block, isr_data)."""
    isr: Callable[[Ndd, StatusBlock, Any], None]
    isr_data: Any = None


@dataclass(eq=False)
class _StatusUser:
    sid: int
    mask: int
    user: NsStatuser
    fn: StatusFn | None = None       # the Python form's function (ns_del_status by function)


def _call_fn(ndd: Ndd, block: StatusBlock, fn: StatusFn) -> None:
    fn(ndd, block)


class NetServices:
    def __init__(self, spawn: Callable[..., Any], clock: Callable[[], float]) -> None:
        self.spawn = spawn          # start a task in the owning Stack's nursery
        self.clock = clock          # the Stack's clock (trio time, MockClock in tests)
        self.ndds: dict[str, Ndd] = {}
        self.refcount: dict[str, int] = {}
        self.demuxers: dict[int, Demuxer] = {}
        self.status_users: dict[str, list[_StatusUser]] = {}
        self._next_sid = 1
        self.netisrs: dict[int, Callable[[], None]] = {}
        raw = RawIpDemuxer()
        self.ns_add_demux(C.NDD_ISO88023, EtherDemuxer())
        self.ns_add_demux(C.NDD_RAWIP, raw)
        self.ns_add_demux(C.NDD_SOFTWARE_LOOPBACK, raw)
        self.ns_add_demux(C.NDD_ATM, AtmDemuxer())

    # --- the NDD chain -----------------------------------------------------
    def ns_attach(self, ndd: Ndd) -> None:
        if self._find(ndd.ndd_name) is not None or (ndd.ndd_alias and self._find(ndd.ndd_alias) is not None):
            raise ndd_error(errno.EEXIST, f"NDD {ndd.ndd_name} (or its alias) already attached")
        ndd.services = self
        ndd.ndd_flags &= ~C.NDD_DETACHED
        ndd.stats_epoch()
        self.ndds[ndd.ndd_name] = ndd
        self.refcount[ndd.ndd_name] = 0

    def _find(self, name: str) -> Ndd | None:
        """The attached NDD whose ndd_name or ndd_alias is `name`."""
        ndd = self.ndds.get(name)
        if ndd is None and name:
            ndd = next((n for n in self.ndds.values() if n.ndd_alias == name), None)
        return ndd

    def ns_detach(self, ndd: Ndd) -> None:
        """Take `ndd` off the chain (EBUSY while allocated).  Filters and status users its
        users left behind go with it: nothing can reach them, and a new NDD of that name
        starts clean."""
        if self.ndds.get(ndd.ndd_name) is not ndd:
            raise ndd_error(errno.ENOENT, f"NDD {ndd.ndd_name} not attached")
        if self.refcount[ndd.ndd_name]:
            raise ndd_error(errno.EBUSY, f"NDD {ndd.ndd_name} still in use")
        del self.ndds[ndd.ndd_name], self.refcount[ndd.ndd_name]
        demux = self.demuxers.get(ndd.ndd_type)
        if demux is not None:
            demux.forget(ndd)
        ndd.ndd_demuxer = ndd.ndd_specdemux = None
        ndd.ndd_flags |= C.NDD_DETACHED
        self.status_users.pop(ndd.ndd_name, None)

    def ns_alloc(self, name: str) -> Ndd:
        """Take a reference on the NDD named `name` (its ndd_name, or its ndd_alias), opening
        it if it is the first: ENODEV if no such NDD is attached, ENOENT if no demuxer serves
        its type (AIX ns_alloc)."""
        ndd = self._find(name)
        if ndd is None:
            raise ndd_error(errno.ENODEV, f"no NDD named {name!r}")
        name = ndd.ndd_name
        if self.refcount[name] == 0:
            demux = self.demuxers.get(ndd.ndd_type)
            if demux is None:
                raise ndd_error(errno.ENOENT, f"no demuxer for NDD type {ndd.ndd_type:#x}")
            ndd.nd_receive = demux.receive
            ndd.nd_status = self._status
            ndd.ndd_demuxer, ndd.ndd_specdemux, ndd.ndd_demuxsource = demux, demux.specdemux(ndd), 0
            ndd.ndd_open()
        self.refcount[name] += 1
        return ndd

    def ns_free(self, ndd: Ndd) -> None:
        """Drop a reference; the last one closes the NDD (AIX ns_free).  As on AIX the
        caller's filters and status users are the caller's to delete (ns_del_filter,
        ns_del_status) before: ns_free leaves them, and ns_detach drops what is left."""
        name = ndd.ndd_name
        if self.refcount.get(name, 0) <= 0:
            raise ndd_error(errno.EINVAL, f"NDD {name} not allocated")
        self.refcount[name] -= 1
        if self.refcount[name] == 0:
            ndd.ndd_close()
            ndd.nd_receive = None

    # --- demuxers and filters ---------------------------------------------
    def ns_add_demux(self, ndd_type: int, demuxer: Demuxer) -> None:
        if ndd_type in self.demuxers:
            raise ndd_error(errno.EEXIST, f"demuxer for type {ndd_type:#x} exists")
        demuxer.schednetisr = self.schednetisr
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

    # --- network software interrupts (protoq users) -----------------------
    def add_netisr(self, soft_intr_level: int, handler: Callable[[], None]) -> None:
        """Register the handler of software interrupt `soft_intr_level` (> 0): EEXIST if the
        number has one, EINVAL for 0 (an ns_user's "no netisr")."""
        if soft_intr_level <= 0:
            raise ndd_error(errno.EINVAL, f"netisr {soft_intr_level}")
        if soft_intr_level in self.netisrs:
            raise ndd_error(errno.EEXIST, f"netisr {soft_intr_level} already has a handler")
        self.netisrs[soft_intr_level] = handler

    def del_netisr(self, soft_intr_level: int) -> None:
        if self.netisrs.pop(soft_intr_level, None) is None:
            raise ndd_error(errno.ENOENT, f"no netisr {soft_intr_level}")

    def schednetisr(self, soft_intr_level: int) -> None:
        handler = self.netisrs.get(soft_intr_level)
        if handler is not None:
            handler()

    # --- status ------------------------------------------------------------
    def ns_add_status(self, ndd: Ndd, status: NsComStatus | StatusFn,
                      user: NsStatuser | int | None = None) -> int:
        """Add a status user; returns its sid (module doc: the AIX and the Python form).
        EINVAL for a filter type other than NS_STATUS_MASK or an empty mask; EEXIST for a
        function already registered on this NDD."""
        if callable(status):
            mask = C.NS_STATUS_ALL if user is None else user
            if not isinstance(mask, int):
                raise ndd_error(errno.EINVAL, "the Python form takes a mask of status codes")
            if any(u.fn == status for u in self.status_users.get(ndd.ndd_name, ())):
                raise ndd_error(errno.EEXIST, "status user already registered")
            return self._add_status(ndd, NsComStatus(mask=mask), NsStatuser(_call_fn, status), status)
        if not isinstance(user, NsStatuser):
            raise ndd_error(errno.EINVAL, "ns_add_status takes an ns_com_status and an ns_statuser")
        return self._add_status(ndd, status, user, None)

    def _add_status(self, ndd: Ndd, status: NsComStatus, user: NsStatuser, fn: StatusFn | None) -> int:
        if status.filtertype != C.NS_STATUS_MASK:
            raise ndd_error(errno.EINVAL, f"status filter type {status.filtertype} (only NS_STATUS_MASK)")
        if not status.mask:
            raise ndd_error(errno.EINVAL, "empty status mask")
        ndd.ndd_ctl(C.NDD_ADD_STATUS, status)
        status.sid, self._next_sid = self._next_sid, self._next_sid + 1
        self.status_users.setdefault(ndd.ndd_name, []).append(_StatusUser(status.sid, status.mask, user, fn))
        return status.sid

    def ns_del_status(self, ndd: Ndd, status: NsComStatus | StatusFn | int) -> None:
        """Delete a status user by its NsComStatus's sid, by sid, or (Python form) by its
        function; ENOENT if there is none."""
        users = self.status_users.get(ndd.ndd_name, [])
        for i, u in enumerate(users):
            if _is_user(u, status):
                del users[i]
                ndd.ndd_ctl(C.NDD_DEL_STATUS, NsComStatus(C.NS_STATUS_MASK, u.mask, u.sid))
                return
        raise ndd_error(errno.ENOENT, "no such status user")

    def _status(self, ndd: Ndd, block: StatusBlock) -> None:
        """nd_status: each user whose mask holds the block's code (AIX: code & mask)."""
        for u in list(self.status_users.get(ndd.ndd_name, ())):
            if block.code & u.mask:
                u.user.isr(ndd, block, u.user.isr_data)


def _is_user(u: _StatusUser, status: NsComStatus | StatusFn | int) -> bool:
    if isinstance(status, NsComStatus):
        return u.sid == status.sid
    if isinstance(status, int):
        return u.sid == status
    return u.fn is not None and u.fn == status
