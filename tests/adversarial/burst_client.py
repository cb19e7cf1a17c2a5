"""A connection burst from the Linux side: N clients connect at once, each sends a few
bytes and waits for their echo (run in the test namespace with `ip netns exec`).

    python3 burst_client.py HOST PORT N DEADLINE

One epoll loop, no asyncio: every socket is created and its non-blocking connect()
started before any completes, so the kernel sends N SYNs back to back.  Prints one JSON
line: ok, resets (ECONNRESET/ECONNREFUSED/EPIPE at any step), timeouts (still pending at
the deadline), other errors, wrong echoes, the time until the last success and until
50/90/99 % of the N were echoed.
Standalone on purpose: it imports nothing from tunstack.
"""
from __future__ import annotations

import errno
import json
import resource
import select
import socket
import sys
import time
from typing import Any

RESETS = (errno.ECONNRESET, errno.ECONNREFUSED, errno.EPIPE)


def main(host: str, port: int, n: int, deadline: float) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    ep = select.epoll()
    socks: dict[int, socket.socket] = {}
    payload: dict[int, bytes] = {}
    got: dict[int, bytes] = {}
    result: dict[str, Any] = {"ok": 0, "resets": 0, "timeouts": 0, "errors": 0, "wrong": 0, "last_ok": 0.0}
    errors: dict[str, int] = {}
    done_at: list[float] = []                   # when each success came, for the percentiles
    start = time.monotonic()

    def finish(fd: int, outcome: str, err: int = 0) -> None:
        result[outcome] += 1
        if outcome == "errors":
            errors[errno.errorcode.get(err, str(err))] = errors.get(errno.errorcode.get(err, str(err)), 0) + 1
        ep.unregister(fd)
        socks.pop(fd).close()

    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((host, port))
        fd = s.fileno()
        socks[fd] = s
        payload[fd] = b"burst %d\n" % i
        got[fd] = b""
        ep.register(fd, select.EPOLLOUT)
        if err not in (0, errno.EINPROGRESS):
            finish(fd, "resets" if err in RESETS else "errors", err)
    result["connects_issued"] = round(time.monotonic() - start, 3)
    sent: set[int] = set()
    while socks:
        left = deadline - (time.monotonic() - start)
        if left <= 0:
            break
        for fd, _events in ep.poll(min(left, 1.0)):
            sock = socks.get(fd)
            if sock is None:
                continue
            s = sock
            if fd not in sent:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    finish(fd, "resets" if err in RESETS else "errors", err)
                    continue
                try:
                    s.send(payload[fd])
                except OSError as exc:
                    finish(fd, "resets" if exc.errno in RESETS else "errors", exc.errno or 0)
                    continue
                sent.add(fd)
                ep.modify(fd, select.EPOLLIN)
                continue
            try:
                data = s.recv(4096)
            except OSError as exc:
                finish(fd, "resets" if exc.errno in RESETS else "errors", exc.errno or 0)
                continue
            got[fd] += data
            if not data or len(got[fd]) >= len(payload[fd]):
                ok = got[fd] == payload[fd]
                if ok:
                    result["last_ok"] = round(time.monotonic() - start, 3)
                    done_at.append(result["last_ok"])
                finish(fd, "ok" if ok else "wrong")
    result["timeouts"] = len(socks)
    result["elapsed"] = round(time.monotonic() - start, 3)
    result["error_kinds"] = errors
    if done_at:                                 # time until half, 90 % and 99 % were echoed
        result["ok_p50"], result["ok_p90"], result["ok_p99"] = (
            done_at[min(int(q * n), len(done_at) - 1)] for q in (0.5, 0.9, 0.99))
    for s in socks.values():
        s.close()
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))), flush=True)
