"""Runtime errors and the options that touch the system (issue 10 point 14), end to end:
each error is one line `tunstack: error: ...` with exit 1 and no traceback, saying which
command or file failed and why (ip's own message; /dev/net/tun and root/CAP_NET_ADMIN);
an existing device is refused, not taken over; --netns takes a PID or a path, as
slirp4netns and pasta do; --pcap - writes the capture to stdout."""
from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest

from tools.lab.netns import netns_exists, unique_name

from .conftest import require_real_peer
from .test_cli_signals import Cmd, links

ROOT = Path(__file__).resolve().parents[2]
TUNSTACK = [sys.executable, "-m", "tools.cli.main"]


def tunstack(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run([*TUNSTACK, *args], capture_output=True, cwd=ROOT, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]


def one_error_line(r: subprocess.CompletedProcess, rc: int = 1) -> str:
    err = r.stderr.decode()
    assert r.returncode == rc, (r.returncode, err)
    assert err.startswith("tunstack: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def test_failing_ip_command_shows_ips_message() -> None:
    require_real_peer()
    ns, dev = unique_name(), unique_name("te")
    ip("netns", "add", ns)
    try:
        ip("-n", ns, "tuntap", "add", "dev", dev, "mode", "tun")    # the name is taken in the namespace
        r = tunstack("up", "--tun", dev, "--addr", "10.77.40.2/24", "--netns", ns, "--peer-addr", "10.77.40.1/24")
        err = one_error_line(r)
        assert f"`ip link set {dev} netns {ns}` failed" in err
        assert "exists" in err                                       # ip's own words, not hidden
        assert netns_exists(ns)                                      # not ours: left alone
        assert dev not in links()                                    # our device went with our fd
    finally:
        subprocess.run(["ip", "netns", "delete", ns])


def test_existing_persistent_tun_is_refused_unless_reused() -> None:
    require_real_peer()
    dev = unique_name("te")
    ip("tuntap", "add", "dev", dev, "mode", "tun")
    try:
        r = tunstack("up", "--tun", dev, "--addr", "10.77.41.2/24")
        err = one_error_line(r)
        assert f"device {dev} already exists" in err and "--reuse-device" in err
        # a TAP of that name is refused alike (it exists, whatever its kind)
        one_error_line(tunstack("up", "--tap", dev, "--addr", "10.77.41.2/24"))
        # asked for: the stack attaches to it, and gives it back as it found it
        ns = unique_name()
        cmd = Cmd("up", "--tun", dev, "--addr", "10.77.41.2/24", "--reuse-device", "--netns", ns,
                  "--peer-addr", "10.77.41.1/24")
        try:
            cmd.wait_for(b"ready:")
            r = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", "10.77.41.2"],
                               capture_output=True, text=True, timeout=30)
            assert " 0% packet loss" in r.stdout, r.stdout + r.stderr
            rc, _ = cmd.stop(signal.SIGTERM)
        finally:
            cmd.kill()
        assert rc == 128 + signal.SIGTERM and f"dev={dev}".encode() in cmd.out
        assert not netns_exists(ns)
        shown = subprocess.run(["ip", "-o", "addr", "show", "dev", dev], capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr                   # persistent: back here, not ours to delete
        assert "10.77.41.1" not in shown.stdout                      # without the address we gave it
    finally:
        subprocess.run(["ip", "tuntap", "del", "dev", dev, "mode", "tun"], capture_output=True)


def held_namespace() -> tuple[str, subprocess.Popen]:
    """A namespace with a process of ours in it (the PID --netns is given)."""
    ns = unique_name()
    ip("netns", "add", ns)
    holder = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "120"])
    return ns, holder


@pytest.mark.parametrize("how", ["pid", "path"])
def test_netns_by_pid_or_path(how: str) -> None:
    require_real_peer()
    ns, holder = held_namespace()
    dev = unique_name("te")
    try:
        target = str(holder.pid) if how == "pid" else f"/run/netns/{ns}"
        cmd = Cmd("up", "--tun", dev, "--addr", "10.77.42.2/24", "--netns", target, "--peer-addr", "10.77.42.1/24")
        try:
            cmd.wait_for(b"ready:")
            assert f"netns={target}".encode() in cmd.out
            # the kernel side is configured in that namespace, and the stack answers there
            r = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.77.42.2"],
                               capture_output=True, text=True, timeout=30)
            assert " 0% packet loss" in r.stdout, r.stdout + r.stderr
            rc, _ = cmd.stop(signal.SIGTERM)
        finally:
            cmd.kill()
        assert rc == 128 + signal.SIGTERM
        assert netns_exists(ns)                                      # never ours to delete
        alias = f"tsns{cmd.p.pid}x"                                  # the names it gives (unique_name)
        assert not [n for n in os.listdir("/run/netns") if n.startswith(alias)]   # gone again
        r = subprocess.run(["ip", "-n", ns, "-o", "link"], capture_output=True, text=True)
        assert dev not in r.stdout
    finally:
        holder.kill()
        holder.wait()
        subprocess.run(["ip", "netns", "delete", ns])


def test_without_root_the_error_names_the_file_and_the_capability() -> None:
    require_real_peer()
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to drop root for this test")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        *TUNSTACK, "up", "--tun", unique_name("te"), "--addr", "10.77.43.2/24"],
                       capture_output=True, cwd=ROOT, timeout=60, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    err = one_error_line(r)
    assert "/dev/net/tun: Permission denied" in err and "root or CAP_NET_ADMIN" in err


def test_pcap_file_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    require_real_peer()
    r = tunstack("up", "--tun", unique_name("te"), "--addr", "10.77.44.2/24", "--pcap", str(tmp_path / "no" / "x"))
    err = one_error_line(r)
    assert f"--pcap {tmp_path / 'no' / 'x'}: No such file or directory" in err


def test_pcap_dash_is_stdout() -> None:
    require_real_peer()
    ns, dev = unique_name(), unique_name("te")
    r = tunstack("ping", "--tun", dev, "--addr", "10.77.45.2/24", "--netns", ns, "--peer-addr", "10.77.45.1/24",
                 "--pcap", "-", "-c", "2", "10.77.45.1")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(ROOT / "-")
    assert not netns_exists(ns)
    # stdout is a pcap of the exchange (as tcpdump -w -); ping's own lines went to stderr
    reader = dpkt.pcap.Reader(io.BytesIO(r.stdout))
    assert reader.datalink() == 101
    packets = [dpkt.ip.IP(buf) for _, buf in reader if buf[0] >> 4 == 4]     # not the kernel's IPv6 RS
    icmp = [p for p in packets if p.p == dpkt.ip.IP_PROTO_ICMP]
    assert len(icmp) == 4                                            # 2 requests, 2 replies
    assert b"2 sent, 2 received, 0% loss" in r.stderr and b"bytes from 10.77.45.1" in r.stderr
