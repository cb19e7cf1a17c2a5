"""The Stack's construction and teardown: the built-in cores it builds itself, and
`async with Stack()` raising every failure of the body and of close()."""
from __future__ import annotations

import socket

import pytest
import trio

from drivers.memlink import MemoryNdd
from ndd.constants import AF_NDD, NDD_PROT_ATM, SOCK_CONN_DGRAM
from protocols.atm.sockets.usrreq import AtmUserRequests, svc_manager
from protocols.contracts import PR_ADDR, PR_ATOMIC, PR_CONNREQUIRED
from protocols.ipv4 import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP
from protocols.ndd8022 import Ndd8022UserRequests
from protocols.tcp.usrreq import TcpUserRequests
from protocols.udp.usrreq import UdpUserRequests
from stack.stack import Stack, StackConfig


class CloseFails(Stack):
    """A Stack whose close() takes the interfaces down, then reports an error."""

    def close(self) -> None:
        super().close()
        raise OSError(5, "close failed")


def test_builtin_cores_are_built_and_registered_in_order() -> None:
    # the Stack builds IPv4, ICMP, UDP and TCP (AF_INET) then the ATM sockets (AF_NDD), each
    # with its protosw entry, and registers the timed cores -- as protocols.register once did
    st = Stack("cores", StackConfig(plugins=False, seed=1))
    assert list(st.protosw.domains) == [socket.AF_INET, socket.AF_INET6, AF_NDD]
    inet = st.protosw.domains[socket.AF_INET].protosw
    assert [(p.name, p.type, p.protocol, p.flags) for p in inet] == [
        ("icmp", socket.SOCK_RAW, IPPROTO_ICMP, PR_ATOMIC | PR_ADDR),
        ("udp", socket.SOCK_DGRAM, IPPROTO_UDP, PR_ATOMIC | PR_ADDR),
        ("tcp", socket.SOCK_STREAM, IPPROTO_TCP, PR_CONNREQUIRED)]
    assert [p.core for p in inet] == [st.icmp, st.udp, st.tcp]
    assert st.protosw.ip_protox == {IPPROTO_ICMP: inet[0], IPPROTO_UDP: inet[1], IPPROTO_TCP: inet[2]}
    assert inet[0].input == st.icmp.input and inet[0].ctlinput == st.icmp.ctlinput and inet[0].usrreqs is None
    assert isinstance(inet[1].usrreqs, UdpUserRequests) and inet[1].usrreqs.udp is st.udp
    assert isinstance(inet[2].usrreqs, TcpUserRequests) and inet[2].usrreqs.tcp is st.tcp
    assert st.icmp.ipv4 is st.ipv4 and st.udp.ipv4 is st.ipv4 and st.tcp.ipv4 is st.ipv4
    atm, ether = st.protosw.domains[AF_NDD].protosw
    assert (atm.name, atm.type, atm.protocol, atm.flags) == ("atm", SOCK_CONN_DGRAM, NDD_PROT_ATM,
                                                            PR_ATOMIC | PR_CONNREQUIRED)
    # the 802.2 datagram family (issue 16 point 10): NDD_PROT_ETHER 1, <sys/ndd_var.h>
    assert (ether.name, ether.type, ether.protocol, ether.flags) == ("ndd8022", socket.SOCK_DGRAM, 1, PR_ATOMIC)
    assert isinstance(ether.usrreqs, Ndd8022UserRequests) and ether.usrreqs.ns is st.ns
    assert isinstance(atm.usrreqs, AtmUserRequests) and atm.usrreqs is st.atm_sockets
    assert svc_manager(st) is st.atm_sockets.svc
    # AF_INET6: ICMPv6 in ip6_protox, the IPv6 host's reassembly and routing table timed
    # and UDP and TCP on it: the same cores, their IPv6 entry points and AF_INET6 user requests
    icmp6, udp6, tcp6 = st.protosw.domains[socket.AF_INET6].protosw
    assert (icmp6.name, icmp6.type, icmp6.protocol, icmp6.core) == ("icmpv6", socket.SOCK_RAW, 58, st.inet6.icmp)
    assert (udp6.name, udp6.type, udp6.core, udp6.input, udp6.ctlinput) == \
        ("udp6", socket.SOCK_DGRAM, st.udp, st.udp.input6, st.udp.ctlinput6)
    assert (tcp6.name, tcp6.type, tcp6.core, tcp6.input, tcp6.ctlinput) == \
        ("tcp6", socket.SOCK_STREAM, st.tcp, st.tcp.input6, st.tcp.ctlinput6)
    assert st.protosw.ip6_protox == {58: icmp6, IPPROTO_UDP: udp6, IPPROTO_TCP: tcp6}
    assert st.udp.ipv6 is st.inet6.ip and st.tcp.ipv6 is st.inet6.ip
    # timed cores in registration order: reassembly, TCP, IPv6's reassembly and routes, then
    # the ATM SVC manager (interfaces add theirs as they come)
    assert st.timers.timed == [st.ipv4.reasm, st.tcp, st.inet6.ip.reasm, st.inet6.routes, st.atm_sockets.svc]


async def test_close_error_propagates_after_the_teardown() -> None:
    # before the fix, `return` inside `finally` dropped close()'s exception
    st = CloseFails("c", StackConfig(plugins=False))
    with pytest.raises(OSError, match="close failed"):
        async with st:
            st.add_interface(MemoryNdd("m0"), "10.7.0.1/24")
    # the teardown still completed: interfaces down, tasks cancelled and joined
    assert st.nursery is None and list(st.ifnet) == []


async def test_body_error_propagates_as_itself() -> None:
    with pytest.raises(KeyError, match="from the body"):
        async with Stack("b", StackConfig(plugins=False)) as st:
            st.add_interface(MemoryNdd("m0"), "10.7.0.1/24")
            raise KeyError("from the body")
    assert st.nursery is None and list(st.ifnet) == []


async def test_body_and_close_errors_both_propagate_in_order() -> None:
    # two failures, none hidden: the body's (first to happen), then close()'s
    with pytest.raises(ExceptionGroup) as info:
        async with CloseFails("bc", StackConfig(plugins=False)):
            raise KeyError("from the body")
    body, closing = info.value.exceptions
    assert isinstance(body, KeyError) and isinstance(closing, OSError) and closing.strerror == "close failed"


async def test_close_error_survives_an_outer_cancellation() -> None:
    # cancelled from outside, close() failing: the cancel scope takes its Cancelled out of the
    # group (trio's rule) and close()'s error still comes out of the block
    with pytest.raises(ExceptionGroup) as info:
        with trio.move_on_after(0) as scope:
            async with CloseFails("cx", StackConfig(plugins=False)):
                await trio.sleep_forever()
    assert scope.cancelled_caught
    (closing,) = info.value.exceptions
    assert isinstance(closing, OSError) and closing.strerror == "close failed"
