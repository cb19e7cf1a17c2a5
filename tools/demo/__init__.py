"""`tunstack demo`, the guided tour:

  tour    the entry point: namespaces, TUN/TAP, ping, UDP, capture checks
  tcp     the TCP part (curl, a refused connect, bulk)
  atm     the ATM part (PVCs, CLIP, pings, HTTP over TCP over ATM)
  svc     the SVC part (an emulated switch, two stacks, calls)
  probes  what the parts share: a ping series, an HTTP GET
  report  one line per step, and the verdict
"""
