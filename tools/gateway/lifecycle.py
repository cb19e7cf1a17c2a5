"""When the gateway says it is ready and when it must stop (slirp4netns's -r / -e, and
the target going away), as small trio pieces the `gateway` command puts together.

The target namespace never "goes away" while we serve it: the TAP fd and the control
socket both hold a reference to it (a tun file's socket and an AF_INET socket count
on their network namespace), so `ip netns del` only removes its name -- checked in
tests/realpeer/test_gateway_lifecycle.py.  What we can watch instead is what named it:
the process (a pidfd becomes readable when it exits) or the file (`ip netns del`
unmounts /run/netns/NAME; polled, for there is no event for an unmount of a file).
"""
from __future__ import annotations

import errno
import os

import trio

READY_MESSAGE = b"1"     # slirp4netns -r: writes "1" to the FD and closes it (slirp4netns(1))


def signal_ready(fd: int) -> bool:
    """--ready-fd: write "1" and close the fd.  False if the reader has gone (EPIPE) --
    rootlesskit/Podman gave up waiting; the caller decides whether to carry on."""
    try:
        os.write(fd, READY_MESSAGE)
        return True
    except BrokenPipeError:
        return False
    finally:
        os.close(fd)


async def wait_exit_fd(fd: int) -> None:
    """--exit-fd: return when the fd is readable or its other end closed (slirp4netns
    exits on any poll(2) event on it; Podman closes the pipe's write end to stop us)."""
    await trio.lowlevel.wait_readable(fd)


async def wait_process_exit(pid: int) -> None:
    """Return when process `pid` has exited (pidfd_open(2), Linux 5.3; not our child:
    works for the slirp4netns PID form).  Returns at once if there is no such process."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)


def namespace_id(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a namespace file: what names one namespace; None if missing."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ESRCH, errno.ENOTDIR):
            return None
        raise
    return st.st_dev, st.st_ino


async def wait_namespace_file_gone(path: str, interval: float = 1.0) -> None:
    """Return once `path` no longer names the namespace it names now (deleted, or a
    different namespace mounted in its place).  Polls every `interval` seconds."""
    first = namespace_id(path)
    while first is not None and namespace_id(path) == first:
        await trio.sleep(interval)
