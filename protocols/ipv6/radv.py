"""A router's advertisement sender for one interface (RFC 4861 §6.2), with the RDNSS option
(RFC 8106): what the gateway runs on its guest link so that a guest forms an address by SLAAC,
takes the gateway as its default router and learns its DNS server.

Sans-IO, a TimedCore (protocols/contracts.py).  The owner (protocols/ipv6/host.py's
`become_router` and `send_router_advertisement`, joined by tools/gateway/radv_serve.py) calls

    adv.start(now)              the interface advertises (once it has a link-local address)
    adv.solicited(src, now)     a valid Router Solicitation arrived (§6.2.6)
    adv.stop(now)               it ceases to advertise (§6.2.5)

and the core calls `send(ra, now) -> errno` with each RouterAdvertisement to multicast to
all-nodes (ff02::1); the owner adds the source link-layer address and sends it from the
interface's link-local address (§6.2.3).

When (§6.2.4, §6.2.6):
  * unsolicited: the first at `start`, then each after a uniformly random interval in
    [MinRtrAdvInterval, MaxRtrAdvInterval], the first MAX_INITIAL_RTR_ADVERTISEMENTS (3) of
    them with the interval capped at MAX_INITIAL_RTR_ADVERT_INTERVAL (16 s);
  * solicited: a uniformly random delay in [0, MAX_RA_DELAY_TIME (0.5 s)], and never sooner
    than MIN_DELAY_BETWEEN_RAS (3 s) after the previous multicast RA plus that delay.  When the
    next RA is already due sooner, the solicitation is answered by it (no state per RS: a
    flood of solicitations sends at most one RA per 3 s, counted in `rs_coalesced`);
  * every multicast RA restarts the unsolicited interval (§6.2.4);
  * `stop`: one final RA with Router Lifetime 0 (§6.2.5: hosts drop the default route at
    once), then nothing.

What (§6.2.1 defaults, Linux radvd's too): CurHopLimit 64, M and O flags off, Router
Lifetime 3 x MaxRtrAdvInterval, Reachable Time and Retrans Timer 0 (unspecified), the MTU
option when configured, one Prefix Information option per prefix (§4.6.2: on-link L and
autonomous A flags, valid 30 days and preferred 7 days by default), and one RDNSS option
listing the DNS servers with a lifetime of 3 x MaxRtrAdvInterval (RFC 8106 §5.1's "at
least 3 x MaxRtrAdvInterval" default).  At most MAX_PREFIXES prefixes and MAX_RDNSS servers,
so an RA stays far below the IPv6 minimum MTU.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ndd.counters import Counters

from ..icmpv6.nd import INFINITE_LIFETIME, Mtu, NdOption, PrefixInformation, Rdnss, RouterAdvertisement
from .wire import MIN_MTU

# RFC 4861 §10, router constants
MAX_INITIAL_RTR_ADVERT_INTERVAL = 16.0
MAX_INITIAL_RTR_ADVERTISEMENTS = 3
MAX_FINAL_RTR_ADVERTISEMENTS = 3
MIN_DELAY_BETWEEN_RAS = 3.0
MAX_RA_DELAY_TIME = 0.5

MAX_PREFIXES = 8
MAX_RDNSS = 8                   # RFC 8106 §5.1 sets no limit; 8 servers are 136 octets
DEFAULT_VALID_LIFETIME = 2592000        # §6.2.1 AdvValidLifetime: 30 days
DEFAULT_PREFERRED_LIFETIME = 604800     # §6.2.1 AdvPreferredLifetime: 7 days


def prefix_option(prefix: int, prefix_len: int = 64, *, on_link: bool = True, autonomous: bool = True,
                  valid: int = DEFAULT_VALID_LIFETIME,
                  preferred: int = DEFAULT_PREFERRED_LIFETIME) -> PrefixInformation:
    """A Prefix Information option (§4.6.2) with §6.2.1's defaults: L and A set, 30 and 7 days."""
    return PrefixInformation(prefix_len=prefix_len, on_link=on_link, autonomous=autonomous,
                             valid_lifetime=valid, preferred_lifetime=preferred, prefix=prefix)


@dataclass
class RadvConfig:
    """The interface's advertising variables (§6.2.1); None means the RFC's default."""
    max_interval: float = 600.0             # MaxRtrAdvInterval: 4..1800 s
    min_interval: float | None = None       # MinRtrAdvInterval: 3..0.75 x max; 0.33 x max (max >= 9), else max
    default_lifetime: int | None = None     # AdvDefaultLifetime: 0 (not a default router) or max..9000; 3 x max
    cur_hop_limit: int = 64                 # AdvCurHopLimit (Linux hop_limit); 0: unspecified
    managed: bool = False                   # AdvManagedFlag (M)
    other: bool = False                     # AdvOtherConfigFlag (O)
    preference: int = 0                     # RFC 4191 §2.2 default router preference: 0 medium
    reachable_time: int = 0                 # AdvReachableTime, ms; 0: unspecified
    retrans_timer: int = 0                  # AdvRetransTimer, ms; 0: unspecified
    mtu: int = 0                            # AdvLinkMTU; 0: no MTU option
    prefixes: tuple[PrefixInformation, ...] = ()
    rdnss: tuple[int, ...] = ()             # the DNS servers (RFC 8106)
    rdnss_lifetime: int | None = None       # seconds; INFINITE_LIFETIME: forever; None: 3 x max

    @property
    def min_rtr_adv_interval(self) -> float:
        if self.min_interval is not None:
            return self.min_interval
        return 0.33 * self.max_interval if self.max_interval >= 9 else self.max_interval

    @property
    def router_lifetime(self) -> int:
        return min(9000, int(3 * self.max_interval)) if self.default_lifetime is None else self.default_lifetime

    @property
    def rdnss_life(self) -> int:
        return int(3 * self.max_interval) if self.rdnss_lifetime is None else self.rdnss_lifetime

    def __post_init__(self) -> None:
        if not 4 <= self.max_interval <= 1800:
            raise ValueError("MaxRtrAdvInterval: 4..1800 s (RFC 4861 §6.2.1)")
        if self.min_interval is not None and not 3 <= self.min_interval <= 0.75 * self.max_interval:
            raise ValueError("MinRtrAdvInterval: 3 s .. 0.75 x MaxRtrAdvInterval (RFC 4861 §6.2.1)")
        if self.default_lifetime and not self.max_interval <= self.default_lifetime <= 9000:
            raise ValueError("AdvDefaultLifetime: 0 or MaxRtrAdvInterval..9000 s (RFC 4861 §6.2.1)")
        if not 0 <= self.cur_hop_limit <= 255 or not 0 <= self.preference <= 3 or self.preference == 2:
            raise ValueError("CurHopLimit 0..255; preference 0 (medium), 1 (high) or 3 (low) (RFC 4191 §2.2)")
        if not 0 <= self.reachable_time <= 3600000 or not 0 <= self.retrans_timer <= 0xFFFFFFFF:
            raise ValueError("AdvReachableTime: 0..3600000 ms (RFC 4861 §6.2.1)")
        if self.mtu and not MIN_MTU <= self.mtu <= 0xFFFFFFFF:
            raise ValueError(f"AdvLinkMTU: 0 or at least {MIN_MTU}")
        if len(self.prefixes) > MAX_PREFIXES or len(self.rdnss) > MAX_RDNSS:
            raise ValueError(f"at most {MAX_PREFIXES} prefixes and {MAX_RDNSS} DNS servers")
        for p in self.prefixes:
            if p.preferred_lifetime > p.valid_lifetime or not 0 <= p.prefix_len <= 128:
                raise ValueError("a prefix's preferred lifetime must not exceed its valid lifetime (§6.2.1)")
        if not 0 <= self.rdnss_life <= INFINITE_LIFETIME:
            raise ValueError("RDNSS lifetime: 0..2**32-1 s")


@dataclass
class RadvStats(Counters):
    out_unsolicited: int = 0        # RAs sent on the [Min, Max] schedule
    out_solicited: int = 0          # RAs sent earlier than that, for a solicitation
    out_final: int = 0              # Router Lifetime 0 at stop (§6.2.5)
    out_errors: int = 0             # the owner could not send (no link-local yet, link down)
    rs_received: int = 0
    rs_coalesced: int = 0           # answered by an RA already due sooner (§6.2.6 rate limit)


@dataclass(eq=False)
class RouterAdvertiser:
    config: RadvConfig
    send: Callable[[RouterAdvertisement, float], int]
    rng: random.Random = field(default_factory=random.SystemRandom)

    def __post_init__(self) -> None:
        self.stats = RadvStats()
        self.advertising = False
        self.next_at: float | None = None       # the next multicast RA
        self.solicited_pending = False          # next_at was brought forward by an RS
        self.last_sent: float | None = None     # the last multicast RA, for MIN_DELAY_BETWEEN_RAS
        self.initial_left = MAX_INITIAL_RTR_ADVERTISEMENTS
        self.kick: Callable[..., None] = lambda *at: None

    # --- the owner's entry points --------------------------------------------------------------
    def start(self, now: float) -> None:
        """The interface becomes an advertising interface: the first RA now (§6.2.4)."""
        if self.advertising:
            return
        self.advertising = True
        self.initial_left = MAX_INITIAL_RTR_ADVERTISEMENTS
        self._schedule(now)

    def solicited(self, src: int, now: float) -> None:
        """A valid RS from `src` (:: included): answer per §6.2.6, multicast."""
        self.stats.rs_received += 1
        if not self.advertising:
            return
        delay = self.rng.uniform(0.0, MAX_RA_DELAY_TIME)
        at = now + delay
        if self.last_sent is not None and now - self.last_sent < MIN_DELAY_BETWEEN_RAS:
            at = self.last_sent + MIN_DELAY_BETWEEN_RAS + delay
        if self.next_at is not None and self.next_at <= at:
            self.stats.rs_coalesced += 1
            return
        self.solicited_pending = True
        self._schedule(at)

    def stop(self, now: float) -> None:
        """Cease advertising (§6.2.5): one RA with Router Lifetime 0, then no more."""
        if not self.advertising:
            return
        self.advertising = False
        self.next_at = None
        if self.send(self.advertisement(router_lifetime=0), now):
            self.stats.out_errors += 1
        else:
            self.stats.out_final += 1

    def advertisement(self, router_lifetime: int | None = None) -> RouterAdvertisement:
        """The RA this interface sends (§6.2.3), without the source link-layer address."""
        cfg = self.config
        options: list[NdOption] = []
        if cfg.mtu:
            options.append(Mtu(cfg.mtu))
        options.extend(cfg.prefixes)
        if cfg.rdnss:
            options.append(Rdnss(cfg.rdnss_life, cfg.rdnss))
        lifetime = cfg.router_lifetime if router_lifetime is None else router_lifetime
        return RouterAdvertisement(cur_hop_limit=cfg.cur_hop_limit, managed=cfg.managed, other=cfg.other,
                                   preference=cfg.preference, router_lifetime=lifetime,
                                   reachable_time=cfg.reachable_time, retrans_timer=cfg.retrans_timer,
                                   options=tuple(options))

    # --- timers (TimedCore) ----------------------------------------------------------------------
    def poll_at(self) -> float | None:
        return self.next_at

    def poll(self, now: float) -> None:
        if self.next_at is None or now < self.next_at:
            return
        if self.send(self.advertisement(), now):
            self.stats.out_errors += 1
        elif self.solicited_pending:
            self.stats.out_solicited += 1
        else:
            self.stats.out_unsolicited += 1
        self.solicited_pending = False
        self.last_sent = now
        self._schedule(now + self._interval())

    def _interval(self) -> float:
        """§6.2.4: uniform in [Min, Max]; the first few no longer than 16 s."""
        cfg = self.config
        interval = self.rng.uniform(cfg.min_rtr_adv_interval, cfg.max_interval)
        if self.initial_left > 0:
            self.initial_left -= 1
            interval = min(interval, MAX_INITIAL_RTR_ADVERT_INTERVAL)
        return interval

    def _schedule(self, at: float) -> None:
        self.next_at = at
        self.kick(at)


__all__ = ["MAX_INITIAL_RTR_ADVERTISEMENTS", "MAX_INITIAL_RTR_ADVERT_INTERVAL", "MAX_RA_DELAY_TIME",
           "MIN_DELAY_BETWEEN_RAS", "RadvConfig", "RadvStats", "RouterAdvertiser", "prefix_option"]
