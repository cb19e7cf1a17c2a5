"""`tunstack gateway`: user-mode networking for a network namespace or a VM's TAP.

Modules:
  args     the command-line grammars (pasta's -t/-u port forwards, slirp4netns 1.2's
           command line) and slirp4netns's JSON API codec, as dataclasses; no I/O.
  nsenter  Linux namespaces through libc (setns, unshare), a TUN/TAP opened inside a
           target network namespace and used from ours, new user+network namespaces
           for `tunstack gateway -- COMMAND`.
  ifconfig --configure: the guest side's address, route and MTU through a socket made
           in the guest's namespace (SIOC* ioctls, as slirp4netns -c).
  lifecycle --ready-fd, --exit-fd, and watching the target (its PID, its file).
"""
