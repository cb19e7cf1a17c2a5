"""The pure parts of the demo's IPv6 section (tools/demo/ipv6.py): how a TCP/UDP checksum
from tshark is judged (good, offloaded with the right pseudo-header sum, or bad), the
solicited-node group a DAD probe goes to, and the hop-limit display filter."""
from __future__ import annotations

from protocols.ipv6.addr import ip6_to_int
from protocols.ipv6.wire import pseudo_header_sum
from tools.demo.ipv6 import IPPROTO_TCP, IPPROTO_UDP, hop_limit_filters, l4_checksum, solicited_node
from tools.demo.probes import family_of, url_host

SRC, DST = "fd00:77::2", "fd00:77::1"


def udp_row(status: str, field: int, length: int) -> list[str]:
    """A row as tshark gives it for the `l4` query of tshark_check6 (UDP: the TCP fields empty)."""
    return [SRC, DST, "", "", "", "", status, f"0x{field:04x}", str(length)]


def tcp_row(status: str, field: int, hdr_len: int, payload: int) -> list[str]:
    return [SRC, DST, status, f"0x{field:04x}", str(hdr_len), str(payload), "", "", ""]


def test_a_checksum_tshark_verified_is_good() -> None:
    assert l4_checksum(udp_row("1", 0x1234, 20)) == "good"
    assert l4_checksum(tcp_row("1", 0x1234, 20, 100)) == "good"


def test_an_offloaded_checksum_holds_the_pseudo_header_sum() -> None:
    udp = pseudo_header_sum(ip6_to_int(SRC), ip6_to_int(DST), IPPROTO_UDP, 30)
    assert l4_checksum(udp_row("0", udp, 30)) == "partial"
    tcp = pseudo_header_sum(ip6_to_int(SRC), ip6_to_int(DST), IPPROTO_TCP, 32 + 1000)
    assert l4_checksum(tcp_row("0", tcp, 32, 1000)) == "partial"


def test_the_other_zero_is_good() -> None:
    """A checksum that folds to 0 written as 0xFFFF (Linux's CSUM_MANGLED_0, seen from the
    kernel on a TAP without offload: 1 segment in 65 536) -- tshark calls it bad."""
    row = tcp_row("0", 0xFFFF, 32, 0) + ["0x0000", ""]
    assert l4_checksum(row) == "good"
    assert l4_checksum(tcp_row("0", 0xFFFF, 32, 0) + ["0x1234", ""]) == "bad"
    assert l4_checksum(tcp_row("0", 0x0000, 32, 0) + ["0xffff", ""]) == "bad"


def test_a_checksum_tshark_could_not_check_is_unverified() -> None:
    assert l4_checksum(udp_row("2", 0x1234, 1000)) == "unverified"


def test_a_wrong_checksum_is_bad() -> None:
    udp = pseudo_header_sum(ip6_to_int(SRC), ip6_to_int(DST), IPPROTO_UDP, 30)
    assert l4_checksum(udp_row("0", udp ^ 1, 30)) == "bad"
    assert l4_checksum(udp_row("0", udp, 31)) == "bad"            # the sum of another length
    tcp = pseudo_header_sum(ip6_to_int(SRC), ip6_to_int(DST), IPPROTO_UDP, 1032)
    assert l4_checksum(tcp_row("0", tcp, 32, 1000)) == "bad"      # of another protocol
    assert l4_checksum(udp_row("4", 0, 30)) == "bad"              # zero over IPv6 (RFC 8200 §8.1)


def test_solicited_node_group_of_rfc4291() -> None:
    assert solicited_node("fd00:77:1::2") == "ff02::1:ff00:2"
    assert solicited_node("fe80::2865:1047:81a2:8df") == "ff02::1:ffa2:8df"
    assert solicited_node("fe80::9cb7:17ff:fe25:cb19") == "ff02::1:ff25:cb19"


def test_hop_limit_filters_name_every_stack_address_and_the_rules() -> None:
    mine, wrong = hop_limit_filters(["fd00:77::2", "fe80::1", ""])
    assert mine == "(ipv6.src#1 == fd00:77::2 || ipv6.src#1 == fe80::1 || ipv6.src#1 == ::)"
    assert wrong.startswith(mine + " && !(") and "ipv6.hlim#1 == 255" in wrong
    assert "icmpv6.type#1 == 143 && ipv6.hlim#1 == 1" in wrong and "ipv6.hlim#1 == 64" in wrong


def test_family_and_url_host() -> None:
    assert url_host("fd00:77::2") == "[fd00:77::2]" and url_host("10.77.0.2") == "10.77.0.2"
    assert family_of("fd00::1").name == "AF_INET6" and family_of("10.0.0.1").name == "AF_INET"
