"""UDP (RFC 768, RFC 1122 §4.1) over IPv4 and IPv6, one concern per module:

  wire.py      the header, checksums, size limits     pcb.py     UdpPcb / Udp6Pcb, UdpStats
  udp.py       the protocol: input, output, lookup,   usrreq.py  what the socket layer calls
               binds, ICMP errors, dual stack                    (AF_INET and AF_INET6)
"""
