"""TCP_INFO as Linux fills it and the readiness rules of issue 14 (protocols/tcp/info.py):
the struct's layout, tcpi_ca_state, the peer's segment size, the chrono, writability as
sk_stream_is_writeable with TCP_NOTSENT_LOWAT, and TCP_USER_TIMEOUT -- on one Connection
with the recording host of test_tcp_conn (the scripted tests check the same against Linux)."""
from __future__ import annotations

import errno
import socket
import struct

import pytest

from protocols.tcp import info
from protocols.tcp.ecn import Ecn
from protocols.tcp.state import State
from protocols.tcp.usrreq import SIOCINQ, SIOCOUTQ, SIOCOUTQNSEQ, TcpUserRequests
from protocols.tcp.wire import ACK, PSH
from tests.scripted.runner import TCP_INFO_FIELDS, TCP_INFO_LEN

from .test_tcp_conn import ISS, established


def field(raw: bytes, name: str) -> int:
    off, fmt = TCP_INFO_FIELDS[name]
    value: int = struct.unpack_from("=" + fmt, raw, off)[0]
    return value


def test_the_struct_is_linux_6_18s() -> None:
    rig = established()
    raw = info.tcp_info(rig.conn, rig.now)
    assert len(raw) == TCP_INFO_LEN == 280
    # the harness's offsets (from linux/tcp.h) read what the packer wrote
    assert field(raw, "tcpi_state") == State.ESTABLISHED
    assert field(raw, "tcpi_snd_mss") == rig.conn.mss
    assert field(raw, "tcpi_snd_ssthresh") == info.TCP_INFINITE_SSTHRESH
    assert field(raw, "tcpi_max_pacing_rate") == (1 << 64) - 1
    assert field(raw, "tcpi_snd_wnd") == rig.conn.snd_wnd
    assert field(raw, "tcpi_rcv_space") == 10 * rig.conn.our_mss
    assert field(raw, "tcpi_min_rtt") == 50000


def test_an_unconnected_socket_has_no_rtt_and_no_ages() -> None:
    from .test_tcp_conn import Rig
    rig = Rig()
    raw = info.tcp_info(rig.conn, rig.now)
    assert field(raw, "tcpi_state") == State.CLOSED
    assert field(raw, "tcpi_min_rtt") == 0xFFFFFFFF
    assert field(raw, "tcpi_rto") == 1000000
    assert field(raw, "tcpi_last_data_recv") == field(raw, "tcpi_rcv_space") == 0


def test_ca_state_follows_the_connection() -> None:
    rig = established()
    c = rig.conn
    assert info.ca_state(c) == info.CA_OPEN
    c.dupacks = 1
    assert info.ca_state(c) == info.CA_DISORDER
    c.ecn = Ecn()
    c.ecn.enter_cwr(c.snd_max)               # CWR outranks Disorder (Linux tcp_try_to_open)
    assert info.ca_state(c) == info.CA_CWR
    c.in_recovery = True
    assert info.ca_state(c) == info.CA_RECOVERY
    c.rto_recovery = True
    assert info.ca_state(c) == info.CA_LOSS


def test_rto_counts_in_segments_and_loss() -> None:
    rig = established(ts=False)
    rig.send(bytes(4380))                    # three full segments
    raw = info.tcp_info(rig.conn, rig.now)
    assert (field(raw, "tcpi_unacked"), field(raw, "tcpi_lost"), field(raw, "tcpi_retrans")) == (3, 0, 0)
    assert field(raw, "tcpi_bytes_sent") == 4380 and field(raw, "tcpi_data_segs_out") == 3
    rig.poll_next()                          # the RTO: one segment again, all taken as lost
    raw = info.tcp_info(rig.conn, rig.now)
    assert field(raw, "tcpi_ca_state") == info.CA_LOSS
    assert (field(raw, "tcpi_unacked"), field(raw, "tcpi_lost"), field(raw, "tcpi_retrans")) == (3, 3, 1)
    assert field(raw, "tcpi_bytes_retrans") == 1460
    rig.rx(ACK, ack=ISS + 1 + 4380)
    raw = info.tcp_info(rig.conn, rig.now)
    assert field(raw, "tcpi_ca_state") == info.CA_OPEN
    assert (field(raw, "tcpi_unacked"), field(raw, "tcpi_lost"), field(raw, "tcpi_retrans")) == (0, 0, 0)


@pytest.mark.parametrize(("sizes", "flags", "expected"), [
    ([1460], 0, 1460),                       # a segment at least the estimate sets it
    ([500], 0, 536),                         # one smaller segment: not yet
    ([500, 500], 0, 500),                    # two equal ones: that is the peer's size
    ([500, 500], PSH, 536),                  # a write's tail (PSH) never counts
    ([60, 60], 0, 536),                      # too small to be a segment size (Linux TCP_MIN_MSS)
])
def test_rcv_mss_is_linux_estimate(sizes: list[int], flags: int, expected: int) -> None:
    rig = established(ts=False)
    assert rig.conn.rcv_mss == 536           # tcp_initialize_rcv_mss: min(..., TCP_MSS_DEFAULT)
    for size in sizes:
        rig.rx(ACK | flags, payload=bytes(size))
    assert rig.conn.rcv_mss == expected


def test_the_last_ages_in_milliseconds() -> None:
    rig = established()
    rig.rx(ACK | PSH, payload=bytes(100), at=rig.now + 0.25)
    rig.send(bytes(10))
    rig.rx(ACK, ack=ISS + 11, at=rig.now + 0.1)
    raw = info.tcp_info(rig.conn, rig.now + 0.5)
    assert field(raw, "tcpi_last_data_recv") == 600
    assert field(raw, "tcpi_last_data_sent") == 600
    assert field(raw, "tcpi_last_ack_recv") == 500
    assert field(raw, "tcpi_ato") == 40000


def test_busy_time_runs_while_data_is_unacked() -> None:
    rig = established()
    rig.send(bytes(1000))
    rig.rx(ACK, ack=ISS + 1001, at=rig.now + 0.2)
    raw = info.tcp_info(rig.conn, rig.now + 5)
    assert field(raw, "tcpi_busy_time") == 200000
    assert field(raw, "tcpi_rwnd_limited") == field(raw, "tcpi_sndbuf_limited") == 0


def test_rwnd_limited_time() -> None:
    rig = established(win=0)
    rig.send(bytes(1000))                    # a zero window: nothing goes
    rig.rx(ACK, win=0xFFFF, at=rig.now + 0.3)
    raw = info.tcp_info(rig.conn, rig.now)
    assert field(raw, "tcpi_rwnd_limited") == 300000
    assert field(raw, "tcpi_busy_time") == 300000


# --- writability (issue 14, point 9) -------------------------------------------------------
def test_writable_only_with_a_third_of_the_buffer_free() -> None:
    rig = established(win=0)                 # a closed window: what is written stays queued
    c = rig.conn
    c.snd.capacity = 3000
    c.send(memoryview(bytes(3000)), rig.now)
    assert not info.stream_writeable(c)
    c.snd.consume(999)                       # Linux sk_stream_wspace >= sk_stream_min_wspace:
    assert not info.stream_writeable(c)      # free 999 < queued 2001 / 2
    c.snd.consume(1)
    assert info.stream_writeable(c)          # free 1000 >= 2000 / 2


def test_notsent_lowat_limits_writability() -> None:
    rig = established(win=0)
    c = rig.conn
    c.notsent_lowat = 1000
    c.send(memoryview(bytes(499)), rig.now)
    assert info.stream_writeable(c)          # 2 * 499 < 1000
    c.send(memoryview(bytes(1)), rig.now)
    assert not info.stream_writeable(c)
    c.notsent_lowat = 0                      # the sysctl again: UINT_MAX, no limit
    assert info.stream_writeable(c)
    rig.config.notsent_lowat = 100           # net.ipv4.tcp_notsent_lowat
    assert not info.stream_writeable(c)


# --- options and ioctls ---------------------------------------------------------------------
class _Tcp:
    """What TcpUserRequests reaches of the protocol for options and ioctls: nothing."""


def test_options_and_their_errnos() -> None:
    rig = established()
    requests = TcpUserRequests(_Tcp())       # type: ignore[arg-type]
    c = rig.conn
    set_, get = (lambda n, v: requests.setsockopt(c, socket.IPPROTO_TCP, n, v, rig.now),
                 lambda n: requests.getsockopt(c, socket.IPPROTO_TCP, n, rig.now))
    assert get(socket.TCP_USER_TIMEOUT) == 0 and get(socket.TCP_NOTSENT_LOWAT) == 0 and get(36) == 0
    assert set_(socket.TCP_USER_TIMEOUT, -1) == errno.EINVAL
    assert set_(socket.TCP_USER_TIMEOUT, 2500) == 0 and c.user_timeout == 2.5
    assert get(socket.TCP_USER_TIMEOUT) == 2500
    assert set_(socket.TCP_NOTSENT_LOWAT, -1) == 0 and get(socket.TCP_NOTSENT_LOWAT) == -1
    assert c.notsent_lowat == 0xFFFFFFFF
    assert set_(36, 2) == errno.EINVAL and set_(36, 1) == 0 and get(36) == 1
    raw = get(socket.TCP_INFO)
    assert isinstance(raw, bytes) and len(raw) == 280


def test_ioctls() -> None:
    rig = established(win=0)
    requests = TcpUserRequests(_Tcp())       # type: ignore[arg-type]
    c = rig.conn
    rig.rx(ACK | PSH, payload=bytes(700), win=0)
    c.send(memoryview(bytes(1000)), rig.now)
    assert requests.ioctl(c, SIOCINQ, rig.now) == 700
    assert requests.ioctl(c, SIOCOUTQ, rig.now) == 1000
    assert requests.ioctl(c, SIOCOUTQNSEQ, rig.now) == 1000
    assert requests.ioctl(c, 0x1234, rig.now) == -errno.ENOTTY
    c.state = State.LISTEN
    assert requests.ioctl(c, SIOCINQ, rig.now) == -errno.EINVAL


# --- TCP_USER_TIMEOUT (RFC 5482) ------------------------------------------------------------
def test_user_timeout_drops_by_time_not_by_count() -> None:
    rig = established()
    c = rig.conn
    c.user_timeout = 1.0
    rig.send(bytes(100))
    sent_at = rig.now
    first_rto = c.rto_at
    assert first_rto is not None
    rig.poll(first_rto)                      # the first RTO copy starts the clock
    assert c.retrans_stamp == first_rto
    while c.state != State.CLOSED:
        rig.poll_next()
    assert rig.now == pytest.approx(first_rto + 1.0)    # the backed-off RTO was clamped to it
    assert c.so_error == errno.ETIMEDOUT
    assert rig.now - sent_at < 2                         # far before tcp_retries2's 15 copies


def test_user_timeout_restarts_on_progress() -> None:
    rig = established()
    c = rig.conn
    c.user_timeout = 1.0
    rig.send(bytes(100))
    assert c.rto_at is not None
    rig.poll(c.rto_at)
    assert c.retrans_stamp is not None
    rig.rx(ACK, ack=ISS + 101)
    assert c.retrans_stamp is None


def test_rto_statistics() -> None:
    rig = established()
    rig.send(bytes(100))
    assert rig.conn.rto_at is not None
    start = rig.conn.rto_at
    rig.poll(start)
    rig.poll_next()                          # two RTOs, one recovery
    raw = info.tcp_info(rig.conn, rig.now + 0.1)
    assert (field(raw, "tcpi_total_rto"), field(raw, "tcpi_total_rto_recoveries")) == (2, 1)
    assert field(raw, "tcpi_total_rto_time") == round((rig.now + 0.1 - start) * 1000)
    rig.rx(ACK, ack=ISS + 101, at=rig.now + 0.1)
    later = info.tcp_info(rig.conn, rig.now + 5)
    assert field(later, "tcpi_total_rto_time") == field(raw, "tcpi_total_rto_time")   # ended by the ACK
    assert field(later, "tcpi_retransmits") == 0
