"""Classical IP and ARP over ATM (RFC 2225, RFC 2684 LLC/SNAP), sans-IO:

  link           CLIP over PVCs: LLC/SNAP encapsulation, InATMARP, the AtmLink
  atmarp         ATMARP / InATMARP packets (RFC 2225 §8.7)
  atmarp_server  a LIS's ATMARP server (RFC 2225 §8.4)
  svc            CLIP over SVCs: the sans-IO core (RFC 2225 §8.3-8.5, RFC 1755)
  calls          the signalling side of CLIP over SVCs: in-stack ATM sockets for its calls
"""
