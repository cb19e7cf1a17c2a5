"""Our signalling encodings as Wireshark reads them: SSCOP PDUs (Q.2110 §7) and a Q.2931
SETUP inside an SSCOP SD, written on VC 0/5 of a SUNATM pcap, are decoded by tshark with
the field values we put in."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from drivers.pcap import PcapRecorder, sunatm_record
from protocols.atm.saal.sscop_pdu import Bgak, Bgn, End, Endak, Er, Poll, Rs, Sd, Stat, Ud, Ustat

from .helpers import require_tool

PDUS = [
    (Bgn(n_sq=3, n_mr=77, uu=b""), {"PDU Type": "Begin (0x1)", "N(SQ)": "3", "N(MR)": "77"}),
    (Bgak(n_mr=99, uu=b""), {"PDU Type": "Begin Acknowledge (0x2)", "N(MR)": "99"}),
    (Sd(n_s=5, data=b"hello q2931"), {"PDU Type": "Sequenced Data (0x8)", "N(S)": "5", "Pad length": "1"}),
    (Poll(n_ps=7, n_s=12), {"PDU Type": "Status Request (0xa)", "N(PS)": "7", "N(S)": "12"}),
    (Stat(n_ps=7, n_mr=140, n_r=10, list=(10, 11)),
     {"PDU Type": "Solicited Status Response (0xb)", "N(PS)": "7", "N(MR)": "140", "N(R)": "10"}),
    (Ustat(140, 10, (11, 12)), {"PDU Type": "Unsolicited Status Response (0xc)", "N(MR)": "140", "N(R)": "10"}),
    (End(source=1, uu=b""), {"PDU Type": "End (0x3)", "Source": "SSCOP"}),
    (Endak(), {"PDU Type": "End Acknowledge (0x4)"}),
    (Rs(n_sq=4, n_mr=60, uu=b""), {"PDU Type": "Resynchronization (0x5)", "N(SQ)": "4", "N(MR)": "60"}),
    (Er(n_sq=5, n_mr=61), {"PDU Type": "Error Recovery (0x9)", "N(SQ)": "5", "N(MR)": "61"}),
    (Ud(data=b"ud!"), {"PDU Type": "Unnumbered Data (0xd)", "Pad length": "1"}),
]


def test_tshark_decodes_our_sscop_pdus(tmp_path: Path) -> None:
    require_tool("tshark")
    path = str(tmp_path / "sscop.pcap")
    rec = PcapRecorder(path, 123)
    for pdu, _ in PDUS:
        rec.write(sunatm_record(b"\0\0\0\x05" + pdu.emit(), True))     # VC 0/5: SAAL
    rec.close()
    out = subprocess.run(["tshark", "-r", path, "-V", "-O", "sscop"], capture_output=True, text=True,
                         timeout=60).stdout
    frames = re.split(r"^Frame \d+:", out, flags=re.M)[1:]
    assert len(frames) == len(PDUS)
    for text, (pdu, want) in zip(frames, PDUS, strict=True):
        fields = dict(re.findall(r"^\s+(?:[.01 ]+ = )?([A-Za-z() ]+?): (.+)$", text, flags=re.M))
        for name, value in want.items():
            assert fields.get(name) == value, (type(pdu).__name__, name, fields)


def test_tshark_decodes_our_q2931_setup(tmp_path: Path) -> None:
    from protocols.atm.uni.q2931 import (
        AAL_5,
        BCOB_X,
        PLAN_AESA,
        SETUP,
        AalParameters,
        BearerCapability,
        CalledNumber,
        Q2931Message,
        TrafficDescriptor,
    )
    require_tool("tshark")
    aesa = bytes.fromhex("47000580ffe1000000f21a3a4b0020481a3a4b00")
    setup = Q2931Message(SETUP, 42, 0, [AalParameters(AAL_5, 9188, 9188), TrafficDescriptor(fwd_pcr_01=353207,
                         bwd_pcr_01=353207), BearerCapability(BCOB_X, 0, 0, 0, 0), CalledNumber(aesa, PLAN_AESA)])
    path = str(tmp_path / "q2931.pcap")
    rec = PcapRecorder(path, 123)
    rec.write(sunatm_record(b"\0\0\0\x05" + Sd(n_s=0, data=setup.emit()).emit(), True))
    rec.close()
    out = subprocess.run(["tshark", "-r", path, "-V"], capture_output=True, text=True, timeout=60).stdout
    for line in ("Protocol discriminator: 0x09", "Call reference value: 00002a", "Message type: SETUP (0x05)",
                 "AAL type: AAL type 5 (0x05)", "Forward maximum CPCS-SDU size: 9188",
                 "Value: 353207 cells/s", "Bearer class: BCOB-X (0x10)",
                 "Numbering plan: ISO/IEC 8348 NSAP addressing (0x2)", "AFI: ICD ATM format (0x47)"):
        assert line in out, line
