"""Services a stack can offer (`tunstack up --serve NAME[:PORT]`):

  builtin  the catalogue (SERVICES) and the inetd-style services: echo, discard, chargen
  http     an HTTP/1.1 origin server on h11, with its bounds
"""
