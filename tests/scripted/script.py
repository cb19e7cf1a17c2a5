"""The script format (README.md): one event per line, each at a time relative to the
previous line (`+0.1`) or to the start (`0.25`).

An event is an injected segment (`<`), an expected segment (`>`) or a socket call
(`name(args) = result`).  Comments run from `//` or `#` to the end of the line.
Parsing is all-or-nothing: a line it cannot read raises ScriptSyntaxError naming it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .segment import ScriptSyntaxError, SegmentSpec, parse_segment

# `[alias =] name(args) = result [ERRNO] [(text)]`
_CALL = re.compile(r"^(?:(?P<alias>[A-Za-z_]\w*)\s*=\s*)?(?P<name>[a-z_]\w*)\((?P<args>.*)\)\s*="
                   r"\s*(?P<result>-?\d+)(?:\s+(?P<errno>E[A-Z0-9]+))?\s*(?:\(.*\))?\s*$")
_TIME = re.compile(r"^(?P<rel>\+)?(?P<t>\d*\.?\d+)\s+(?P<rest>.*)$")


@dataclass
class Event:
    lineno: int
    time: float             # seconds from the script's start
    text: str               # the line as written (without time and comment)


@dataclass
class Inject(Event):
    segment: SegmentSpec = field(default_factory=lambda: SegmentSpec(0))


@dataclass
class Expect(Event):
    segment: SegmentSpec = field(default_factory=lambda: SegmentSpec(0))


@dataclass
class Call(Event):
    name: str = ""
    args: list[str] = field(default_factory=list)
    result: int = 0
    errno: str | None = None    # expected errno name when result is -1
    alias: str | None = None    # `s = socket(...)`: the descriptor's name besides its number


@dataclass
class Script:
    name: str
    events: list[Event]
    # `// sysctl net.ipv4.tcp_ecn=1` lines among the leading comments: set in the Linux
    # namespace, and mapped onto TcpConfig for tunstack (backends.TUNSTACK_SYSCTLS)
    sysctls: dict[str, str] = field(default_factory=dict)


_SYSCTL = re.compile(r"^//\s*sysctl\s+(?P<key>[\w.]+)\s*=\s*(?P<value>\S+)\s*$")


def leading_sysctls(text: str) -> dict[str, str]:
    """The `// sysctl KEY=VALUE` lines of a script's leading comment block."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("//"):
            break
        m = _SYSCTL.match(line)
        if m is not None:
            out[m["key"]] = m["value"]
    return out


def split_args(text: str) -> list[str]:
    """Split on commas outside brackets: `3, SOL_TCP, TCP_INFO, {a=1, b=2}, [104]`."""
    out: list[str] = []
    depth, cur = 0, list[str]()
    for c in text:
        if c in "[{(":
            depth += 1
        elif c in "]})":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _strip_comment(line: str) -> str:
    for mark in ("//", "#"):
        i = line.find(mark)
        if i >= 0:
            line = line[:i]
    return line.strip()


def parse_line(lineno: int, line: str, prev_time: float) -> Event | None:
    text = _strip_comment(line)
    if not text:
        return None
    m = _TIME.match(text)
    if m is None:
        raise ScriptSyntaxError(f"line {lineno}: no time at the start: {line.strip()!r}")
    t = float(m["t"]) + (prev_time if m["rel"] else 0.0)
    if t < prev_time:
        raise ScriptSyntaxError(f"line {lineno}: time goes backwards ({t} < {prev_time})")
    rest = m["rest"].strip()
    try:
        if rest.startswith(("<", ">")):
            spec = parse_segment(rest[1:])
            cls = Inject if rest[0] == "<" else Expect
            return cls(lineno, t, rest, spec)
        c = _CALL.match(rest)
        if c is None:
            raise ScriptSyntaxError(f"cannot read {rest!r}")
        result = int(c["result"])
        if result == -1 and c["errno"] is None:
            raise ScriptSyntaxError("a -1 result needs its errno (`= -1 ECONNREFUSED`)")
        return Call(lineno, t, rest, c["name"], split_args(c["args"]), result, c["errno"], c["alias"])
    except ScriptSyntaxError as e:
        raise ScriptSyntaxError(f"line {lineno}: {e}") from None


def parse_script(text: str, name: str = "<script>") -> Script:
    events: list[Event] = []
    prev = 0.0
    for lineno, line in enumerate(text.splitlines(), 1):
        ev = parse_line(lineno, line, prev)
        if ev is not None:
            events.append(ev)
            prev = ev.time
    if not events:
        raise ScriptSyntaxError(f"{name}: no events")
    return Script(name, events, leading_sysctls(text))


def load_script(path: str | Path) -> Script:
    p = Path(path)
    return parse_script(p.read_text(), p.name)
