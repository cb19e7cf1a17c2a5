"""Probes the demo parts share: a series of pings, an HTTP GET of the pattern body."""
from __future__ import annotations

import socket
from typing import Any

from tools.services.http import pattern_bytes


async def ping_series(st: Any, dst: str, count: int, size: int) -> tuple[bool, str]:
    """`count` ICMP echoes from stack `st` to `dst`: (none failed, the round trips and errors)."""
    rtts, errors = [], []
    for _ in range(count):
        try:
            rtts.append(await st.ping(dst, size=size, timeout=3))
        except OSError as exc:
            errors.append(str(exc))
    detail = ", ".join(f"{r * 1000:.3f} ms" for r in rtts) + ("; " + "; ".join(errors) if errors else "")
    return not errors, detail


async def http_get_pattern(st: Any, ip: str, n: int) -> tuple[bool, int]:
    """GET /bytes/n (Connection: close) from the HTTP service of tools.services at ip:80:
    (a 200 came with the right pattern body, the body's length)."""
    with st.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        await s.connect((ip, 80))
        await s.sendall(f"GET /bytes/{n} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        while chunk := await s.recv(65536):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head.startswith(b"HTTP/1.1 200 ") and body == pattern_bytes(0, n), len(body)
