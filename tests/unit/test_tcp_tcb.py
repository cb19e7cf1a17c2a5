"""The typed control block (protocols/tcp/tcb.py) and the Connection built on it."""
from __future__ import annotations

from protocols.tcp.conn import Connection
from protocols.tcp.tcb import Tcb

from .test_tcp_conn import Rig


def test_every_declared_field_is_a_slot_and_set_by_init() -> None:
    """mypy checks every use of a field against its declaration in Tcb, but cannot see that
    Connection.__init__ gives each one a value: a field declared and never set would be an
    AttributeError at its first read.  And the fields stay slots -- no per-connection
    __dict__ (a connection in TIME-WAIT or orphaned is bounded at ~3 KB of objects)."""
    conn = Rig().conn
    declared = set(Tcb.__annotations__)
    assert declared == set(Tcb.__slots__)
    assert not hasattr(conn, "__dict__")
    unset = [name for name in Tcb.__slots__ if not hasattr(conn, name)]
    assert unset == []


def test_every_cross_half_call_is_implemented() -> None:
    """Each call one half makes into another is an abstract stub on Tcb; Connection must
    have the real method for every one of them (mypy refuses to instantiate it otherwise;
    this holds the same line at run time)."""
    stubs = [name for name, member in vars(Tcb).items() if getattr(member, "__isabstractmethod__", False)]
    assert "output" in stubs and "arm_probe" in stubs
    for name in stubs:
        assert getattr(Connection, name) is not getattr(Tcb, name), name

