"""stack.socket re-exports the socket constants with Python's names and Linux values."""
from __future__ import annotations

import socket

from stack import socket as ss


def test_constants_match_python_socket_module() -> None:
    names = [n for n in dir(socket) if n.startswith(("AF_", "SOCK_", "SOL_", "SO_", "IPPROTO_", "TCP_", "MSG_",
                                                     "SHUT_")) and isinstance(getattr(socket, n), int)]
    assert len(names) > 100
    for name in names:
        assert getattr(ss, name) == getattr(socket, name), name
    assert (ss.AF_INET, ss.SOCK_STREAM, ss.SOCK_DGRAM, ss.TCP_NODELAY, ss.SO_REUSEADDR) == (2, 1, 2, 1, 2)


def test_aix_atm_names() -> None:
    # AIX's values: AF_NDD 23, SOCK_CONN_DGRAM 6, NDD_PROT_ATM 5
    assert (ss.AF_NDD, ss.SOCK_CONN_DGRAM, ss.NDD_PROT_ATM) == (23, 6, 5)
