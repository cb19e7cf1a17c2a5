"""Section c (optional): slirp4netns, user-mode networking for a namespace we create.

slirp4netns terminates the namespace's TCP in userspace (libslirp) and relays it to
host sockets, so it is the closest C peer to what tunstack does.  The host side uses
only 127.0.0.1: the namespace reaches it as 10.0.2.2, and the host reaches the
namespace through a port forward added over slirp4netns's API socket.
  kernel→stack row = namespace → host (slirp receives from the namespace's kernel)
  stack→kernel row = host → namespace (slirp sends into the namespace's kernel)
"""
from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile

from tools.lab.netns import NetnsHost, unique_name

from .common import PEER, Params, Proc, Section, can_run, netns, peer_argv, reason, run_peer

HOST_FROM_NS = "10.0.2.2"  # slirp4netns's default gateway: the host's loopback
ROWS = ["bulk_in", "bulk_out", "rr", "cps"]


def host_peer(role: str, *args: str) -> Proc:
    """A server peer on the host, listening on 127.0.0.1 only."""
    return Proc([sys.executable, PEER, role, "0", "--bind", "127.0.0.1", *args])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(sock_path: str, request: dict[str, object]) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sock_path)
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        reply: dict[str, object] = json.loads(s.recv(65536) or b"{}")
    if "error" in reply:
        raise RuntimeError(f"slirp4netns API: {reply['error']}")
    return reply


def measure(p: Params, sec: Section, host: NetnsHost, api_path: str) -> None:
    secs, t = str(p.seconds), p.seconds + 60
    with host_peer("sink", "--timeout", str(t)) as sink:
        port = sink.line(10)["port"]
        run_peer(host, "source", HOST_FROM_NS, str(port), "--seconds", secs, timeout=t)
        sec.set("bulk_in", sink.line(t)["mbit_s"], "namespace → host; Python peers")
    with Proc(peer_argv(host, "sink", "5002", "--timeout", str(t))) as sink:
        sink.line(10)
        hport = free_port()
        api(api_path, {"execute": "add_hostfwd", "arguments": {
            "proto": "tcp", "host_addr": "127.0.0.1", "host_port": hport, "guest_port": 5002}})
        src = subprocess.run([sys.executable, PEER, "source", "127.0.0.1", str(hport), "--seconds", secs],
                             capture_output=True, text=True, timeout=t)
        if src.returncode != 0:
            raise RuntimeError(f"host sender: {src.stdout.strip() or src.stderr.strip()[-200:]}")
        sec.set("bulk_out", sink.line(t)["mbit_s"], "host → namespace via hostfwd; Python peers")
    with host_peer("rr-server", "--timeout", "30") as srv:
        port = srv.line(10)["port"]
        rr = run_peer(host, "rr-client", HOST_FROM_NS, str(port), "--seconds", secs, timeout=t)
        sec.set("rr", rr["per_s"], "namespace → host; Python peers")
    with host_peer("cps-server", "--timeout", "1") as srv:
        port = srv.line(10)["port"]
        cps = run_peer(host, "cps-client", HOST_FROM_NS, str(port), "--seconds", secs, timeout=t)
        sec.set("cps", cps["per_s"], "namespace → host; Python peers, sequential")


def run(p: Params) -> Section:
    sec = Section("slirp4netns")
    why = can_run() or ("" if shutil.which("slirp4netns") else "slirp4netns is not installed "
                        "(Debian package slirp4netns; `make bench` installs it as root)")
    if why:
        sec.fail(ROWS, why)
        return sec
    try:
        with netns("tsbs") as host, tempfile.TemporaryDirectory(prefix="tsbench") as tmp:
            api_path = os.path.join(tmp, "slirp.sock")
            ready_r, ready_w = os.pipe()
            argv = ["slirp4netns", "--configure", "--mtu=1500", "--disable-dns", "--netns-type=path",
                    f"--api-socket={api_path}", f"--ready-fd={ready_w}",
                    f"/run/netns/{host.name}", unique_name("tss")]
            slirp = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     pass_fds=(ready_w,), start_new_session=True)
            os.close(ready_w)
            try:
                # it writes one byte to --ready-fd once the tap is configured (EOF if it died)
                readable, _, _ = select.select([ready_r], [], [], 10)
                if not readable or not os.read(ready_r, 1):
                    err = ""
                    if slirp.poll() is not None and slirp.stderr:
                        err = slirp.stderr.read().decode(errors="replace").strip()[-200:]
                    raise RuntimeError(f"slirp4netns did not become ready {err}".strip())
                sec.details["version"] = subprocess.run(["slirp4netns", "--version"], capture_output=True,
                                                        text=True).stdout.split("\n")[0]
                measure(p, sec, host, api_path)
            finally:
                os.close(ready_r)
                slirp.terminate()  # our own child, by its Popen handle
                try:
                    slirp.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    slirp.kill()
                    slirp.wait()
    except (OSError, RuntimeError, TimeoutError, EOFError, subprocess.SubprocessError, KeyError, ValueError) as exc:
        sec.fail(ROWS, reason(exc))
    return sec
