"""Protocol cores (sans-IO: no trio, no fds, `now` passed in), one concern per module:

  contracts  the contracts page: protosw, ProtocolHost, input/timer/link interfaces
  addr       IPv4 and MAC address helpers       ifnet    the interface table (struct ifnet)
  route      the routing table                  ether    Ethernet II framing, link output
  arp        ARP (RFC 826, RFC 5227)            ipv4     IPv4 input/output (RFC 791, 1122)
  ipfrag     fragmentation and reassembly       pmtu     the path-MTU cache (RFC 1191)
  icmp       ICMP (RFC 792, RFC 1122 §3.2.2)    udp      UDP (RFC 768) and its pcbs
  ports      ephemeral ports (UDP, TCP)         timing   the timer tick every core shares
  tcp/       TCP (RFC 9293)                     atm/     the ATM protocols (SAAL, UNI, sockets, CLIP)

The Stack (stack/stack.py) builds the built-in cores; a third-party protocol plugs in
through the `tunstack.protocols` entry points with `register(host: contracts.ProtocolHost)`.
"""
