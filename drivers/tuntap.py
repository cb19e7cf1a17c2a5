"""TUN (layer 3) and TAP (Ethernet) devices on Linux, through python-pytun.

The fd is non-blocking; a reader task waits with `trio.lowlevel.wait_readable` and
drains up to `batch` frames per wake-up.  With offloads on (the default) the device
is opened with IFF_VNET_HDR and TUNSETOFFLOAD CSUM|TSO4|TSO6 (+USO4|USO6 when the
kernel takes them): the kernel may then hand us GSO super-frames and partial
checksums, and accepts the same from us (<linux/if_tun.h>, <linux/virtio_net.h>; README
"Offloads").

The kernel queues what it sends us in the device's ring, `txqueuelen` packets long
(Linux's TUN default is 500).  We take each packet ~100 times slower than the kernel
makes it, so a burst overflows 500 at once: 10 000 clients connecting together lost
~5 SYNs in 6 there and waited for the retransmissions (1, 3, 7, 15, 31 s: 36 s for
all).  We ask for DEFAULT_TXQUEUELEN instead; the kernel counts the packets it drops as
the device's TX drops (`ip -s link`).  4096 (a listen backlog's worth, somaxconn) still
dropped 800-1200 frames in 2 s with 1000 bulk connections kernel→stack (`make bench`'s
scale rows, issue 15); 20 000 dropped none there, but a burst of 10 000 clients
connecting at once (SYN, then ACK and request from each) still overflowed it: 15-22 k
drops, the clients' retransmissions after 1, 3 and 7 s, 7.5-8.3 s until all were echoed
and 577 µs of CPU per connection; 65 536 dropped none: 3.2-3.3 s, 320-337 µs (issue 10
point 7, tests/adversarial/test_burst.py).  The ring itself is 8 octets a slot; what it
holds is the frames.  TCP's are bounded by what the senders may have in flight, i.e. by
the stack's receive windows (and tcp_mem); other traffic only by the count: up to ~150 MB
of 1500-octet frames if the stack stops reading under a flood, and with UDP segmentation
offload (USO) a sender's 64 KiB super-frames could hold far more.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytun
import trio

from ndd import constants as C
from ndd.ndd import StatusBlock, hard_fail
from ndd.pktbuf import PacketBuffer

from . import vnet
from .base import TaskNdd, random_mac

READ_SIZE = vnet.VNET_HDR_LEN + 14 + 65535 + 64
DEFAULT_TXQUEUELEN = 65536    # packets the kernel may queue towards us (`ip link set ... txqueuelen`)
SIOCSIFTXQLEN = 0x8943
SIOCGIFHWADDR = 0x8927
SIOCSIFMTU = 0x8922


@dataclass
class OpenedDevice:
    """A device opened by an `opener` (e.g. inside another network namespace: the gateway's
    tools/gateway/nsenter.py): its fd after TUNSETIFF, the name the kernel gave it, and an
    AF_INET socket made in the device's namespace, through which its SIOC* ioctls go."""
    fd: int
    name: str
    control: socket.socket


DeviceOpener = Callable[[str, int], OpenedDevice]    # (name, IFF_* flags) -> the opened device


class TunTapNdd(TaskNdd):
    is_tap = False

    def __init__(self, name: str, *, mtu: int = 1500, offload: bool = True, batch: int = 64,
                 physaddr: bytes | None = None, txqueuelen: int = DEFAULT_TXQUEUELEN,
                 opener: DeviceOpener | None = None) -> None:
        super().__init__(name, mtu=mtu, physaddr=(physaddr or random_mac()) if self.is_tap else b"")
        self.offload = offload
        self.batch = batch
        self.txqueuelen = txqueuelen
        self.device: pytun.TunTapDevice | None = None
        self.fd = -1
        self.offload_flags = 0
        self.rx_polled = 0      # read batches a busy poll found (poll_rx), beside ndd_recvintr
        self.rx_fast = 0        # frames nd_fast_rx took (counted in ndd_ipackets too)
        self.tx_gathered = 0    # frames ndd_output_gather wrote itself (counted in ndd_opackets too)
        # awaited before each wait for the device: a busy poller that reads it itself while it
        # polls (poll_rx) holds the reader back meanwhile -- trio would wake the reader for
        # frames the poller is about to read (stack/busypoll.py BusyPoller.while_polling)
        self.rx_defer: Callable[[], Awaitable[None]] | None = None
        self._vnet_prefixes: dict[tuple[int, int], bytes] = {}   # ndd_output_gather's, per checksum layout
        self.caps.gather = True
        self.vnet = False
        self.kernel_mac = b""   # TAP: the kernel side's MAC, read at creation (before a netns move)
        self.opener = opener    # None: pytun in our namespace; else who opens it (and where)
        self.control: socket.socket | None = None   # the opener's socket in the device's namespace

    def create(self) -> None:
        """Create the kernel device now (so it can be moved to a namespace before ndd_open)."""
        if self.device is not None:
            return
        if self.fd >= 0:
            return
        flags = (pytun.IFF_TAP if self.is_tap else pytun.IFF_TUN) | pytun.IFF_NO_PI
        if self.offload:
            flags |= pytun.IFF_VNET_HDR
        if self.opener is not None:
            self._create_with_opener(self.opener, flags)
            return
        self.device = pytun.TunTapDevice(name=self.ndd_name, flags=flags)
        self.fd = self.device.fileno()
        os.set_blocking(self.fd, False)
        self.vnet = self.offload
        if self.offload:
            self._negotiate_offloads()
        try:
            self.device.mtu = self.ndd_mtu
            if self.is_tap:
                self.kernel_mac = bytes(self.device.hwaddr)
        except Exception:  # pytun.Error: not fatal, `ip link set` can do it
            pass
        self._set_txqueuelen()

    def _create_with_opener(self, opener: DeviceOpener, flags: int) -> None:
        """The device comes from `opener` (maybe in another namespace): offloads go through
        its fd, MTU / txqueuelen / MAC through the control socket made where it lives."""
        opened = opener(self.ndd_name, flags)
        self.fd, self.ndd_name, self.control = opened.fd, opened.name, opened.control
        os.set_blocking(self.fd, False)
        self.vnet = self.offload
        if self.offload:
            self._negotiate_offloads()
        try:
            self._ifreq(SIOCSIFMTU, struct.pack("i", self.ndd_mtu))
            if self.is_tap:
                self.kernel_mac = self._ifreq(SIOCGIFHWADDR, b"")[18:24]   # ifr_hwaddr.sa_data
        except OSError:   # not fatal, as with pytun: `ip link set` can do it
            pass
        self._set_txqueuelen()

    def _ifreq(self, request: int, data: bytes) -> bytes:
        """A struct ifreq ioctl on this device, in its own namespace (the control socket's)."""
        ifreq = (self.ndd_name.encode()[:15].ljust(16, b"\0") + data).ljust(40, b"\0")
        if self.control is not None:
            return fcntl.ioctl(self.control.fileno(), request, ifreq)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            return fcntl.ioctl(s.fileno(), request, ifreq)

    def _set_txqueuelen(self) -> None:
        """SIOCSIFTXQLEN on the new device (it keeps it when moved to a namespace); a
        failure is not fatal: the kernel's 500 only makes bursts slower."""
        if not self.txqueuelen:
            return
        try:
            self._ifreq(SIOCSIFTXQLEN, struct.pack("i", self.txqueuelen))
        except OSError:
            pass

    def _negotiate_offloads(self) -> None:
        base = vnet.TUN_F_CSUM | vnet.TUN_F_TSO4 | vnet.TUN_F_TSO6
        for want in (base | vnet.TUN_F_USO4 | vnet.TUN_F_USO6, base, vnet.TUN_F_CSUM, 0):
            try:
                fcntl.ioctl(self.fd, vnet.TUNSETOFFLOAD, want)
            except OSError:
                continue
            self.offload_flags = want
            break
        f = self.offload_flags
        self.caps.tx_csum_offload = self.caps.rx_csum_partial = bool(f & vnet.TUN_F_CSUM)
        self.caps.gso_rx = bool(f & (vnet.TUN_F_TSO4 | vnet.TUN_F_TSO6))
        self.caps.tso_max = 65535 if f & vnet.TUN_F_TSO4 else 0
        self.caps.uso = bool(f & vnet.TUN_F_USO4)

    def _open_device(self) -> None:
        self.create()
        self.start_task(self._reader)
        self.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_LINK_UP,)))

    def _close_device(self) -> None:
        super()._close_device()
        self.release()

    def release(self) -> None:
        """Close the device's fd (a non-persistent device disappears with its last fd)."""
        if self.device is not None:
            self.device.close()
            self.device = None
        elif self.fd >= 0:        # opened by an opener
            os.close(self.fd)
        self.fd = -1
        if self.control is not None:
            self.control.close()
            self.control = None

    async def _reader(self) -> None:
        fd = self.fd
        hlen = vnet.VNET_HDR_LEN if self.vnet else 0
        while True:
            if self.rx_defer is not None:
                await self.rx_defer()
            await trio.lowlevel.wait_readable(fd)
            self.stats.ndd_recvintr += 1      # the fd became readable: our receive interrupt
            if not self._rx_batch(fd, hlen, None):
                return

    def poll_rx(self) -> bool:
        """One look at the device without waiting, for a busy poll (stack/busypoll.py; Linux's
        napi_busy_loop calls the driver's poll the same way): frames already queued are read
        and delivered as one read batch.  True if there were any.  A failed device is left
        to the reader task, whose wait sees the same error."""
        fd = self.fd
        if fd < 0:
            return False
        try:
            first = os.read(fd, READ_SIZE)
        except OSError:                       # nothing queued (EAGAIN), or for the reader
            return False
        self.rx_polled += 1
        self._rx_batch(fd, vnet.VNET_HDR_LEN if self.vnet else 0, first)
        return True

    def _rx_batch(self, fd: int, hlen: int, first: bytes | None) -> bool:
        batch = self.nd_rx_batch
        if batch is not None:
            batch(True)
        try:
            if first is not None:
                self._deliver_read(first, hlen)
            return self._read_batch(fd, hlen)
        finally:
            if batch is not None:
                batch(False)

    def _read_batch(self, fd: int, hlen: int) -> bool:
        """Up to `batch` frames read and delivered; False once the device has failed."""
        for _ in range(self.batch):
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.EIO):
                    # the device is gone or broken: HARD_FAIL with an AIX reason code
                    # (EIO: NDD_PIO_FAIL, EBADF: NDD_ADAPTER_DELETED) and the errno
                    self.report_status(hard_fail(exc.errno))
                    return False
                self.stats.ndd_ierrors += 1
                continue
            self._deliver_read(data, hlen)
        return True

    def _deliver_read(self, data: bytes, hlen: int) -> None:
        fast = self.nd_fast_rx
        if fast is not None and not self.taps and self._fast_rx(fast, data, hlen):
            return
        pkt = PacketBuffer(data, hlen)
        if hlen and (len(data) < hlen or not vnet.apply_rx(data, pkt)):
            self.stats.ndd_ierrors += 1
            return
        self.deliver(pkt)

    def _fast_rx(self, fast: Callable[[bytes, int, bool], bool], data: bytes, hlen: int) -> bool:
        """The frame offered to nd_fast_rx: True once it took it.  With the vnet header, only
        a frame that is not a super-frame, its checksum state read as vnet.apply_rx reads it
        (NEEDS_CSUM: the kernel's own data, valid once its offsets are inside the frame)."""
        csum_valid = False
        if hlen:
            if len(data) < hlen or data[1]:                  # gso_type: a super-frame
                return False
            flags, _, _, _, start, offset = vnet.VNET_HDR.unpack_from(data)
            state = vnet.csum_state(flags, start, offset, len(data) - hlen)
            if state is None:
                return False                                 # nonsense: apply_rx counts it
            csum_valid = state
        if not fast(data, hlen, csum_valid):
            return False
        st = self.stats
        st.ndd_ipackets += 1
        st.ndd_ibytes += len(data) - hlen
        self.rx_fast += 1
        return True

    def ndd_output_gather(self, header: bytes | bytearray, payload: bytes | bytearray | memoryview | None,
                          csum_start: int, csum_offset: int) -> int:
        """Ndd.ndd_output_gather with one writev: the vnet header (kept per checksum layout),
        `header`, `payload` -- counted as ndd_output counts a unicast frame.  Anything
        ndd_output must decide itself (the device closed or down, a tap, a checksum the
        device cannot finish, a group destination's counter) goes that way."""
        fd = self.fd
        if fd < 0 or self.taps or not self.ndd_flags & C.NDD_RUNNING or not self.is_open \
                or (csum_start >= 0 and not self.caps.tx_csum_offload) or (self.is_tap and header[0] & 1):
            return super().ndd_output_gather(header, payload, csum_start, csum_offset)
        self.stats.ndd_ifOutUcastPkts += 1
        self.tx_gathered += 1
        size = len(header) + (len(payload) if payload is not None else 0)
        if self.vnet:
            prefix = self._vnet_prefixes.get((csum_start, csum_offset))
            if prefix is None:
                prefix = vnet.NO_HDR if csum_start < 0 else \
                    vnet.VNET_HDR.pack(vnet.F_NEEDS_CSUM, 0, 0, 0, csum_start, csum_offset)
                if len(self._vnet_prefixes) < 64:
                    self._vnet_prefixes[(csum_start, csum_offset)] = prefix
            parts: tuple[bytes | bytearray | memoryview, ...] = \
                (prefix, header, payload) if payload is not None else (prefix, header)
        else:
            parts = (header, payload) if payload is not None else (header,)
        return self._count_sent(self._write(parts), size)

    def _transmit(self, pkt: PacketBuffer) -> int:
        if self.fd < 0:
            return errno.ENETDOWN
        return self._write((vnet.build_tx(pkt), pkt.view()) if self.vnet else (pkt.view(),))

    def _write(self, parts: tuple[bytes | bytearray | memoryview, ...]) -> int:
        """One frame written from its parts: 0, ENOBUFS (the queue is full) or the errno."""
        try:
            os.writev(self.fd, parts)
        except BlockingIOError:
            return errno.ENOBUFS
        except OSError as exc:
            return exc.errno or errno.EIO
        return 0


class TunNdd(TunTapNdd):
    ndd_type = C.NDD_RAWIP
    ndd_addrlen = 0
    ndd_hdrlen = 0
    linktype = 101   # LINKTYPE_RAW


class TapNdd(TunTapNdd):
    is_tap = True
    ndd_type = C.NDD_ISO88023
    linktype = 1     # LINKTYPE_ETHERNET
