"""Linux namespaces for the gateway, through libc (Python 3.11 has no os.setns/os.unshare).

How the gateway gets a TAP that lives in another network namespace (what slirp4netns
does): a forked child joins the target's user namespace (when it is not ours) and then
its network namespace, opens /dev/net/tun there with TUNSETIFF, creates an AF_INET
socket there too, and passes both fds back over a socketpair (SCM_RIGHTS) before it
exits.  An fd keeps the namespace it was made in, so from our own namespaces:
  - the TUN/TAP fd reads and writes the guest's device (and takes TUNSETOFFLOAD), and
  - the "control" socket's SIOC* ioctls (MTU, txqueuelen, MAC, flags, addresses) act on
    the target namespace's interfaces.
A child process rather than a thread: setns(CLONE_NEWUSER) refuses a multithreaded
caller (EINVAL, setns(2)), and rootless use needs the user namespace first -- setns
into a network namespace needs CAP_SYS_ADMIN in the user namespace that owns it.  The
child runs only preloaded code (ctypes, os, fcntl, socket) and leaves with os._exit.

`spawn_in_new_namespaces` is `tunstack gateway -- COMMAND`: a child unshares a new user
and network namespace, maps the caller's uid/gid to 0 in it (as `unshare -r`), waits
until the gateway has made and configured its TAP, then execs COMMAND.

Every failure is a NamespaceError whose text is one line: what, on which file, why.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drivers.tuntap import OpenedDevice

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA            # _IOW('T', 202, int), <linux/if_tun.h>
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

_NSTYPE_NAMES = {CLONE_NEWNET: "CLONE_NEWNET", CLONE_NEWUSER: "CLONE_NEWUSER", CLONE_NEWNS: "CLONE_NEWNS",
                 CLONE_NEWUSER | CLONE_NEWNET: "CLONE_NEWUSER|CLONE_NEWNET", 0: "0"}


class NamespaceError(OSError):
    """A namespace operation failed; str() is one line for the user."""

    def __str__(self) -> str:
        return str(self.strerror or (self.args[0] if self.args else "namespace error"))


def _fail(what: str, err: int) -> NamespaceError:
    return NamespaceError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2) for the calling thread.  nstype 0 accepts any namespace type."""
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise _fail(f"setns({_NSTYPE_NAMES.get(nstype, hex(nstype))})", err)


def unshare(flags: int) -> None:
    """unshare(2) for the calling process (CLONE_NEWUSER needs it single-threaded)."""
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise _fail(f"unshare({_NSTYPE_NAMES.get(flags, hex(flags))})", err)


def same_namespace(a: str, b: str) -> bool:
    """Do two namespace files (/proc/PID/ns/..., a bind mount) name the same namespace?"""
    sa, sb = os.stat(a), os.stat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


@dataclass(frozen=True)
class NamespaceTarget:
    """The namespaces to enter: a network namespace file, and first, optionally, a user
    namespace file.  `user_required`: failing to join the user namespace is an error (an
    explicit --userns-path); otherwise it is tolerated as slirp4netns does, since root
    can enter the network namespace without it."""
    net: str
    user: str | None = None
    user_required: bool = False

    @classmethod
    def for_pid(cls, pid: int) -> NamespaceTarget:
        """slirp4netns PID: the process's network namespace, after its user namespace."""
        return cls(f"/proc/{pid}/ns/net", f"/proc/{pid}/ns/user")

    @classmethod
    def for_path(cls, path: str, userns_path: str | None = None) -> NamespaceTarget:
        """--netns-type=path PATH [--userns-path=PATH]; /run/netns/NAME and bind mounts."""
        return cls(path, userns_path, user_required=userns_path is not None)

    @classmethod
    def from_spec(cls, value: str, userns_path: str | None = None) -> NamespaceTarget:
        """--netns VALUE as `tunstack up` reads it: digits a PID, a "/" a path, else a
        name under /run/netns (ip-netns(8))."""
        if not value or value in (".", "..") or any(c.isspace() for c in value):
            raise NamespaceError(errno.EINVAL, f"not a network namespace: {value!r}")
        if value.isdigit():
            t = cls.for_pid(int(value))
            return cls(t.net, userns_path or t.user, user_required=userns_path is not None)
        if "/" in value:
            return cls.for_path(value, userns_path)
        return cls.for_path(f"/run/netns/{value}", userns_path)

    def check(self) -> None:
        """Open each file once now, so a wrong PID or path fails here in one line."""
        for path in (self.net, self.user):
            if path is None:
                continue
            try:
                os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            except OSError as exc:
                raise _fail(_describe(path), exc.errno or errno.EIO) from None


def _describe(path: str) -> str:
    parts = path.split("/")
    if len(parts) == 5 and parts[1] == "proc" and parts[2].isdigit() and not os.path.exists(f"/proc/{parts[2]}"):
        return f"no process {parts[2]} ({path})"
    if len(parts) == 4 and parts[1:3] == ["run", "netns"] and not os.path.lexists(path):
        return f"no network namespace named {parts[3]} ({path})"
    return path


def _open_ns(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise _fail(_describe(path), exc.errno or errno.EIO) from None


def _enter(target: NamespaceTarget) -> None:
    """In the child: open both files first (a /proc path may not resolve from inside),
    join the user namespace unless it is ours, then the network namespace."""
    user_fd = -1
    if target.user is not None:
        try:
            if not same_namespace(target.user, "/proc/self/ns/user"):
                user_fd = _open_ns(target.user)
        except OSError as exc:
            if target.user_required or exc.errno != errno.ENOENT:
                raise _fail(_describe(target.user), exc.errno or errno.EIO) from None
    net_fd = _open_ns(target.net)
    if user_fd >= 0:
        try:
            setns(user_fd, CLONE_NEWUSER)
        except NamespaceError as exc:
            if target.user_required:
                raise NamespaceError(exc.errno, f"{exc} (joining {target.user})") from None
        os.close(user_fd)
    try:
        setns(net_fd, CLONE_NEWNET)
    except NamespaceError as exc:
        raise NamespaceError(exc.errno, f"{exc} (joining {target.net})") from None
    os.close(net_fd)


def run_in_namespace(target: NamespaceTarget,
                     work: Callable[[], tuple[bytes, Sequence[int]]]) -> tuple[bytes, list[int]]:
    """Run `work` in a forked child inside `target`'s namespaces; return the bytes and the
    fds it returned (received over SCM_RIGHTS, still bound to that namespace).  Blocks
    until the child is done (milliseconds); raises NamespaceError with the child's reason."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:                                       # the child: no return from here
        code = 1
        try:
            ours.close()
            _enter(target)
            data, fds = work()
            socket.send_fds(theirs, [b"ok" + data], list(fds))
            code = 0
        except BaseException as exc:   # everything: the reason must reach the parent
            try:
                theirs.send(b"er" + " ".join(str(exc).split()).encode()[:4000])
            except BaseException:
                pass
        finally:
            os._exit(code)
    theirs.close()
    try:
        msg, fds, _flags, _addr = socket.recv_fds(ours, 4096, 8)
    finally:
        ours.close()
        _reap(pid)
    if msg.startswith(b"ok"):
        return msg[2:], fds
    for fd in fds:
        os.close(fd)
    reason = msg[2:].decode(errors="replace") or "the namespace helper died"
    raise NamespaceError(errno.EPERM if "not permitted" in reason else errno.EIO, reason)


def _reap(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0


def _tuntap_here(name: str, flags: int) -> tuple[bytes, list[int]]:
    """In the child, inside the namespace: the device fd and a control socket."""
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        err = exc.errno or errno.EIO
        hint = " (without root it must be usable by you, e.g. mode 0666)" if err == errno.EACCES else ""
        raise NamespaceError(err, f"/dev/net/tun: {os.strerror(err)}{hint}") from None
    ifr = struct.pack("16sH", name.encode(), flags).ljust(40, b"\0")
    try:
        ifr = fcntl.ioctl(fd, TUNSETIFF, ifr)
    except OSError as exc:
        raise _fail(f"TUNSETIFF {name}", exc.errno or errno.EIO) from None
    control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return ifr[:16].rstrip(b"\0"), [fd, control.detach()]   # detach: the fd must outlive the object


def open_tuntap_in(target: NamespaceTarget, name: str, flags: int) -> OpenedDevice:
    """A TUN/TAP device `name` (IFF_* `flags`: IFF_TAP|IFF_NO_PI|IFF_VNET_HDR ...) created
    (or attached, if it exists, as rootlesskit pre-creates tap0) inside `target`."""
    if not name or len(name) > 15:
        raise NamespaceError(errno.EINVAL, f"bad interface name {name!r}: 1-15 characters")
    data, fds = run_in_namespace(target, lambda: _tuntap_here(name, flags))
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        raise NamespaceError(errno.EIO, "the namespace helper sent no device")
    return OpenedDevice(fd=fds[0], name=data.decode(), control=socket.socket(fileno=fds[1]))


def netns_opener(target: NamespaceTarget) -> Callable[[str, int], OpenedDevice]:
    """The `opener` for TunTapNdd: its device is made inside `target`."""
    return lambda name, flags: open_tuntap_in(target, name, flags)


# ─── tunstack gateway -- COMMAND ────────────────────────────────────────────────

@dataclass
class NamespacedChild:
    """COMMAND's process, stopped in its new namespaces until start()."""
    pid: int
    go_fd: int
    status: int | None = None

    @property
    def target(self) -> NamespaceTarget:
        return NamespaceTarget(f"/proc/{self.pid}/ns/net", f"/proc/{self.pid}/ns/user", user_required=True)

    def start(self) -> None:
        """Let COMMAND run (the gateway's TAP is ready)."""
        if self.go_fd >= 0:
            os.write(self.go_fd, b"g")
            os.close(self.go_fd)
            self.go_fd = -1

    def abort(self) -> int:
        """Never run COMMAND: the child exits 125 and is reaped."""
        if self.go_fd >= 0:
            os.close(self.go_fd)
            self.go_fd = -1
        return self.wait()

    def wait(self) -> int:
        """COMMAND's exit status as a shell reports it: its code, or 128+N for signal N."""
        if self.status is None:
            self.status = exit_status(_reap(self.pid))
        return self.status

    def poll(self) -> int | None:
        if self.status is None:
            pid, ws = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = exit_status(ws)
        return self.status


def exit_status(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        raise _fail(f"writing {text.strip()!r} to {path}", exc.errno or errno.EIO) from None


def _child_namespaces(uid: int, gid: int) -> None:
    try:
        unshare(CLONE_NEWUSER | CLONE_NEWNET)
    except NamespaceError as exc:
        raise NamespaceError(exc.errno, f"cannot create a user and network namespace: {exc} "
                             f"(user namespaces disabled? see user.max_user_namespaces)") from None
    _write("/proc/self/setgroups", "deny")      # required before an unprivileged gid_map (user_namespaces(7))
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")


def _default_signals() -> None:
    """COMMAND starts as from a shell: Python ignores SIGPIPE and SIGXFSZ, and an ignored
    signal stays ignored across exec (signal(7)) -- `yes | head -1` would then end in
    EPIPE errors instead of a quiet SIGPIPE (subprocess's restore_signals does the same)."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def spawn_in_new_namespaces(argv: Sequence[str], *, die_with_parent: bool = True) -> NamespacedChild:
    """Fork COMMAND's process into a new user + network namespace where the caller's
    uid/gid are 0; it waits for NamespacedChild.start() and then execs argv (exit 127
    with a one-line message when argv[0] cannot run).  `die_with_parent`: SIGKILL
    COMMAND if the gateway dies (PR_SET_PDEATHSIG, as rootlesskit does for slirp4netns;
    it fires when the forking *thread* exits, so call this from the main thread)."""
    if not argv:
        raise NamespaceError(errno.EINVAL, "no COMMAND to run after --")
    uid, gid = os.geteuid(), os.getegid()
    parent_pid = os.getpid()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 125
        try:
            os.close(ready_r)
            os.close(go_w)
            if die_with_parent:
                _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent_pid:
                    os._exit(code)
            _child_namespaces(uid, gid)
            os.write(ready_w, b"k")
            os.close(ready_w)
            if os.read(go_r, 1) != b"g":
                os._exit(code)              # the gateway gave up: never run COMMAND
            os.close(go_r)
            _default_signals()
            code = 127
            try:
                os.execvp(argv[0], list(argv))
            except OSError as exc:
                code = 126 if exc.errno in (errno.EACCES, errno.ENOEXEC) else 127
                os.write(2, f"tunstack gateway: cannot run {argv[0]}: {exc.strerror}\n".encode())
        except BaseException as exc:   # everything: the reason must reach the parent
            try:
                os.write(ready_w, b"e" + " ".join(str(exc).split()).encode()[:4000])
            except BaseException:
                pass
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    try:
        msg = b""
        while chunk := os.read(ready_r, 4096):
            msg += chunk
    finally:
        os.close(ready_r)
    if msg != b"k":
        os.close(go_w)
        _reap(pid)
        raise NamespaceError(errno.EPERM, msg[1:].decode(errors="replace") or "the namespace child died")
    return NamespacedChild(pid, go_w)
