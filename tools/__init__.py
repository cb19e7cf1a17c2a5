"""The top layer: the `tunstack` command and what it runs.

  cli/       the command line: `tunstack up|ping|nc|atm|demo|bench`, how commands run
  services/  small services a stack offers (echo, discard, chargen, http)
  demo/      `tunstack demo`: the guided tour
  bench/     `make bench`: tunstack beside its peers, measured in one run
  lab/       test-lab helpers: network namespaces, linux-atm's atmsigd under a shim
"""
