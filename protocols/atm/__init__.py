"""ATM protocols over the NDD_ATM interface (ndd/atm.py), sans-IO; the adapter hardware
(cells, HEC, AAL5, OAM) is drivers/atm/.  One subpackage per concern:

  saal/     the signalling AAL on VC 0/5: SSCOP (Q.2110), SSCF-UNI (Q.2130), the endpoint
  uni/      Q.2931 / UNI 3.1: messages, information elements, call control, the endpoint
  sockets/  AF_NDD ATM sockets: PVCs and SVCs (AIX's connection-oriented datagram service)
  clip/     Classical IP over ATM (RFC 2225, RFC 2684): PVCs, SVCs, ATMARP
  switch/   the emulated switch's call routing (its trio side is stack/atm_switch.py)
"""
