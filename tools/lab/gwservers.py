"""The servers a gateway's guest reaches in the "internet" namespace of tools/lab/gwtopo.py.

Run there as a script (stdlib only, so any Python will do):
    ip netns exec INTERNET python3 tools/lab/gwservers.py 192.0.2.2
It binds everything, then prints one JSON line `{"ready": true, "http": 80, ...}`:

- HTTP/1.1 on port 80: `GET /bytes/N` answers N bytes of `payload(N)` (seeded pseudo-random,
  so a corrupted, reordered or truncated stream shows in its SHA-256; the header
  `X-SHA256` carries the digest); `POST /upload` reads the body (Content-Length) and answers
  `{"bytes": N, "sha256": "..."}`.
- TCP echo on port 7 with half-close: echoes as data comes, and after the client's FIN sends
  a trailer `EOF <bytes> <sha256>\\n` and only then closes -- the trailer can reach the client
  only if the relay kept the server->client direction open after the client's shutdown.
- UDP echo on port 7: every datagram back to its sender, unchanged.
- Port 9 (discard) is left closed on purpose: TCP and UDP to it are refused.
"""
from __future__ import annotations

import hashlib
import json
import random
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HTTP_PORT = 80
ECHO_PORT = 7
CLOSED_PORT = 9
CHUNK = 1 << 20
MAX_PAYLOAD = 1 << 30          # GET /bytes/N is refused above 1 GiB: the server holds N in memory
_payloads: dict[int, tuple[bytes, str]] = {}
_payload_lock = threading.Lock()


def payload(size: int) -> bytes:
    """The bytes `GET /bytes/SIZE` serves: the same for the same size, in any process."""
    return random.Random(size).randbytes(size)


def _cached_payload(size: int) -> tuple[bytes, str]:
    with _payload_lock:
        if size not in _payloads:
            _payloads.clear()                      # one size at a time: memory stays at most one payload
            data = payload(size)
            _payloads[size] = (data, hashlib.sha256(data).hexdigest())
        return _payloads[size]


class HttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"                # keep-alive, and `Expect: 100-continue` answered

    def log_message(self, format: str, *args: object) -> None:
        return

    def _reply(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        view = memoryview(body)
        for at in range(0, len(view), CHUNK):
            self.wfile.write(view[at:at + CHUNK])

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "bytes" and parts[1].isdigit() and int(parts[1]) <= MAX_PAYLOAD:
            data, digest = _cached_payload(int(parts[1]))
            self._reply(200, data, {"Content-Type": "application/octet-stream", "X-SHA256": digest})
        else:
            self._reply(404, b"not found\n")

    def do_POST(self) -> None:
        if self.path != "/upload" or not self.headers.get("Content-Length", "").isdigit():
            self._reply(400, b"POST /upload with a Content-Length\n")
            return
        left = int(self.headers["Content-Length"])
        digest, got = hashlib.sha256(), 0
        while left > 0:
            chunk = self.rfile.read(min(CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            got += len(chunk)
            left -= len(chunk)
        body = json.dumps({"bytes": got, "sha256": digest.hexdigest()}).encode()
        self._reply(200, body, {"Content-Type": "application/json"})


class EchoHandler(socketserver.BaseRequestHandler):
    """Echo, then the trailer after the client's FIN (see the module docstring)."""

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(120)
        digest, got = hashlib.sha256(), 0
        while data := conn.recv(65536):
            digest.update(data)
            got += len(data)
            conn.sendall(data)
        conn.sendall(f"EOF {got} {digest.hexdigest()}\n".encode())
        conn.shutdown(socket.SHUT_WR)


class ThreadingTcp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def udp_echo(sock: socket.socket) -> None:
    while True:
        data, peer = sock.recvfrom(65535)
        sock.sendto(data, peer)


def main(address: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    ThreadingHTTPServer.address_family = family
    ThreadingTcp.address_family = family
    http = ThreadingHTTPServer((address, HTTP_PORT), HttpHandler)
    http.daemon_threads = True
    echo = ThreadingTcp((address, ECHO_PORT), EchoHandler)
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((address, ECHO_PORT))
    for target in (http.serve_forever, echo.serve_forever):
        threading.Thread(target=target, daemon=True).start()
    print(json.dumps({"ready": True, "http": HTTP_PORT, "echo": ECHO_PORT, "udp": ECHO_PORT,
                      "closed": CLOSED_PORT}), flush=True)
    udp_echo(udp)                          # until the caller kills this process


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0")
