"""TCP Fast Open's sans-IO parts (protocols/tcp/fastopen.py): the option, cookies, the
client's cookie cache and the server's policy, as Linux's tcp_fastopen.c decides."""
from __future__ import annotations

import pytest

from protocols.tcp.config import TcpConfig
from protocols.tcp.fastopen import (
    CACHE_MAX,
    COOKIE_LEN,
    CookieCache,
    CookieJar,
    FastOpen,
    FastOpenQueue,
)
from protocols.tcp.stats import TcpStats
from protocols.tcp.wire import SYN, TcpRepr
from protocols.tcp.wire import fastopen_option as option_bytes
from protocols.tcp.wire import parse_fastopen as parse_option

KEY = bytes(range(16))
CLIENT, SERVER = 0xC0000202, 0xC0000201
CLIENT6 = 0x20010DB8 << 96 | 2


def policy(flags: int) -> FastOpen:
    return FastOpen(KEY, TcpConfig(fastopen=flags))


# --- the option (RFC 7413 §4.1.1, and the experimental kind 254) ------------------------------
@pytest.mark.parametrize(("kind", "body", "want"), [
    (34, b"", (b"", False)),                               # a cookie request
    (34, bytes(8), (bytes(8), False)),
    (34, bytes(4), (bytes(4), False)),                     # the shortest cookie
    (34, bytes(16), (bytes(16), False)),                   # the longest
    (34, bytes(5), (None, False)),                         # odd: not a cookie (taken as absent)
    (34, bytes(2), (None, False)),                         # too short
    (34, bytes(18), (None, False)),                        # too long
    (254, b"\xf9\x89", (b"", True)),
    (254, b"\xf9\x89" + bytes(8), (bytes(8), True)),
    (254, b"\x12\x34" + bytes(8), (None, False)),          # another experiment's option
    (254, b"\xf9", (None, False)),
])
def test_parse_option(kind: int, body: bytes, want: tuple[bytes | None, bool]) -> None:
    assert parse_option(kind, body) == want


def test_option_layout_is_linuxs() -> None:
    # kind, length, cookie, then NOPs to a 4-octet boundary (tcp_options_write)
    assert option_bytes(b"", False) == bytes((34, 2, 1, 1))
    assert option_bytes(bytes(range(8)), False) == bytes((34, 10, *range(8), 1, 1))
    assert option_bytes(b"", True) == bytes((254, 4, 0xF9, 0x89))
    assert option_bytes(bytes(4), True) == bytes((254, 8, 0xF9, 0x89, 0, 0, 0, 0))


@pytest.mark.parametrize(("cookie", "exp"), [(b"", False), (bytes(range(8)), False), (b"abcd", True)])
def test_header_round_trip(cookie: bytes, exp: bool) -> None:
    seg = TcpRepr(1, 2, 3, 0, SYN, 65535, mss=1460, sack_perm=True, ts=(5, 0), wscale=7,
                  fastopen=cookie, fastopen_exp=exp)
    opts = seg.options_bytes()
    assert len(opts) <= 40 and len(opts) % 4 == 0
    frame = bytearray(20 + len(opts))
    seg.emit(frame, opts)
    parsed = TcpRepr.parse(frame)
    assert isinstance(parsed, TcpRepr)
    assert (parsed.fastopen, parsed.fastopen_exp, parsed.mss, parsed.wscale) == (cookie, exp, 1460, 7)


def test_no_option_parses_as_none() -> None:
    frame = bytearray(24)
    TcpRepr(1, 2, 3, 0, SYN, 65535).emit(frame, bytes((2, 4, 5, 0xB4)))
    parsed = TcpRepr.parse(frame)
    assert isinstance(parsed, TcpRepr) and parsed.fastopen is None


# --- cookies (RFC 7413 §4.1.2) ----------------------------------------------------------------
def test_cookie_is_a_mac_of_the_addresses() -> None:
    jar = CookieJar(KEY)
    cookie = jar.make(CLIENT, SERVER)
    assert len(cookie) == COOKIE_LEN
    assert jar.make(CLIENT, SERVER) == cookie                   # no ports, no time: one per client
    assert jar.valid(cookie, CLIENT, SERVER)
    assert not jar.valid(cookie, CLIENT + 1, SERVER)            # another client
    assert not jar.valid(cookie, CLIENT, SERVER + 1)            # another of our addresses
    assert not CookieJar(bytes(16)).valid(cookie, CLIENT, SERVER)   # another key
    assert not jar.valid(cookie[:4], CLIENT, SERVER)            # a prefix is no cookie
    assert not jar.valid(b"", CLIENT, SERVER)


def test_cookie_families_never_meet() -> None:
    jar = CookieJar(KEY)
    assert jar.make(CLIENT, SERVER, v6=True) != jar.make(CLIENT, SERVER)
    assert not jar.valid(jar.make(CLIENT, SERVER), CLIENT, SERVER, v6=True)
    assert jar.valid(jar.make(CLIENT6, 1, v6=True), CLIENT6, 1, v6=True)


# --- the client's cache ---------------------------------------------------------------------
def test_cache_is_lru_bounded() -> None:
    cache = CookieCache(limit=2)
    cache.learn(False, 1, 1460, b"one1", False, 0)
    cache.learn(False, 2, 1460, b"two2", False, 0)
    assert cache.get(False, 1) is not None                      # 1 is now the most recent
    cache.learn(False, 3, 1460, b"thr3", False, 0)              # evicts 2, the least recent
    assert cache.get(False, 2) is None
    assert [e.cookie for e in (cache.get(False, 1), cache.get(False, 3)) if e] == [b"one1", b"thr3"]
    assert len(cache.entries) == 2
    assert CookieCache().limit == CACHE_MAX


def test_cache_keys_by_family() -> None:
    cache = CookieCache()
    cache.learn(True, 5, 1440, b"six6", False, 0)
    assert cache.get(False, 5) is None
    entry = cache.get(True, 5)
    assert entry is not None and (entry.cookie, entry.mss) == (b"six6", 1440)


def test_cache_keeps_the_cookie_when_a_synack_brings_none() -> None:
    cache = CookieCache()
    cache.learn(False, 1, 1460, b"keep", False, 0)
    cache.learn(False, 1, 0, None, False, 1)
    entry = cache.get(False, 1)
    assert entry is not None and (entry.cookie, entry.mss, entry.try_exp) == (b"keep", 1460, 0)


def test_client_start_by_flags() -> None:
    fo = policy(1)
    tfo = fo.client_start(False, SERVER)
    assert (tfo.cookie, tfo.with_data, tfo.exp, tfo.room(1460)) == (b"", False, False, 0)   # a request
    fo.cache.learn(False, SERVER, 1400, b"cookie12", False, 0)
    tfo = fo.client_start(False, SERVER)
    assert (tfo.cookie, tfo.with_data) == (b"cookie12", True)
    assert tfo.room(1460) == 1400 - 40                          # the cached MSS, less option space
    assert tfo.room(1000) == 1000 - 40                          # ours when smaller
    tfo = policy(0x5).client_start(False, SERVER)               # 0x4: data, no option
    assert (tfo.cookie, tfo.with_data, tfo.room(1460)) == (None, True, 1420)


def test_client_tries_the_experimental_option_after_a_failed_request() -> None:
    """Linux try_exp: a request that brought no cookie is made next with kind 254; one that
    fails with it too goes back to kind 34 for good."""
    fo = policy(1)
    first = fo.client_start(False, SERVER)
    fo.client_synack(first, None, False, 1460, retransmitted=False)
    second = fo.client_start(False, SERVER)
    assert (second.cookie, second.exp) == (b"", True)
    fo.client_synack(second, None, False, 1460, retransmitted=False)
    third = fo.client_start(False, SERVER)
    assert (third.cookie, third.exp) == (b"", False)
    fo.client_synack(third, None, False, 1460, retransmitted=False)
    assert fo.client_start(False, SERVER).exp is False


def test_client_after_a_retransmitted_syn_keeps_the_option_kind() -> None:
    fo = policy(1)
    fo.client_synack(fo.client_start(False, SERVER), None, False, 1460, retransmitted=True)
    assert fo.client_start(False, SERVER).exp is False


def test_client_learns_the_experimental_cookie() -> None:
    fo = policy(1)
    fo.client_synack(fo.client_start(False, SERVER), b"expcookie!", True, 1460, retransmitted=False)
    tfo = fo.client_start(False, SERVER)
    assert (tfo.cookie, tfo.exp, tfo.with_data) == (b"expcookie!", True, True)


# --- the server (Linux tcp_try_fastopen) ---------------------------------------------------------------
def test_server_off_or_without_tcp_fastopen_is_a_normal_handshake() -> None:
    stats = TcpStats()
    queue = FastOpenQueue(4)
    assert policy(1).server_syn(queue, b"", False, 10, CLIENT, SERVER, False, stats) is None   # no 0x2
    assert policy(3).server_syn(None, b"", False, 10, CLIENT, SERVER, False, stats) is None    # no TCP_FASTOPEN
    assert policy(3).server_syn(FastOpenQueue(0), b"", False, 10, CLIENT, SERVER, False, stats) is None
    assert policy(3).server_syn(queue, None, False, 0, CLIENT, SERVER, False, stats) is None   # a plain SYN
    assert policy(3).server_syn(queue, None, False, 10, CLIENT, SERVER, False, stats) is None  # data, no cookie
    assert stats.fastopen_cookie_reqd == 3


def test_server_cookie_request_valid_and_invalid() -> None:
    fo, stats, queue = policy(3), TcpStats(), FastOpenQueue(4)
    valid = fo.cookies.make(CLIENT, SERVER)
    verdict = fo.server_syn(queue, b"", True, 0, CLIENT, SERVER, False, stats)
    assert verdict is not None and (verdict.accept_data, verdict.cookie, verdict.exp) == (False, valid, True)
    verdict = fo.server_syn(queue, valid, False, 10, CLIENT, SERVER, False, stats)
    assert verdict is not None and (verdict.accept_data, verdict.cookie) == (True, None)
    verdict = fo.server_syn(queue, bytes(8), False, 10, CLIENT, SERVER, False, stats)
    assert verdict is not None and (verdict.accept_data, verdict.cookie) == (False, valid)
    assert (stats.fastopen_cookie_reqd, stats.fastopen_passive_fail) == (1, 1)


def test_server_without_cookies_0x200() -> None:
    fo, stats = policy(0x203), TcpStats()
    for cookie in (None, b"", bytes(8)):
        verdict = fo.server_syn(FastOpenQueue(1), cookie, False, 10, CLIENT, SERVER, False, stats)
        assert verdict is not None and (verdict.accept_data, verdict.cookie) == (True, None)


def test_server_queue_limit() -> None:
    fo, stats = policy(0x203), TcpStats()
    queue = FastOpenQueue(1, qlen=1)
    assert fo.server_syn(queue, None, False, 10, CLIENT, SERVER, False, stats) is None
    assert fo.server_syn(queue, b"", False, 0, CLIENT, SERVER, False, stats) is None   # not even a cookie
    assert stats.fastopen_listen_overflow == 2
    queue.qlen = 0
    assert fo.server_syn(queue, None, False, 10, CLIENT, SERVER, False, stats) is not None


def test_listen_queue_0x400() -> None:
    assert policy(0x3).listen_queue(None, 16) is None
    queue = policy(0x402).listen_queue(None, 16)
    assert queue is not None and queue.max_qlen == 16
    mine = FastOpenQueue(3)
    assert policy(0x402).listen_queue(mine, 16) is mine         # TCP_FASTOPEN set: kept


def test_flags_follow_the_config() -> None:
    config = TcpConfig()
    fo = FastOpen(KEY, config)
    assert config.fastopen == 1 and fo.client                   # Linux's default: client only
    config.fastopen = 0
    assert not fo.client
