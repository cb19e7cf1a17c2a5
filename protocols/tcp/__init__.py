"""TCP (RFC 9293) as sans-IO cores, one concern per module:

  wire.py        header + options view/repr          seq.py        modulo-2**32 arithmetic
  tcb.py         the control block's typed fields    config.py     TcpConfig (the tunables)
  conn.py        Connection: the TCB and user calls  input.py      segment arrival
  output.py      segment departure (Nagle, SWS, TSO) timer.py      RTO, persist, delack, keepalive, TIME-WAIT
  buffers.py     send/receive queues, SACK scoreboard congestion.py NewReno, CUBIC (pluggable)
  rtt.py         RFC 6298 estimator                  listen.py     SYN cookies
  tcp.py         protocol: tables, ISNs, IPv4 glue   usrreq.py     what the socket layer calls
  memory.py      buffer autotuning, tcp_mem budget   stats.py      TcpStats (the counters)
"""
