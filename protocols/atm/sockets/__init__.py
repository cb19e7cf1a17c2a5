"""AF_NDD ATM sockets (AIX's connection-oriented datagram service), sans-IO:

  sockaddr    sockaddr_ndd_atm and the SO_ATM_* option values (AIX <sys/atmsock.h>)
  pcb         one socket's state and its VC on the adapter
  usrreq      the user requests the socket layer calls (bind, listen, connect, send...)
  svc         SVC call control for sockets: one manager per Stack over the UNI endpoints
  svc_params  socket options <-> Q.2931 SETUP information elements
"""
