"""Third-party trio servers over a stack, fetched by Linux `curl` from the namespace
(issue 10 point 12): hypercorn's trio worker serving an ASGI app, an anyio TCP listener
under the trio backend, and an h11 server on trio.serve_tcp -- the first two build stdlib
sockets that tunstack_sockets() adopts, the last needs fileno() != -1 on a live socket."""
from __future__ import annotations

import subprocess

import trio

from stack.trio_compat import tunstack_sockets
from tests.third_party_servers import (
    ANYIO_BODY,
    H11_BODY,
    HYPERCORN_BODY,
    h11_hello,
    run_anyio,
    run_hypercorn,
)

from .conftest import STACK_IP, Peer, require_real_peer


async def curl(peer: Peer, url: str, *extra: str) -> subprocess.CompletedProcess:
    with trio.fail_after(30):
        return await trio.run_process(peer.exec("curl", "-sS", "-m", "10", *extra, url), capture_stdout=True,
                                      capture_stderr=True, check=False)


async def test_hypercorn_anyio_and_h11_answer_curl(tun_peer: Peer) -> None:
    require_real_peer("curl")
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        with tunstack_sockets(tun_peer.stack):
            binds = await nursery.start(run_hypercorn, f"{STACK_IP}:8000", stop)
            await nursery.start(run_anyio, STACK_IP, 8001)
            await nursery.start(trio.serve_tcp, h11_hello, 8002)
        assert binds == [f"http://{STACK_IP}:8000"]
        for port, body in ((8000, HYPERCORN_BODY), (8001, ANYIO_BODY), (8002, H11_BODY)):
            r = await curl(tun_peer, f"http://{STACK_IP}:{port}/", "-w", "%{http_code}")
            assert r.returncode == 0, (port, r.stderr)
            assert r.stdout == body + b"200", (port, r.stdout)
        # hypercorn keeps the connection: three requests on one
        url = f"http://{STACK_IP}:8000/"
        r = await curl(tun_peer, url, "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                       "-w", "%{http_code} %{num_connects}\\n", url, url)
        assert r.stdout.split(b"\n")[:3] == [b"200 1", b"200 0", b"200 0"], r.stderr
        stop.set()
        nursery.cancel_scope.cancel()
