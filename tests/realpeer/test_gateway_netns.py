"""tools/gateway/nsenter.py against the kernel: a TAP opened inside another network
namespace and served from ours, the slirp4netns PID form (user + network namespace of a
process), `-- COMMAND` in a new user + network namespace, rootless, and the errors."""
from __future__ import annotations

import ctypes
import ipaddress
import os
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from drivers.tuntap import DEFAULT_TXQUEUELEN, TapNdd, TunNdd
from stack import Stack
from tools.gateway.ifconfig import IfconfigError, configure_interface
from tools.gateway.nsenter import (
    NamespaceError,
    NamespaceTarget,
    netns_opener,
    open_tuntap_in,
    same_namespace,
    spawn_in_new_namespaces,
)
from tools.lab.netns import NetnsHost, unique_name

from .conftest import require_real_peer
from .helpers import loss_percent, run

NOBODY = 65534
PR_SET_DUMPABLE = 4


def _links(host: NetnsHost) -> str:
    return host.ip("-d", "link", "show").stdout


async def test_tap_made_inside_a_namespace_is_served_from_ours(netns: NetnsHost) -> None:
    name = unique_name("tg")
    ndd = TapNdd(name, mtu=65520, opener=netns_opener(NamespaceTarget.from_spec(netns.name)))
    ndd.create()
    try:
        assert name in _links(netns)
        assert subprocess.run(["ip", "link", "show", name], capture_output=True).returncode != 0  # not ours
        detail = netns.ip("-d", "link", "show", name).stdout
        assert "mtu 65520" in detail and "vnet_hdr on" in detail and f"qlen {DEFAULT_TXQUEUELEN}" in detail
        assert ndd.kernel_mac and ndd.kernel_mac.hex(":") in detail
        assert ndd.caps.tso_max == 65535          # offloads negotiated on the fd from our namespace
        netns.ip("addr", "add", "10.0.2.100/24", "dev", name)
        netns.ip("link", "set", name, "up")
        async with Stack("gateway-netns") as st:
            st.add_interface(ndd, "10.0.2.2/24")
            r = await run(netns.exec_argv("ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.2"))
            assert loss_percent(r.stdout) == 0, r.stdout
            r = await run(netns.exec_argv("ping", "-c", "2", "-s", "20000", "-W", "2", "10.0.2.2"))
            assert loss_percent(r.stdout) == 0, r.stdout        # 20 kB: one frame each way at MTU 65520
            assert st.stats()["icmp"]["out_echo_reps"] == 5
    finally:
        ndd.release()
    assert name not in _links(netns)             # the device went with its last fd


async def test_tun_too(netns: NetnsHost) -> None:
    name = unique_name("tu")
    ndd = TunNdd(name, opener=netns_opener(NamespaceTarget.from_spec(netns.name)))
    ndd.create()
    try:
        detail = netns.ip("-d", "link", "show", name).stdout
        assert "tun type tun" in detail and "mtu 1500" in detail
    finally:
        ndd.release()


@pytest.fixture
def userns_process() -> Iterator[int]:
    """A process in its own user + network namespace (`unshare -r -n`, what rootlesskit's
    child is): the slirp4netns PID form's target."""
    require_real_peer()
    proc = subprocess.Popen(["unshare", "--user", "--map-root-user", "--net", "sleep", "60"])
    try:
        for _ in range(200):                     # until unshare has exec'd sleep in the new namespaces
            if not same_namespace(f"/proc/{proc.pid}/ns/net", "/proc/self/ns/net"):
                break
            trio.run(trio.sleep, 0.01)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_pid_form_joins_the_process_user_and_network_namespace(userns_process: int) -> None:
    target = NamespaceTarget.for_pid(userns_process)
    target.check()
    opened = open_tuntap_in(target, "tap0", 0x0002 | 0x1000)          # IFF_TAP | IFF_NO_PI, as slirp4netns
    try:
        assert opened.name == "tap0"
        seen = subprocess.run(["nsenter", "-t", str(userns_process), "-U", "-n", "--preserve-credentials",
                               "ip", "-o", "link", "show", "tap0"], capture_output=True, text=True)
        assert seen.returncode == 0 and "tap0" in seen.stdout, seen.stderr
    finally:
        os.close(opened.fd)
        opened.control.close()


def test_attaches_to_a_tap_rootlesskit_made_first(userns_process: int) -> None:
    # rootlesskit's PrepareTap: `nsenter -t PID -n -m -U --preserve-credentials ip tuntap add name tap0 mode tap`
    pid = str(userns_process)
    subprocess.run(["nsenter", "-t", pid, "-U", "-n", "--preserve-credentials",
                    "ip", "tuntap", "add", "name", "tap0", "mode", "tap"], check=True)
    opened = open_tuntap_in(NamespaceTarget.for_pid(userns_process), "tap0", 0x0002 | 0x1000 | 0x4000)
    try:
        seen = subprocess.run(["nsenter", "-t", pid, "-U", "-n", "--preserve-credentials",
                               "ip", "-d", "link", "show", "tap0"], capture_output=True, text=True)
        assert "vnet_hdr on" in seen.stdout and "persist on" in seen.stdout, seen.stdout
    finally:
        os.close(opened.fd)
        opened.control.close()


def test_command_runs_as_root_of_a_new_user_and_network_namespace(tmp_path: Path) -> None:
    require_real_peer()
    out = tmp_path / "out"
    child = spawn_in_new_namespaces(["sh", "-c", f"id -u > {out}; ip -o link show >> {out}; exit 7"])
    opened = open_tuntap_in(child.target, "tap0", 0x0002 | 0x1000 | 0x4000)   # the gateway's TAP, before COMMAND
    try:
        child.start()
        assert child.wait() == 7
    finally:
        os.close(opened.fd)
        opened.control.close()
    lines = out.read_text().splitlines()
    assert lines[0] == "0"
    names = sorted(line.split(":")[1].strip() for line in lines[1:])
    assert names == ["lo", "tap0"]


def test_command_starts_with_default_signal_dispositions(tmp_path: Path) -> None:
    # Python ignores SIGPIPE; an ignored signal survives exec, so COMMAND must get it back
    require_real_peer()
    out = tmp_path / "status"
    child = spawn_in_new_namespaces(["sh", "-c", f"grep -E '^Sig(Ign|Blk)' /proc/self/status > {out}"])
    child.start()
    assert child.wait() == 0
    masks = dict(line.split(":\t") for line in out.read_text().splitlines())
    sigpipe_bit = 1 << (signal.SIGPIPE - 1)
    assert int(masks["SigIgn"], 16) & sigpipe_bit == 0 and int(masks["SigBlk"], 16) == 0, masks


def test_command_that_cannot_run_exits_127_and_an_aborted_one_125(capfd: pytest.CaptureFixture[str]) -> None:
    require_real_peer()
    child = spawn_in_new_namespaces(["/nonexistent/command"])
    child.start()
    assert child.wait() == 127
    assert "tunstack gateway: cannot run /nonexistent/command: No such file or directory" in capfd.readouterr().err
    assert spawn_in_new_namespaces(["true"]).abort() == 125
    child = spawn_in_new_namespaces(["sh", "-c", "kill -TERM $$"])
    child.start()
    assert child.wait() == 128 + 15


def test_errors_are_one_line() -> None:
    require_real_peer()
    dead = subprocess.Popen(["true"])
    dead.wait()
    with pytest.raises(NamespaceError) as info:
        open_tuntap_in(NamespaceTarget.for_pid(dead.pid), "tap0", 0x0002)
    assert str(info.value) == f"no process {dead.pid} (/proc/{dead.pid}/ns/net): No such file or directory"
    missing = unique_name("nx")
    with pytest.raises(NamespaceError) as info:
        NamespaceTarget.from_spec(missing).check()
    assert str(info.value) == f"no network namespace named {missing} (/run/netns/{missing}): No such file or directory"
    with pytest.raises(NamespaceError) as info:
        NamespaceTarget.from_spec("/etc/hostname").check()
        open_tuntap_in(NamespaceTarget.from_spec("/etc/hostname"), "tap0", 0x0002)
    assert str(info.value) == "setns(CLONE_NEWNET): Invalid argument (joining /etc/hostname)"
    with pytest.raises(NamespaceError, match=r"^no COMMAND to run after --$"):
        spawn_in_new_namespaces([])


def _as_nobody(fn: object) -> tuple[int, str]:
    """Run fn() in a forked child as uid/gid nobody; (its exit code, what it wrote)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            # As if exec'd by that user: a process that dropped root is not dumpable, and then
            # its /proc/self/{uid_map,...} and /proc/PID/ns files stay root's (proc(5))
            ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
            os.write(w, str(fn()).encode())     # type: ignore[operator]
            code = 0
        except BaseException as exc:        # everything: the test must see it
            os.write(w, f"{type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), data.decode()


@pytest.fixture
def tun_for_everyone() -> Iterator[None]:
    """/dev/net/tun usable without root (Debian ships it 0666; this machine 0600), restored after."""
    require_real_peer()
    mode = stat.S_IMODE(os.stat("/dev/net/tun").st_mode)
    os.chmod("/dev/net/tun", 0o666)
    try:
        yield
    finally:
        os.chmod("/dev/net/tun", mode)


def test_rootless_command_and_tap(tun_for_everyone: None) -> None:
    with tempfile.TemporaryDirectory() as where:     # pytest's tmp_path is root's only
        os.chmod(where, 0o777)
        _rootless_command_and_tap(Path(where) / "out")


def _rootless_command_and_tap(out: Path) -> None:

    def rootless() -> str:
        child = spawn_in_new_namespaces(["sh", "-c", f"id -u > {out}; ip -o link show >> {out}"])
        opened = open_tuntap_in(child.target, "tap0", 0x0002 | 0x1000 | 0x4000)
        child.start()
        status = child.wait()
        os.close(opened.fd)
        opened.control.close()
        return f"status {status} euid {os.geteuid()}"

    code, said = _as_nobody(rootless)
    assert (code, said) == (0, f"status 0 euid {NOBODY}")
    lines = out.read_text().splitlines()
    assert lines[0] == "0" and sorted(line.split(":")[1].strip() for line in lines[1:]) == ["lo", "tap0"]


def test_rootless_errors_are_one_line() -> None:
    require_real_peer()
    mode = stat.S_IMODE(os.stat("/dev/net/tun").st_mode)

    def into_init() -> str:
        open_tuntap_in(NamespaceTarget.for_pid(1), "tap0", 0x0002)
        return "opened"

    code, said = _as_nobody(into_init)      # another user's namespaces: no permission
    assert code == 1 and said.startswith("NamespaceError: ") and "\n" not in said
    assert "Operation not permitted" in said or "Permission denied" in said, said

    def tap_without_tun() -> str:
        child = spawn_in_new_namespaces(["true"])
        try:
            open_tuntap_in(child.target, "tap0", 0x0002)
        finally:
            child.abort()
        return "opened"

    os.chmod("/dev/net/tun", 0o600)          # root's only, whatever it was, restored after
    try:
        code, said = _as_nobody(tap_without_tun)
    finally:
        os.chmod("/dev/net/tun", mode)
    assert (code, said) == (1, "NamespaceError: /dev/net/tun: Permission denied "
                               "(without root it must be usable by you, e.g. mode 0666)")


async def test_configure_sets_the_guest_side_from_our_namespace(netns: NetnsHost) -> None:
    # slirp4netns -c: lo and the TAP up, MTU, MAC, 10.0.2.100/24, default via 10.0.2.2 -- all
    # through the control socket made in the guest's namespace, no `ip` in the test
    name = unique_name("tg")
    ndd = TapNdd(name, mtu=65520, opener=netns_opener(NamespaceTarget.from_spec(netns.name)))
    ndd.create()
    try:
        assert ndd.control is not None
        netns.ip("link", "set", "lo", "down")
        configure_interface(ndd.control, name, ipaddress.IPv4Interface("10.0.2.100/24"),
                            ipaddress.IPv4Address("10.0.2.2"), 65520, mac=bytes.fromhex("02000a000264"))
        assert "inet 10.0.2.100/24" in netns.ip("-4", "addr", "show", "dev", name).stdout
        assert f"default via 10.0.2.2 dev {name}" in netns.ip("route").stdout
        link = netns.ip("link", "show", name).stdout
        assert "mtu 65520" in link and "02:00:0a:00:02:64" in link and ",UP" in link
        assert ",UP" in netns.ip("link", "show", "lo").stdout
        with pytest.raises(IfconfigError) as info:
            configure_interface(ndd.control, "nosuch0", ipaddress.IPv4Interface("10.0.2.100/24"), None, 1500)
        assert str(info.value) == "reading flags on nosuch0: No such device"
        async with Stack("gateway-configure") as st:
            st.add_interface(ndd, "10.0.2.2/24")
            r = await run(netns.exec_argv("ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"))
            assert loss_percent(r.stdout) == 0, r.stdout
    finally:
        ndd.release()
