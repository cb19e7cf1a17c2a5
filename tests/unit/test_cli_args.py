"""The command line's argument checks and its error/signal plumbing (tools/cli/main.py,
tools/cli/device.py, tools/cli/command.py), in-process and without root: every bad input is one
line `tunstack: error: ...` with exit 2, never a traceback; runtime errors are one line
with exit 1; signals end a command with 128 + their number after its cleanup ran."""
from __future__ import annotations

import argparse
import errno
import os
import signal
import subprocess
import time
from importlib import metadata

import pytest
import trio

from tools.cli import main as cli
from tools.cli.command import CliError, cancel_on_shutdown, report, run_command, run_sync_command, until_shutdown
from tools.cli.device import (
    StdoutPcapRecorder,
    check_addresses,
    check_ifname,
    parse_interface_address,
    wait_kernel_link_ready,
)
from tools.lab.netns import IpError, netns_spec


@pytest.fixture
def no_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should a check let bad input through, fail here instead of creating a device."""
    async def let_through(args: object) -> int:
        raise AssertionError("the option checks let this through")
    for name in ("run_up", "run_ping"):
        monkeypatch.setattr(cli, name, let_through)
    import tools.cli.atm
    import tools.cli.nc
    monkeypatch.setattr(tools.cli.nc, "run_nc", let_through)
    monkeypatch.setattr(cli, "run_nc", let_through)
    monkeypatch.setattr(tools.cli.atm, "run_command", lambda *a, **k: pytest.fail("option checks let it through"))


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `tunstack ARGV` up to its option checks; return its one stderr line (exit 2)."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("tunstack: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


DEV = ["--tun", "tsu0"]


@pytest.mark.parametrize("argv, words", [
    (["up", *DEV, "--addr", "10.1.2.3"], ["no prefix length", "A.B.C.D/P"]),
    (["up", *DEV, "--addr", "10.1.2.3/24", "--peer-addr", "10.1.2.1"], ["--peer-addr", "no prefix length"]),
    (["up", *DEV, "--addr", "10.1.2.3/24", "--peer-addr", "10.1.3.1/24"], ["not on --addr's subnet 10.1.2.0/24"]),
    (["up", *DEV, "--addr", "10.1.2.3/24", "--peer-addr", "10.1.2.3/24"], ["the same address as --addr"]),
    (["up", *DEV, "--addr", "10.1.2.3/24", "--peer-addr", "10.1.2.9/30"], ["not on --addr's subnet"]),
    (["up", *DEV, "--addr", "0.0.0.0/0"], ["/0"]),
    (["up", *DEV, "--addr", "0.0.0.0/24"], ["0.0.0.0/8"]),
    (["up", *DEV, "--addr", "224.0.0.5/24"], ["multicast"]),
    (["up", *DEV, "--addr", "10.1.2.3/24", "--peer-addr", "239.1.2.3/24"], ["--peer-addr", "multicast"]),
    (["up", *DEV, "--addr", "127.0.0.2/8"], ["loopback"]),
    (["up", *DEV, "--addr", "255.255.255.255/24"], ["broadcast"]),
    (["up", *DEV, "--addr", "10.1.2.255/24"], ["the subnet's broadcast address"]),
    (["up", *DEV, "--addr", "10.1.2.0/24"], ["the subnet's network address"]),
    (["up", *DEV, "--addr", "10.1.2.300/24"], ["not an IPv4 address"]),
    (["up", *DEV, "--addr", "10.1.2.3/33"], ["1..32"]),
    (["up", *DEV, "--addr", "10.1.2.3/x"], ["1..32"]),
    (["up", *DEV, "--addr", "10.1.2.3/24", "--gw", "10.9.0.1"], ["gateway 10.9.0.1", "subnet 10.1.2.0/24"]),
    (["up", *DEV, "--addr", "10.1.2.3/24", "--gw", "10.1.2.3"], ["--gw", "own address"]),
    (["up", *DEV, "--addr", "10.1.2.3/24", "--gw", "gateway"], ["--gw", "not an IPv4 address"]),
    (["up", "--tun", "", "--addr", "10.1.2.3/24"], ["--tun", "cannot be empty"]),
    (["up", "--tap", "a/b", "--addr", "10.1.2.3/24"], ["--tap", "not a device name"]),
    (["up", "--tun", "x" * 16, "--addr", "10.1.2.3/24"], ["15 characters"]),
    (["up", *DEV, "--addr", "10.1.2.3/24", "--netns", "n"], ["--netns needs --peer-addr"]),
    (["up", *DEV, "--addr", "10.1.2.3/24", "--peer-addr", "10.1.2.1/24", "--netns", "4194305"],
     ["--netns", "no process 4194305"]),
    (["up", *DEV, "--addr", "10.1.2.3/24", "--peer-addr", "10.1.2.1/24", "--netns", "/nonexistent/ns"],
     ["--netns", "/nonexistent/ns: no such file"]),
    (["up", *DEV, "--addr", "10.1.2.3/24", "--mtu", "20"], ["--mtu"]),
    (["ping", *DEV, "--addr", "10.1.2.3/24", "somehost"], ["'somehost' is not an IPv4 address", "resolver"]),
    (["ping", *DEV, "--addr", "10.1.2.3/24", "10.1.1.300"], ["'10.1.1.300' is not an IPv4 address"]),
    (["ping", *DEV, "--addr", "10.1.2.3/24", "-c", "0", "10.1.2.1"], ["--count"]),
    (["ping", *DEV, "--addr", "10.1.2.3/24", "-s", "70000", "10.1.2.1"], ["--size"]),
    (["ping", *DEV, "--addr", "10.1.2.3/24", "-W", "0", "10.1.2.1"], ["--timeout"]),
    (["nc", *DEV, "--addr", "10.1.2.3/24", "somehost", "80"], ["'somehost' is not an IPv4 or IPv6 address"]),
    (["nc", *DEV, "--addr", "10.1.2.3/24", "-l", "nohost", "80"], ["'nohost' is not an IPv4 or IPv6 address"]),
    (["nc", *DEV, "--addr", "10.1.2.3/24", "-4", "fd00::1", "80"], ["Address family for hostname not supported"]),
    (["nc", *DEV, "--addr", "10.1.2.3/24", "--pcap", "-", "10.1.2.1", "80"], ["--pcap -", "nc's data"]),
    (["nc", *DEV, "--addr", "10.1.2.3/24", "-w", "0", "10.1.2.1", "80"], ["--idle"]),
    (["up", *DEV], ["--addr"]),                                       # argparse's own errors too
    (["frobnicate"], ["invalid choice"]),
    (["atm", "ip", "-l", "--addr", "10.79.0.1"], ["--addr", "no prefix length"]),
    (["atm", "ip", "-l", "--addr", "224.1.1.1/24"], ["--addr", "multicast"]),
])
def test_bad_arguments_are_one_line_usage_errors(argv: list[str], words: list[str], no_runner: None,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(argv, capsys)
    for word in words:
        assert word in err, (word, err)
    # the line names the command's own help
    if argv[0] in ("up", "ping", "nc"):
        assert f"tunstack {argv[0]} --help" in err


def test_good_addresses_pass() -> None:
    assert parse_interface_address("10.1.2.3/24") == (0x0A010203, 24)
    assert parse_interface_address("10.1.2.0/31")[1] == 31         # RFC 3021: no network/broadcast on /31
    assert parse_interface_address("10.1.2.3/32")[1] == 32
    args = argparse.Namespace(addr="10.1.2.3/24", peer_addr="10.1.2.1/24", gw="10.1.2.1")
    check_addresses(args)
    args = argparse.Namespace(addr="192.168.7.2/16", peer_addr="192.168.200.1/16", gw=None)
    check_addresses(args)
    check_ifname("ts0")
    check_ifname("a" * 15)
    for bad in ("", ".", "..", "a b", "a:b", "a/b", "é" * 8):
        with pytest.raises(ValueError):
            check_ifname(bad)


def test_netns_spec_reads_pid_path_or_name() -> None:
    pid = str(os.getpid())
    assert netns_spec(pid) == ("pid", pid)
    assert netns_spec("/proc/self/ns/net") == ("path", "/proc/self/ns/net")
    assert netns_spec("demo") == ("name", "demo")
    for bad in ("", ".", "..", "a b"):
        with pytest.raises(ValueError):
            netns_spec(bad)


def test_version(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("tunstack ") and out.split()[1][0].isdigit()

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(metadata, "version", missing)
    import tomllib
    with open(os.path.join(os.path.dirname(cli.__file__), "..", "..", "pyproject.toml"), "rb") as f:
        expected = tomllib.load(f)["project"]["version"]
    assert cli.version() == expected                 # a source checkout: pyproject's version


# --- one line per runtime error ------------------------------------------------------------------
def test_runtime_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    cases: list[tuple[BaseException, list[str]]] = [
        (IpError(2, ["ip", "link", "set", "x", "netns", "y"], "", "Error: An interface with the same name exists.\n"),
         ["`ip link set x netns y` failed", "An interface with the same name exists."]),
        (subprocess.CalledProcessError(1, ["mount", "--bind", "a", "b"], b"", b"mount: b: not found\n"),
         ["`mount --bind a b` failed", "mount: b: not found"]),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y.pcap"), ["/x/y.pcap", "No such file"]),
        (OSError(errno.EHOSTUNREACH, "no answer within 1 s"), ["no answer within 1 s"]),
        (OSError(0, "--port a: busy"), ["--port a: busy"]),
        (ValueError("not an IPv4 address: 'x'"), ["not an IPv4 address"]),
        (CliError("device ts0 already exists"), ["device ts0 already exists"]),
        # wrapped by trio nurseries, however deep
        (ExceptionGroup("g", [ExceptionGroup("h", [OSError(errno.ECONNREFUSED, "Connection refused")])]),
         ["Connection refused"]),
    ]
    for exc, words in cases:
        assert report(exc) == 1
        err = capsys.readouterr().err
        assert err.startswith("tunstack: error: ") and err.count("\n") == 1, err
        assert "Errno" not in err and "Traceback" not in err
        for word in words:
            assert word in err, (word, err)
    assert report(RuntimeError("a bug")) is None             # not ours to hide: a traceback
    assert report(ExceptionGroup("g", [OSError(1, "x"), KeyError("k")])) is None


def test_run_command_reports_errors_from_nurseries(capsys: pytest.CaptureFixture[str]) -> None:
    async def fails(args: object) -> int:
        async with trio.open_nursery() as n:
            n.start_soon(trio.sleep_forever)
            raise OSError(errno.EADDRINUSE, "--local 127.0.0.1:1: Address already in use")
    assert run_command("t", fails, None) == 1
    assert capsys.readouterr().err == "tunstack: error: --local 127.0.0.1:1: Address already in use\n"

    async def bug(args: object) -> int:
        raise RuntimeError("a bug")
    with pytest.raises((RuntimeError, ExceptionGroup)):      # a bug keeps its traceback
        run_command("t", bug, None)
    with pytest.raises((OSError, ExceptionGroup)):             # --debug: the traceback instead
        run_command("t", fails, None, debug=True)


def test_main_runtime_error_is_one_line_exit_1(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    async def runner(args: object) -> int:
        raise OSError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(cli, "run_up", runner)
    assert cli.main(["up", *DEV, "--addr", "10.1.2.3/24"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tunstack: error: Operation not permitted") and err.count("\n") == 1
    monkeypatch.setenv("TUNSTACK_DEBUG", "1")
    with pytest.raises((OSError, ExceptionGroup)):             # the traceback instead
        cli.main(["up", *DEV, "--addr", "10.1.2.3/24"])


# --- signals -------------------------------------------------------------------------------------
def kill_self_soon(signum: int) -> None:
    os.kill(os.getpid(), signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_cancels_a_command_after_its_cleanup(signum: int, capsys: pytest.CaptureFixture[str]) -> None:
    cleaned: list[str] = []

    async def client(args: object) -> int:
        try:
            await trio.sleep(0.05)
            kill_self_soon(signum)
            await trio.sleep_forever()
        finally:
            cleaned.append("namespace deleted")
        return 0
    t0 = time.monotonic()
    assert run_command("nc", client, None) == 128 + signum
    assert time.monotonic() - t0 < 5
    assert cleaned == ["namespace deleted"]
    err = capsys.readouterr().err
    assert err == f"tunstack nc: {signal.Signals(signum).name}: shutting down\n"


def test_server_waiting_for_shutdown_stops_its_own_way(capsys: pytest.CaptureFixture[str]) -> None:
    steps: list[str] = []

    async def server(args: object) -> int:
        kill_self_soon(signal.SIGTERM)
        got = await until_shutdown()
        steps.append(f"woken by {got}")
        await trio.sleep(0.05)            # e.g. releasing calls: not cancelled
        steps.append("stats printed")
        return 0
    assert run_command("atm switch", server, None) == 143
    assert steps == [f"woken by {signal.SIGTERM}", "stats printed"]
    assert capsys.readouterr().err == "tunstack atm switch: SIGTERM: shutting down\n"


def test_second_signal_cuts_a_slow_shutdown_short(capsys: pytest.CaptureFixture[str]) -> None:
    async def slow_server(args: object) -> int:
        kill_self_soon(signal.SIGTERM)
        await until_shutdown()
        kill_self_soon(signal.SIGINT)
        await trio.sleep(60)              # stuck: the second signal ends it
        return 0
    t0 = time.monotonic()
    assert run_command("up", slow_server, None) == 143      # the status of the first signal
    assert time.monotonic() - t0 < 5


def test_cancel_on_shutdown_ends_a_session_only(capsys: pytest.CaptureFixture[str]) -> None:
    after: list[str] = []

    async def pvc(args: object) -> int:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as n:
                n.start_soon(cancel_on_shutdown, scope)
                kill_self_soon(signal.SIGHUP)
                await trio.sleep_forever()
        await trio.sleep(0.01)            # draining the cell queue: still allowed
        after.append("drained")
        return 0
    assert run_command("atm pvc", pvc, None) == 129
    assert after == ["drained"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sync_command_unwinds_like_ctrl_c(signum: int, capsys: pytest.CaptureFixture[str]) -> None:
    cleaned: list[bool] = []

    def bench() -> int:
        try:
            kill_self_soon(signum)
            time.sleep(10)
        finally:
            cleaned.append(True)
        return 0
    before = signal.getsignal(signum)
    assert run_sync_command("bench", bench) == 128 + signum
    assert cleaned == [True]
    assert capsys.readouterr().err == f"tunstack bench: {signal.Signals(signum).name}: shutting down\n"
    assert signal.getsignal(signum) == before                   # handlers restored


def test_pcap_dash_writes_the_capture_to_stdout(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    import dpkt
    rec = StdoutPcapRecorder("-", 101)
    rec.write(b"\x45" + bytes(19))
    rec.close()
    os.write(1, b"")                                            # stdout itself still open
    out = capfdbinary.readouterr().out
    reader = dpkt.pcap.Reader(__import__("io").BytesIO(out))
    assert reader.datalink() == 101 and [buf for _, buf in reader] == [b"\x45" + bytes(19)]


def _link_shows(*states: str) -> tuple[list[str], object]:
    """A fake `ip`: `ip -o link show` of a TAP whose kernel end goes through `states`
    (an admin-up "DOWN" is the carrier not yet taken in), the last one repeated."""
    asked: list[str] = []

    def run_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        state = states[min(len(asked), len(states) - 1)]
        asked.append(state)
        flags = "BROADCAST,MULTICAST" if state == "admin-down" else "BROADCAST,MULTICAST,UP,LOWER_UP"
        text = f"9: tp0: <{flags}> mtu 1500 qdisc pfifo_fast state {state.replace('admin-down', 'DOWN')} mode DEFAULT"
        return subprocess.CompletedProcess(["ip", *args], 0, text, "")
    return asked, run_ip


@pytest.mark.parametrize("states, ready, polls", [
    (("DOWN", "DOWN", "UP"), True, 3),        # the kernel took the carrier in on the third look
    (("UNKNOWN",), True, 1),                  # a device ours from its creation: never DOWN
    (("admin-down",), True, 1),               # nothing to wait for: the kernel sends nothing
    (("DOWN",), False, None),                 # never: give up at the timeout, and go on
])
def test_wait_kernel_link_ready(states: tuple[str, ...], ready: bool, polls: int | None) -> None:
    asked, run_ip = _link_shows(*states)
    assert wait_kernel_link_ready(run_ip, "tp0", timeout=0.05, poll=0.001) is ready   # type: ignore[arg-type]
    assert len(asked) == polls if polls is not None else len(asked) > 3
