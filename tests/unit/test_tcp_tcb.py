"""The typed control block (protocols/tcp/tcb.py) and the Connection built on it."""
from __future__ import annotations

from protocols.tcp.conn import Connection
from protocols.tcp.tcb import RARE_DEFAULTS, Rare, Tcb, TcbRare

from .test_tcp_conn import Rig


def test_every_declared_field_is_a_slot_and_set_by_init() -> None:
    """mypy checks every use of a field against its declaration in Tcb, but cannot see that
    Connection.__init__ gives each one a value: a field declared and never set would be an
    AttributeError at its first read.  And the fields stay slots -- no per-connection
    __dict__ (a connection in TIME-WAIT or orphaned is bounded at ~3 KB of objects)."""
    conn = Rig().conn
    declared = set(Tcb.__annotations__)
    rare = {name for name, member in vars(Tcb).items() if isinstance(member, Rare)}
    assert declared == set(Tcb.__slots__) | rare
    assert rare == set(TcbRare.__slots__)            # each Rare field has its place in the record
    assert not hasattr(conn, "__dict__")
    unset = [name for name in (*Tcb.__slots__, *TcbRare.__slots__) if not hasattr(conn, name)]
    assert unset == []


def test_rare_fields_share_the_defaults_until_one_is_written() -> None:
    """An idle connection holds no TcbRare of its own: writing a default keeps the shared
    record, the first other value gets one, and a listener's options reach its children."""
    conn = Rig().conn
    assert conn.rare is RARE_DEFAULTS
    conn.undo_marker = 0
    conn.undo_tsval = None
    assert conn.rare is RARE_DEFAULTS and conn.undo_marker == 0
    conn.total_rto += 1
    assert conn.rare is not RARE_DEFAULTS and conn.total_rto == 1
    assert RARE_DEFAULTS.total_rto == 0 and Rig().conn.total_rto == 0
    assert conn.rare.inherited() is RARE_DEFAULTS     # no inherited option set
    conn.user_timeout = 2.5
    child = conn.rare.inherited()
    assert child is not conn.rare and child.user_timeout == 2.5 and child.total_rto == 0


def test_every_cross_half_call_is_implemented() -> None:
    """Each call one half makes into another is an abstract stub on Tcb; Connection must
    have the real method for every one of them (mypy refuses to instantiate it otherwise;
    this holds the same line at run time)."""
    stubs = [name for name, member in vars(Tcb).items() if getattr(member, "__isabstractmethod__", False)]
    assert "output" in stubs and "arm_probe" in stubs
    for name in stubs:
        assert getattr(Connection, name) is not getattr(Tcb, name), name

