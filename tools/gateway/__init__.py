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
  outbound  --outbound-addr[6]: the host address the flows leave from (an address or an
            interface's), resolved and checked at start
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
  dgflow    what the datagram sides share: bounded per-flow queues under a total, one task
            per flow, its end by expiry, socket failure or stop
  udp       the UDP side joined: guest datagrams -> policy -> flow table -> one connected
            host socket per flow (the guest's port kept), replies and the host's errors
            (as ICMP) back to the guest, bounded queues, idle expiry
  ping      guests' echo requests through unprivileged ping sockets (never a forged reply)
  echo      the ICMP echo side joined: guest pings -> policy -> flow table -> a ping socket
            per (guest, identifier, destination), replies with the guest's identifier
  dns       the DNS forwarder's core (sans-IO): upstreams from resolv.conf, the query table
  dns_serve the DNS forwarder under trio: 10.0.2.3:53 over UDP and TCP to the host's resolvers
  portfwd   inbound port forwards (-t/-u, the API's table): host listeners whose clients reach
            the guest from their own address (IP_TRANSPARENT on the stack socket) where the
            address model allows it, else from the gateway address; TCP relayed, UDP per-client
            flows with idle timeouts; bounded
  api       slirp4netns's JSON API socket (add_hostfwd, list_hostfwd, remove_hostfwd) on
            PortForwarder
  main      a run: target namespace, device, Stack, the sides and services, ready, stop
  cli       the command lines: `tunstack gateway ...` and slirp4netns 1.2's (compatibility mode)
  dhcp_serve the DHCP server on the guest's TAP (protocols/dhcp/ is its sans-IO core): port 67
            of the gateway Stack in, replies out of the TAP -- to the client's MAC unresolved
            while it has no address (RFC 2131 §4.1, Ipv4.output(lladdr=...))
  radv_serve IPv6 router advertisements on the guest's TAP (protocols/ipv6/radv.py is the core):
            fd00::/64 for SLAAC, RDNSS fd00::3, the gateway's link-local address as the
            default router; the interface made a router's (Inet6Host.become_router)
"""
