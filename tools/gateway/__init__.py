"""`tunstack gateway`: user-mode networking for a network namespace or a VM's TAP (issue 13).

Modules:
  args      the command-line grammars (pasta's -t/-u port forwards, slirp4netns 1.2's
            command line) and slirp4netns's JSON API codec, as dataclasses; no I/O
  nsenter   Linux namespaces through libc (setns, unshare), a TUN/TAP opened inside a
            target network namespace and used from ours, new user+network namespaces
            for `tunstack gateway -- COMMAND`
  ifconfig  --configure: the guest side's address, route and MTU through a socket made
            in the guest's namespace (SIOC* ioctls, as slirp4netns -c)
  lifecycle --ready-fd, --exit-fd, and watching the target (its PID, its file)
  policy    the address model (slirp4netns's 10.0.2.0/24: gateway .2, DNS .3, guest .100)
            and where a guest's flow may go (host loopback and metadata only when allowed)
  flows     the flow table: bounded (--max-flows), UDP idle timeouts (30 s one-way, 180 s
            two-way), a sans-IO TimedCore
  hosttcp   the host side of a guest's TCP connection: connect(2) with a timeout, and what
            the guest is shown when it fails (RST, ICMP net/host/admin unreachable, silence)
  tcp       the TCP side joined: held SYNs -> policy -> flow table -> host connect -> the
            guest answered (forward_accept and the relay, or forward_reject)
  relay     the TCP relay between a guest connection and a host connection (backpressure,
            half-close, resets mapped across)
  hostudp   a UDP flow's host socket: connected, with the kernel's ICMP errors about it read
            from the error queue (IP_RECVERR / IPV6_RECVERR)
  udp       the UDP side joined: guest datagrams -> policy -> flow table -> one connected
            host socket per flow (the guest's port kept), replies and the host's errors
            (as ICMP) back to the guest, bounded queues, idle expiry
  ping      guests' echo requests through unprivileged ping sockets (never a forged reply)
  echo      the ICMP echo side joined: guest pings -> policy -> flow table -> a ping socket
            per (guest, identifier, destination), replies with the guest's identifier
  dns       the DNS forwarder's core (sans-IO): upstreams from resolv.conf, the query table
  dns_serve the DNS forwarder under trio: 10.0.2.3:53 over UDP and TCP to the host's resolvers
"""
