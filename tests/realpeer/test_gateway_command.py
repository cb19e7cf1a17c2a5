"""`tunstack gateway` as a command (tools/gateway/cli.py, main.py) against the kernel: the
--netns form serving a Linux guest namespace (curl to the host's loopback through the
gateway address, the ready line, --stats, --pcap, SIGTERM), `-- COMMAND` (its exit status
is ours), the PID form (stops when the PID exits), --ready-fd / --exit-fd, the refusal to
serve our own namespace, and the slirp4netns compatibility name."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tools.lab.netns import NetnsHost

from .conftest import require_real_peer
from .helpers import kill_if_running, loss_percent, read_all, run

REPO = Path(__file__).resolve().parents[2]
TUNSTACK = [sys.executable, "-m", "tools.cli.main"]
PAGE = bytes(range(256)) * 4096          # 1 MiB the guest fetches from the host's loopback


async def _start(argv: list[str], **kw: object) -> tuple[trio.Process, str]:
    """Start the gateway; return it and its `ready:` line."""
    proc = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                                            **kw)  # type: ignore[arg-type]
    buf = b""
    assert proc.stdout is not None and proc.stderr is not None
    with trio.fail_after(30):
        while b"\n" not in buf:
            chunk = await proc.stdout.receive_some()
            if not chunk:
                raise AssertionError(f"gateway exited: {await read_all(proc.stderr)!r}")
            buf += chunk
    line = buf.decode().splitlines()[0]
    assert line.startswith("ready: "), line
    return proc, line


async def exit_status(proc: trio.Process, timeout: float = 20) -> int:
    """The process's exit status, once it has exited (within `timeout` seconds)."""
    with trio.fail_after(timeout):
        return await proc.wait()


async def _http_server(nursery: trio.Nursery) -> int:
    """A one-page HTTP server on the host's 127.0.0.1; its port."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")

    async def handler(stream: trio.SocketStream) -> None:
        request = b""
        while b"\r\n\r\n" not in request and (chunk := await stream.receive_some(4096)):
            request += chunk
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(PAGE))
        await stream.send_all(PAGE)
        await stream.aclose()

    nursery.start_soon(trio.serve_listeners, handler, listeners)
    return int(listeners[0].socket.getsockname()[1])


async def test_netns_form_relays_reports_and_stops_on_sigterm(netns: NetnsHost, tmp_path: Path) -> None:
    require_real_peer("curl")
    pcap = tmp_path / "guest.pcap"
    async with trio.open_nursery() as nursery:
        port = await _http_server(nursery)
        proc, ready = await _start([*TUNSTACK, "gateway", "--configure", "--allow-host-loopback", "--stats",
                                    "--pcap", str(pcap), "--netns", netns.name])
        try:
            assert ("dev=tap0 kind=tap guest=10.0.2.100/24 gateway=10.0.2.2 dns=10.0.2.3 mtu=65520" in ready
                    and "host-loopback=on" in ready and "offload=on" in ready), ready
            shown = netns.ip("-br", "addr", "show", "tap0").stdout + netns.ip("route").stdout
            assert "10.0.2.100/24" in shown and "default via 10.0.2.2 dev tap0" in shown, shown
            assert "mtu 65520" in netns.ip("link", "show", "tap0").stdout
            r = await run(netns.exec_argv("curl", "-sS", "-m", "20", f"http://10.0.2.2:{port}/"), timeout=30)
            assert r.returncode == 0 and r.stdout == PAGE, r.stderr
            r = await run(netns.exec_argv("ping", "-c", "1", "-W", "3", "10.0.2.2"))
            assert loss_percent(r.stdout) == 0
            proc.send_signal(signal.SIGTERM)
            assert await exit_status(proc) == 128 + signal.SIGTERM
            assert proc.stderr is not None
            err = (await read_all(proc.stderr)).decode()
            assert "SIGTERM: shutting down" in err
            stats = json.loads(err[err.index("{"):])
            assert stats["flows"]["opened"] >= 1 and stats["tcp_gateway"]["relayed"] >= 1
            # every relayed flow went through a relay: IPv4 ones the lean relay (the default),
            # which the stats count apart from the splices
            relayed = stats["tcp_gateway"]["relayed"]
            assert stats["tcp_relayed"]["opened"] >= 1
            assert stats["tcp_relayed"]["opened"] + stats["tcp_splices"]["spliced"] == relayed
            assert stats["relay_buffers"]["lean_held"] == 0
            # with a pcap tap every frame is shown to it: the short ways step aside
            assert stats["device"]["rx_fast"] == 0 and stats["device"]["tx_gathered"] == 0
            assert stats["tcp_gateway"]["octets_to_guest"] >= len(PAGE)
            data = pcap.read_bytes()
            assert data[:4] == bytes.fromhex("d4c3b2a1") and int.from_bytes(data[20:24], "little") == 1  # Ethernet
            assert len(data) > len(PAGE)
            assert netns.ip("link", "show", "tap0", check=False).returncode != 0     # nothing left behind
        finally:
            await kill_if_running(proc)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("kind", ["tap", "tun"])
async def test_relayed_segments_take_the_short_way(netns: NetnsHost, kind: str) -> None:
    """With no tap, a Linux guest's segments of a relayed flow go from the device read
    straight to the flow (nd_fast_rx) and ours go out by one gathered write behind the
    link's cached header (ndd_output_gather): counted in --stats' `device`, the page intact
    through both, at MTU 1500 (TAP: once ARP has the guest; TUN: at once)."""
    require_real_peer("curl")
    async with trio.open_nursery() as nursery:
        port = await _http_server(nursery)
        tun = ["--tun"] if kind == "tun" else []
        proc, _ = await _start([*TUNSTACK, "gateway", "--configure", "--allow-host-loopback", "--stats",
                                "--mtu", "1500", *tun, "--netns", netns.name])
        try:
            for _ in range(5):
                r = await run(netns.exec_argv("curl", "-sS", "-m", "20", f"http://10.0.2.2:{port}/"), timeout=30)
                assert r.returncode == 0 and r.stdout == PAGE, r.stderr
            proc.send_signal(signal.SIGTERM)
            assert await exit_status(proc) == 128 + signal.SIGTERM
            assert proc.stderr is not None
            err = (await read_all(proc.stderr)).decode()
            stats = json.loads(err[err.index("{"):])
            device = stats["device"]
            assert stats["tcp_relayed"]["opened"] == 5
            # the guest's segments: its requests, FINs and ACKs of 5 MiB (one per super-segment
            # or two, measured 113); ours: at least the SYN-ACKs and the FINs' ACKs (the page's
            # super-segments take the whole way)
            assert device["rx_fast"] >= 50 and device["tx_gathered"] >= 10, device
        finally:
            await kill_if_running(proc)
        nursery.cancel_scope.cancel()


async def test_command_form_exits_with_the_commands_status() -> None:
    require_real_peer()
    script = "ip -br addr show tap0; ip route; exit 7"
    r = await run([*TUNSTACK, "gateway", "--", "sh", "-c", script], timeout=60)
    out = r.stdout.decode()
    assert r.returncode == 7, r.stderr
    assert out.startswith("ready: ") and "10.0.2.100/24" in out and "default via 10.0.2.2 dev tap0" in out, out


async def test_pid_form_stops_when_the_process_exits() -> None:
    require_real_peer()
    target = await trio.lowlevel.open_process(["unshare", "--net", "sleep", "60"])
    try:
        await trio.sleep(0.3)            # unshare has made the namespace and exec'd sleep
        proc, ready = await _start([*TUNSTACK, "gateway", "-c", str(target.pid)])
        try:
            target.kill()
            assert await exit_status(proc) == 0
        finally:
            await kill_if_running(proc)
    finally:
        await kill_if_running(target)


async def test_ready_fd_and_exit_fd(netns: NetnsHost) -> None:
    require_real_peer()
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    try:
        proc, _ = await _start([*TUNSTACK, "gateway", "--ready-fd", str(ready_w), "--exit-fd", str(exit_r),
                                "--netns", netns.name], pass_fds=(ready_w, exit_r))
        os.close(ready_w)
        ready_w = -1
        assert os.read(ready_r, 8) == b"1" and os.read(ready_r, 8) == b""      # "1", then closed
        try:
            os.close(exit_w)                  # the other end closed: stop (slirp4netns -e)
            exit_w = -1
            assert await exit_status(proc) == 0
        finally:
            await kill_if_running(proc)
    finally:
        for fd in (ready_r, ready_w, exit_r, exit_w):
            if fd >= 0:
                os.close(fd)


async def test_own_namespace_is_refused() -> None:
    require_real_peer()
    r = await run([*TUNSTACK, "gateway", "--netns", "/proc/self/ns/net"], timeout=30)
    assert r.returncode == 1
    assert r.stderr.decode().strip() == ("tunstack: error: /proc/self/ns/net is our own network namespace: "
                                         "a gateway serves another one")


async def test_invoked_as_slirp4netns(netns: NetnsHost, tmp_path: Path) -> None:
    require_real_peer()
    shim = tmp_path / "slirp4netns"
    shim.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                    "from tools.cli.main import main\nsys.exit(main())\n")
    shim.chmod(0o755)
    r = await run([str(shim), "--help"])
    assert r.returncode == 0 and b"--netns-type" in r.stdout
    ready_r, ready_w = os.pipe()
    try:
        proc = await trio.lowlevel.open_process(
            [str(shim), "--configure", "--mtu=1500", "--disable-host-loopback", f"--ready-fd={ready_w}",
             "--netns-type=path", f"/run/netns/{netns.name}", "tap1"], pass_fds=(ready_w,),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(ready_w)
        ready_w = -1
        try:
            with trio.fail_after(30):
                assert await trio.to_thread.run_sync(os.read, ready_r, 8) == b"1"
            assert "mtu 1500" in netns.ip("link", "show", "tap1").stdout
            r = await run(netns.exec_argv("ping", "-c", "1", "-W", "3", "10.0.2.2"))
            assert loss_percent(r.stdout) == 0
            proc.send_signal(signal.SIGINT)
            assert await exit_status(proc) == 130
        finally:
            await kill_if_running(proc)
    finally:
        os.close(ready_r)
        if ready_w >= 0:
            os.close(ready_w)


async def test_ipv6_slaac_port_forward_and_api_through_the_command(netns: NetnsHost, tmp_path: Path) -> None:
    """The pieces wired by the command: the guest forms fd00::/64 from the gateway's RA and
    reaches the host's ::1 through fd00::2; -t forwards a host port to the guest; the API
    socket lists it and is removed at exit."""
    require_real_peer("curl", "socat")
    api = tmp_path / "api.sock"
    netns.ip("link", "set", "lo", "up")
    await run(netns.exec_argv("sysctl", "-qw", "net.ipv6.conf.default.accept_ra=2"), check=True)
    guest_server = await trio.lowlevel.open_process(
        netns.exec_argv(sys.executable, "-c", "import socket, sys\n"
                        "s = socket.create_server(('0.0.0.0', 8000)); print('bound', flush=True)\n"
                        "c, a = s.accept(); c.sendall(repr(a[0]).encode()); c.close()"),
        stdout=subprocess.PIPE)
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="::1")
        port = int(listeners[0].socket.getsockname()[1])

        async def handler(stream: trio.SocketStream) -> None:
            await stream.send_all(b"HTTP/1.0 200 OK\r\n\r\nv6 ok")
            await stream.aclose()

        nursery.start_soon(trio.serve_listeners, handler, listeners)
        fwd_sock = await trio.open_tcp_listeners(0, host="127.0.0.1")
        fwd_port = int(fwd_sock[0].socket.getsockname()[1])
        await fwd_sock[0].aclose()
        proc, ready = await _start([*TUNSTACK, "gateway", "--configure", "--allow-host-loopback",
                                    "-t", f"127.0.0.1/{fwd_port}:8000", "--api-socket", str(api),
                                    "--netns", netns.name])
        try:
            with trio.fail_after(20):                          # SLAAC from the first RA, then DAD
                while "fd00::" not in netns.ip("-6", "addr", "show", "tap0").stdout or "tentative" in \
                        netns.ip("-6", "addr", "show", "tap0").stdout:
                    await trio.sleep(0.2)
            assert "default via fe80::" in netns.ip("-6", "route").stdout
            r = await run(netns.exec_argv("curl", "-sS", "-m", "10", f"http://[fd00::2]:{port}/"), timeout=20)
            assert r.stdout == b"v6 ok", r.stderr
            client = await trio.open_tcp_stream("127.0.0.1", fwd_port)
            with trio.fail_after(10):
                assert await read_all(client) == b"'10.0.2.2'"    # a loopback client is shown as the gateway
            await client.aclose()
            r = await trio.run_process(["socat", "-", f"UNIX-CONNECT:{api}"], stdin=b'{"execute": "list_hostfwd"}',
                                       capture_stdout=True)
            assert json.loads(r.stdout)["entries"] == [
                {"id": 1, "proto": "tcp", "host_addr": "127.0.0.1", "host_port": fwd_port,
                 "guest_addr": "10.0.2.100", "guest_port": 8000}]
            proc.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                await proc.wait()
            assert not api.exists()
        finally:
            await kill_if_running(proc)
            await kill_if_running(guest_server)
        nursery.cancel_scope.cancel()


async def test_sigusr1_prints_the_flow_table(netns: NetnsHost) -> None:
    require_real_peer()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = int(listeners[0].socket.getsockname()[1])
    proc, _ = await _start([*TUNSTACK, "gateway", "--configure", "--allow-host-loopback", "--netns", netns.name])
    holder = await trio.lowlevel.open_process(
        netns.exec_argv(sys.executable, "-c", "import socket, sys, time\n"
                        f"s = socket.create_connection(('10.0.2.2', {port}), timeout=10)\n"
                        "print('connected', flush=True); sys.stdin.read()"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and proc.stderr is not None
        with trio.fail_after(20):
            assert (await holder.stdout.receive_some()).strip() == b"connected"
            accepted = await listeners[0].accept()
        proc.send_signal(signal.SIGUSR1)
        text = b""
        with trio.fail_after(20):
            while b"\n  tcp " not in text or not text.endswith(b"\n"):
                text += await proc.stderr.receive_some()
        lines = text.decode().splitlines()
        assert lines[0] == "tunstack gateway: 1 flows", lines
        assert lines[1].startswith("  tcp 10.0.2.100:") and f"-> 10.0.2.2:{port} " in lines[1], lines
        await accepted.aclose()
    finally:
        await kill_if_running(holder)
        await kill_if_running(proc)
        await listeners[0].aclose()


async def test_debug_logs_each_flows_fate(netns: NetnsHost) -> None:
    """-d: a refused flow is logged with the reason, a relayed one with its octets."""
    require_real_peer("curl")
    async with trio.open_nursery() as nursery:
        port = await _http_server(nursery)
        proc, _ = await _start([*TUNSTACK, "gateway", "-d", "-c", "--allow-host-loopback", "--netns", netns.name])
        try:
            r = await run(netns.exec_argv("curl", "-sS", "-m", "10", "-o", "/dev/null", f"http://10.0.2.2:{port}/"))
            assert r.returncode == 0, r.stderr
            r = await run(netns.exec_argv("curl", "-sS", "-m", "10", "http://169.254.169.254/"))
            assert r.returncode != 0
            proc.send_signal(signal.SIGTERM)
            assert await exit_status(proc) == 128 + signal.SIGTERM
            assert proc.stderr is not None
            log = (await read_all(proc.stderr)).decode()
        finally:
            await kill_if_running(proc)
        nursery.cancel_scope.cancel()
    relayed = re.search(rf"-> 10\.0\.2\.2:{port} relayed: \d+ octets out, (\d+) in", log)
    assert relayed and int(relayed.group(1)) > len(PAGE), log          # the page and its HTTP head
    assert "-> 169.254.169.254:80 refused (admin): the metadata service is off (--allow-metadata)" in log, log


async def test_command_that_ignores_sigterm_is_killed_when_we_stop() -> None:
    """SIGTERM to the gateway while COMMAND runs: COMMAND gets SIGTERM, and SIGKILL 5 s later
    when it ignores it -- the gateway never waits without end, and nothing is left."""
    require_real_peer()
    proc = await trio.lowlevel.open_process(
        [*TUNSTACK, "gateway", "--", "sh", "-c", "trap '' TERM; echo $$; exec sleep 60"], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        out = b""
        with trio.fail_after(30):
            while out.count(b"\n") < 2:               # the ready line, then COMMAND's PID
                out += await proc.stdout.receive_some()
        ready, pid = out.decode().splitlines()[:2]
        assert ready.startswith("ready: ")
        child = int(pid)
        proc.send_signal(signal.SIGTERM)
        assert await exit_status(proc, timeout=20) == 128 + signal.SIGTERM
        assert not os.path.exists(f"/proc/{child}")
    finally:
        await kill_if_running(proc)
