"""The ATM adapter's block receive path (issue 15) against the per-cell path it replaced.

`PerCellAtmNdd._rx_cells` below is the receive loop as it was before: every cell parsed,
looked up and fed to AAL5 on its own (`parse_cells`, `Reassembler.feed`).  Each test
feeds the same PHY blocks to it and to today's `AtmNdd` and requires the same result:
SDUs delivered (and their order), adapter and per-VC counters, AAL5 state (partial PDUs,
held octets, timers), OAM replies and cells sent, cells relayed.  Sans-IO: the adapters'
services run no task and the clock is explicit."""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from drivers.atm import aal5, cell, oam
from drivers.atm.adapter import AtmNdd, AtmVc
from drivers.atm.phy import Phy
from ndd.atm import ATM_HDRLEN, VcParams
from ndd.pktbuf import PacketBuffer
from ndd.services import NetServices

VCS = ((1, 42), (1, 43), (2, 300))
SMALL = (1, 44)            # max SDU 100: longer PDUs are oversize
RELAY = (0, 200)
UNKNOWN = (7, 77)
CL = cell.CELL_LEN


class RecordingPhy(Phy):
    """A PHY that keeps what the adapter sends (OAM loopback replies)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    def open(self, start_task: Any) -> None:
        self.is_open = True
        self._set_up(True)

    def close(self) -> None:
        self.is_open = False

    def send(self, cells: bytes) -> int:
        self.sent.append(bytes(cells))
        return 0


class Recording(AtmNdd):
    """Keeps each delivered frame; `on_sdu` may act on it (e.g. close the VC) as a user could."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.delivered: list[bytes] = []
        self.relayed: list[tuple[tuple[int, int], bytes]] = []
        self.on_sdu: Callable[[AtmNdd, bytes], None] = lambda nd, frame: None

    def deliver(self, pkt: PacketBuffer) -> None:
        frame = pkt.tobytes()
        self.delivered.append(frame)
        self.on_sdu(self, frame)


class PerCellAtmNdd(Recording):
    """The reference: the adapter's receive loop before issue 15, cell by cell."""

    def _rx_cells(self, data: bytes) -> None:
        if not self.is_open:
            return
        st, ast = self.stats, self.atm_stats
        st.ndd_recvintr += 1
        vcs = self.vcs
        assert self.services is not None
        now = self.services.clock()
        feed = self.reasm.feed
        relayed: dict[AtmVc, list[bytes]] | None = None
        for i, (hdr, payload) in enumerate(cell.parse_cells(data, correct=self.hec_correct)):
            if isinstance(hdr, str):
                if hdr == "truncated":
                    ast.truncated_cells += 1
                else:
                    ast.hec_errors += 1
                    ast.dropped_cells += 1
                st.ndd_ierrors += 1
                continue
            ast.rcv_cells += 1
            vc = vcs.get((hdr.vpi, hdr.vci))
            if vc is None:
                ast.unknown_vc += 1
                ast.dropped_cells += 1
                continue
            vc.stats.cells_in += 1
            pti = hdr.pti
            if vc.relay is not None and pti != cell.PTI_OAM_SEGMENT and pti < cell.PTI_RM:
                if relayed is None:
                    relayed = {}
                raw = (hdr.emit() + bytes(payload) if hdr.corrected
                       else data[i * cell.CELL_LEN:(i + 1) * cell.CELL_LEN])
                relayed.setdefault(vc, []).append(raw)
                continue
            if pti & cell.PTI_NON_USER_BIT:
                if pti in (cell.PTI_OAM_SEGMENT, cell.PTI_OAM_END_TO_END):
                    self._oam_in(vc, hdr, payload)
                else:
                    ast.rm_cells += 1
                    ast.dropped_cells += 1
                continue
            sdu = feed(hdr.vpi, hdr.vci, pti, payload, now, vc.pdu_limit)
            if sdu is not None:
                self._deliver_sdu(vc, sdu)
        if relayed:
            for rvc, parts in relayed.items():
                ast.relay_cells_in += len(parts)
                if rvc.relay is not None:
                    rvc.relay(b"".join(parts))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(cls: type[Recording], clock: Clock, **kw: Any) -> Recording:
    ns = NetServices(lambda *a, **k: None, clock)
    nd = cls("atm0", RecordingPhy(), line_rate=0, **kw)
    ns.ns_attach(nd)
    ns.ns_alloc("atm0")
    for vc in VCS:
        nd.open_vc(VcParams(*vc))
    nd.open_vc(VcParams(*SMALL, max_sdu=100))
    nd.open_vc(VcParams(*RELAY, relay=lambda blob: nd.relayed.append((RELAY, blob))))
    return nd


def snapshot(nd: Recording) -> dict[str, Any]:
    r = nd.reasm
    assert isinstance(nd.phy, RecordingPhy)
    return {
        "delivered": list(nd.delivered),
        "relayed": list(nd.relayed),
        "stats": {**nd.stats.__dict__, **nd.atm_stats.__dict__},
        "vcs": {key: nd.vc_stats(*key) for key in sorted(nd.vcs)},
        "reasm": (r.held, r.evictions, list(r._active),
                  {key: (bytes(v.buf), v.discarding, v.deadline if v.buf else None, dict(v.stats.__dict__))
                   for key, v in sorted(r.vcs.items())}),
        "oam_replies": list(nd.oam_replies),
        "sent": list(nd.phy.sent),
    }


def run_both(blocks: list[bytes], *, clock_steps: list[float] | None = None,
             setup: Callable[[Recording], None] | None = None, **kw: Any) -> dict[str, Any]:
    """Feed `blocks` to the block path and to the per-cell reference; assert the same outcome."""
    out = []
    for cls in (AtmNdd, PerCellAtmNdd):
        clock = Clock()
        nd = make(Recording if cls is AtmNdd else PerCellAtmNdd, clock, **kw)
        if setup is not None:
            setup(nd)
        for i, blk in enumerate(blocks):
            if clock_steps is not None:
                clock.t += clock_steps[i % len(clock_steps)]
                nd.reasm.poll(clock.t)
            nd._rx_cells(blk)
        out.append(snapshot(nd))
    new, old = out
    for key in old:
        assert new[key] == old[key], key
    return new


def sdu(n: int, seed: int) -> bytes:
    return random.Random(n * 31 + seed).randbytes(n)


def cells_of(stream: bytes) -> list[bytes]:
    return [stream[o:o + CL] for o in range(0, len(stream), CL)]


def cut(stream: bytes, rng: random.Random, max_cells: int = 40) -> list[bytes]:
    """`stream` cut into blocks of 1..max_cells whole cells."""
    out, off = [], 0
    while off < len(stream):
        n = rng.randint(1, max_cells) * CL
        out.append(stream[off:off + n])
        off += n
    return out


def frames_of(vc: tuple[int, int], *sdus: bytes) -> list[bytes]:
    return [bytes((0, vc[0])) + vc[1].to_bytes(2, "big") + s for s in sdus]


# --- the cases named in issue 15 ------------------------------------------------------------------
def test_one_vc_block_delivers_every_pdu() -> None:
    a, b, c = sdu(9180, 1), sdu(1, 2), sdu(40, 3)      # 192 cells, one cell, one cell (40 + 8 = 48)
    got = run_both([aal5.segment(a, *VCS[0]) + aal5.segment(b, *VCS[0]) + aal5.segment(c, *VCS[0])])
    assert got["delivered"] == frames_of(VCS[0], a, b, c)
    assert got["stats"]["rcv_cells"] == 194 and got["reasm"][0] == 0


def test_mixed_vcs_interleaved_in_one_block() -> None:
    rng = random.Random(5)
    streams = [cells_of(aal5.segment(sdu(rng.randint(1, 3000), i), *vc)) for i, vc in enumerate(VCS)]
    # interleave: sometimes one cell of each, sometimes runs of a few
    mixed: list[bytes] = []
    while any(streams):
        s = rng.choice([s for s in streams if s])
        k = rng.choice((1, 1, 2, 5))
        mixed += s[:k]
        del s[:k]
    got = run_both([b"".join(mixed)])
    assert len(got["delivered"]) == 3
    # strictly one cell of each VC in turn: the block is handled cell by cell
    columns = [cells_of(aal5.segment(sdu(200, i), *vc)) for i, vc in enumerate(VCS)]
    one_by_one = b"".join(x for trio in zip(*columns, strict=True) for x in trio)
    assert len(run_both([one_by_one])["delivered"]) == 3


def test_pdu_spanning_blocks_at_every_cut() -> None:
    stream = (aal5.segment(sdu(500, 7), *VCS[0]) + aal5.segment(sdu(100, 8), *VCS[1])
              + aal5.segment(sdu(300, 9), *VCS[0]))
    n = len(stream) // CL
    for k in range(1, n):
        got = run_both([stream[:k * CL], stream[k * CL:]])
        assert len(got["delivered"]) == 3
    rng = random.Random(11)
    for _ in range(20):
        assert len(run_both(cut(stream, rng, 6))["delivered"]) == 3


def test_bad_crc_is_counted_and_the_next_pdu_delivered() -> None:
    bad = bytearray(aal5.segment(sdu(1000, 1), *VCS[0]))
    bad[3 * CL + 20] ^= 0x10                                # a payload bit: HEC fine, CRC-32 wrong
    good = sdu(700, 2)
    got = run_both([bytes(bad) + aal5.segment(good, *VCS[0])])
    assert got["delivered"] == frames_of(VCS[0], good)
    assert got["vcs"][VCS[0]]["crc_errors"] == 1
    # lost last cell: two PDUs merge and the Length/CRC reject them
    first = aal5.segment(sdu(1000, 3), *VCS[0])
    got = run_both([first[:-CL], aal5.segment(sdu(100, 4), *VCS[0])])
    assert got["delivered"] == [] and got["vcs"][VCS[0]]["crc_errors"] + got["vcs"][VCS[0]]["length_errors"] == 1


def test_abort_and_cpi_errors() -> None:
    body = bytes(40) + bytes((0, 0, 0, 0))                  # Length 0: abort
    abort = cell.header_bytes(*VCS[0], 1) + body + aal5.crc32_bzip2(body).to_bytes(4, "big")
    cpi = aal5.segment(sdu(300, 5), *VCS[0], cpi=1)
    got = run_both([abort + cpi + aal5.segment(b"ok", *VCS[0])])
    assert got["delivered"] == frames_of(VCS[0], b"ok")
    assert (got["vcs"][VCS[0]]["aborts"], got["vcs"][VCS[0]]["cpi_errors"]) == (1, 1)


@pytest.mark.parametrize("size", [100, 101, 200, 5000])
def test_oversize_pdu_discarded_up_to_its_last_cell(size: int) -> None:
    big = aal5.segment(sdu(size, 1), *SMALL)                # the VC's max SDU is 100
    ok = sdu(60, 2)
    stream = big + aal5.segment(ok, *SMALL)
    split = [big[:2 * CL], big[2 * CL:] + aal5.segment(ok, *SMALL)]
    for blocks in ([stream], split, cut(stream, random.Random(size), 3)):
        got = run_both(blocks)
        assert got["delivered"][-1:] == frames_of(SMALL, ok)
        assert got["vcs"][SMALL]["oversize_errors"] == (size > 100)


def test_oam_cells_in_the_middle_of_a_pdu() -> None:
    pdu = cells_of(aal5.segment(sdu(2000, 1), *VCS[0]))
    req = oam.loopback_request(*VCS[0], 7, end_to_end=True)
    seg = oam.loopback_request(*VCS[0], 8, end_to_end=False)
    reply = oam.loopback_reply(oam.loopback_request(*VCS[1], 9))
    assert reply is not None
    broken = bytearray(req)
    broken[20] ^= 1                                         # CRC-10 wrong
    rm = cell.header_bytes(*VCS[0], cell.PTI_RM) + bytes(48)
    block = b"".join(pdu[:10] + [req, reply, seg] + pdu[10:20] + [bytes(broken), rm, rm] + pdu[20:])
    got = run_both([block])
    assert len(got["delivered"]) == 1
    s = got["stats"]
    assert (s["oam_in"], s["oam_errors"], s["oam_loopbacks_answered"], s["rm_cells"]) == (4, 1, 2, 2)
    assert got["oam_replies"] == [(VCS[1][0], VCS[1][1], 9)] and len(got["sent"]) == 2
    # the same cells over blocks cut anywhere
    run_both(cut(block, random.Random(3), 7))


def test_truncated_block_and_short_blocks() -> None:
    stream = aal5.segment(sdu(300, 1), *VCS[0])
    # a block cut inside a cell: its whole cells count, the fragment is one truncated_cells
    got = run_both([stream[:4 * CL + 20], b"", b"\x01\x02", stream[4 * CL:]])
    assert got["stats"]["truncated_cells"] == 2 and got["delivered"] == frames_of(VCS[0], sdu(300, 1))
    # the rest of a cut cell arriving as the start of the next block is misaligned: bad HECs
    got = run_both([stream[:4 * CL + 20], stream[4 * CL + 20:], stream])
    assert got["stats"]["truncated_cells"] == 2 and got["stats"]["hec_errors"] > 0


@pytest.mark.parametrize("hec_correct", [False, True])
def test_bad_hec_cells_inside_a_run(hec_correct: bool) -> None:
    cells = [bytearray(c) for c in cells_of(aal5.segment(sdu(1500, 1), *VCS[0]) + aal5.segment(sdu(400, 2), *VCS[0]))]
    cells[5][4] ^= 0x01          # HEC octet: single-bit error (same key as its neighbours)
    cells[9][1] ^= 0x10          # VCI bit: single-bit error (another key)
    cells[15][0] ^= 0x41         # two bits: never corrected
    cells[-1][3] ^= 0x02         # the last cell's end-of-PDU bit
    got = run_both([b"".join(bytes(c) for c in cells)], hec_correct=hec_correct)
    assert got["stats"]["hec_errors"] == (1 if hec_correct else 4)


def test_unknown_vc_relayed_vc_and_a_user_that_closes_its_vc() -> None:
    a, b = sdu(100, 1), sdu(100, 2)
    stream = (aal5.segment(a, *UNKNOWN) + aal5.segment(a, *RELAY) + oam.loopback_request(*RELAY, 3, end_to_end=False)
              + aal5.segment(b, *RELAY) + aal5.segment(a, *VCS[2]) + aal5.segment(b, *VCS[2])
              + aal5.segment(a, *VCS[2]))

    def close_on_b(nd: Recording) -> None:
        def on_sdu(n: AtmNdd, frame: bytes) -> None:
            if frame[ATM_HDRLEN:] == a and (frame[1], int.from_bytes(frame[2:4], "big")) in n.vcs:
                n.close_vc(frame[1], int.from_bytes(frame[2:4], "big"))
        nd.on_sdu = on_sdu

    got = run_both([stream], setup=close_on_b)
    assert got["stats"]["unknown_vc"] == 3 + 6 and len(got["relayed"]) == 1 and got["stats"]["relay_cells_in"] == 6
    assert got["delivered"] == frames_of(VCS[2], a)


def test_byte_budget_evictions_happen_at_the_same_cell() -> None:
    def small_budget(nd: Recording) -> None:
        nd.reasm.max_bytes = 10 * cell.PAYLOAD_LEN

    rng = random.Random(2)
    parts = [cells_of(aal5.segment(sdu(rng.randint(300, 900), i), *vc)) for i, vc in enumerate(VCS * 3)]
    mixed: list[bytes] = []
    while any(parts):
        s = rng.choice([s for s in parts if s])
        k = rng.randint(1, 6)
        mixed += s[:k]
        del s[:k]
    got = run_both(cut(b"".join(mixed), rng, 12), setup=small_budget)
    assert got["reasm"][1] > 0                              # some partial PDUs were evicted


def test_timeouts_between_blocks() -> None:
    stream = aal5.segment(sdu(3000, 1), *VCS[0]) + aal5.segment(sdu(3000, 2), *VCS[1])
    got = run_both(cut(stream, random.Random(9), 30), clock_steps=[0.0, 4.0, 0.5, 7.0])
    assert sum(v["timeouts"] for v in got["vcs"].values()) > 0


@pytest.mark.parametrize("seed", range(40))
def test_random_streams_match_the_per_cell_path(seed: int) -> None:
    """Random mixes of everything above, cut into random blocks."""
    rng = random.Random(seed)
    pool: list[list[bytes]] = []
    for _ in range(rng.randint(1, 8)):
        vc = rng.choice(VCS + (SMALL, RELAY, UNKNOWN))
        c = cells_of(aal5.segment(sdu(rng.choice((1, 40, 41, 100, 500, 3000)), rng.randint(0, 9)), *vc,
                                  cpi=rng.choice((0, 0, 0, 1))))
        if rng.random() < 0.2:
            del c[rng.randrange(len(c))]                    # a lost cell
        pool.append(c)
    mixed: list[bytes] = []
    while any(pool):
        s = rng.choice([s for s in pool if s])
        k = rng.choice((1, 2, 8, 50))
        mixed += s[:k]
        del s[:k]
        if rng.random() < 0.05:
            mixed.append(oam.loopback_request(*rng.choice(VCS), rng.randint(0, 9), end_to_end=rng.random() < 0.5))
    stream = bytearray(b"".join(mixed))
    for _ in range(rng.choice((0, 0, 1, 3)) if stream else 0):
        stream[rng.randrange(len(stream))] ^= 1 << rng.randrange(8)
    run_both(cut(bytes(stream), rng, rng.choice((1, 5, 24, 300))), hec_correct=rng.random() < 0.5,
             clock_steps=[0.0, 0.0, 0.0, 3.0])


# --- the pieces -------------------------------------------------------------------------------------
def test_cell_block_runs_and_payloads() -> None:
    a = aal5.segment(sdu(200, 1), *VCS[0])                 # 5 cells
    b = aal5.segment(sdu(50, 2), *VCS[1])                  # 2 cells
    blk = cell.CellBlock(a + b + a[:CL] + b"xyz")
    assert blk.ncells == 8 and blk.truncated
    assert [(r.start, r.end, r.hec_ok) for r in blk.runs] == [(0, 5, True), (5, 7, True), (7, 8, True)]
    assert blk.pdu_ends(blk.runs[0]) == [4] and blk.pdu_ends(blk.runs[1]) == [6] and blk.pdu_ends(blk.runs[2]) == []
    assert bytes(blk.payloads()) == b"".join(c[5:] for c in cells_of(a + b + a[:CL]))
    bad = bytearray(a)
    bad[2 * CL + 4] ^= 0x80                                 # one HEC wrong inside the run
    assert [r.hec_ok for r in cell.CellBlock(bytes(bad)).runs] == [False]
    assert cell.CellBlock(b"").runs == [] and cell.CellBlock(b"ab").truncated


def test_hec_tables_match_the_hec_of_every_octet4() -> None:
    rng = random.Random(1)
    for _ in range(50):
        first3 = rng.randbytes(3)
        t = cell._CRC8
        k = t[t[t[t[first3[0]] ^ first3[1]] ^ first3[2]]]
        table = cell._hec_by_octet4(k)
        assert all(table[o4] == cell.hec(first3 + bytes((o4,))) for o4 in range(256))


def test_crc_ok_agrees_with_crc32_bzip2() -> None:
    rng = random.Random(4)
    for n in (48, 96, 9216):
        body = rng.randbytes(n - 4)
        pdu = body + aal5.crc32_bzip2(body).to_bytes(4, "big")
        assert aal5.crc_ok(pdu) and aal5.crc_ok(memoryview(pdu)) and aal5.crc_ok(bytearray(pdu))
        assert not aal5.crc_ok(pdu[:-1] + bytes((pdu[-1] ^ 1,)))


def test_feed_cells_matches_feed() -> None:
    """The reassembler alone: stretches of cells fed at once == one by one, counters included."""
    rng = random.Random(8)
    for _ in range(30):
        stream = b"".join(aal5.segment(sdu(rng.randint(1, 2000), i), 1, 42) for i in range(rng.randint(1, 4)))
        pays = [c[5:] for c in cells_of(stream)]
        eops = [c[3] & 2 != 0 for c in cells_of(stream)]
        if rng.random() < 0.5:
            k = rng.randrange(len(pays))
            del pays[k], eops[k]
        limit = rng.choice((aal5.MAX_PDU, aal5.pdu_limit(500)))
        r1, r2 = aal5.Reassembler(), aal5.Reassembler()
        r1.max_bytes = r2.max_bytes = rng.choice((aal5.DEFAULT_MAX_BYTES, 20 * 48))
        got1 = [s for p, e in zip(pays, eops, strict=True) if (s := r1.feed(1, 42, int(e), p, 0.0, limit)) is not None]
        got2, i = [], 0
        while i < len(pays):
            j = i
            while j < len(pays) - 1 and not eops[j] and j - i < rng.randint(0, 30):
                j += 1
            s = r2.feed_cells(1, 42, b"".join(pays[i:j + 1]), eops[j], 0.0, limit)
            if s is not None:
                got2.append(s)
            i = j + 1
        assert got1 == got2
        assert (r1.held, r1.evictions, r1.stats(1, 42), bytes(r1.vcs[(1, 42)].buf), r1.vcs[(1, 42)].discarding) == \
               (r2.held, r2.evictions, r2.stats(1, 42), bytes(r2.vcs[(1, 42)].buf), r2.vcs[(1, 42)].discarding)
