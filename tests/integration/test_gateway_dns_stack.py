"""The gateway's DNS forwarder with tunstack sockets on the guest side: a guest Stack asks
the gateway Stack's 10.0.0.1:53 over a memory link, UDP and TCP; the forwarder relays to a
responder on the host's 127.0.0.1 through real host sockets (no network beyond loopback).
This is the shape `tunstack gateway` runs it in, and it checks that the Stack's sockets
satisfy the forwarder's socket Protocols (mypy checks the casts below)."""
from __future__ import annotations

import socket
from typing import cast

import trio

from stack.socket import Socket
from stack.stream import StreamSocket
from tests.dns_responder import Responder, make_answer, make_query
from tools.gateway.dns import DnsConfig, DnsForwarder
from tools.gateway.dns_serve import read_message, serve_dns

from .helpers import IP_A, two_stacks

A, D, S = socket.AF_INET, socket.SOCK_DGRAM, socket.SOCK_STREAM


async def test_guest_stack_queries_through_the_gateway_stack() -> None:
    responder = Responder()
    async with two_stacks(ipv6=False) as p, trio.open_nursery() as nursery:
        await responder.serve(nursery)
        ids = iter((0x7777, 0x8888))
        config = DnsConfig(address=IP_A)
        forwarder = DnsForwarder([responder.upstream], timeout=config.timeout,
                                 random_id=lambda: next(ids))
        udp53 = cast(Socket, p.sa.socket(A, D))
        udp53.bind((config.address, config.port))
        tcp53 = cast(StreamSocket, p.sa.socket(A, S))
        tcp53.bind((config.address, config.port))
        tcp53.listen(8)
        nursery.start_soon(serve_dns, config, udp53, tcp53, forwarder)

        guest_udp = cast(Socket, p.sb.socket(A, D))
        query = make_query(0x1234, "example.com")
        with trio.fail_after(10):
            await guest_udp.sendto(query, (IP_A, 53))
            answer, source = await guest_udp.recvfrom(65535)
        assert answer == make_answer(query) and source == (IP_A, 53)

        guest_tcp = cast(StreamSocket, p.sb.socket(A, S))
        query = make_query(0xABCD, "example.net", 28)
        with trio.fail_after(10):
            await guest_tcp.connect((IP_A, 53))
            await guest_tcp.sendall(len(query).to_bytes(2, "big") + query)
            assert await read_message(guest_tcp) == make_answer(query)
        guest_tcp.close()

        assert forwarder.stats.answered == 2
        assert responder.seen_ids == [0x7777, 0x8888]         # upstream IDs, not the guest's
        nursery.cancel_scope.cancel()
