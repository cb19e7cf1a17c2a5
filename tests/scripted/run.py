"""Run one script against one backend: `python -m tests.scripted.run FILE [--backend tunstack|linux] [-v]`."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from typing import Any

import trio
import trio.testing

from .backends import linux_backend, tunstack_backend
from .runner import Runner, ScriptFailure
from .script import Script, load_script


async def _run(make_backend: Callable[[], AbstractAsyncContextManager[Any]], script: Script,
               log: list[str]) -> None:
    async with make_backend() as backend:
        runner = Runner(script, backend)
        try:
            await runner.run()
        finally:
            log[:] = runner.log


def _script_failure(group: BaseExceptionGroup) -> ScriptFailure | None:
    """The ScriptFailure inside trio's nested exception groups, if that is all they hold."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            leaves.append(e)

    walk(group)
    return leaves[0] if len(leaves) == 1 and isinstance(leaves[0], ScriptFailure) else None


def run_script(path: str | Path, backend: str, log: list[str] | None = None) -> None:
    """Run `path` against `backend` ("tunstack": mock clock; "linux": real time, root);
    raises ScriptFailure on the first difference."""
    script = load_script(path)
    log = log if log is not None else []
    try:
        if backend == "tunstack":
            trio.run(partial(_run, partial(tunstack_backend, sysctls=script.sysctls), script, log),
                     clock=trio.testing.MockClock(autojump_threshold=0))
        elif backend == "linux":
            trio.run(partial(_run, partial(linux_backend, script.sysctls), script, log))
        else:
            raise ValueError(f"unknown backend {backend!r}")
    except BaseExceptionGroup as group:
        failure = _script_failure(group)
        if failure is None:
            raise
        raise failure from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.scripted.run", description=__doc__)
    ap.add_argument("scripts", nargs="+")
    ap.add_argument("--backend", choices=("tunstack", "linux", "both"), default="both")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every segment and call")
    args = ap.parse_args(argv)
    failed = 0
    for path in args.scripts:
        for backend in (("tunstack", "linux") if args.backend == "both" else (args.backend,)):
            log: list[str] = []
            try:
                run_script(path, backend, log)
                verdict = "pass"
            except ScriptFailure as e:
                verdict, failed = f"FAIL\n{e}", failed + 1
            if args.verbose:
                print("\n".join(log))
            print(f"{Path(path).name} [{backend}]: {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
