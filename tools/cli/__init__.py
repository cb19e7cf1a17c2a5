"""The `tunstack` command line:

  main        the entry point: parser, subcommands up, ping, nc, atm, demo, bench
  command     how every command runs: signals, exit status, one-line errors
  device      device options: build the NDD, put its kernel side in a namespace
  nc, nc_tcp  `tunstack nc` (UDP here, TCP in nc_tcp)
  atm         `tunstack atm pvc|ip`, and the dispatch of the other atm subcommands
  atm_args    option values the atm subcommands share (HOST:PORT, line rates)
  atm_svc     `tunstack atm svc-server|svc-call`
  atm_clip    `tunstack atm ip --switch` and `tunstack atm arp-server`
  atm_switch  `tunstack atm switch`
"""
