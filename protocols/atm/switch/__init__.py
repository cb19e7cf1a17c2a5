"""The emulated ATM switch's call routing, sans-IO (its trio side is stack/atm_switch.py):

  routes  party numbers as routing keys, prefixes, the longest-match table, VCI allocation
  core    the switch core: ports as network-side UNIs, call routing between them
"""
