"""The gateway's guest-link services with a Linux guest over a TAP (tools/gateway/dhcp_serve.py,
tools/gateway/radv_serve.py): the gateway Stack runs in this process with the TAP as its
transparent interface at 10.0.2.2/24; the guest namespace holds the kernel side, unconfigured.

  * DHCP (issue 13's "DHCP" test point): busybox `udhcpc` gets 10.0.2.100, router 10.0.2.2,
    DNS 10.0.2.3, the lease time and the MTU; its script configures the address and the guest
    then pings the gateway;
  * IPv6: the kernel (accept_ra 2) forms a SLAAC address in fd00::/64 and a default route via
    the gateway's link-local address; a raw ICMPv6 socket in the guest solicits and reads the
    RA the kernel got: RDNSS names fd00::3, the prefix has L and A; after the guest probed
    the gateway (ping6 to its link-local address: NUD's NS/NA) the default route is still there
    (the Router flag in the gateway's NA, RFC 4861 §7.2.5) and fd00::2 answers on-link.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import trio

from drivers.tuntap import TapNdd
from protocols.addr import ip_to_int
from protocols.dhcp.server import BOUND, DhcpServer
from protocols.ipv6.addr import int_to_ip6
from stack import Stack
from tools.gateway.dhcp_serve import gateway_dhcp_config, serve_dhcp
from tools.gateway.policy import AddressModel
from tools.gateway.radv_serve import gateway_radv_config, make_advertiser, serve_ra
from tools.lab.netns import NetnsHost, unique_name

from .conftest import require_real_peer
from .helpers import loss_percent, run

MTU = 1500
UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc calls this with the event first; the lease comes in environment variables
echo "$1 ip=$ip subnet=$subnet mask=$mask router=$router dns=$dns mtu=$mtu lease=$lease serverid=$serverid" >> "{out}"
if [ "$1" = bound ]; then
    ip addr add "$ip/$mask" dev "$interface"
fi
"""
# In the guest: solicit (RS to ff02::2, hop limit 255) and print the first RA received, as
# the kernel got it: the source, router lifetime, prefixes (with L and A), RDNSS, MTU.
RA_READER = r"""
import json, socket, struct, sys
dev = sys.argv[1]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(dev))
s.settimeout(10)
s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ("ff02::2", 0, 0, socket.if_nametoindex(dev)))
while True:
    data, addr = s.recvfrom(65535)
    if data[0] != 134:
        continue
    out = {"src": addr[0].split("%")[0], "lifetime": struct.unpack("!H", data[6:8])[0], "hop_limit": data[4],
           "prefixes": [], "rdnss": [], "rdnss_lifetime": None, "mtu": None}
    i = 16
    while i + 2 <= len(data) and data[i + 1]:
        kind, size = data[i], data[i + 1] * 8
        body = data[i:i + size]
        if kind == 3:
            out["prefixes"].append([socket.inet_ntop(socket.AF_INET6, body[16:32]), body[2], bool(body[3] & 0x80),
                                    bool(body[3] & 0x40)])
        elif kind == 25:
            out["rdnss_lifetime"] = struct.unpack("!I", body[4:8])[0]
            out["rdnss"] += [socket.inet_ntop(socket.AF_INET6, body[j:j + 16]) for j in range(8, size, 16)]
        elif kind == 5:
            out["mtu"] = struct.unpack("!I", body[4:8])[0]
        i += size
    print(json.dumps(out))
    break
"""
# In the guest: a datagram to the gateway every 0.3 s for 3 s (no reachability confirmation)
UDP_TRICKLE = """
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for _ in range(10):
    s.sendto(b"probe me", (sys.argv[1], 9))
    time.sleep(0.3)
"""


async def _wait_for(netns: NetnsHost, argv: list[str], needle: str, timeout: float, *, gone: bool = False) -> str:
    """Run `argv` in the guest until its output has `needle` (with `gone`: until it has not);
    the last output."""
    text = ""
    with trio.move_on_after(timeout):
        while True:
            r = await run(netns.exec_argv(*argv), timeout=10)
            text = r.stdout.decode()
            if (needle in text) != gone:
                break
            await trio.sleep(0.2)
    return text


async def test_linux_guest_gets_dhcp_and_ipv6_from_the_gateway(netns: NetnsHost, tmp_path: Path) -> None:
    require_real_peer("busybox")                   # udhcpc (Debian busybox, in the Makefile's DEBIAN_TOOLS)
    busybox = shutil.which("busybox")
    assert busybox is not None
    tap = TapNdd(unique_name("tg"), mtu=MTU)
    tap.create()
    dev = tap.ndd_name
    # the guest's side: moved into the namespace, RAs accepted (2: even if forwarding), up, no address
    await run(["ip", "link", "set", dev, "netns", netns.name], check=True)
    netns.devices.append(dev)
    await run(netns.exec_argv("sysctl", "-q", "-w", f"net.ipv6.conf.{dev}.accept_ra=2"), check=True)
    # NUD probes a STALE neighbour after 1 s of use instead of 5 (RFC 4861 DELAY_FIRST_PROBE_TIME)
    await run(netns.exec_argv("sysctl", "-q", "-w", f"net.ipv6.neigh.{dev}.delay_first_probe_time=1"), check=True)
    netns.ip("link", "set", dev, "mtu", str(MTU))
    netns.ip("link", "set", dev, "up")
    model = AddressModel.from_cidr()
    server = DhcpServer(gateway_dhcp_config(model, MTU))
    out = tmp_path / "udhcpc.log"
    script = tmp_path / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT.format(out=out))
    script.chmod(0o755)
    async with Stack("gateway") as st:
        ifp = st.add_interface(tap, "10.0.2.2/24")
        ifp.transparent = True
        st.add_address(ifp, "fd00::2/64", dad=False)
        advertiser = make_advertiser(st, ifp, gateway_radv_config(model, MTU))
        async with trio.open_nursery() as nursery:
            dhcp = await nursery.start(serve_dhcp, st, ifp, server)
            await nursery.start(serve_ra, st, ifp, advertiser)

            # --- DHCP: udhcpc in the guest -------------------------------------------------
            r = await run(netns.exec_argv(busybox, "udhcpc", "-i", dev, "-f", "-q", "-n", "-t", "5",
                                          "-T", "2", "-O", "mtu", "-s", str(script)), timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
            events = out.read_text().splitlines()
            bound = [line for line in events if line.startswith("bound ")]
            assert len(bound) == 1, events
            fields = dict(kv.split("=", 1) for kv in bound[0].split()[1:])
            assert fields["ip"] == "10.0.2.100" and fields["mask"] == "24" and fields["subnet"] == "255.255.255.0"
            assert fields["router"] == "10.0.2.2" and fields["dns"] == "10.0.2.3"
            assert fields["serverid"] == "10.0.2.2" and fields["lease"] == "86400" and fields["mtu"] == str(MTU)
            lease = server.lease_of(ip_to_int("10.0.2.100"))
            assert lease is not None and lease.state == BOUND and lease.hwaddr == tap.kernel_mac
            assert server.stats.out_offer == 1 and server.stats.out_ack == 1 and server.stats.leases_granted == 1
            assert dhcp.out_replies == 2 and dhcp.out_errors == 0
            # the OFFER and ACK went to the client's MAC unresolved (it had no address to ARP with)
            ping = await run(netns.exec_argv("ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"))
            assert loss_percent(ping.stdout) == 0, ping.stdout

            # --- IPv6: SLAAC, the default route, RDNSS ----------------------------------------
            slaac = await _wait_for(netns, ["ip", "-6", "addr", "show", "dev", dev, "scope", "global"],
                                    "inet6 fd00::", 30)
            assert "inet6 fd00::" in slaac and "/64" in slaac, slaac
            addrs = await _wait_for(netns, ["ip", "-6", "addr", "show", "dev", dev], "tentative", 10, gone=True)
            assert "tentative" not in addrs, addrs           # DAD done: the guest may send from them
            gateway_ll = int_to_ip6(st.inet6.link_local(ifp))
            assert gateway_ll.startswith("fe80:")
            route = await _wait_for(netns, ["ip", "-6", "route", "show", "default"], gateway_ll, 10)
            assert f"via {gateway_ll} dev {dev}" in route and "proto ra" in route, route
            r = await run(netns.exec_argv(sys.executable, "-c", RA_READER, dev), timeout=30)
            assert r.returncode == 0, r.stderr
            ra = json.loads(r.stdout)
            assert ra["src"] == gateway_ll and ra["lifetime"] == 1800 and ra["hop_limit"] == 64
            assert ra["prefixes"] == [["fd00::", 64, True, True]]
            assert ra["rdnss"] == ["fd00::3"] and ra["rdnss_lifetime"] == 1800 and ra["mtu"] == MTU
            assert advertiser.stats.rs_received >= 1 and st.inet6.stats.ra_sent >= 2
            # The RA left the gateway's entry STALE with IsRouter set; used for 3 s it is probed
            # (DELAY, then a unicast NS) and the gateway's NA must keep the Router flag, or the
            # guest drops its default route (RFC 4861 §7.2.5, Linux rt6_clean_tohost).  UDP, as
            # iputils ping would confirm reachability itself (MSG_CONFIRM) and never probe.
            neigh = (await run(netns.exec_argv("ip", "-6", "neigh", "show", "dev", dev))).stdout.decode()
            assert any(line.startswith(gateway_ll) and "STALE" in line for line in neigh.splitlines()), neigh
            r = await run(netns.exec_argv(sys.executable, "-c", UDP_TRICKLE, f"{gateway_ll}%{dev}"), timeout=30)
            assert r.returncode == 0, r.stderr
            assert st.inet6.stats.ns_answered >= 1                # the probe came and was answered
            ping6 = await run(netns.exec_argv("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "fd00::2"))
            assert loss_percent(ping6.stdout) == 0, ping6.stdout
            neigh = (await run(netns.exec_argv("ip", "-6", "neigh", "show", "dev", dev))).stdout.decode()
            assert any(line.startswith(gateway_ll) and "router" in line for line in neigh.splitlines()), neigh
            route = (await run(netns.exec_argv("ip", "-6", "route", "show", "default"))).stdout.decode()
            assert f"via {gateway_ll}" in route, route
            nursery.cancel_scope.cancel()
        # §6.2.5: the gateway's last RA (Router Lifetime 0) takes the guest's default route away
        assert advertiser.stats.out_final == 1
        route = await _wait_for(netns, ["ip", "-6", "route", "show", "default"], gateway_ll, 10, gone=True)
        assert gateway_ll not in route, route
