"""Q.2931 cause values, their texts and the errno a socket reports for each: defined here once.

Values: ITU-T Q.2610 (B-ISDN's use of the Q.850 §2.2.7 cause values), carried by the cause
IE (Q.2931 §4.5.15; ATM Forum UNI 3.1 §5.4.5.15).  The texts follow UNI 3.1 where it has
its own codes (23, and 78 for AAL parameters, which Q.2610 numbers 93).  The cause IE
codec (its location values included) is in ie.py; the numbers are also what the socket
option SO_ATM_CAUSE carries.

Errno: what a connect() that ends in a clearing cause reports, as linux-atm's atmsigd
tells its sockets: 1 EADDRNOTAVAIL; 3, 37, 47 EHOSTUNREACH; 22 EREMCHG; 27 EHOSTDOWN;
any other ECONNREFUSED; calls torn down by RESTART ENETRESET.  No errno -> cause mapping
exists: what a socket sends when it clears or refuses a call is a cause it names
(SO_ATM_CAUSE, or the socket service's own choice), never derived from an errno.
"""
from __future__ import annotations

import errno

# --- cause values (Q.2610 / Q.850 §2.2.7; UNI 3.1 §5.4.5.15) ------------------------------
CAUSE_UNALLOCATED_NUMBER = 1
CAUSE_NO_ROUTE_TRANSIT_NET = 2
CAUSE_NO_ROUTE_TO_DESTINATION = 3
CAUSE_VPCI_VCI_UNACCEPTABLE = 10
CAUSE_NORMAL_CLEARING = 16
CAUSE_USER_BUSY = 17
CAUSE_NO_USER_RESPONDING = 18
CAUSE_CALL_REJECTED = 21
CAUSE_NUMBER_CHANGED = 22
CAUSE_CLIR_REJECTED = 23                       # UNI 3.1 (Q.850 has "redirection" there)
CAUSE_DESTINATION_OUT_OF_ORDER = 27
CAUSE_INVALID_NUMBER_FORMAT = 28
CAUSE_RESPONSE_TO_STATUS_ENQUIRY = 30
CAUSE_NORMAL_UNSPECIFIED = 31
CAUSE_REQUESTED_VPCI_VCI_NOT_AVAILABLE = 35
CAUSE_VPCI_VCI_ASSIGNMENT_FAILURE = 36
CAUSE_USER_CELL_RATE_NOT_AVAILABLE = 37
CAUSE_NETWORK_OUT_OF_ORDER = 38
CAUSE_TEMPORARY_FAILURE = 41
CAUSE_ACCESS_INFO_DISCARDED = 43
CAUSE_NO_VPCI_VCI_AVAILABLE = 45
CAUSE_RESOURCE_UNAVAILABLE = 47
CAUSE_QOS_UNAVAILABLE = 49
CAUSE_BEARER_NOT_AUTHORIZED = 57
CAUSE_BEARER_NOT_AVAILABLE = 58
CAUSE_SERVICE_NOT_AVAILABLE = 63
CAUSE_BEARER_NOT_IMPLEMENTED = 65
CAUSE_UNSUPPORTED_TRAFFIC_PARAMS = 73
CAUSE_AAL_PARAMS_NOT_SUPPORTED_UNI31 = 78      # UNI 3.1's code for what Q.2610 calls 93
CAUSE_INVALID_CALL_REFERENCE = 81
CAUSE_CHANNEL_DOES_NOT_EXIST = 82
CAUSE_INCOMPATIBLE_DESTINATION = 88
CAUSE_INVALID_ENDPOINT_REFERENCE = 89
CAUSE_INVALID_TRANSIT_NETWORK = 91
CAUSE_TOO_MANY_ADD_PARTY = 92
CAUSE_AAL_PARAMS_NOT_SUPPORTED = 93
CAUSE_INVALID_MESSAGE = 95
CAUSE_MANDATORY_IE_MISSING = 96
CAUSE_MESSAGE_TYPE_NONEXISTENT = 97
CAUSE_IE_NONEXISTENT = 99
CAUSE_INVALID_IE_CONTENTS = 100
CAUSE_MESSAGE_NOT_COMPATIBLE = 101
CAUSE_RECOVERY_ON_TIMER_EXPIRY = 102
CAUSE_INCORRECT_MESSAGE_LENGTH = 104
CAUSE_PROTOCOL_ERROR = 111

# --- texts, for messages (tunstack atm svc-call, the demo) --------------------------------
CAUSE_TEXT: dict[int, str] = {
    CAUSE_UNALLOCATED_NUMBER: "unallocated (unassigned) number",
    CAUSE_NO_ROUTE_TRANSIT_NET: "no route to specified transit network",
    CAUSE_NO_ROUTE_TO_DESTINATION: "no route to destination",
    CAUSE_VPCI_VCI_UNACCEPTABLE: "VPCI/VCI unacceptable",
    CAUSE_NORMAL_CLEARING: "normal call clearing",
    CAUSE_USER_BUSY: "user busy",
    CAUSE_NO_USER_RESPONDING: "no user responding",
    CAUSE_CALL_REJECTED: "call rejected",
    CAUSE_NUMBER_CHANGED: "number changed",
    CAUSE_CLIR_REJECTED: "user rejects all calls with calling line identification restriction",
    CAUSE_DESTINATION_OUT_OF_ORDER: "destination out of order",
    CAUSE_INVALID_NUMBER_FORMAT: "invalid number format (address incomplete)",
    CAUSE_RESPONSE_TO_STATUS_ENQUIRY: "response to STATUS ENQUIRY",
    CAUSE_NORMAL_UNSPECIFIED: "normal, unspecified",
    CAUSE_REQUESTED_VPCI_VCI_NOT_AVAILABLE: "requested VPCI/VCI not available",
    CAUSE_VPCI_VCI_ASSIGNMENT_FAILURE: "VPCI/VCI assignment failure",
    CAUSE_USER_CELL_RATE_NOT_AVAILABLE: "user cell rate not available",
    CAUSE_NETWORK_OUT_OF_ORDER: "network out of order",
    CAUSE_TEMPORARY_FAILURE: "temporary failure",
    CAUSE_ACCESS_INFO_DISCARDED: "access information discarded",
    CAUSE_NO_VPCI_VCI_AVAILABLE: "no VPCI/VCI available",
    CAUSE_RESOURCE_UNAVAILABLE: "resource unavailable, unspecified",
    CAUSE_QOS_UNAVAILABLE: "quality of service unavailable",
    CAUSE_BEARER_NOT_AUTHORIZED: "bearer capability not authorized",
    CAUSE_BEARER_NOT_AVAILABLE: "bearer capability not presently available",
    CAUSE_SERVICE_NOT_AVAILABLE: "service or option not available, unspecified",
    CAUSE_BEARER_NOT_IMPLEMENTED: "bearer capability not implemented",
    CAUSE_UNSUPPORTED_TRAFFIC_PARAMS: "unsupported combination of traffic parameters",
    CAUSE_AAL_PARAMS_NOT_SUPPORTED_UNI31: "AAL parameters cannot be supported",
    CAUSE_INVALID_CALL_REFERENCE: "invalid call reference value",
    CAUSE_CHANNEL_DOES_NOT_EXIST: "identified channel does not exist",
    CAUSE_INCOMPATIBLE_DESTINATION: "incompatible destination",
    CAUSE_INVALID_ENDPOINT_REFERENCE: "invalid endpoint reference",
    CAUSE_INVALID_TRANSIT_NETWORK: "invalid transit network selection",
    CAUSE_TOO_MANY_ADD_PARTY: "too many pending add party requests",
    CAUSE_AAL_PARAMS_NOT_SUPPORTED: "AAL parameters cannot be supported",
    CAUSE_INVALID_MESSAGE: "invalid message, unspecified",
    CAUSE_MANDATORY_IE_MISSING: "mandatory information element is missing",
    CAUSE_MESSAGE_TYPE_NONEXISTENT: "message type non-existent or not implemented",
    CAUSE_IE_NONEXISTENT: "information element non-existent or not implemented",
    CAUSE_INVALID_IE_CONTENTS: "invalid information element contents",
    CAUSE_MESSAGE_NOT_COMPATIBLE: "message not compatible with call state",
    CAUSE_RECOVERY_ON_TIMER_EXPIRY: "recovery on timer expiry",
    CAUSE_INCORRECT_MESSAGE_LENGTH: "incorrect message length",
    CAUSE_PROTOCOL_ERROR: "protocol error, unspecified",
}


def cause_text(cause: int) -> str:
    return CAUSE_TEXT.get(cause, f"cause {cause}")


# --- cause -> errno (linux-atm's mapping, see the module docstring) -----------------------
CAUSE_ERRNO: dict[int, int] = {
    CAUSE_UNALLOCATED_NUMBER: errno.EADDRNOTAVAIL,
    CAUSE_NO_ROUTE_TO_DESTINATION: errno.EHOSTUNREACH,
    CAUSE_USER_CELL_RATE_NOT_AVAILABLE: errno.EHOSTUNREACH,
    CAUSE_RESOURCE_UNAVAILABLE: errno.EHOSTUNREACH,
    CAUSE_NUMBER_CHANGED: errno.EREMCHG,
    CAUSE_DESTINATION_OUT_OF_ORDER: errno.EHOSTDOWN,
}


def cause_to_errno(cause: int) -> int:
    """The errno a failed connect() reports for a clearing cause."""
    return CAUSE_ERRNO.get(cause, errno.ECONNREFUSED)


def restart_errno() -> int:
    """The errno for calls torn down by RESTART (of the VC or the whole interface)."""
    return errno.ENETRESET
