"""The gateway's IPv6 router advertisements on the guest's TAP (issue 13, "Address model":
fd00::/64 advertised by RA with RDNSS).

The guest forms its address from the prefix (SLAAC, RFC 4862), takes the gateway's
link-local address as its default router and reads its DNS server from the RDNSS option
(RFC 8106), as slirp4netns --enable-ipv6 and passt serve theirs.

`serve_ra` makes the guest's interface a router's (Inet6Host.become_router: all-routers
joined, no Router Solicitations of its own, RAs from the guest ignored, the Router flag in
its Neighbor Advertisements, the guest's RSs handed to the advertiser) and runs a
`protocols.ipv6.radv.RouterAdvertiser`, registered with the Stack's timer service, until
cancelled: the first RA once the interface's link-local address passed DAD, then on RFC
4861 §6.2's schedule, and a final one with Router Lifetime 0 when it stops (§6.2.5), so a
guest that outlives the gateway drops its default route at once.

Bounds: the advertiser keeps no state per solicitation; however many RSs the guest sends,
at most one RA leaves per MIN_DELAY_BETWEEN_RAS (3 s) beyond the unsolicited schedule,
counted in `rs_coalesced`.
"""
from __future__ import annotations

import ipaddress
import os

import trio

from protocols.icmpv6.nd import RouterAdvertisement, RouterSolicitation
from protocols.ifnet import Interface
from protocols.ipv6.addr import ALL_NODES
from protocols.ipv6.radv import RadvConfig, RouterAdvertiser, prefix_option
from stack import Stack
from tools.gateway.policy import AddressModel

GATEWAY_MAX_INTERVAL = 600.0        # RFC 4861 §6.2.1's default MaxRtrAdvInterval


def gateway_radv_config(model: AddressModel, mtu: int = 0, *,
                        max_interval: float = GATEWAY_MAX_INTERVAL) -> RadvConfig:
    """The model's RA: its /64 (fd00::/64) on-link and autonomous, its DNS address (fd00::3)
    in RDNSS, and the link MTU when given (0: no MTU option)."""
    network = int(model.network6.network_address)
    return RadvConfig(max_interval=max_interval, mtu=mtu,
                      prefixes=(prefix_option(network, model.network6.prefixlen),),
                      rdnss=(int(ipaddress.IPv6Address(model.dns6)),))


def make_advertiser(stack: Stack, ifp: Interface, config: RadvConfig) -> RouterAdvertiser:
    """An advertiser whose RAs leave `ifp` to all-nodes through the Stack's IPv6 host."""
    def send(ra: RouterAdvertisement, now: float) -> int:
        return stack.inet6.send_router_advertisement(ifp, ra, ALL_NODES, now)
    return RouterAdvertiser(config, send, stack.rng)


async def serve_ra(stack: Stack, ifp: Interface, advertiser: RouterAdvertiser, *,
                   task_status: trio.TaskStatus[RouterAdvertiser] = trio.TASK_STATUS_IGNORED) -> None:
    """Advertise on `ifp` until cancelled (see the module docstring).  OSError ENODEV when
    IPv6 is not on the interface."""
    def on_rs(msg: RouterSolicitation, src: int, now: float) -> None:
        advertiser.solicited(src, now)

    stack.timers.register(advertiser)
    try:
        err = stack.inet6.become_router(ifp, on_rs, advertiser.start, stack.now())
        if err:
            raise OSError(err, f"{os.strerror(err)}: no IPv6 on {ifp.name}")
        try:
            task_status.started(advertiser)
            await trio.sleep_forever()
        finally:
            advertiser.stop(stack.now())        # §6.2.5: Router Lifetime 0
            stack.inet6.cease_router(ifp, stack.now())
    finally:
        stack.timers.unregister(advertiser)


__all__ = ["GATEWAY_MAX_INTERVAL", "gateway_radv_config", "make_advertiser", "serve_ra"]
