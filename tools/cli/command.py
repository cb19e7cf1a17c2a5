"""How every `tunstack` command runs: its signals, its exit status and its errors.

`run_command(name, runner, args)` is the one place a command enters trio:

- SIGINT, SIGTERM and SIGHUP are caught by one `trio.open_signal_receiver` for the
  whole run (no command opens another: a second receiver would steal the signal).
  The first one prints `tunstack NAME: SIGTERM: shutting down` (one line, stderr) and
    * wakes a command waiting in `until_shutdown()` -- a server, which then stops its own
      way (releases its calls, prints --stats) within GRACE seconds, or
    * cancels the command at once otherwise (nc, ping, a client still starting).
  Either way the command's `finally` blocks and context managers run: namespaces it
  created, devices and child processes go.  A second signal cancels what is left.
- The exit status after a signal is 128 + its number, as a shell reports a process
  killed by it: 130 SIGINT, 143 SIGTERM, 129 SIGHUP.
- Errors are one line on stderr, `tunstack: error: ...`, never a traceback: exit 2 for
  usage errors (argparse, `UsageError`), 1 for runtime ones (OSError, a failing `ip`,
  ValueError, `CliError`), unwrapped from trio's exception groups.  `--debug` or
  TUNSTACK_DEBUG=1 lets the traceback through instead.

`tunstack bench` is synchronous (its sections start processes and their own trio.run):
`run_sync_command` turns SIGTERM and SIGHUP into the SIGINT every section already
unwinds from (Ctrl-C), with the same message and exit status.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, NoReturn

import trio

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE = 5.0          # seconds a server has, after the signal, to stop its own way
EXIT_USAGE, EXIT_FAILURE = 2, 1


class CliError(Exception):
    """A runtime error whose message is the whole story (exit 1)."""


class UsageError(CliError):
    """Bad arguments found after parsing (exit 2)."""


def debug_enabled() -> bool:
    return os.environ.get("TUNSTACK_DEBUG", "") not in ("", "0")


def error_line(message: str) -> str:
    """`tunstack: error: ...` on one line, whatever the message held."""
    return "tunstack: error: " + " ".join(str(message).split())


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `tunstack: error: MESSAGE (see `PROG --help`)`, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(error_line(f"{message} (see `{self.prog} --help`)") + "\n")
        sys.exit(EXIT_USAGE)


# --- shutdown by signal ---------------------------------------------------------------------
class Shutdown:
    def __init__(self, name: str) -> None:
        self.name = name
        self.signum: int | None = None
        self.requested = trio.Event()
        self.waiters = 0
        self.scope = trio.CancelScope()

    def deliver(self, signum: int) -> None:
        if self.signum is not None:              # a second signal: stop waiting for anyone
            self.scope.cancel()
            return
        self.signum = signum
        print(f"tunstack {self.name}: {signal.Signals(signum).name}: shutting down", file=sys.stderr, flush=True)
        self.requested.set()
        if self.waiters:
            self.scope.deadline = min(self.scope.deadline, trio.current_time() + GRACE)
        else:
            self.scope.cancel()


_current: ContextVar[Shutdown] = ContextVar("tunstack_shutdown")


async def until_shutdown() -> int:
    """Wait for SIGINT/SIGTERM/SIGHUP and return its number.  While a task waits here the
    signal does not cancel the command: the caller stops it (within GRACE seconds)."""
    sd = _current.get()
    sd.waiters += 1
    try:
        await sd.requested.wait()
    finally:
        sd.waiters -= 1
    assert sd.signum is not None
    return sd.signum


async def cancel_on_shutdown(scope: trio.CancelScope) -> None:
    """A task that cancels `scope` (not the whole command) when a signal comes."""
    await until_shutdown()
    scope.cancel()


def exit_status(signum: int) -> int:
    return 128 + signum


async def _supervise(sd: Shutdown, runner: Callable[[Any], Awaitable[int]], args: Any) -> int:
    _current.set(sd)
    rc = EXIT_FAILURE
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as n:
            async def watch() -> None:
                async for signum in signals:
                    sd.deliver(signum)
            n.start_soon(watch)
            with sd.scope:
                rc = await runner(args)
            n.cancel_scope.cancel()
    return exit_status(sd.signum) if sd.signum is not None else rc


# --- errors -----------------------------------------------------------------------------------
def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


def describe(exc: BaseException) -> str | None:
    """One line for an error we know how to report, None for a bug (a traceback)."""
    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, subprocess.CalledProcessError):
        cmd = " ".join(map(str, exc.cmd)) if isinstance(exc.cmd, (list, tuple)) else str(exc.cmd)
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return f"`{cmd}` failed (exit {exc.returncode})" + (f": {err.strip()}" if err.strip() else "")
    if isinstance(exc, OSError):
        if exc.filename is not None:
            return f"{exc.filename}: {exc.strerror or exc}" + needs_root_hint(exc)
        if exc.strerror:
            return f"{exc.strerror}" + needs_root_hint(exc)
        return str(exc) or type(exc).__name__
    if isinstance(exc, ValueError):
        return str(exc)
    return None


def needs_root_hint(exc: OSError) -> str:
    import errno
    if exc.errno in (errno.EPERM, errno.EACCES) and os.geteuid() != 0:
        return " (run as root, or with CAP_NET_ADMIN)"
    return ""


def report(exc: BaseException) -> int | None:
    """Print one line for `exc` (or a group of them) and return the exit status; None
    when it is not ours to summarise."""
    leaves = [e for e in _leaves(exc) if not isinstance(e, (trio.Cancelled, KeyboardInterrupt))]
    if not leaves:
        return None
    lines = [describe(e) for e in leaves]
    if any(line is None for line in lines):
        return None
    print(error_line(str(lines[0])), file=sys.stderr, flush=True)
    return EXIT_USAGE if isinstance(leaves[0], UsageError) else EXIT_FAILURE


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):      # piped into head, or closed: no traceback for that
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass


def run_command(name: str, runner: Callable[[Any], Awaitable[int]], args: Any, debug: bool = False) -> int:
    """Run `runner(args)` under trio with the signal handling and error reporting above."""
    sd = Shutdown(name)
    try:
        return trio.run(_supervise, sd, runner, args)
    except KeyboardInterrupt:                     # SIGINT before or after the receiver was open
        print(f"tunstack {name}: SIGINT: shutting down", file=sys.stderr, flush=True)
        return exit_status(signal.SIGINT)
    except (Exception, BaseExceptionGroup) as exc:
        if debug:
            raise
        if sd.signum is not None and all(isinstance(e, (trio.Cancelled, KeyboardInterrupt))
                                         for e in _leaves(exc)):
            return exit_status(sd.signum)
        rc = report(exc)
        if rc is None:
            raise
        return rc
    finally:
        _flush_stdout()


def run_sync_command(name: str, fn: Callable[[], int]) -> int:
    """`fn()` (synchronous) with SIGTERM and SIGHUP delivered as SIGINT, so they unwind
    exactly as Ctrl-C does, inside a nested trio.run too (trio defers SIGINT safely)."""
    got: list[int] = []

    def as_sigint(signum: int, frame: object) -> None:
        got.append(signum)
        os.kill(os.getpid(), signal.SIGINT)

    previous = {s: signal.signal(s, as_sigint) for s in (signal.SIGTERM, signal.SIGHUP)}
    # Ctrl-C's own handler, even where SIGINT came in ignored (a `cmd &` of a script): the
    # SIGINT sent above must raise KeyboardInterrupt, and trio.run defers it safely only then
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return fn()
    except KeyboardInterrupt:
        signum = got[0] if got else signal.SIGINT
        print(f"tunstack {name}: {signal.Signals(signum).name}: shutting down", file=sys.stderr, flush=True)
        return exit_status(signum)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _flush_stdout()
