"""The NDD family (AIX CDLI): the bottom layer, and the vocabulary every layer shares.

  ndd        Ndd: one network device as the protocol side sees it (struct ndd), its stats
  services   NetServices: ns_attach/alloc/free, ns_add_filter, ns_add_status, demuxer table
  demux      the Ethernet and raw-IP demuxers and their filters (ns_8022, ns_user)
  atm        the NDD's ATM interface: VcParams, the link header, the ATM demuxer, the 9180 MTU
  constants  AIX names and values (ndd_flags, ndd_ctl commands, filter types, AF_NDD...)
  mib        the generic interface MIB ndd_ctl answers (NDD_MIB_QUERY/GET/SET/ADDR; RFC 1213/2863)
  pktbuf     PacketBuffer (headroom, offload metadata) and the virtio GSO kinds
  counters   the statistics base class every layer's counters derive from
  checksum   the Internet checksum (RFC 1071) and its incremental forms
"""
