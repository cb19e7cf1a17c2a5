"""NDD names and values from AIX CDLI (<sys/ndd.h>, <sys/cdli.h>); README "Constants".

Values marked (tunstack) have no AIX counterpart and are our own.
"""
from __future__ import annotations

# NDD types (ndd_type)
NDD_ISO88023 = 0x07            # Ethernet / 802.3
NDD_SOFTWARE_LOOPBACK = 0x18   # as IFT_LOOP
NDD_ATM = 0x20
NDD_RAWIP = 0x1000             # (tunstack) layer-3 device such as TUN: frames are bare IP packets

# ndd_flags
NDD_UP = 0x1
NDD_BROADCAST = 0x2
NDD_DEBUG = 0x4
NDD_RUNNING = 0x8
NDD_SIMPLEX = 0x10
NDD_DEAD = 0x20
NDD_LIMBO = 0x40
NDD_PROMISC = 0x80
NDD_ALTADDRS = 0x100
NDD_MULTICAST = 0x200

# ndd_ctl commands
NDD_GET_STATS = 0x1
NDD_ENABLE_MULTICAST = 0x2
NDD_DISABLE_MULTICAST = 0x3
NDD_PROMISCUOUS_ON = 0x4
NDD_PROMISCUOUS_OFF = 0x5
NDD_ADD_FILTER = 0x6
NDD_DEL_FILTER = 0x7
NDD_MIB_QUERY = 0x8
NDD_MIB_GET = 0x9
NDD_ADD_STATUS = 0xB
NDD_DEL_STATUS = 0xC
NDD_ENABLE_ADDRESS = 0xD
NDD_DISABLE_ADDRESS = 0xE
NDD_CLEAR_STATS = 0x10
NDD_DEVICE_SPECIFIC = 0x10000

# status block codes (ndd_statblk.code)
NDD_HARD_FAIL = 0x1
NDD_LIMBO_ENTER = 0x2
NDD_LIMBO_EXIT = 0x3
NDD_CONNECTED = 0x4
NDD_STATUS = 0x5
NDD_BAD_PKTS = 0x6
# option[0] of an NDD_STATUS block (tunstack): the PHY state
NDD_LINK_UP = 0x1
NDD_LINK_DOWN = 0x2
NDD_TX_READY = 0x3              # the transmit queue that refused a frame (ENOBUFS) has room again

# ns_8022 filter types (Ethernet demuxer)
NS_8022_LLC_DSAP = 1
NS_8022_LLC_DSAP_SNAP = 2
NS_TAP = 3
NS_ETHERTYPE = 4
NS_IPVERSION = 0x100           # (tunstack) raw-IP demuxer: IP version nibble
NS_ATM_VC = 0x200              # (tunstack) ATM demuxer: one VC (VPI/VCI)

# NDD_ATM device-specific ndd_ctl commands (tunstack; AIX keeps its own private to the driver)
NDD_ATM_OPEN_VC = NDD_DEVICE_SPECIFIC + 1        # arg ndd.atm.VcParams
NDD_ATM_CLOSE_VC = NDD_DEVICE_SPECIFIC + 2       # arg (vpi, vci)
NDD_ATM_GET_VC_STATS = NDD_DEVICE_SPECIFIC + 3   # arg (vpi, vci) -> dict
NDD_ATM_SET_LINE_RATE = NDD_DEVICE_SPECIFIC + 4  # arg bit/s of cells (0: unpaced)
NDD_ATM_OAM_LOOPBACK = NDD_DEVICE_SPECIFIC + 5   # arg (vpi, vci) -> correlation tag
NDD_ATM_LIST_VCS = NDD_DEVICE_SPECIFIC + 6       # -> [(vpi, vci), ...]
NDD_ATM_CLOSE_VC_DRAIN = NDD_DEVICE_SPECIFIC + 7  # arg (vpi, vci): close once its queued SDUs are sent

# AF_NDD sockets (AIX <sys/socket.h>, <sys/ndd.h>, <sys/atmsock.h>): the address family,
# the connection-oriented datagram socket type and the ATM protocol number
AF_NDD = 23
SOCK_CONN_DGRAM = 6
NDD_PROT_ATM = 5
