"""`tunstack gateway`: user-mode networking for containers and VMs (issue 13), module map:

  flows    the flow table: bounded (--max-flows), UDP idle timeouts (30 s one-way, 180 s
           two-way), a sans-IO TimedCore
  hosttcp  the host side of a guest's TCP connection: connect(2) with a timeout, and what
           the guest is shown when it fails (RST, ICMP net/host/admin unreachable, silence)
  relay    the TCP relay between a guest connection and a host connection (backpressure,
           half-close, resets mapped across)
  hostudp  a UDP flow's host socket: connected, with the kernel's ICMP errors about it read
           from the error queue (IP_RECVERR / IPV6_RECVERR)
  ping     guests' echo requests through unprivileged ping sockets (never a forged reply)
  policy   the address model (slirp4netns's 10.0.2.0/24: gateway .2, DNS .3, guest .100) and
           where a guest's flow may go (host loopback and metadata only when allowed)
"""
