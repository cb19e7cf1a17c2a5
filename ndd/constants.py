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
NDD_DETACHED = 0x400           # taken off the NDD chain (ns_detach)
NDD_CHECKSUM_OFFLOAD = 0x10000  # the device computes/verifies TCP/UDP checksums (DeviceCaps csum)
NDD_SPECFLAGS = 0x100000       # device-specific ndd_flags start here
# ndd_2_flags (the flags extension field)
NDD_2_LARGE_RECEIVE = 0x100    # the device hands up aggregated TCP segments (DeviceCaps.gso_rx)

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
NDD_MIB_SET = 0xA
NDD_ADD_STATUS = 0xB
NDD_DEL_STATUS = 0xC
NDD_ENABLE_ADDRESS = 0xD
NDD_DISABLE_ADDRESS = 0xE
NDD_MIB_ADDR = 0xF
NDD_CLEAR_STATS = 0x10
NDD_GET_ALL_STATS = 0x102
NDD_DEVICE_SPECIFIC = 0x10000

# NDD_MIB_QUERY answers, one per MIB variable (<sys/ndd.h>)
MIB_NOT_SUPPORTED = 0x0
MIB_READ_ONLY = 0x1
MIB_READ_WRITE = 0x2
MIB_WRITE_ONLY = 0x3
# NDD_MIB_SET status per variable (<sys/ndd.h>)
MIB_OK = 0
MIB_NOT_SETTABLE = 1
MIB_WRONG_STATE = 2
MIB_FAILED = 3
MIB_BAD_VALUE = 4
# NDD_MIB_ADDR: status of one address-table entry (<sys/ndd.h>; RFC 1213 ipNetToMediaType's values)
NDD_MIB_OTHER = 1
NDD_MIB_INVALID = 2
NDD_MIB_VOLATILE = 3
NDD_MIB_NONVOLATILE = 4

# status block codes (ndd_statblk.code, <sys/ndd.h> of AIX 4.x/5.x): one bit each, so that an
# ns_com_status mask selects codes with `code & mask` (the 1993 header numbered them 1..6)
NDD_HARD_FAIL = 0x1             # the device failed for good (option[0]: a reason code below)
NDD_LIMBO_ENTER = 0x2           # entered network recovery mode (option[0]: a reason code)
NDD_LIMBO_EXIT = 0x4            # left network recovery mode, running again
NDD_CONNECTED = 0x8             # the device open completed
NDD_STATUS = 0x10               # other status and events (option[0] says which)
NDD_BAD_PKTS = 0x20             # a bad packet was received
NDD_STAT_BLOCK = 0x100000       # device-specific status codes start here
NS_STATUS_ALL = 0xFFFFFFFF      # (tunstack) a mask selecting every code, device-specific ones too

# reason codes: option[0] of NDD_HARD_FAIL / NDD_LIMBO_ENTER (<sys/ndd.h>)
NDD_ADAP_CHECK = 0x1            # adapter checkstop
NDD_BUS_ERROR = 0x2
NDD_CMD_FAIL = 0x3              # a device command failed
NDD_PIO_FAIL = 0x4              # an I/O operation on the device failed
NDD_UCODE_FAIL = 0x5
NDD_TX_ERROR = 0x6
NDD_TX_TIMEOUT = 0x7
NDD_RCV_ERROR = 0x8
NDD_AUTO_RMV = 0x9
NDD_ADDR_CHANGE = 0xA           # (AIX 5.3) MAC address changed at run time
NDD_ADAPTER_ADDED = 0xB         # (AIX 5.3) adapter added dynamically
NDD_ADAPTER_DELETED = 0xC       # (AIX 5.3) adapter removed dynamically
NDD_REASON_CODE = 0x100         # device-specific reason codes start here

# option[0] of an NDD_STATUS block (tunstack): device-specific reasons, so above
# NDD_REASON_CODE where they cannot be read as one of AIX's reason codes
NDD_LINK_UP = NDD_REASON_CODE + 1     # carrier: the link is up (NDD_RUNNING set)
NDD_LINK_DOWN = NDD_REASON_CODE + 2   # carrier lost (NDD_RUNNING cleared)
NDD_TX_READY = NDD_REASON_CODE + 3    # the transmit queue that refused a frame (ENOBUFS) has room again

# ns_8022 filter types (Ethernet demuxer)
NS_8022_LLC_DSAP = 1
NS_8022_LLC_DSAP_SNAP = 2
NS_TAP = 3
NS_ETHERTYPE = 4
NS_IPVERSION = 0x100           # (tunstack) raw-IP demuxer: IP version nibble
NS_ATM_VC = 0x200              # (tunstack) ATM demuxer: one VC (VPI/VCI)

# ns_user.pkt_format (<sys/cdli.h>): how the demuxer presents a frame to its user (ndd/demux.py)
NS_PROTO = 0x1                 # link-level headers removed: MAC and the 3-octet 802.2 LLC (a SNAP header stays)
NS_PROTO_SNAP = 0x2            # link-level headers removed, SNAP included
NS_INCLUDE_LLC = 0x4           # the MAC header removed, LLC (and SNAP) left in place
NS_INCLUDE_MAC = 0x8           # nothing removed: the whole frame
NS_HANDLE_NON_UI = 0x100       # or'ed in: the demuxer answers XID/TEST itself (not implemented: EINVAL)

# ns_com_status.filtertype (<sys/cdli.h>): the only status filter, a mask of status codes
NS_STATUS_MASK = 0x1

# The NDD_ATM interface of <sys/cdli_atmuser.h> (ndd/atm.py has its structures)
ATM_PHYSADDR_LEN = 6           # an ATM NDD's physical address (the ESI)
ATM_MAX_MTU = 65535
ATM_MIN_MTU = 1
ATM_VC_OPEN = NDD_DEVICE_SPECIFIC          # arg ndd.atm.AtmVcOpenReq (atm_vc_open_req_t)
ATM_VC_CLOSE = ATM_VC_OPEN + 1             # arg the vc_handle
ATM_VC_ACK = ATM_VC_CLOSE + 1              # arg ndd.atm.AtmVcAckReq (atm_vc_ack_req_t)
ATM_VC_LOCAL = ATM_VC_ACK + 1              # arg ndd.atm.AtmVcLocalReq (atm_vc_local_req_t)
ATM_TXBUF_REG = ATM_VC_LOCAL + 1           # register for adapter transmit buffers: EOPNOTSUPP here
ATM_TXBUF_GET = ATM_TXBUF_REG + 1          # get an adapter transmit buffer: EOPNOTSUPP here
ATM_VS_Q_LEN = ATM_TXBUF_GET + 1           # arg ndd.atm.AtmVcTxqLen (atm_vc_txq_len_t)
ATM_DEVICE_SPECIFIC = NDD_DEVICE_SPECIFIC + 100   # a driver's own ATM commands start here
# status block codes (ndd_statblk.code): NOT one bit each, as the header warns
ATM_VC_OPEN_DONE = NDD_STAT_BLOCK          # option (vc_handle, 0): the VC is open
ATM_VC_CLOSE_DONE = ATM_VC_OPEN_DONE + 1   # option (vc_handle, 0): the VC is closed
ATM_VC_LOCAL_DONE = ATM_VC_CLOSE_DONE + 1  # option (vc_handle1, vc_handle2): the two VCs are looped
ATM_VC_ACK_DONE = ATM_VC_LOCAL_DONE + 1    # option (vc_handle, 0): the VC's AAL parameters are set
NDD_NO_HANDLE_0 = NDD_SPECFLAGS            # an ATM NDD flag: users must not use vc_handle 0
# atm_vc_open_req.flags
VCOPEN_SVC = 0x1                           # the VC belongs to an SVC (ATM_VC_ACK applies)
VCOPEN_CID = 0x2                           # conn_id (VPI/VCI) is given
# atm_vc_open_req.checksum_prot / checksum_type
NO_CHECKSUM = 0
MPOA_CHECKSUM = 1
CIP_CHECKSUM = 2
LANE_ETH_CHECKSUM = 4
LANE_TOK_CHECKSUM = 6
TX_CHECKSUM = 1
RX_CHECKSUM = 2
# atm_genstats.uni_ver (uni_version) and device_type
AUTO_DETECT = 0
UNI_30 = 1
UNI_31 = 2
UNI_IBM_8282 = 3
UNI_40 = 4
AUTO_DETECT_UNI_31_RESTRICTED = 9
ATM_TW_100 = 0x1
ATM_TW_155 = 0x2
ATM_TW_25 = 0x3
# <sys/call_ie.h> values the ATM_VC_OPEN argument uses
CM_AAL_5 = 0x5                 # aal_parm.aal_type
CM_MESSAGE_MODE = 0x1          # aal_5.mode
CM_STREAMING_MODE = 0x2
CM_NULL_SSCS = 0x0             # aal_5.sscs_type
NOT_SPECIFIED_L = 0xFFFFFFFF   # a 4-octet subfield left out (traffic_des rates)
CM_MAX_DATA_RATE = 0x005FFFFF  # traffic_des_t: the largest rate, Kbit/s
CM_MAX_BUR_SIZE = 0x2FFFFFD0   # traffic_des_t: the largest burst, octets

# NDD_ATM commands of tunstack's own, above ATM_DEVICE_SPECIFIC as a driver's must be
NDD_ATM_OPEN_VC = ATM_DEVICE_SPECIFIC + 1        # arg ndd.atm.VcParams
NDD_ATM_CLOSE_VC = ATM_DEVICE_SPECIFIC + 2       # arg (vpi, vci)
NDD_ATM_GET_VC_STATS = ATM_DEVICE_SPECIFIC + 3   # arg (vpi, vci) -> dict
NDD_ATM_SET_LINE_RATE = ATM_DEVICE_SPECIFIC + 4  # arg bit/s of cells (0: unpaced)
NDD_ATM_OAM_LOOPBACK = ATM_DEVICE_SPECIFIC + 5   # arg (vpi, vci) -> correlation tag
NDD_ATM_LIST_VCS = ATM_DEVICE_SPECIFIC + 6       # -> [(vpi, vci), ...]
NDD_ATM_CLOSE_VC_DRAIN = ATM_DEVICE_SPECIFIC + 7  # arg (vpi, vci): close once its queued SDUs are sent

# AF_NDD sockets (AIX <sys/socket.h>, <sys/ndd.h>, <sys/atmsock.h>): the address family,
# the connection-oriented datagram socket type and the ATM protocol number
AF_NDD = 23
SOCK_CONN_DGRAM = 6
# NDD protocols (<sys/ndd_var.h>, bos530 1.6): the third argument of socket(AF_NDD, ...)
NDD_PROT_ETHER = 1     # SOCK_DGRAM over an Ethernet NDD: protocols/ndd8022.py
NDD_PROT_TOK = 2       # token ring: no NDD of that type here
NDD_PROT_FDDI = 3      # FDDI: likewise
NDD_PROT_FCS = 4       # Fibre Channel: likewise
NDD_PROT_ATM = 5
