"""stack/busypoll.py: the adaptive window (KVM's halt-polling policy) case by case, and the
task keeping trio's run loop polling -- an fd made readable while it polls is served with no
sleep in between."""
from __future__ import annotations

import os
import socket

import pytest
import trio

from stack.busypoll import GROW_START, BusyPoller, PollWindow


def test_the_window_starts_closed_and_grows_from_grow_start_to_the_limit() -> None:
    w = PollWindow(50e-6)
    assert w.window == 0.0
    # idle spells the window missed but the limit would have caught: doubled from 10 µs
    assert [w.idle_ended(30e-6) for _ in range(5)] == [1, 1, 1, 1, 0]
    assert w.window == 50e-6                       # 10, 20, 40, then capped at the limit


def test_a_spell_beyond_the_limit_halves_the_window_and_under_grow_start_closes_it() -> None:
    w = PollWindow(80e-6)
    w.window = 80e-6
    assert w.idle_ended(1.0) == -1 and w.window == 40e-6
    assert w.idle_ended(1.0) == -1 and w.window == 20e-6
    assert w.idle_ended(1.0) == -1 and w.window == 10e-6
    assert w.idle_ended(1.0) == -1 and w.window == 0.0          # 5 µs < GROW_START: closed
    assert w.idle_ended(1.0) == 0 and w.window == 0.0           # sparse traffic: no polling at all
    assert GROW_START == 10e-6


def test_a_limit_under_grow_start_and_a_negative_limit() -> None:
    w = PollWindow(4e-6)
    assert w.idle_ended(3e-6) == 1 and w.window == 4e-6
    with pytest.raises(ValueError):
        PollWindow(-1.0)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeStack:
    """What a SplicePoller asks of its Stack."""

    def __init__(self) -> None:
        self.rx_batch_hooks: list[object] = []
        self.in_rx_batch = False


class Side:
    """A host socket's owner for a SplicePoller: it reads what the socket has."""

    def __init__(self, sock: socket.socket) -> None:
        self.host = sock
        self.events: list[int] = []

    def on_host(self, events: int) -> None:
        self.events.append(events)
        self.host.recv(16)

    def abort(self) -> None:
        pass


async def _passes(n: int) -> None:
    for _ in range(n):
        await trio.lowlevel.checkpoint()


async def test_activity_while_parked_wakes_the_poller_and_the_spell_adapts_the_window() -> None:
    clock = FakeClock()
    bp = BusyPoller(50e-6, clock)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bp.run)
        await trio.testing.wait_all_tasks_blocked()
        assert bp.stats.parks == 1 and bp._parked is not None      # window 0: parked at once
        clock.t = 30e-6
        bp.activity()                                             # a 30 µs spell: grow to 10 µs
        # the window is open now and the clock stands still: the poller yields every
        # YIELD_PASSES passes (never blocked, so no wait_all_tasks_blocked until the clock moves on)
        await _passes(5)
        assert (bp.stats.grows, bp.stats.window_us) == (1, pytest.approx(10.0))
        assert bp._parked is None
        bp.activity()
        await _passes(5)
        assert bp.stats.hits == 1 and bp._parked is None
        clock.t += 1.0
        await trio.testing.wait_all_tasks_blocked()
        assert bp._parked is not None and bp.stats.parks == 2
        assert bp.stats.polled_idle_us == pytest.approx(10.0)
        bp.activity()                                             # a 1 s spell: shrink, closed
        await trio.testing.wait_all_tasks_blocked()
        assert (bp.stats.shrinks, bp.stats.window_us) == (1, 0.0)
        nursery.cancel_scope.cancel()


async def test_a_zero_limit_never_polls() -> None:
    bp = BusyPoller(0.0)
    with trio.move_on_after(0.05):
        await bp.run()
    bp.activity()
    assert (bp.stats.parks, bp.stats.hits) == (0, 0)


async def test_while_polling_trio_serves_an_fd_without_sleeping() -> None:
    """The point of it: with the poller's window open, a datagram that arrives is read by
    another task's wait_readable through trio's zero-timeout epoll passes."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    bp = BusyPoller(1.0)                       # a long window: no flake on a loaded machine
    bp.window.window = 1.0                     # as after a run of short spells
    got: list[bytes] = []

    async def reader() -> None:
        await trio.lowlevel.wait_readable(a)
        got.append(a.recv(16))

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bp.run)
            nursery.start_soon(reader)
            await trio.lowlevel.checkpoint()
            b.send(b"x")
            with trio.fail_after(1):
                while not got:
                    await trio.lowlevel.checkpoint()
            assert got == [b"x"] and bp.stats.parks == 0       # served, and the poller never slept
            nursery.cancel_scope.cancel()
    finally:
        a.close()
        b.close()


async def test_poll_functions_are_called_at_every_pass_and_what_they_find_keeps_the_window() -> None:
    clock = FakeClock()
    bp = BusyPoller(50e-6, clock)
    bp.window.window = 50e-6
    found = [False, True, False]
    calls: list[int] = []

    def poll() -> bool:
        calls.append(1)
        return found.pop(0) if found else False

    bp.polls.append(poll)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bp.run)
        await _passes(5)
        assert len(calls) >= 3 and (bp.stats.hits, bp.stats.polled) == (1, 1)
        clock.t = 1.0                                  # the window runs out: parked, polls stop
        await trio.testing.wait_all_tasks_blocked()
        before = len(calls)
        await _passes(5)
        assert len(calls) == before and bp.stats.parks == 1
        nursery.cancel_scope.cancel()


async def test_a_watched_fds_poll_is_called_only_when_it_is_readable() -> None:
    """watch(fd, poll): one epoll_wait(0) per pass over the watched fds, and the poll
    function of a ready one called (a device's look, without its EAGAIN read when idle);
    the other poll functions at every pass as before."""
    clock = FakeClock()
    bp = BusyPoller(50e-6, clock)
    bp.window.window = 50e-6
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    looks: list[bytes] = []
    passes: list[int] = []

    def look() -> bool:
        looks.append(a.recv(16))
        return True

    bp.watch(a.fileno(), look)
    bp.polls.append(lambda: passes.append(1) is not None)     # (False: found nothing)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bp.run)
            await _passes(3)
            assert looks == [] and len(passes) >= 3 and bp.stats.hits == 0
            b.send(b"x")
            await _passes(3)
            assert looks == [b"x"] and (bp.stats.hits, bp.stats.polled) == (1, 1)
            nursery.cancel_scope.cancel()
        assert bp._epoll is not None and bp._epoll.closed         # its epoll goes with it
    finally:
        a.close()
        b.close()


async def test_a_task_serving_a_watched_fd_is_held_back_while_the_poller_polls() -> None:
    """while_polling: at once back while the poller is parked; while its window is open it
    waits (trio would wake the task for what the poller's next pass serves), and the window
    running out -- or the poller's end -- lets it go on."""
    clock = FakeClock()
    bp = BusyPoller(50e-6, clock)
    went_on: list[float] = []

    async def server_task() -> None:
        await bp.while_polling()
        went_on.append(clock.t)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(bp.run)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(server_task)                # parked: it goes on at once
        await trio.testing.wait_all_tasks_blocked()
        assert went_on == [0.0]
        clock.t = 30e-6
        bp.activity()                                  # a window opens (10 µs): polling
        await _passes(3)
        nursery.start_soon(server_task)
        await _passes(5)
        assert went_on == [0.0]                        # held back while the poller polls
        clock.t = 1.0                                  # the window runs out: the poller parks
        await trio.testing.wait_all_tasks_blocked()
        assert went_on == [0.0, 1.0]
        clock.t = 1.0 + 30e-6
        bp.activity()
        await _passes(3)
        nursery.start_soon(server_task)
        await _passes(3)
        nursery.cancel_scope.cancel()                  # the poller's end lets it go too (then cancelled)
    assert bp._polling is None


@pytest.mark.parametrize("yield_every", [1e-3, 1.0])
async def test_while_polling_the_run_loop_gets_its_turn_every_so_often(yield_every: float) -> None:
    """The poller yields to trio every `yield_every` seconds of its clock, or every
    YIELD_PASSES passes when its clock is slower than that -- not at each pass: another task
    runs a few microseconds later at most, and a pass costs one epoll_wait(0), not a trio
    pass.  Here the clock moves half a millisecond every ten passes."""
    from stack.busypoll import YIELD_PASSES

    clock = FakeClock()
    bp = BusyPoller(1e6, clock, yield_every=yield_every)
    bp.window.window = 1e6
    calls: list[int] = []

    def poll() -> bool:
        calls.append(1)
        if len(calls) % 10 == 0:
            clock.t += 0.5e-3
        return False

    bp.polls.append(poll)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bp.run)
        await _passes(20)
        nursery.cancel_scope.cancel()
    every = 20 if yield_every == 1e-3 else YIELD_PASSES
    assert bp.stats.yields >= 5 and len(calls) // every - 1 <= bp.stats.yields <= len(calls) // every


def test_a_tun_devices_poll_rx_reads_what_is_queued_as_one_read_batch() -> None:
    """drivers/tuntap.py poll_rx, the device's look for a busy poll: frames already queued
    are delivered inside nd_rx_batch(True) ... (False); nothing queued is one EAGAIN read."""
    from drivers.tuntap import TunNdd

    ndd = TunNdd("tsbp0")
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)   # stands for the fd
    ours.setblocking(False)
    got: list[bytes] = []
    batches: list[bool] = []
    ndd.fd, ndd.vnet = ours.fileno(), False
    ndd.deliver = lambda pkt: got.append(bytes(pkt.view()))          # type: ignore[method-assign]
    ndd.nd_rx_batch = batches.append
    try:
        assert not ndd.poll_rx() and batches == [] and ndd.rx_polled == 0
        kernel.send(b"first")
        kernel.send(b"second")
        assert ndd.poll_rx()
        assert got == [b"first", b"second"] and batches == [True, False] and ndd.rx_polled == 1
        assert not ndd.poll_rx()
        ndd.fd = -1
        assert not ndd.poll_rx()                       # a closed device: nothing to look at
    finally:
        ours.close()
        kernel.close()


async def test_a_devices_reader_waits_for_its_rx_defer_before_each_wait() -> None:
    """drivers/tuntap.py: with `rx_defer` set (the gateway sets the busy poller's
    while_polling), the reader task awaits it before waiting on the device: a frame that
    comes meanwhile is left to the poller, and read by the reader once it goes on."""
    from drivers.tuntap import TunNdd

    ndd = TunNdd("tsbp1")
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    got: list[bytes] = []
    ndd.fd, ndd.vnet = ours.fileno(), False
    ndd.deliver = lambda pkt: got.append(bytes(pkt.view()))          # type: ignore[method-assign]
    go_on = trio.Event()
    ndd.rx_defer = go_on.wait
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ndd._reader)
            kernel.send(b"frame")
            await trio.testing.wait_all_tasks_blocked()
            assert got == [] and ndd.stats.ndd_recvintr == 0          # held back
            go_on.set()
            await trio.testing.wait_all_tasks_blocked()
            assert got == [b"frame"] and ndd.stats.ndd_recvintr == 1
            nursery.cancel_scope.cancel()
    finally:
        ours.close()
        kernel.close()


def test_the_splice_pollers_look_serves_ready_host_sockets_and_is_safe_after_its_end() -> None:
    """tools/gateway/splice.py SplicePoller.poll, the host sockets' look for a busy poll: a
    ready socket's side is served (on_host with its events); nothing ready is False; once the
    poller has ended (its epoll closed: the gateway stopping while the busy poller runs one
    more pass) it is False, never an error."""
    import select

    from tools.gateway.splice import SplicePoller

    poller = SplicePoller(FakeStack())
    a, b = socket.socketpair()
    try:
        side = Side(a)
        poller._by_fd[a.fileno()] = side              # as _watch registers a host socket
        poller._epoll.register(a.fileno(), select.EPOLLIN)
        assert not poller.poll() and poller.stats.polled == 0
        b.send(b"x")
        assert poller.poll() and side.events == [select.EPOLLIN] and poller.stats.polled == 1
        assert not poller.poll()
        poller._epoll.close()
        assert not poller.poll()
    finally:
        a.close()
        b.close()
        os.close(poller._kick)


async def test_the_splice_pollers_task_waits_for_its_defer_before_each_wait() -> None:
    """tools/gateway/splice.py: with `defer` set (the busy poller's while_polling), the
    poller's task leaves a ready host socket to the busy poller until it goes on."""
    import select

    from tools.gateway.splice import SplicePoller

    poller = SplicePoller(FakeStack())
    go_on = trio.Event()
    poller.defer = go_on.wait
    a, b = socket.socketpair()
    try:
        side = Side(a)
        poller._by_fd[a.fileno()] = side
        poller._epoll.register(a.fileno(), select.EPOLLIN)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poller.run)
            b.send(b"x")
            await trio.testing.wait_all_tasks_blocked()
            assert side.events == [] and poller.stats.wakeups == 0     # held back
            go_on.set()
            await trio.testing.wait_all_tasks_blocked()
            assert side.events == [select.EPOLLIN] and poller.stats.wakeups == 1
            nursery.cancel_scope.cancel()
    finally:
        a.close()
        b.close()
