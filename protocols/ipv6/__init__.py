"""IPv6 (RFC 8200) as sans-IO cores -- work in progress (issue 12), not yet wired into the
Stack.  Addresses are 128-bit ints inside the stack, as IPv4's are 32-bit ints.

  addr     addresses: parse/format, scopes, multicast, solicited-node, interface identifiers
  wire     the fixed header: a checked view and a repr with emit
  exthdr   the extension-header chain (RFC 8200 §4): options, routing, fragment header
  stats    Ipv6Stats: the network layer's counters (RFC 4293 ipSystemStats names)
  frag     fragmentation at the source and reassembly (RFC 8200 §4.5, RFC 5722, RFC 6946)
  ip6      the network layer: input (checks, chain, reassembly, dispatch on ip6_protox) and
           output (route, RFC 6724 source, fragmentation by path MTU)
  nd       Neighbor Discovery's neighbor cache (RFC 4861 §7.3)
  addrconf an interface's addresses: DAD, SLAAC and their lifetimes (RFC 4862, RFC 7217)
  route    the IPv6 routing table, prefix list and default routers (RFC 4861 §6.3.4, §6.3.6)
  mld      the MLDv2 host side: joined groups, reports, answers to queries (RFC 3810)
"""
