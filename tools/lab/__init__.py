"""The test lab, shipped with the package so `tunstack bench` from a wheel has it all:

  netns             network namespaces as test hosts (iproute2), unique names
  atmsigd           linux-atm's atmsigd as a peer: its signalling VC bridged onto an
                    emulated adapter through an LD_PRELOAD shim (atmsigd_shim.c, built with gcc)
"""
