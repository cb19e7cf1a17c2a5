"""Our SSCOP encoding as Wireshark reads it: PDUs written on VC 0/5 of a SUNATM pcap are
decoded by tshark's SSCOP dissector with the field values we put in (Q.2110 §7)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from drivers.pcap import PcapRecorder, sunatm_record
from protocols.atm.sscop_pdu import Bgak, Bgn, End, Endak, Er, Poll, Rs, Sd, Stat, Ud, Ustat

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
    if shutil.which("tshark") is None:
        if os.environ.get("TUNSTACK_REQUIRE_TUN") == "1":
            pytest.fail("tshark is missing (make test installs it as root)")
        pytest.skip("tshark is not installed")
    path = str(tmp_path / "sscop.pcap")
    rec = PcapRecorder(path, 123)
    for pdu, _ in PDUS:
        rec.write(sunatm_record(b"\0\0\0\x05" + pdu.emit(), True))     # VC 0/5: SAAL
    rec.close()
    out = subprocess.run(["tshark", "-r", path, "-V", "-O", "sscop"], capture_output=True, text=True,
                         timeout=60).stdout
    frames = re.split(r"^Frame \d+:", out, flags=re.M)[1:]
    assert len(frames) == len(PDUS)
    for text, (pdu, want) in zip(frames, PDUS):
        fields = dict(re.findall(r"^\s+(?:[.01 ]+ = )?([A-Za-z() ]+?): (.+)$", text, flags=re.M))
        for name, value in want.items():
            assert fields.get(name) == value, (type(pdu).__name__, name, fields)
