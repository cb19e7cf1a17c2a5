"""The NDD family: AIX CDLI network device drivers and network services."""
from .constants import *  # noqa: F401,F403
from .demux import NS_INCLUDE_MAC, NS_PROTO, Demuxer, EtherDemuxer, NsFilter, NsUser, RawIpDemuxer
from .ndd import DeviceCaps, GenStats, Ndd, StatusBlock, ndd_error
from .services import NetServices

__all__ = ["Demuxer", "DeviceCaps", "EtherDemuxer", "GenStats", "NS_INCLUDE_MAC", "NS_PROTO", "Ndd",
           "NetServices", "NsFilter", "NsUser", "RawIpDemuxer", "StatusBlock", "ndd_error"]
