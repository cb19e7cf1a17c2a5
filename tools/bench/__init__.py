"""`make bench`: figures, never assertions (`python -m tools.bench.main`):

  main           the run: sections, the table, bench-out/bench.json
  common         result cells, namespaces that always go away, peers, number format
  veth           section a: Linux to Linux over a veth pair (the ceiling)
  pytcp          section b: pmd-pytcp on a TAP (pytcp_harness runs under its own venv)
  slirp          section c: slirp4netns
  tunstack       section d: tunstack on a TUN
  peer           the stdlib-only Linux-side peers run inside a namespace
  svc            ATM SVC call setup beside linux-atm's atmsigd
  lossy          bulk TCP over a lossy path, tunstack beside Linux
"""
