"""linux-atm's atmsigd as a real SAAL / Q.2931 peer: an LD_PRELOAD shim (shim.c) and a harness."""
