"""ATM wire layer, sans-IO (DESIGN.md §6).

  cell  -- 53-octet UNI cells: header repr, HEC (I.432.1), cell iteration
  aal5  -- AAL5 CPCS (I.363.5): CRC-32/BZIP2, segmentation, per-VC reassembly
  oam   -- OAM F5 loopback cells (I.610), CRC-10

Nothing here touches trio or a device; received bad input is returned as a reason string
and counted, never raised.
"""
