"""`tunstack gateway` without root: as an unprivileged user (tests/realpeer/rootless.py sets
one up and puts the machine back), rootlesskit runs a command with
`--net=slirp4netns --slirp4netns-binary=` pointing at tunstack, which serves the command's
namespace; and `tunstack gateway -- COMMAND` makes its own user + network namespace."""
from __future__ import annotations

import hashlib
import os

import trio

from .conftest import require_real_peer
from .helpers import run
from .rootless import rootless_user
from .test_gateway_command import PAGE, _http_server

FETCH = "ip -br addr show tap0 && ip route && curl -sS -m 20 -o page http://10.0.2.2:{port}/ && sha256sum page"


async def test_rootlesskit_runs_tunstack_as_its_slirp4netns() -> None:
    require_real_peer("rootlesskit", "curl")
    with rootless_user() as user:
        async with trio.open_nursery() as nursery:
            port = await _http_server(nursery)
            argv = user.argv("rootlesskit", f"--state-dir={user.home}/state", "--net=slirp4netns",
                             f"--slirp4netns-binary={user.slirp4netns}", "--mtu=65520", "--copy-up=/etc",
                             "sh", "-c", f"cd {user.home}/state && " + FETCH.format(port=port))
            with trio.fail_after(90):
                r = await trio.run_process(argv, cwd=user.home, capture_stdout=True, capture_stderr=True,
                                           check=False)
            nursery.cancel_scope.cancel()
        out = r.stdout.decode()
        assert r.returncode == 0, (out, r.stderr)
        assert "10.0.2.100/24" in out and "default via 10.0.2.2 dev tap0" in out
        assert hashlib.sha256(PAGE).hexdigest() in out
        ran = user.argv_log.read_text().splitlines()
        assert any("--netns-type=path" in line or "--mtu" in line for line in ran), ran   # rootlesskit's call


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
