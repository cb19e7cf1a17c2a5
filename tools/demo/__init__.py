"""`tunstack demo`, the guided tour:

  tour    the entry point: namespaces, TUN/TAP, ping, UDP, capture checks
  udp     the UDP part (socat and Python echo, a refused datagram)
  tcp     the TCP part (curl, a refused connect, bulk)
  ipv6    the IPv6 part (its own TUN and TAP: ping -6, ND, DAD, UDP, TCP, tshark)
  atm     the ATM part (PVCs, CLIP, pings, HTTP over TCP over ATM)
  svc     the SVC part (an emulated switch, two stacks, calls)
  probes  what the parts share: commands, tcpdump, ping series, an HTTP GET
  report  one line per step, and the verdict
"""
