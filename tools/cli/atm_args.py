"""Option values shared by the `tunstack atm` subcommands (tools/cli/atm*.py)."""
from __future__ import annotations

import argparse
import socket as _pysocket


def hostport(p: argparse.ArgumentParser, opt: str, value: str) -> tuple[str, int]:
    host, sep, port_s = value.rpartition(":")
    if not sep or not host:
        p.error(f"{opt}: expected HOST:PORT, got {value!r}")
    try:
        port = int(port_s)
    except ValueError:
        p.error(f"{opt}: bad port {port_s!r}")
    if not 0 <= port <= 65535:
        p.error(f"{opt}: port {port} out of range")
    try:
        info = _pysocket.getaddrinfo(host, port, _pysocket.AF_INET, _pysocket.SOCK_DGRAM)
    except OSError as exc:
        p.error(f"{opt}: cannot resolve {host!r}: {exc.strerror or exc}")
    addr = info[0][4]   # AF_INET: (address, port)
    return str(addr[0]), int(addr[1])


def line_rate(p: argparse.ArgumentParser, value: str) -> float:
    mult = {"k": 1e3, "m": 1e6, "g": 1e9}.get(value[-1:].lower(), 1.0)
    try:
        rate = float(value[:-1] if mult != 1.0 else value) * mult
    except ValueError:
        p.error(f"--line-rate: bad rate {value!r}")
    if not rate >= 0 or rate == float("inf"):
        p.error("--line-rate must be >= 0 bit/s (0: unpaced)")
    return rate


def rate_text(bps: float) -> str:
    return "unpaced" if bps == 0 else f"{bps / 1e6:g}Mbit/s"
