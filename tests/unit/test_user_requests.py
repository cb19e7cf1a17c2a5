"""The user-request contract (protocols/contracts.py): one interface for TCP, UDP and ATM, the
so_state bits each protocol computes from its own state, the socket-class map of the socket
layer, and the ATM send that waits for the adapter's NDD_TX_READY instead of the driver."""
from __future__ import annotations

import errno
import inspect
import random
import socket

import pytest

from ndd import constants as C
from ndd.ndd import Ndd
from ndd.pktbuf import PacketBuffer
from ndd.services import NetServices
from protocols.atm.sockets.pcb import AtmPcb, St
from protocols.atm.sockets.sockaddr import SockaddrNddAtm
from protocols.atm.sockets.usrreq import AtmUserRequests
from protocols.contracts import (
    SS_CANTRCVMORE,
    SS_CANTSENDMORE,
    SS_ISACCEPTING,
    SS_ISCONNECTED,
    SS_ISCONNECTING,
    SS_ISDISCONNECTING,
    UserRequests,
)
from protocols.tcp.state import State
from protocols.tcp.usrreq import TcpUserRequests
from protocols.udp.usrreq import UdpUserRequests
from stack.domains import socket_class
from stack.ndd_socket import AtmSocket
from stack.socket import Socket
from stack.stream import StreamSocket

from .test_tcp_listen import T0, Net

REQUESTS = [name for name, _ in inspect.getmembers(UserRequests, inspect.isfunction) if not name.startswith("_")]


@pytest.mark.parametrize("cls", [TcpUserRequests, UdpUserRequests, AtmUserRequests])
def test_every_protocol_serves_every_request_with_the_same_parameters(cls: type) -> None:
    # mypy checks the types (each usrreq module converts its class to UserRequests); this
    # checks at run time that nothing is missing and the parameter names are the contract's
    assert {"attach", "send", "recv", "state", "setsockopt", "getsockopt"} <= set(REQUESTS)
    for name in REQUESTS:
        ours = inspect.signature(getattr(cls, name))
        contract = inspect.signature(getattr(UserRequests, name))
        assert list(ours.parameters) == list(contract.parameters), (cls.__name__, name)


@pytest.mark.parametrize("state, flags", [
    (State.CLOSED, 0),
    (State.LISTEN, SS_ISACCEPTING),
    (State.SYN_SENT, SS_ISCONNECTING),
    (State.SYN_RECEIVED, SS_ISCONNECTING),
    (State.ESTABLISHED, SS_ISCONNECTED),
    (State.CLOSE_WAIT, SS_ISCONNECTED),
    (State.FIN_WAIT_1, SS_ISCONNECTED | SS_ISDISCONNECTING | SS_CANTSENDMORE),
    (State.FIN_WAIT_2, SS_ISCONNECTED | SS_ISDISCONNECTING | SS_CANTSENDMORE),
    (State.CLOSING, SS_ISCONNECTED | SS_ISDISCONNECTING | SS_CANTSENDMORE),
    (State.LAST_ACK, SS_ISCONNECTED | SS_ISDISCONNECTING | SS_CANTSENDMORE),
    (State.TIME_WAIT, SS_ISDISCONNECTING | SS_CANTSENDMORE),
])
def test_tcp_state_is_told_as_so_state_bits(state: State, flags: int) -> None:
    net = Net()
    usr = TcpUserRequests(net.tcp)
    conn = usr.attach(T0)
    conn.state = state
    assert usr.state(conn) == flags
    conn.rcv_fin = True                                   # the peer's FIN: reads end at EOF
    assert usr.state(conn) == flags | SS_CANTRCVMORE
    conn.shut_wr = True                                   # shutdown(SHUT_WR)
    assert usr.state(conn) == flags | SS_CANTRCVMORE | SS_CANTSENDMORE


def test_tcp_options_go_through_the_requests() -> None:
    net = Net()
    usr = TcpUserRequests(net.tcp)
    conn = usr.attach(T0)
    assert usr.setsockopt(conn, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1, T0) == 0
    assert usr.getsockopt(conn, socket.SOL_SOCKET, socket.SO_KEEPALIVE, T0) == 1
    assert usr.setsockopt(conn, socket.SOL_SOCKET, socket.SO_RCVBUF, 100_000, T0) == 0
    assert usr.getsockopt(conn, socket.SOL_SOCKET, socket.SO_RCVBUF, T0) == 200_000       # doubled, as Linux
    assert usr.setsockopt(conn, socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0", T0) == 0
    assert usr.getsockopt(conn, socket.SOL_SOCKET, socket.SO_LINGER, T0) == b"\1\0\0\0\0\0\0\0"
    assert usr.setsockopt(conn, socket.SOL_SOCKET, socket.SO_LINGER, 1, T0) == errno.EINVAL
    assert usr.getsockopt(conn, socket.SOL_SOCKET, socket.SO_ACCEPTCONN, T0) == 0
    assert usr.getsockopt(conn, socket.IPPROTO_TCP, socket.TCP_CONGESTION, T0)[:5] in (b"cubic", b"reno\0")
    assert usr.getsockopt(conn, socket.IPPROTO_IP, socket.IP_TTL, T0) == 64
    assert usr.getsockopt(conn, 999, 1, T0) is None                                      # ENOPROTOOPT
    assert usr.setsockopt(conn, 999, 1, 0, T0) == errno.ENOPROTOOPT


def test_tcp_send_answers_would_block_and_epipe_as_negative_errnos() -> None:
    net = Net()
    usr = TcpUserRequests(net.tcp)
    conn = usr.attach(T0)
    assert usr.send(conn, memoryview(b"x"), None, T0) == -errno.EPIPE            # never connected
    conn.state = State.SYN_SENT
    assert usr.send(conn, memoryview(b"x"), None, T0) == -errno.EAGAIN           # connecting: wait
    assert usr.recv(conn, 10, False, T0) is None


def test_udp_requests() -> None:
    from protocols.udp.udp import Udp
    net = Net()
    udp = Udp(net.tcp.ipv4, random.Random(1))
    usr = UdpUserRequests(udp)
    pcb = usr.attach(T0)
    assert usr.state(pcb) == 0 and usr.peeraddr(pcb) is None
    assert usr.shutdown(pcb, socket.SHUT_RD, T0) == errno.ENOTCONN
    assert usr.listen(pcb, 5, T0) == errno.EOPNOTSUPP and usr.accept(pcb, T0) is None
    assert usr.setsockopt(pcb, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1, T0) == 0
    assert usr.getsockopt(pcb, socket.SOL_SOCKET, socket.SO_KEEPALIVE, T0) == 1
    assert usr.recv(pcb, 100, False, T0) is None
    pcb.fport = 7
    assert usr.state(pcb) == SS_ISCONNECTED


def test_the_socket_layer_maps_a_family_to_its_socket_class() -> None:
    assert socket_class(socket.AF_INET, socket.SOCK_STREAM) is StreamSocket
    assert socket_class(socket.AF_INET, socket.SOCK_DGRAM) is Socket
    assert socket_class(socket.AF_INET, socket.SOCK_RAW) is Socket
    assert socket_class(C.AF_NDD, C.SOCK_CONN_DGRAM) is AtmSocket


class FullAtmNdd(Ndd):
    """An ATM adapter whose transmit queue is full until `room` is set."""
    ndd_type = C.NDD_ATM

    def __init__(self) -> None:
        super().__init__("atm9", mtu=9180)
        self.room = False

    def atm_output(self, vpi: int, vci: int, sdu: memoryview) -> int:
        return self.ndd_output(PacketBuffer.from_payload(sdu))

    def _transmit(self, pkt: PacketBuffer) -> int:
        return 0 if self.room else errno.ENOBUFS


def test_atm_send_waits_for_the_adapter_through_the_protocol_not_the_driver() -> None:
    ns = NetServices(spawn=lambda *a: None, clock=lambda: 0.0)
    ndd = FullAtmNdd()
    ns.ns_attach(ndd)
    usr = AtmUserRequests(ns, timers=None)
    pcb: AtmPcb = usr.attach(0.0)
    woken: list[int] = []
    usr.set_upcall(pcb, lambda: woken.append(1))
    assert usr.bind(pcb, SockaddrNddAtm.pvc("atm9", 0, 0), 0.0) == 0
    pcb.state, pcb.vc, pcb.max_sdu = St.CONNECTED, (0, 40), (9180, 9180)      # as connect() leaves a PVC
    assert usr.send(pcb, memoryview(b"sdu"), None, 0.0) == -errno.EAGAIN      # full: wait for the upcall
    assert usr.send(pcb, memoryview(b"sdu"), None, 0.0) == -errno.EAGAIN
    assert len(ns.status_users["atm9"]) == 1 and not woken                    # one status user, one waiter
    ndd.tx_drained()                                                          # the driver: queue drained
    assert woken == [1] and not ns.status_users["atm9"]
    ndd.tx_drained()                                                          # nothing refused since: silent
    assert woken == [1]
    ndd.room = True
    assert usr.send(pcb, memoryview(b"sdu"), None, 0.0) == 3
    # a socket closed while it waits takes the status user with it
    ndd.room = False
    assert usr.send(pcb, memoryview(b"sdu"), None, 0.0) == -errno.EAGAIN
    usr.detach(pcb, 0.0)
    assert not ns.status_users.get("atm9")
