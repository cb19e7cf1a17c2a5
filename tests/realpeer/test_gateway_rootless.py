"""`tunstack gateway` without root: as an unprivileged user (tests/realpeer/rootless.py sets
one up and puts the machine back), rootlesskit runs a command with
`--net=slirp4netns --slirp4netns-binary=` pointing at tunstack, which serves the command's
namespace; and `tunstack gateway -- COMMAND` makes its own user + network namespace."""
from __future__ import annotations

import hashlib
import os
import subprocess

import trio

from tools.lab.gwservers import HTTP_PORT, payload
from tools.lab.gwtopo import INTERNET_ADDR, TUNSTACK, gateway_topology

from .conftest import require_real_peer
from .helpers import kill_if_running, read_all, run, some_of
from .rootless import rootless_user
from .test_gateway_command import PAGE, _http_server, exit_status

FETCH = "ip -br addr show tap0 && ip route && curl -sS -m 20 -o page http://10.0.2.2:{port}/ && sha256sum page"


async def test_rootlesskit_runs_tunstack_as_its_slirp4netns() -> None:
    """rootlesskit, run by an unprivileged user in the topology's host namespace, starts
    tunstack as its slirp4netns; the command inside fetches 4 MiB from the internet
    namespace's HTTP server, SHA-256 checked (no traffic leaves the test's namespaces)."""
    require_real_peer("rootlesskit", "curl")
    size = 4 << 20
    with rootless_user() as user:
        async with gateway_topology(TUNSTACK) as topo:     # the internet namespace and its servers
            fetch = (f"cd {user.home}/state && ip -br addr show tap0 && ip route && "
                     f"curl -sS -m 30 -o page http://{INTERNET_ADDR}:{HTTP_PORT}/bytes/{size} && sha256sum page")
            argv = topo.host.exec_argv(*user.argv(
                "rootlesskit", f"--state-dir={user.home}/state", "--net=slirp4netns",
                f"--slirp4netns-binary={user.slirp4netns}", "--mtu=65520", "--copy-up=/etc", "sh", "-c", fetch))
            with trio.fail_after(90):
                r = await trio.run_process(argv, cwd=user.home, capture_stdout=True, capture_stderr=True,
                                           check=False)
        out = r.stdout.decode()
        assert r.returncode == 0, (out, r.stderr)
        assert "10.0.2.100/24" in out and "default via 10.0.2.2 dev tap0" in out
        assert hashlib.sha256(payload(size)).hexdigest() in out
        ran = user.argv_log.read_text().splitlines()
        assert any("--netns-type=path" in line or "--mtu" in line for line in ran), ran   # rootlesskit's call


GUEST_SERVER = ("import socket\n"
                "s = socket.create_server(('0.0.0.0', 8000))\n"
                "c, a = s.accept(); c.sendall(b'published ' + a[0].encode()); c.close()\n")


async def test_rootlesskit_port_driver_slirp4netns_publishes_a_port() -> None:
    """rootlesskit --port-driver=slirp4netns -p: it asks our API socket (add_hostfwd) for the
    forward, and a client on the host reaches the server in the namespace."""
    require_real_peer("rootlesskit")
    with rootless_user() as user:
        probe = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = int(probe[0].socket.getsockname()[1])
        await probe[0].aclose()
        argv = user.argv("rootlesskit", f"--state-dir={user.home}/state", "--net=slirp4netns",
                         f"--slirp4netns-binary={user.slirp4netns}", "--copy-up=/etc",
                         "--port-driver=slirp4netns", "-p", f"127.0.0.1:{port}:8000/tcp",
                         "python3", "-c", GUEST_SERVER)
        kit = await trio.lowlevel.open_process(argv, cwd=user.home, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            got = b""
            with trio.move_on_after(60) as waited:
                while not got:
                    try:
                        stream = await trio.open_tcp_stream("127.0.0.1", port)
                    except OSError:
                        await trio.sleep(0.2)       # not published yet
                        continue
                    try:
                        got = await read_all(stream)
                    except trio.BrokenResourceError:
                        got = b""                   # the guest refused: reset, as a network would
                    await stream.aclose()
                    if not got:
                        await trio.sleep(0.2)       # the forward was up before the server
                await kit.wait()
            if waited.cancelled_caught:     # say why: rootlesskit's and our shim's words
                kit.kill()
                await kit.wait()
                raise AssertionError(f"port {port} not served in 60 s: rootlesskit {kit.returncode}, stderr "
                                     f"{await some_of(kit.stderr)!r}, stdout {await some_of(kit.stdout)!r}, "
                                     f"shim calls {user.argv_log.read_text() if user.argv_log.exists() else None!r}")
            assert got.startswith(b"published "), got
            assert kit.returncode == 0
        finally:
            await kill_if_running(kit)
        ran = user.argv_log.read_text()
        assert "--api-socket" in ran or "-a" in ran.split(), ran


async def test_command_form_without_root() -> None:
    require_real_peer("curl")
    with rootless_user() as user:
        async with trio.open_nursery() as nursery:
            port = await _http_server(nursery)
            argv = user.argv(str(user.tunstack), "gateway", "--allow-host-loopback", "--",
                             "sh", "-c", f"cd {user.home} && " + FETCH.format(port=port))
            with trio.fail_after(90):
                r = await trio.run_process(argv, cwd=user.home, capture_stdout=True, capture_stderr=True,
                                           check=False)
            nursery.cancel_scope.cancel()
        out = r.stdout.decode()
        assert r.returncode == 0, (out, r.stderr)
        assert out.startswith("ready: ") and hashlib.sha256(PAGE).hexdigest() in out


async def test_without_root_no_tun_access_is_one_line() -> None:
    require_real_peer()
    with rootless_user() as user:
        os.chmod("/dev/net/tun", 0o600)          # put back by rootless_user()
        r = await run(user.argv(str(user.tunstack), "gateway", "--", "true"), timeout=60)
        err = r.stderr.decode().strip()
        assert r.returncode == 1 and err.count("\n") == 0, err
        assert err.startswith("tunstack: error: ") and "/dev/net/tun" in err, err


async def test_pid_form_without_root() -> None:
    """slirp4netns's own recipe, unprivileged: `unshare -rn` makes a user + network
    namespace, and the gateway, given its PID, joins that user namespace to make the TAP."""
    require_real_peer("curl")
    with rootless_user() as user:
        async with trio.open_nursery() as nursery:
            port = await _http_server(nursery)
            target = await trio.lowlevel.open_process(
                user.argv("unshare", "-rn", "sh", "-c", "echo ready; sleep 60"), stdout=subprocess.PIPE)
            try:
                assert target.stdout is not None
                with trio.fail_after(10):
                    assert (await target.stdout.receive_some()).strip() == b"ready"
                # `env -i` and `sh` exec in place: the PID is setpriv's, now the shell in the namespace
                gateway = await trio.lowlevel.open_process(
                    user.argv(str(user.tunstack), "gateway", "-c", "--allow-host-loopback", str(target.pid)),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                try:
                    assert gateway.stdout is not None
                    with trio.fail_after(30):
                        assert (await gateway.stdout.receive_some()).startswith(b"ready: ")
                    r = await run(["nsenter", "-t", str(target.pid), "-U", "-n", "--preserve-credentials",
                                   "curl", "-sS", "-m", "10", f"http://10.0.2.2:{port}/"], timeout=30)
                    assert r.stdout == PAGE, r.stderr
                    target.kill()                  # the PID goes: so does the gateway (exit 0)
                    assert await exit_status(gateway) == 0
                finally:
                    await kill_if_running(gateway)
            finally:
                await kill_if_running(target)
            nursery.cancel_scope.cancel()
