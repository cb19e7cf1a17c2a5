"""Small helpers for driving Linux tools inside the test namespace."""
from __future__ import annotations

import re
import subprocess

import trio


async def run(argv: list[str], timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
    with trio.fail_after(timeout):
        return await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=check)


class Lines:
    """Whole lines from a process's pipe.  One read is not one line: with PYTHONUNBUFFERED
    (set on some machines) `print(a, b)` is a write per piece, and a loaded machine lets the
    reader see the pieces apart -- `receive_some()` alone once read b"before" and then b"\n"."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buf = b""

    async def next(self, timeout: float = 30) -> bytes:
        """The next line without its newline; at EOF what is left (b"" when nothing)."""
        with trio.fail_after(timeout):
            while b"\n" not in self.buf:
                chunk = await self.stream.receive_some()
                if not chunk:
                    rest, self.buf = self.buf, b""
                    return rest
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line


async def some_of(stream: trio.abc.ReceiveStream | None, timeout: float = 2) -> bytes:
    """What `stream` has within `timeout` seconds, for a failure message: never a wait without
    end on a process that is still running and says nothing (a hang in an assert's message
    once stalled CI for 90 minutes)."""
    if stream is None:
        return b""
    with trio.move_on_after(timeout):
        return await stream.receive_some()
    return b""


def loss_percent(ping_output: bytes) -> int:
    m = re.search(rb"(\d+)% packet loss", ping_output)
    assert m, ping_output
    return int(m.group(1))


async def wait_for(predicate, timeout: float = 5.0, interval: float = 0.05) -> bool:
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(interval)
        return True
    return False


async def start_linux(argv: list[str]) -> trio.Process:
    """Start a helper in the namespace and wait for its `bound` line."""
    proc = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    buf = b""
    with trio.fail_after(10):
        while b"bound\n" not in buf:
            chunk = await proc.stdout.receive_some()
            assert chunk, f"helper exited: {await proc.stderr.receive_some()}"
            buf += chunk
    return proc


async def read_all(stream) -> bytes:
    out = b""
    while chunk := await stream.receive_some():
        out += chunk
    return out


async def output_at_exit(proc: trio.Process, timeout: float) -> bytes:
    """All of `proc`'s stdout, once it has exited (within `timeout` seconds)."""
    with trio.fail_after(timeout):
        out = await read_all(proc.stdout)
        await proc.wait()
    return out


async def kill_if_running(proc: trio.Process) -> None:
    """For a `finally`: a process the test started does not outlive it."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
