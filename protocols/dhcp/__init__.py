"""DHCPv4 (RFC 2131, options RFC 2132) as a sans-IO server core, for the gateway's TAP
(issue 13): the guests that ask for an address get the slirp4netns address model.

  wire     the BOOTP/DHCP message (RFC 2131 §2 fixed fields, the magic cookie), its options
           (RFC 2132; long options split and joined as RFC 3396 says; option overload into
           sname/file read); `DhcpMessage.parse` gives a repr or the name of a counter
  server   DhcpServer: the address pool and its leases, RFC 2131 §4.3 server behaviour,
           §4.1 reply addressing, the TimedCore contract for offers, leases and declines
"""
