"""tools/gateway/lifecycle.py with pipes and processes of the test's own."""
from __future__ import annotations

import os
import subprocess

import trio

from tools.gateway.lifecycle import (
    namespace_id,
    signal_ready,
    wait_exit_fd,
    wait_namespace_file_gone,
    wait_process_exit,
)


def test_ready_fd_gets_1_and_is_closed() -> None:
    r, w = os.pipe()
    assert signal_ready(w) is True
    assert os.read(r, 16) == b"1" and os.read(r, 16) == b""       # "1", then EOF: closed
    os.close(r)


def test_ready_fd_whose_reader_left() -> None:
    r, w = os.pipe()
    os.close(r)
    assert signal_ready(w) is False
    try:
        os.fstat(w)
        raise AssertionError("the fd is still open")
    except OSError:
        pass


async def test_exit_fd_wakes_on_data_and_on_close() -> None:
    for how in ("write", "close"):
        r, w = os.pipe()
        woke = trio.Event()

        async def waiter(fd: int = r, woke: trio.Event = woke) -> None:
            await wait_exit_fd(fd)
            woke.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(0.05)
            assert not woke.is_set()            # nothing yet: it must wait
            if how == "write":
                os.write(w, b"x")
                os.close(w)
            else:
                os.close(w)                     # Podman's way: close the write end
        assert woke.is_set()
        os.close(r)


async def test_process_exit_of_a_process_that_is_not_our_waitable_child() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    done = trio.Event()

    async def waiter() -> None:
        await wait_process_exit(proc.pid)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(0.05)
        assert not done.is_set()
        proc.kill()
    assert done.is_set()
    proc.wait()
    with trio.fail_after(5):
        await wait_process_exit(proc.pid)       # gone already: returns at once


async def test_namespace_file_gone(tmp_path: object) -> None:
    path = f"{tmp_path}/ns"
    open(path, "w").close()
    assert namespace_id(path) is not None and namespace_id(f"{path}.missing") is None
    done = trio.Event()

    async def waiter() -> None:
        await wait_namespace_file_gone(path, interval=0.01)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(0.05)
        assert not done.is_set()
        os.unlink(path)
    assert done.is_set()
