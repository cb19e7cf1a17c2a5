"""`tunstack gateway`: user-mode networking for a namespace or a VM (the slirp4netns job):

  dns        the DNS forwarder's core (sans-IO): upstreams from resolv.conf, the query table
  dns_serve  the DNS forwarder under trio: 10.0.2.3:53 over UDP and TCP to the host's resolvers
"""
