"""Output coalesced per receive batch (issue 15): while a device delivers the frames of one
read (Ndd.nd_rx_batch, bracketed by the TUN driver), in-order data takes its ACK at the end
of the batch -- one ACK for all of it, as after Linux's GRO merged the segments -- and
outside a batch each segment is answered as it comes.

The memory link does not batch; the test brackets stack a's input by hand, as the TUN
reader does around a read."""
from __future__ import annotations

import trio
import trio.testing

from protocols.tcp.wire import ACK, TcpRepr

from .helpers import IP_A, tcp_connected, two_stacks


async def test_one_ack_per_batch_for_its_in_order_segments(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks("rawip", ipv6=False) as p:
        client, server = await tcp_connected(p.sb, p.sa, IP_A, 7000)
        await trio.sleep(1)                              # handshake and quick ACKs over
        acks: list[TcpRepr] = []
        tcp = p.sa.tcp
        real_emit = tcp.emit

        def counting_emit(conn, seg, opts, payload, gso, now):  # type: ignore[no-untyped-def]
            if not payload:
                acks.append(seg)
            return real_emit(conn, seg, opts, payload, gso, now)

        real_emit_ack = tcp.emit_ack

        def counting_emit_ack(conn, seqno, window, opts, now):  # type: ignore[no-untyped-def]
            err = real_emit_ack(conn, seqno, window, opts, now)
            if err is not None:                          # a pure ACK sent whole (tcp.py emit_ack)
                acks.append(TcpRepr(conn.lport, conn.fport, seqno, conn.rcv_nxt, ACK, window))
            return err

        tcp.emit = counting_emit                         # type: ignore[method-assign]
        tcp.emit_ack = counting_emit_ack                 # type: ignore[method-assign]
        mss = server._pcb.mss

        # inside a batch: four full segments arrive, no ACK until the batch ends
        p.sa._rx_batch(True)
        await client.sendall(b"x" * (4 * mss))
        await trio.sleep(0.001)                          # delivered (latency 0), batch still open
        assert server._pcb.rcv_nxt - server._pcb.irs - 1 == 4 * mss
        assert acks == []
        p.sa._rx_batch(False)
        assert len(acks) == 1 and acks[0].ack == server._pcb.rcv_nxt
        assert await server.recv(65536) == b"x" * (4 * mss)

        # outside a batch: each pair of full segments is ACKed as it comes (RFC 1122
        # §4.2.3.2, Linux's __tcp_ack_snd_check), several ACKs for the same data
        acks.clear()
        await client.sendall(b"y" * (4 * mss))
        await trio.sleep(0.001)
        assert len(acks) >= 2


async def test_a_timer_the_batch_end_arms_is_filed(autojump_clock: trio.testing.MockClock) -> None:
    """The output pass at a batch's end may arm a connection's timers (the RTO, the loss
    probe, the send timer): they are filed with the stack's timer service then, not when a
    later event happens along.  Here the ACKs of a bulk write's segments arrive inside a
    batch and the runt after them waits for the application's next write (output.py
    AUTOCORK); the send timer armed at the batch's end sends it 1 ms after the write."""
    async with two_stacks("rawip", ipv6=False) as p:
        client, server = await tcp_connected(p.sb, p.sa, IP_A, 7001)
        await trio.sleep(1)
        conn = server._pcb
        conn.cc.cwnd = conn.snd.capacity = 1 << 20      # each write at once, in one flight
        client._pcb.quickacks = 1 << 10                  # the client ACKs every segment at once
        size = 40 * conn.mss + 100
        p.sa._rx_batch(True)
        await server.sendall(b"y" * size)                # sent whole: nothing was in flight
        await server.sendall(b"z" * size)                # its runt waits behind the flight (Nagle)
        wrote = trio.current_time()

        def acked() -> int:                              # (held inside the batch: input.py _hold_ack)
            return conn.ack_held.ack if conn.ack_held is not None else conn.snd_una

        for _ in range(100):                             # the client's ACKs, no time passing
            if acked() == conn.snd_max:
                break
            await trio.sleep(0)
        assert acked() == conn.snd_max and trio.current_time() == wrote
        p.sa._rx_batch(False)                            # the pass: the runt waits for a write
        assert conn.snd_una == conn.snd_max
        assert conn.snd.queued == 100 and conn.pace_at == wrote + 0.001
        assert conn.sched_at == conn.pace_at             # filed: the timer service wakes for it
        got = b""
        with trio.fail_after(0.002):
            while len(got) < 2 * size:
                got += await client.recv(1 << 20)
        assert trio.current_time() - wrote <= 0.0011
