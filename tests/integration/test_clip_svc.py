"""Classical IP over SVCs (RFC 2225 §8.3-8.5): host Stacks whose only link is an emulated
ATM adapter on a port of the emulated switch (stack/atm_switch.py), with IP -> AESA from a
static table or an ATMARP server; calls placed on demand, released when idle.  Timers run
on trio's MockClock; the CLI test at the end runs real processes."""
from __future__ import annotations

import errno
import hashlib
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing

from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import PhyPair
from drivers.pcap import PcapRecorder
from ndd import constants as C
from protocols.addr import ip_to_int
from protocols.atm.clip.atmarp import OP_INARP_REPLY, OP_INARP_REQUEST, OP_NAK, OP_REPLY, OP_REQUEST
from protocols.atm.clip.link import VALID, ClipConfig
from protocols.atm.clip.svc import REGISTERED
from protocols.tcp.config import TcpConfig
from stack.atm_switch import AtmSwitch
from stack.stack import Stack, StackConfig

from .helpers import require_tool, tcp_exchange

NET = "47000580ffe1000000f21a"
IP_A, IP_B = "10.0.0.1", "10.0.0.2"
IPS: dict[str, str | None] = {"a": IP_A, "b": IP_B, "s": None}


def aesa(i: int) -> bytes:
    return bytes.fromhex(f"{NET}{i:04x}0020481a{i:04x}00")


AESA = {"a": aesa(1), "b": aesa(2), "s": aesa(3)}


@dataclass
class Lis:
    """A logical IP subnetwork: one Stack per host, each on its own switch port."""
    sw: AtmSwitch
    st: dict[str, Stack]
    ndd: dict[str, AtmNdd]

    def clip(self, host: str) -> dict[str, int]:
        return self.st[host].stats()["interfaces"]["atm0"]["clip"]

    def data_vcs(self, host: str) -> list[tuple[int, int]]:
        return [vc for vc in self.ndd[host].ndd_ctl(C.NDD_ATM_LIST_VCS) if vc != (0, 5)]


@asynccontextmanager
async def lis(hosts: str = "ab", clip: ClipConfig | None = None,
              clips: dict[str, ClipConfig] | None = None) -> AsyncIterator[Lis]:
    """Hosts named in IPS, each with an ATM interface (its address, if any); no SVCs yet.
    `clip`: every host's CLIP timers, `clips`: some host's."""
    tcp = TcpConfig(msl=0.5)
    async with AtmSwitch("sw") as sw, AsyncExitStack() as stack:
        stacks: dict[str, Stack] = {}
        ndds: dict[str, AtmNdd] = {}
        for i, name in enumerate(hosts, 1):
            st = stacks[name] = await stack.enter_async_context(
                Stack(name, StackConfig(seed=i, tcp=tcp, clip=(clips or {}).get(name, clip))))
            port = int(AESA[name][11:13].hex(), 16)
            pair = PhyPair()
            sw.add_port(name, pair.b, prefixes=[f"{NET}{port:04x}"])
            ndds[name] = AtmNdd("atm0", pair.a)
            ip = IPS[name]
            st.add_interface(ndds[name], f"{ip}/24" if ip else None)
        yield Lis(sw, stacks, ndds)


def static(net: Lis) -> None:
    net.st["a"].add_atm_svc("atm0", AESA["a"])
    net.st["b"].add_atm_svc("atm0", AESA["b"])
    net.st["a"].add_atm_svc_peer("atm0", IP_B, AESA["b"])
    net.st["b"].add_atm_svc_peer("atm0", IP_A, AESA["a"])


async def with_server(net: Lis, server: str = "s") -> None:
    """`server` is the LIS's ATMARP server; every other host registers with it."""
    net.st[server].add_atm_svc("atm0", AESA[server], serve_atmarp=True)
    await trio.sleep(0.5)                       # its signalling link is up before clients call
    for h in net.st:
        if h != server:
            net.st[h].add_atm_svc("atm0", AESA[h], arp_server=AESA[server])
    with trio.fail_after(10):
        while not all(net.st[h].atm_svc("atm0").reg == REGISTERED for h in net.st if IPS[h]):
            await trio.sleep(0.05)


async def tcp_both_ways(net: Lis, n: int = 300_000) -> None:
    up, down = bytes(i * 7 & 0xFF for i in range(n)), bytes(i * 13 & 0xFF for i in range(n // 2))
    h_up, h_down = hashlib.sha256(), hashlib.sha256()
    await tcp_exchange(net.st["a"], net.st["b"], up, down, h_up.update, h_down.update, timeout=60)
    assert (h_up.digest(), h_down.digest()) == (hashlib.sha256(up).digest(), hashlib.sha256(down).digest())


# --- a static table -----------------------------------------------------------------------------
async def test_static_table_calls_on_first_packet_and_releases_when_idle(
        autojump_clock: trio.testing.MockClock) -> None:
    async with lis(clip=ClipConfig(svc_idle_timeout=300.0)) as net:
        static(net)
        await trio.sleep(0.5)
        assert net.data_vcs("a") == net.data_vcs("b") == []           # nothing until a packet
        assert await net.st["a"].ping(IP_B) >= 0
        assert await net.st["b"].ping(IP_A) >= 0                      # back over the same SVC
        vcs = net.data_vcs("a")
        assert len(vcs) == 1 and len(net.data_vcs("b")) == 1
        assert net.st["a"].atm_svc("atm0").table() == [(ip_to_int(IP_B), AESA["b"], VALID, True, vcs[0])]
        ca, cb = net.clip("a"), net.clip("b")
        assert (ca["calls_placed"], ca["calls_accepted"], cb["calls_placed"], cb["calls_accepted"]) == (1, 0, 0, 1)
        assert net.ndd["a"].vcs[vcs[0]].max_sdu == 9188                # RFC 2225 §7.2: MTU + 8
        await tcp_both_ways(net)
        assert net.clip("a")["calls_placed"] == 1                     # all of it on the one call
        await trio.sleep(301)                                         # no IP for svc_idle_timeout
        assert net.data_vcs("a") == net.data_vcs("b") == []
        assert net.clip("a")["calls_idle"] + net.clip("b")["calls_idle"] >= 1
        assert await net.st["b"].ping(IP_A) >= 0                      # called again, from b this time
        assert net.clip("b")["calls_placed"] == 1 and len(net.data_vcs("a")) == 1


async def test_failed_call_is_ehostunreach_and_far_end_clearing_calls_again(
        autojump_clock: trio.testing.MockClock) -> None:
    async with lis(clips={"b": ClipConfig(svc_idle_timeout=60.0)}) as net:
        static(net)
        sa = net.st["a"]
        sa.add_atm_svc_peer("atm0", "10.0.0.7", bytes.fromhex(f"{NET}0007") + bytes(7))   # no route: cause 3
        await trio.sleep(0.5)
        with pytest.raises(OSError) as exc:
            await sa.ping("10.0.0.7")
        assert exc.value.errno == errno.EHOSTUNREACH
        ca = net.clip("a")
        assert ca["calls_failed"] == 1 and ca["unreachable"] == 1
        with pytest.raises(OSError) as exc:
            await sa.ping("10.0.0.8")                                 # no entry, no server: at once
        assert exc.value.errno == errno.EHOSTUNREACH and net.clip("a")["tx_no_vc"] == 1
        assert await sa.ping(IP_B) >= 0
        await trio.sleep(61)                                          # b idles it out first: cleared
        assert net.clip("b")["calls_idle"] == 1 and net.clip("a")["calls_cleared"] == 1
        assert net.data_vcs("a") == []
        assert sa.atm_svc("atm0").table()[0][4] is None               # the entry stays, its VC is gone
        assert await sa.ping(IP_B) >= 0                               # the next packet calls again
        assert net.clip("a")["calls_placed"] == 3                     # .7 (failed), b, b again


# --- an ATMARP server ---------------------------------------------------------------------------
async def test_atmarp_server_registration_resolution_nak(autojump_clock: trio.testing.MockClock) -> None:
    async with lis("abs") as net:
        await with_server(net)
        srv = net.st["s"].atm_svc("atm0").server
        assert sorted((ip, a) for ip, a, _, _ in srv.table()) == \
            [(ip_to_int(IP_A), AESA["a"]), (ip_to_int(IP_B), AESA["b"])]
        assert await net.st["a"].ping(IP_B) >= 0                      # ATMARP_Request -> Reply -> call
        assert await net.st["b"].ping(IP_A) >= 0
        await tcp_both_ways(net)
        ca, cs = net.clip("a"), net.clip("s")
        assert ca["registrations"] == 1 and ca["rx_arp_replies"] >= 2 and ca["tx_arp_requests"] >= 2
        assert cs["server_registrations"] == 2 and cs["server_replies"] >= 3
        assert cs["tx_inarp_requests"] == cs["rx_inarp_replies"] == 2   # each client's VC asked (§8.4)
        assert ca["calls_placed"] == 2                               # the server, then b
        with pytest.raises(OSError) as exc:
            await net.st["a"].ping("10.0.0.99")
        assert exc.value.errno == errno.EHOSTUNREACH                  # ATMARP_NAK
        assert net.clip("a")["rx_arp_naks"] == 1 and net.clip("s")["server_naks"] == 1
        assert ip_to_int("10.0.0.99") not in net.st["a"].atm_svc("atm0").peers


async def test_server_ages_entries_clients_reregister(autojump_clock: trio.testing.MockClock) -> None:
    async with lis("abs") as net:
        await with_server(net)
        await trio.sleep(1300)                                        # past the server's 20 minutes
        srv = net.st["s"].atm_svc("atm0").server
        assert len(srv.table()) == 2                                  # refreshed at 15 minutes
        assert net.clip("a")["registrations"] == net.clip("b")["registrations"] == 2
        assert net.clip("s")["server_aged"] == 0 and net.clip("a")["calls_placed"] == 1   # one server VC
        net.st["b"].remove_interface("atm0")                          # b stops refreshing
        await trio.sleep(1201)
        assert [ip for ip, *_ in srv.table()] == [ip_to_int(IP_A)] and net.clip("s")["server_aged"] == 1
        with pytest.raises(OSError) as exc:
            await net.st["a"].ping(IP_B)
        assert exc.value.errno == errno.EHOSTUNREACH


async def test_server_on_a_client_host(autojump_clock: trio.testing.MockClock) -> None:
    # a is the LIS's server and resolves through itself; b registers with it
    async with lis("ab") as net:
        await with_server(net, "a")
        assert await net.st["b"].ping(IP_A) >= 0                      # over b's VC to the server
        assert await net.st["a"].ping(IP_B) >= 0
        assert net.clip("b")["calls_placed"] == 1 and net.clip("a")["calls_placed"] == 0
        assert net.clip("a")["registrations"] == 1 and net.clip("a")["server_registrations"] == 2


# --- the capture, decoded by tshark --------------------------------------------------------------
async def test_tshark_decodes_atmarp_and_the_setup(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    path = tmp_path / "a.pcap"
    async with lis("abs") as net:
        with PcapRecorder.attach(net.ndd["a"], str(path)):
            await with_server(net)
            await net.st["a"].ping(IP_B)
            with pytest.raises(OSError):
                await net.st["a"].ping("10.0.0.99")
            await net.ndd["a"].wait_tx_idle()
    require_tool("tshark")
    fields = ("arp.opcode", "arp.src.atm_num_nsap", "arp.src.proto_ipv4", "arp.dst.proto_ipv4",
              "q2931.message_type", "q2931.bband_low_layer_info.user_info_l2_proto", "ip.dst")
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|",
                          *(arg for f in fields for arg in ("-e", f))], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line.split("|") for line in out.stdout.splitlines()]
    arps = [r for r in rows if r[0]]
    ops = {int(r[0]) for r in arps}
    assert {OP_REQUEST, OP_REPLY, OP_NAK, OP_INARP_REQUEST, OP_INARP_REPLY} <= ops, ops
    nsaps = {r[1].replace(":", "").replace(".", "") for r in arps if r[1]}
    assert AESA["a"].hex() in nsaps
    assert any(r[0] == str(OP_REQUEST) and r[2] == r[3] == IP_A for r in arps)   # the registration
    setups = [r for r in rows if r[4] == "0x05" or r[4] == "5"]
    assert setups and all(r[5] == "0x0c" or r[5] == "12" for r in setups)      # B-LLI: LLC
    assert any(r[6] == IP_B for r in rows)
    bad = subprocess.run(["tshark", "-r", str(path), "-Y", "_ws.malformed || _ws.expert.severity >= 8388608"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 0 and bad.stdout.strip() == "", bad.stdout


# --- the command line: a switch, an ATMARP server and two `atm ip` stacks, each a process ---------------
async def test_cli_arp_server_and_ip_over_svcs() -> None:
    from .test_atm_cli import Proc, run
    sw, ready = await Proc.start("atm", "switch", *(arg for i, h in enumerate("abs", 1)
                                                    for arg in ("--port", f"{h}=127.0.0.1:0,prefix={NET}{i:04x}")))
    ports = dict(f.split("=", 1) for f in ready.split() if f.startswith("port."))
    procs: list[Proc] = []
    try:
        srv, sready = await Proc.start("atm", "arp-server", "--switch", ports["port.s"], "--addr", AESA["s"].hex(),
                                       "--stats")
        procs.append(srv)
        assert sready.startswith("ready: ") and f"addr={AESA['s'].hex()}" in sready
        a, aready = await Proc.start("atm", "ip", "--switch", ports["port.a"], "--aesa", AESA["a"].hex(),
                                     "--addr", "10.79.0.1/24", "--arp-server", AESA["s"].hex(), "--serve", "echo")
        procs.append(a)
        assert f"aesa={AESA['a'].hex()} arp-server={AESA['s'].hex()}" in aready and " svc " in aready
        b = ("atm", "ip", "--switch", ports["port.b"], "--aesa", AESA["b"].hex(), "--addr", "10.79.0.2/24")
        ok = await run(*b, "--arp-server", AESA["s"].hex(), "--ping", "10.79.0.1", "-c", "2", "-s", "1000")
        assert ok.returncode == 0 and "2 sent, 2 received, 0% loss" in ok.stdout.decode(), ok.stderr
        assert f"registered with {AESA['s'].hex()}" in ok.stderr.decode()
        nak = await run(*b, "--arp-server", AESA["s"].hex(), "--ping", "10.79.0.9", "-c", "1")
        assert nak.returncode == 1 and "No route to host" in nak.stdout.decode(), nak.stdout
        static = await run(*b, "--peer", f"10.79.0.1={AESA['a'].hex()}", "--ping", "10.79.0.1", "-c", "1")
        assert static.returncode == 0 and "1 sent, 1 received" in static.stdout.decode(), static.stderr
        assert await srv.stop() == 128 + signal.SIGTERM and srv.proc.stderr is not None
        log = (srv.buf + await srv.rest(srv.proc.stderr)).decode()
        assert f"entry 10.79.0.1 {AESA['a'].hex()}" in log and f"entry 10.79.0.2 {AESA['b'].hex()}" in log
        assert '"server_naks": 1' in log
    finally:
        for p in procs:
            await p.kill()
        assert await sw.stop() == 128 + signal.SIGTERM
