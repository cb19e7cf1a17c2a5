"""Third-party trio servers for the tests that run them over a stack (issue 10 point 12):
an ASGI hello app served by hypercorn's trio worker, an anyio TCP listener under the trio
backend, and an h11 server on trio.serve_tcp.  Each answers GET with a body naming it."""
from __future__ import annotations

from typing import Any

import anyio
import h11
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

HYPERCORN_BODY = b"hello from hypercorn over tunstack\n"
ANYIO_BODY = b"hello from an anyio listener over tunstack\n"
H11_BODY = b"hello from h11 on trio.serve_tcp over tunstack\n"


async def asgi_hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(HYPERCORN_BODY)).encode())]})
    await send({"type": "http.response.body", "body": HYPERCORN_BODY})


async def run_hypercorn(bind: str, stop: trio.Event, *,
                        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """hypercorn's trio worker, with its own stdlib sockets (config.create_sockets)."""
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.graceful_timeout = 1
    await hypercorn_serve(asgi_hello, config, shutdown_trigger=stop.wait,  # type: ignore[arg-type]
                          task_status=task_status)


async def _anyio_handler(stream: Any) -> None:
    async with stream:
        got = b""
        while b"\r\n\r\n" not in got:
            got += await stream.receive()
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(ANYIO_BODY), ANYIO_BODY))


async def run_anyio(host: str | None, port: int, *,
                    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    """anyio.create_tcp_listener (stdlib sockets wrapped by trio.socket.from_stdlib_socket)."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    task_status.started(listener)
    async with listener:
        await listener.serve(_anyio_handler)


async def h11_hello(stream: trio.SocketStream) -> None:
    """h11's example server in short: every event goes out with send_all, including the
    b"" of an EndOfMessage with Content-Length, which needs fileno() != -1."""
    conn = h11.Connection(h11.SERVER)
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
            continue
        if isinstance(event, h11.Request):
            continue
        if isinstance(event, h11.EndOfMessage):
            await stream.send_all(conn.send(h11.Response(status_code=200, headers=[
                ("Content-Length", str(len(H11_BODY))), ("Connection", "close")])))
            await stream.send_all(conn.send(h11.Data(data=H11_BODY)))
            await stream.send_all(conn.send(h11.EndOfMessage()))   # b""
            await stream.wait_send_all_might_not_block()
            await stream.send_eof()
            return
        return


def body_of(response: bytes) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response read to EOF, Content-Length framed."""
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int({k.strip().lower(): v for k, v in fields.items()}[b"content-length"])
    assert len(body) == length, (len(body), length)
    return status, body
