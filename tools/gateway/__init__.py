"""`tunstack gateway`: user-mode networking for containers and VMs (issue 13), module map:

  relay    the TCP relay between a guest connection and a host connection (backpressure,
           half-close, resets mapped across)
  hostudp  a UDP flow's host socket: connected, with the kernel's ICMP errors about it read
           from the error queue (IP_RECVERR / IPV6_RECVERR)
  ping     guests' echo requests through unprivileged ping sockets (never a forged reply)
"""
