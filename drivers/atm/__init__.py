"""The emulated ATM adapter (NDD_ATM), one concern per module:

  adapter  AtmNdd: the VC table, per-VC pacing, transmit/receive, OAM answers, stats
  phy      the PHYs it plugs into: PhyPair (in process), UdpPhy (cells over UDP)
  cell     53-octet UNI cells: header repr, HEC (I.432.1), cell iteration
  aal5     AAL5 CPCS (I.363.5): CRC-32/BZIP2, segmentation, per-VC reassembly
  oam      OAM F5 loopback cells (I.610), CRC-10

What protocols and the adapter agree on (VcParams, the link header, the demuxer) is
ndd/atm.py.  Received bad input is counted, never raised.
"""
