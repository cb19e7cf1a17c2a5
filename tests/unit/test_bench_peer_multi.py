"""The bench's many-connection Linux peers (tools/bench/peer.py source-multi, rr-multi) over
loopback against a threaded stdlib server: every byte counted, fairness computed."""
from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from tools.bench import peer


def test_jain_index() -> None:
    assert peer.jain([5, 5, 5, 5]) == 1.0
    assert peer.jain([8, 0, 0, 0]) == 0.25
    assert peer.jain([0, 0]) == 0.0


class Sink(socketserver.BaseRequestHandler):
    received: ClassVar[list[int]] = []

    def handle(self) -> None:
        n = 0
        while data := self.request.recv(65536):
            n += len(data)
        Sink.received.append(n)


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(64):
                self.request.sendall(data)
        except OSError:     # the client closes with an echo still on its way
            pass


def serve(handler: type[socketserver.BaseRequestHandler]) -> Iterator[int]:
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def sink_port() -> Iterator[int]:
    Sink.received = []
    yield from serve(Sink)


@pytest.fixture
def echo_port() -> Iterator[int]:
    yield from serve(Echo)


def test_source_multi_counts_every_byte(sink_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    peer.main(["source-multi", "127.0.0.1", str(sink_port), "--conns", "4", "--seconds", "0.2"])
    out = json.loads(capsys.readouterr().out)
    assert out["conns"] == 4 and out["unfinished"] == 0
    assert len(Sink.received) == 4 and sum(Sink.received) == out["bytes"] > 0
    assert 0.25 <= out["jain"] <= 1.0


def test_rr_multi_round_trips(echo_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    peer.main(["rr-multi", "127.0.0.1", str(echo_port), "--conns", "5", "--seconds", "0.2"])
    out = json.loads(capsys.readouterr().out)
    assert out["conns"] == 5 and out["count"] > 0 and 0.2 <= out["jain"] <= 1.0
