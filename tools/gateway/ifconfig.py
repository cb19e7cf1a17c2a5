"""--configure: the guest side's address, default route and MTU, set from our own
namespaces through the control socket that nsenter.open_tuntap_in made in the guest's
(the socket's namespace is where the ioctls act; netdevice(7), route(4) SIOCADDRT).

What slirp4netns's -c does, in the same order: lo up, the TAP up, its MTU, (its MAC),
its address and netmask, a default route via the gateway.  A failure is an
IfconfigError whose text says which step, on which interface, and why.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import ipaddress
import os
import socket
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
SIOCSIFMTU = 0x8922
SIOCSIFHWADDR = 0x8924
SIOCADDRT = 0x890B
IFF_UP = 0x1
RTF_UP = 0x1
RTF_GATEWAY = 0x2
ARPHRD_ETHER = 1


class IfconfigError(OSError):
    def __str__(self) -> str:
        return str(self.strerror)


class _Sockaddr(ctypes.Structure):
    _fields_ = [("sa_family", ctypes.c_ushort), ("sa_data", ctypes.c_ubyte * 14)]


class _Rtentry(ctypes.Structure):
    """struct rtentry, <linux/route.h> (ctypes lays out the native padding)."""
    _fields_ = [("rt_pad1", ctypes.c_ulong), ("rt_dst", _Sockaddr), ("rt_gateway", _Sockaddr),
                ("rt_genmask", _Sockaddr), ("rt_flags", ctypes.c_ushort), ("rt_pad2", ctypes.c_short),
                ("rt_pad3", ctypes.c_ulong), ("rt_pad4", ctypes.c_void_p), ("rt_metric", ctypes.c_short),
                ("rt_dev", ctypes.c_char_p), ("rt_mtu", ctypes.c_ulong), ("rt_window", ctypes.c_ulong),
                ("rt_irtt", ctypes.c_ushort)]


def _sockaddr_in(addr: ipaddress.IPv4Address) -> bytes:
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + addr.packed + bytes(8)


def _sa(addr: ipaddress.IPv4Address) -> _Sockaddr:
    # from the bytes, not _Sockaddr(family, data): a c_char array would stop at the port's NUL
    return _Sockaddr.from_buffer_copy(_sockaddr_in(addr))


def _ifreq(ifname: str, data: bytes) -> bytes:
    return (ifname.encode()[:15].ljust(16, b"\0") + data).ljust(40, b"\0")


def _ioctl(control: socket.socket, request: int, arg: bytes, step: str, ifname: str) -> bytes:
    try:
        return fcntl.ioctl(control.fileno(), request, arg)
    except OSError as exc:
        err = exc.errno or errno.EIO
        raise IfconfigError(err, f"{step} on {ifname}: {os.strerror(err)}") from None


def link_up(control: socket.socket, ifname: str) -> None:
    flags = struct.unpack_from("H", _ioctl(control, SIOCGIFFLAGS, _ifreq(ifname, b""), "reading flags", ifname), 16)[0]
    _ioctl(control, SIOCSIFFLAGS, _ifreq(ifname, struct.pack("H", flags | IFF_UP)), "setting up", ifname)


def configure_interface(control: socket.socket, ifname: str, address: ipaddress.IPv4Interface,
                        gateway: ipaddress.IPv4Address | None, mtu: int, mac: bytes | None = None) -> None:
    """slirp4netns -c through `control`: lo and `ifname` up, MTU, MAC, address/prefix,
    default route via `gateway` (None: no route)."""
    link_up(control, "lo")
    link_up(control, ifname)
    _ioctl(control, SIOCSIFMTU, _ifreq(ifname, struct.pack("i", mtu)), f"setting MTU {mtu}", ifname)
    if mac is not None:
        _ioctl(control, SIOCSIFHWADDR, _ifreq(ifname, struct.pack("=H", ARPHRD_ETHER) + mac),
               f"setting MAC {mac.hex(':')}", ifname)
    _ioctl(control, SIOCSIFADDR, _ifreq(ifname, _sockaddr_in(address.ip)), f"setting address {address}", ifname)
    _ioctl(control, SIOCSIFNETMASK, _ifreq(ifname, _sockaddr_in(address.netmask)),
           f"setting netmask {address.netmask}", ifname)
    if gateway is not None:
        any_ = ipaddress.IPv4Address(0)
        dev = ctypes.create_string_buffer(ifname.encode())
        rt = _Rtentry(rt_dst=_sa(any_), rt_gateway=_sa(gateway), rt_genmask=_sa(any_),
                      rt_flags=RTF_UP | RTF_GATEWAY, rt_dev=ctypes.cast(dev, ctypes.c_char_p))
        _ioctl(control, SIOCADDRT, bytes(rt), f"adding default route via {gateway}", ifname)
