"""Path-MTU probing's search (protocols/tcp/mtuprobe.py), as Linux's icsk_mtup moves:
tcp_mtup_init, tcp_mtu_probing (black holes), tcp_mtu_probe (the probe's size),
tcp_mtup_probe_success / _failed and tcp_mtu_check_reprobe."""
from __future__ import annotations

from protocols.tcp.mtuprobe import MtuSearch, model_timeout

HDR = 52                     # IPv4 + TCP + timestamps
BASE = 1024


def search(enabled: bool = False) -> MtuSearch:
    return MtuSearch(enabled, BASE + HDR, 1500, clamped=enabled)


def test_model_timeout_is_linux_tcp_model_timeout() -> None:
    assert model_timeout(3) == 3.0                   # tcp_retries1: ((2 << 3) - 1) * 200 ms
    assert model_timeout(2) == 1.4
    assert model_timeout(0) == 0.2
    # beyond ilog2(120 s / 200 ms) = 9 doublings the steps are TCP_RTO_MAX each (tcp_retries2 = 15)
    assert model_timeout(15) == (2 ** 10 - 1) * 0.2 + 6 * 120.0


def test_off_until_a_black_hole_then_the_floor_halves_each_time() -> None:
    s = search()
    assert s.mss_limit(HDR) is None
    s.black_hole(HDR, BASE, 48, now=5.0)
    assert s.enabled and s.probe_timestamp == 5.0
    assert s.mss_limit(HDR) == 1024                  # the first: tcp_base_mss
    s.black_hole(HDR, BASE, 48, now=10.0)
    assert s.mss_limit(HDR) == 512
    s.black_hole(HDR, BASE, 48, now=20.0)
    assert s.mss_limit(HDR) == 256
    for _ in range(10):
        s.black_hole(HDR, BASE, 48, now=30.0)
    assert s.mss_limit(HDR) == 48                    # tcp_mtu_probe_floor / TCP_MIN_SND_MSS


def test_a_halved_floor_never_rises_above_base_mss() -> None:
    s = MtuSearch(True, 1400 + HDR, 1500, clamped=True)   # the search had climbed to 1400
    s.black_hole(HDR, BASE, 48, now=1.0)
    assert s.mss_limit(HDR) == 700
    s = MtuSearch(True, 1400 + HDR, 1500, clamped=True)
    s.black_hole(HDR, 536, 48, now=1.0)
    assert s.mss_limit(HDR) == 536


def test_the_probe_is_the_middle_of_the_range_and_moves_it() -> None:
    s = search(enabled=True)
    probe = s.next_probe(HDR, threshold=8)
    assert probe == (1076 + 1500) // 2 - HDR == 1236
    s.probe_sent(probe + HDR, 1000, 1000 + probe)
    assert s.next_probe(HDR, 8) is None              # one probe at a time
    s.probe_acked()
    assert s.search_low == 1288 and s.mss_limit(HDR) == 1236
    probe = s.next_probe(HDR, 8)
    assert probe == (1288 + 1500) // 2 - HDR
    s.probe_sent(probe + HDR, 0, probe)
    s.probe_lost()
    assert s.search_high == 1393 and s.probe_size == 0
    assert s.mss_limit(HDR) == 1236                  # a lost probe leaves the MSS


def test_the_search_stops_when_the_range_is_narrower_than_the_threshold() -> None:
    s = MtuSearch(True, 1200, 1207, clamped=True)
    assert s.next_probe(HDR, threshold=8) is None
    assert s.next_probe(HDR, threshold=4) == 1203 - HDR


def test_reprobe_after_the_interval_from_the_current_mss() -> None:
    s = MtuSearch(True, 1200, 1207, clamped=True, probe_timestamp=0.0)
    assert not s.reprobe_due(599.0, 600.0, 1500, 1200)
    assert s.reprobe_due(600.0, 600.0, 1500, 1200)
    assert (s.search_low, s.search_high, s.probe_timestamp) == (1200, 1500, 600.0)
    assert s.next_probe(HDR, 8) == 1350 - HDR


def test_a_passive_open_obeys_the_floor_only_once_the_search_moves() -> None:
    s = MtuSearch(True, BASE + HDR, 1500)            # tcp_mtu_probing=2, passive: not clamped yet
    assert s.mss_limit(HDR) is None
    s.probe_sent(1288, 0, 1236)
    s.probe_acked()
    assert s.mss_limit(HDR) == 1236


# --- where a connection's search starts ----------------------------------------------------------
def test_passive_opens_and_cookie_children_start_a_search_when_probing_is_on() -> None:
    from protocols.tcp.wire import ACK, PSH, SYN

    from .test_tcp_listen import ISN_PEER, T0, Net
    net = Net(mtu_probing=1)
    lst = net.listener(backlog=1)
    ((synack, _),) = net.rx(SYN, ISN_PEER, mss=1400)            # a SYN-RECEIVED child, fills the queue
    (half,) = [c for c in net.tcp.conns.values() if c.parent is lst]
    assert half.mtup is not None and not half.mtup.enabled
    assert (half.mtup.search_low, half.mtup.search_high) == (BASE + 40, 1400 + 40)
    assert half.mss == 1400                                     # off until a black hole
    ((cookie, _),) = net.rx(SYN, 4242, sport=6000, mss=1400)    # queue full: a SYN cookie
    net.rx(ACK | PSH, 4243, cookie.seq + 1, payload=b"x", sport=6000, at=T0 + 1)
    (child,) = [c for c in net.tcp.conns.values() if c.fport == 6000]
    assert child.cookie and child.mtup is not None and child.mtup.search_high == 1360 + 40
    off = Net()                                                 # tcp_mtu_probing=0: no search at all
    off_lst = off.listener()
    off.rx(SYN, ISN_PEER, mss=1400)
    (plain,) = [c for c in off.tcp.conns.values() if c.parent is off_lst]
    assert plain.mtup is None
