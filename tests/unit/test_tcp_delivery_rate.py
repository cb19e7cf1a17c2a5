"""TCP_INFO's delivery rate for every connection (rate.py; issue 14, point 13): the sample
Linux's tcp_rate_gen keeps -- the last one not app-limited, or an app-limited one showing
a higher rate -- divided when read, as tcp_get_info divides it."""
from __future__ import annotations

import struct

from protocols.tcp import info
from protocols.tcp.rack import SentSegment
from protocols.tcp.rate import RateEstimator
from protocols.tcp.rate_conn import check_app_limited
from protocols.tcp.wire import ACK

from .test_tcp_conn import established

MIN_RTT = 0.01


def flight(r: RateEstimator, size: int, sent: float, acked: float, app_limited: bool = False) -> None:
    """One segment of `size` sent at `sent` into an empty pipe, delivered at `acked`."""
    if app_limited:
        r.mark_app_limited(0)
    seg = SentSegment(0, size, sent, False)
    r.on_sent(seg, sent, 0)
    r.on_delivered(seg, size, acked)
    r.finish(MIN_RTT)


def test_a_new_estimator_reads_zero_and_app_limited() -> None:
    r = RateEstimator()
    assert r.delivery_rate() == 0 and r.rate_app_limited       # Linux tcp_init_sock


def test_the_last_network_limited_sample_is_kept() -> None:
    r = RateEstimator()
    flight(r, 10000, 1.0, 1.1)
    assert (r.delivery_rate(), r.rate_app_limited) == (100000, False)
    flight(r, 2000, 2.0, 2.1)                 # lower, not app-limited: replaces it
    assert (r.delivery_rate(), r.rate_app_limited) == (20000, False)


def test_an_app_limited_sample_is_kept_only_when_higher() -> None:
    r = RateEstimator()
    flight(r, 10000, 1.0, 1.1)
    flight(r, 2000, 2.0, 2.1, app_limited=True)
    assert (r.delivery_rate(), r.rate_app_limited) == (100000, False)
    flight(r, 20000, 3.0, 3.1, app_limited=True)
    assert (r.delivery_rate(), r.rate_app_limited) == (200000, True)


def test_a_sample_shorter_than_min_rtt_is_no_sample() -> None:
    r = RateEstimator()
    flight(r, 10000, 1.0, 1.0 + MIN_RTT / 2)
    assert r.delivery_rate() == 0 and r.rate_delivered == 0


def test_the_rate_divides_by_whole_microseconds() -> None:
    """(the interval rounded to the µs, as Linux measures it)"""
    r = RateEstimator()
    r.rate_delivered, r.rate_interval = 1000, 0.0300004
    assert r.delivery_rate() == 1000 * 1_000_000 // 30000


def test_tcp_info_reports_a_cubic_senders_rate() -> None:
    """End to end on the unit rig: a write into an idle connection is app-limited (Linux
    tcp_rate_check_app_limited at tcp_sendmsg), its ACK 50 ms later gives the rate."""
    rig = established(ts=False, sack=True, peer_ws=7, rtt=0.05)
    c = rig.conn
    assert c.cc.name == "cubic"
    check_app_limited(c)                                # what the socket's write does (usrreq.py)
    rig.send(bytes(10 * c.mss))
    rig.rx(ACK, ack=c.snd_max, win=0xFFFF, at=rig.now + 0.05)
    raw = info.tcp_info(c, rig.now)
    assert struct.unpack_from("=Q", raw, 160)[0] == 10 * c.mss * 20
    assert raw[7] & 1                                   # tcpi_delivery_rate_app_limited
    assert c.info()["delivery_rate"] == 10 * c.mss * 20
