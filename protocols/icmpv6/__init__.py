"""ICMPv6 (RFC 4443) and the protocols carried in it, as sans-IO codecs -- work in progress
(issue 12), not yet wired into the Stack.  Every `parse` returns a repr or the name of the
counter to bump (a field of a stats.py dataclass); it never raises on bad input.

  wire     the header and its pseudo-header checksum (RFC 4443 §2.1/§2.3, RFC 8200 §8.1),
           errors (destination unreachable, packet too big, time exceeded, parameter
           problem) and echo request/reply; type classes; Linux's errno per error
  nd       Neighbor Discovery messages and options (RFC 4861 §4, RDNSS RFC 8106, nonce
           RFC 3971) and their validation (RFC 4861 §6.1, §7.1, §8.1)
  mld      MLDv2 query and report (RFC 3810 §5), MLDv1 messages (RFC 2710), validation
           (RFC 3810 §6.2)
  message  one `parse_message` over all of the above, by ICMPv6 type
  stats    the counters: Icmpv6Stats (RFC 4293 / RFC 2466 names), NdStats, MldStats
  core     the ICMPv6 protocol core (Icmpv6): echo, errors out (§2.4(e), rate limits) and in
           (ctlinput, Packet Too Big -> path MTU), ND/MLD hand-off to the owner's hooks
"""
