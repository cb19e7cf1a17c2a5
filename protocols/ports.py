"""Ephemeral ports, shared by UDP and TCP: Linux's ip_local_port_range, searched
round-robin from a random start so consecutive sockets get different ports."""
from __future__ import annotations

import random
from collections.abc import Iterator

EPHEMERAL = (32768, 60999)


class EphemeralPorts:
    def __init__(self, rng: random.Random) -> None:
        self.low, self.high = EPHEMERAL
        self.next = rng.randrange(self.low, self.high + 1)

    def candidates(self) -> Iterator[int]:
        """Every port of the range once, from where the last pick left off."""
        span = self.high - self.low + 1
        for i in range(span):
            yield self.low + (self.next - self.low + i) % span

    def taken(self, port: int) -> None:
        self.next = port + 1 if port < self.high else self.low
