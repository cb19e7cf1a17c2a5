"""The gateway's address model and its outbound policy (issue 13, "Address model" and "Host
loopback").

The model is slirp4netns's, so guides and scripts carry over: in a /24 (10.0.2.0/24 by
default, `--cidr`), the gateway is .2, the DNS forwarder .3 and the guest .100; over IPv6
(slirp4netns --enable-ipv6) fd00::/64 with the gateway fd00::2, DNS fd00::3 and the guest
forming its own address from the RA (SLAAC).

Where a guest's flow goes (`outbound`):
  * the gateway's own address is the host's loopback -- 127.0.0.1 / ::1 -- only with
    `allow_host_loopback` (slirp4netns: --disable-host-loopback is the safe choice, and
    rootlesskit passes it); otherwise the flow is refused, as a closed port (RST / port
    unreachable), so nothing from the guest reaches the host's loopback services;
  * the DNS address is the forwarder's (the caller handles port 53 itself), other ports refused;
  * 169.254.169.254 (the cloud metadata service, and fd00:ec2::254) only with
    `allow_metadata`: it hands out credentials on cloud VMs;
  * the host's loopback ranges given directly (127.0.0.0/8, ::1) are refused: only the
    gateway address stands for them;
  * any other address of the guest's own subnet is nobody's: host unreachable;
  * multicast, broadcast and unspecified destinations are not relayed;
  * everything else is relayed to the same address and port from a host socket.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property

METADATA_V4 = ipaddress.IPv4Address("169.254.169.254")
METADATA_V6 = ipaddress.IPv6Address("fd00:ec2::254")
DEFAULT_CIDR = "10.0.2.0/24"
DEFAULT_CIDR6 = "fd00::/64"
DEFAULT_MTU = 65520                    # slirp4netns's default since 0.3 (the largest a TAP takes)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Relay:
    """Relay the flow to this host address and port."""
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Refuse:
    """Do not relay: answer as the network would.  `how`: "port" (RST for TCP, port
    unreachable for UDP), "host" (host unreachable), "admin" (administratively prohibited),
    "drop" (nothing)."""
    how: str
    why: str


Verdict = Relay | Refuse


@dataclass(frozen=True)
class AddressModel:
    network: ipaddress.IPv4Network
    network6: ipaddress.IPv6Network

    @classmethod
    def from_cidr(cls, cidr: str = DEFAULT_CIDR, cidr6: str = DEFAULT_CIDR6) -> AddressModel:
        """`--cidr`: an IPv4 network of at most /25 (the guest is .100, so it must fit), given
        as the network ("10.0.2.0/24") or any address in it; ValueError says what is wrong."""
        try:
            net = ipaddress.IPv4Network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"--cidr {cidr}: not an IPv4 network (A.B.C.D/P)") from None
        if net.prefixlen > 25:
            raise ValueError(f"--cidr {cidr}: /{net.prefixlen} is too small: the guest is .100 (at most /25)")
        if net.is_loopback or net.is_multicast or net.is_unspecified:
            raise ValueError(f"--cidr {cidr}: not a network a guest can live on")
        try:
            net6 = ipaddress.IPv6Network(cidr6, strict=False)
        except ValueError:
            raise ValueError(f"--cidr6 {cidr6}: not an IPv6 network") from None
        if net6.prefixlen != 64:
            raise ValueError(f"--cidr6 {cidr6}: SLAAC needs a /64")
        return cls(net, net6)

    # the addresses every flow is checked against, worked out once (cached_property writes
    # the instance's __dict__ directly, which a frozen dataclass allows)
    @cached_property
    def broadcast(self) -> ipaddress.IPv4Address:
        return self.network.broadcast_address

    @cached_property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.network.network_address + 2

    @cached_property
    def dns(self) -> ipaddress.IPv4Address:
        return self.network.network_address + 3

    @cached_property
    def guest(self) -> ipaddress.IPv4Address:
        return self.network.network_address + 100

    @cached_property
    def gateway6(self) -> ipaddress.IPv6Address:
        return self.network6.network_address + 2

    @cached_property
    def dns6(self) -> ipaddress.IPv6Address:
        return self.network6.network_address + 3


# verdicts a Policy remembers (it is immutable, so a verdict never changes): a guest
# talks to a few destinations over and over, and parsing one costs ~15 us per flow
VERDICTS_KEPT = 4096


@dataclass(frozen=True)
class Policy:
    model: AddressModel
    allow_host_loopback: bool = False
    allow_metadata: bool = False

    def outbound(self, dst: str, port: int) -> Verdict:
        """Where a guest's flow to (dst, port) goes (see the module docstring); remembered."""
        cache: dict[tuple[str, int], Verdict] = self.__dict__.setdefault("_verdicts", {})
        verdict = cache.get((dst, port))
        if verdict is None:
            if len(cache) >= VERDICTS_KEPT:
                cache.clear()                      # bounded: start over
            verdict = cache[(dst, port)] = self._decide(dst, port)
        return verdict

    def _decide(self, dst: str, port: int) -> Verdict:
        addr = ipaddress.ip_address(dst)
        m = self.model
        if addr.is_multicast or addr.is_unspecified or addr == m.broadcast:
            return Refuse("drop", "multicast, broadcast or unspecified destinations are not relayed")
        if addr in (m.gateway, m.gateway6):
            if self.allow_host_loopback:
                return Relay("127.0.0.1" if addr.version == 4 else "::1", port)
            return Refuse("port", "the host's loopback is off (--allow-host-loopback)")
        if addr in (m.dns, m.dns6):
            return Refuse("port", "the DNS address serves DNS only")
        if addr in (METADATA_V4, METADATA_V6) and not self.allow_metadata:
            return Refuse("admin", "the metadata service is off (--allow-metadata)")
        if addr.is_loopback:
            return Refuse("port", "the host's loopback is reached through the gateway address only")
        if addr in m.network or addr in m.network6:
            return Refuse("host", "nobody else lives on the guest's subnet")
        return Relay(str(addr), port)


__all__ = ["DEFAULT_CIDR", "DEFAULT_CIDR6", "DEFAULT_MTU", "METADATA_V4", "METADATA_V6", "AddressModel", "Policy",
           "Refuse", "Relay", "Verdict"]
