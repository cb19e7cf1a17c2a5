"""The gateway's grammars, parsed into dataclasses; every error is an ArgsError whose
text is one line saying what was wrong.  No I/O here except what slirp4netns itself
checks while parsing (that a --userns-path or a --netns-type=path target exists).

1. pasta's port-forward grammar for -t/-u (passt(1), "-t, --tcp-ports spec"):

     none | auto | all | [ADDR[%IFNAME]/]ITEM[,ITEM]...
     ITEM    = PORT[-PORT][:PORT[-PORT]]      forward (host range : guest range)
             | ~PORT[-PORT]                   exclude from the forwards of this spec
   A spec made of exclusions only forwards every non-ephemeral port 1-65535 but those.
   ADDR may be bracketed ([::1]); a mapped guest range has the host range's length.
   `auto` is pasta's and `all` passt's; both parse here and the gateway says which it
   serves.  Differences from pasta, each an error here: port 0 (pasta would try to bind
   it), and modes mixed across options ("none" then "22").

2. slirp4netns 1.2's command line, as its getopt_long table takes it (GNU rules:
   options and operands in any order, `--opt=V` or `--opt V`, `-m1500`, clustered
   flags, unique prefixes of long options, `--` ends the options):
     slirp4netns [OPTION]... PID|PATH [TAPNAME]
   TAPNAME defaults to tap0 (slirp4netns 1.2 requires it; its man page shows it
   optional).  The checks and messages are slirp4netns's where it has them.

3. slirp4netns's JSON API (an AF_UNIX stream, one request < 4096 bytes per connection,
   the client shuts down its write side, one response, close), as its api.c answers:
     {"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": "0.0.0.0",
      "host_port": 8080, "guest_addr": "10.0.2.100", "guest_port": 80}}
         -> {"return":{"id":1}}
     {"execute": "list_hostfwd"}
         -> {"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,
                         "guest_addr":"10.0.2.100","guest_port":80}]}
        (the binary sends "entries" at the top level; its man page shows it under
         "return": we answer as the binary does, byte for byte, checked against 1.2.0)
     {"execute": "remove_hostfwd", "arguments": {"id": 1}}  -> {"return":{}}
     any error -> {"error":{"desc":"bad request: ..."}}
"""
from __future__ import annotations

import getopt
import ipaddress
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .policy import DEFAULT_CIDR6, AddressModel

MAX_PORT = 65535
IFNAMSIZ = 16


class ArgsError(ValueError):
    """A command-line or request error; str() is the one-line message for the user."""


# ─── 1. pasta's -t / -u port forwards ────────────────────────────────────────────

@dataclass(frozen=True)
class PortRange:
    first: int
    last: int

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last


@dataclass(frozen=True)
class PortForward:
    """Host ports `host` forwarded to the guest ports starting at `guest_first`."""
    host: PortRange
    guest_first: int

    @property
    def guest(self) -> PortRange:
        return PortRange(self.guest_first, self.guest_first + len(self.host) - 1)


ForwardMode = Literal["none", "auto", "all", "ports", "all-except"]
Proto = Literal["tcp", "udp"]


@dataclass(frozen=True)
class PortForwardSpec:
    """One -t/-u option.  mode "ports": the `forwards` minus `excluded`; "all-except":
    every non-ephemeral port but `excluded`; "none"/"auto"/"all": as pasta/passt."""
    proto: Proto
    mode: ForwardMode
    address: str | None = None        # host address to bind, normalised; None = any
    interface: str | None = None      # host interface to bind (SO_BINDTODEVICE), pasta's %IF
    forwards: tuple[PortForward, ...] = ()
    excluded: tuple[PortRange, ...] = ()

    def mappings(self, ephemeral: PortRange = PortRange(32768, 60999)) -> Iterator[tuple[int, int]]:
        """(host port, guest port) pairs, ascending by host port; `ephemeral` is the host's
        net.ipv4.ip_local_port_range, which "all"/"all-except" leave alone as pasta does."""
        def excluded(port: int) -> bool:
            return any(port in r for r in self.excluded)
        if self.mode in ("all", "all-except"):
            for port in range(1, MAX_PORT + 1):
                if port not in ephemeral and not excluded(port):
                    yield port, port
        elif self.mode == "ports":
            seen: dict[int, int] = {}
            for fwd in self.forwards:             # a later item remaps an earlier one, as in pasta
                for port in range(fwd.host.first, fwd.host.last + 1):
                    if not excluded(port):
                        seen[port] = fwd.guest_first + port - fwd.host.first
            yield from sorted(seen.items())


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ArgsError(f"bad port {text!r} in port forward {whole!r}: a port is a number 1-{MAX_PORT}")
    port = int(text)
    if not 1 <= port <= MAX_PORT:
        raise ArgsError(f"port {text} out of range in port forward {whole!r}: a port is 1-{MAX_PORT}")
    return port


def _range(text: str, whole: str) -> PortRange:
    first, dash, last = text.partition("-")
    lo = _port(first, whole)
    hi = _port(last, whole) if dash else lo
    if hi < lo:
        raise ArgsError(f"empty port range {text!r} in port forward {whole!r}: the first port is above the last")
    return PortRange(lo, hi)


def _address(text: str, whole: str) -> str:
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ArgsError(f"bad address {text!r} in port forward {whole!r}: "
                        f"an IPv4 or IPv6 address before the '/'") from None


def parse_port_spec(proto: Proto, text: str) -> PortForwardSpec:
    """One -t (proto "tcp") or -u ("udp") value in pasta's grammar (module docstring)."""
    if text in ("none", "auto", "all"):
        return PortForwardSpec(proto, text)  # type: ignore[arg-type]   # literal checked above
    if not text:
        raise ArgsError("empty port forward: give PORT[-PORT][:PORT[-PORT]], none, auto or all")
    address = interface = None
    head, slash, items = text.rpartition("/")
    if slash:
        where, pct, ifname = head.partition("%")
        if pct:
            if not ifname or len(ifname) >= IFNAMSIZ or "/" in ifname or any(c.isspace() for c in ifname):
                raise ArgsError(f"bad interface name {ifname!r} in port forward {text!r}: "
                                f"1-{IFNAMSIZ - 1} characters after the '%'")
            interface = ifname
        if where:
            address = _address(where, text)
        elif not pct:
            raise ArgsError(f"nothing before the '/' in port forward {text!r}: give ADDR/, ADDR%IF/ or %IF/")
    forwards: list[PortForward] = []
    excluded: list[PortRange] = []
    for item in items.split(","):
        if item.startswith("~"):
            excluded.append(_range(item[1:], text))
            continue
        host_text, colon, guest_text = item.partition(":")
        host = _range(host_text, text)
        guest = _range(guest_text, text) if colon else host
        if len(guest) != len(host):
            raise ArgsError(f"{item!r} in port forward {text!r} maps {len(host)} host port(s) to "
                            f"{len(guest)} guest port(s): the two ranges must be as long")
        forwards.append(PortForward(host, guest.first))
    for i, a in enumerate(excluded):
        for b in excluded[i + 1:]:
            if a.first <= b.last and b.first <= a.last:
                raise ArgsError(f"overlapping excluded ranges in port forward {text!r}")
    mode: ForwardMode = "ports" if forwards else "all-except"
    return PortForwardSpec(proto, mode, address, interface, tuple(forwards), tuple(excluded))


def check_port_specs(specs: Sequence[PortForwardSpec]) -> None:
    """Several -t (or -u) options together: none/auto/all stand alone per protocol, as in
    pasta ("Port forwarding mode 'X' conflicts with previous mode")."""
    for proto in ("tcp", "udp"):
        mine = [s for s in specs if s.proto == proto]
        special = [s for s in mine if s.mode in ("none", "auto", "all")]
        if special and len(mine) > 1:
            flag = "-t" if proto == "tcp" else "-u"
            raise ArgsError(f"{flag} {special[0].mode} cannot be combined with other {flag} options")


# ─── 2. slirp4netns 1.2's command line ──────────────────────────────────────────

SLIRP4NETNS_VERSION = "1.2.0"   # the command line we accept is this release's
SLIRP_DEFAULT_MTU = 1500
SLIRP_MAX_MTU = 65521
SLIRP_DEFAULT_CIDR = "10.0.2.0/24"
SLIRP_DEFAULT_TAP = "tap0"

_SHORT = "ce:r:m:a:6hv"
_LONG = ["configure", "exit-fd=", "ready-fd=", "mtu=", "cidr=", "disable-host-loopback",
         "no-host-loopback", "netns-type=", "userns-path=", "api-socket=", "enable-ipv6",
         "enable-sandbox", "create-sandbox", "enable-seccomp", "help", "version",
         "outbound-addr=", "outbound-addr6=", "disable-dns", "macaddress=", "target-type="]


@dataclass
class Slirp4netnsArgs:
    """What `slirp4netns [OPTION]... PID|PATH [TAPNAME]` asked for.  `action` is "help" or
    "version" when those were given (nothing else is then checked, as in slirp4netns)."""
    action: Literal["run", "help", "version"] = "run"
    netns_type: Literal["pid", "path"] = "pid"
    target_pid: int | None = None            # --netns-type=pid (the default)
    netns_path: str | None = None            # --netns-type=path
    tapname: str = SLIRP_DEFAULT_TAP
    configure: bool = False                  # -c
    mtu: int = SLIRP_DEFAULT_MTU             # -m
    cidr: ipaddress.IPv4Network = field(default_factory=lambda: ipaddress.IPv4Network(SLIRP_DEFAULT_CIDR))
    disable_host_loopback: bool = False
    api_socket: str | None = None            # -a
    ready_fd: int | None = None              # -r
    exit_fd: int | None = None               # -e
    userns_path: str | None = None
    disable_dns: bool = False
    outbound_addr: str | None = None         # an IPv4 address or an interface name
    outbound_addr6: str | None = None        # an IPv6 address or an interface name
    enable_ipv6: bool = False                # -6
    enable_sandbox: bool = False
    enable_seccomp: bool = False
    macaddress: bytes | None = None          # --macaddress (needs -c)
    warnings: list[str] = field(default_factory=list)   # lines for stderr, "WARNING: ..."

    @property
    def model(self) -> AddressModel:
        """slirp4netns's address model on --cidr (gateway .2, DNS .3, guest .100 that -c
        configures): the gateway's own, policy.AddressModel."""
        return AddressModel(self.cidr, ipaddress.IPv6Network(DEFAULT_CIDR6))

    @property
    def dhcp_start(self) -> ipaddress.IPv4Address:
        """Where slirp4netns's built-in DHCP pool starts (network + 15; its main.c default)."""
        return self.cidr.network_address + 15


def _nonneg_int(text: str, message: str) -> int:
    # strtol(…, 10) with the whole string consumed: an optional sign, then digits
    t = text.lstrip(" \t\n\v\f\r")
    body = t[1:] if t[:1] in "+-" else t
    if not body or not body.isdigit() or not body.isascii():
        raise ArgsError(message)
    value = int(t)
    if value < 0:
        raise ArgsError(message)
    return value


def parse_slirp_cidr(text: str) -> ipaddress.IPv4Network:
    """--cidr as slirp4netns checks it: a dotted quad, a prefix 1-25, the network address."""
    addr, slash, prefix = text.partition("/")
    quads = addr.split(".")
    if (not slash or len(quads) != 4 or not all(q.isdigit() and q.isascii() and 1 <= len(q) <= 3 for q in quads)
            or not prefix.isdigit() or not prefix.isascii() or not 1 <= len(prefix) <= 2):
        raise ArgsError(f"invalid CIDR: {text}")
    try:
        network_address = ipaddress.IPv4Address(".".join(str(int(q)) for q in quads))
    except ValueError:
        raise ArgsError(f"invalid network address: {addr}") from None
    length = int(prefix)
    if not 1 <= length <= 25:     # /26 and longer have no room for the guest at +100
        raise ArgsError("prefix length needs to be 1-25")
    try:
        return ipaddress.IPv4Network(f"{network_address}/{length}")
    except ValueError:
        raise ArgsError("CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24") from None


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise ArgsError(f"\"{text}\" is an invalid MAC address: give 6 hex bytes separated by ':'")
    return bytes(int(p, 16) for p in parts)


def _apply_option(a: Slirp4netnsArgs, opt: str, val: str, raw: dict[str, str]) -> None:
    if opt in ("-c", "--configure"):
        a.configure = True
    elif opt in ("-e", "--exit-fd"):
        a.exit_fd = _nonneg_int(val, "exit-fd must be a non-negative integer")
    elif opt in ("-r", "--ready-fd"):
        a.ready_fd = _nonneg_int(val, "ready-fd must be a non-negative integer")
    elif opt in ("-m", "--mtu"):
        mtu = _nonneg_int(val, f"MTU must be a positive integer (< {SLIRP_MAX_MTU + 1})")
        if not 0 < mtu <= SLIRP_MAX_MTU:
            raise ArgsError(f"MTU must be a positive integer (< {SLIRP_MAX_MTU + 1})")
        a.mtu = mtu
    elif opt in ("-a", "--api-socket"):
        a.api_socket = val
    elif opt in ("-6", "--enable-ipv6"):
        a.enable_ipv6 = True
        a.warnings.append("WARNING: Support for IPv6 is experimental")
    elif opt in ("--disable-host-loopback", "--no-host-loopback"):
        if opt == "--no-host-loopback":
            a.warnings.append("WARNING: --no-host-loopback is deprecated, please use --disable-host-loopback instead.")
        a.disable_host_loopback = True
    elif opt in ("--enable-sandbox", "--create-sandbox"):
        if opt == "--create-sandbox":
            a.warnings.append("WARNING: --create-sandbox is deprecated, please use --enable-sandbox instead.")
        a.enable_sandbox = True
        a.warnings.append("WARNING: --enable-sandbox is accepted and ignored: tunstack gateway makes no mount "
                          "namespace and drops no capabilities")
    elif opt == "--enable-seccomp":
        a.enable_seccomp = True
        a.warnings.append("WARNING: --enable-seccomp is accepted and ignored: "
                          "tunstack gateway installs no seccomp filter")
    elif opt in ("--outbound-addr", "--outbound-addr6"):
        setattr(a, opt[2:].replace("-", "_"), val)
        a.warnings.append(f"WARNING: Support for {opt} is experimental")
    elif opt == "--disable-dns":
        a.disable_dns = True
    elif opt == "--userns-path":
        if not os.path.lexists(val):
            raise ArgsError(f"userns path doesn't exist: {val}")
        a.userns_path = val
    else:   # options whose meaning depends on others: checked once all are read
        raw[opt] = val


def parse_slirp4netns_argv(argv: Sequence[str]) -> Slirp4netnsArgs:
    """argv without the program name.  Raises ArgsError (one line) where slirp4netns would
    print its usage and exit 1."""
    try:
        opts, operands = getopt.gnu_getopt(list(argv), _SHORT, _LONG)
    except getopt.GetoptError as exc:
        raise ArgsError(f"{exc.msg} (see --help)") from None
    a = Slirp4netnsArgs()
    raw: dict[str, str] = {}
    for opt, _ in opts:
        if opt in ("-h", "--help"):
            return Slirp4netnsArgs(action="help")
        if opt in ("-v", "--version"):
            return Slirp4netnsArgs(action="version")
    for opt, val in opts:
        _apply_option(a, opt, val, raw)
    if "--cidr" in raw:
        a.cidr = parse_slirp_cidr(raw["--cidr"])
    if "--macaddress" in raw:
        if not a.configure:
            raise ArgsError("--macaddr cannot be specified when --configure or -c is not specified")
        a.macaddress = parse_mac(raw["--macaddress"])
    target_type = raw.get("--target-type", "netns")
    if target_type == "bess":
        raise ArgsError("--target-type=bess (User Mode Linux) is not supported by tunstack gateway")
    if target_type != "netns":
        raise ArgsError("--target-type must be either \"netns\" or \"bess\"")
    netns_type = raw.get("--netns-type", "pid")
    if netns_type == "tapfd":
        raise ArgsError("--netns-type=tapfd is not supported by tunstack gateway: give a PID or a path")
    if netns_type not in ("pid", "path"):
        raise ArgsError(f"--netns-type must be pid or path, not {netns_type!r}")
    if not operands:
        raise ArgsError("missing PID|PATH: slirp4netns [OPTION]... PID|PATH [TAPNAME]")
    if netns_type == "pid":
        pid = operands[0]
        body = pid[1:] if pid[:1] == "+" else pid
        if not body.isdigit() or not body.isascii() or int(body) <= 0:
            raise ArgsError("PID must be a positive integer")
        a.target_pid = int(body)
    else:
        a.netns_type = "path"
        if not os.path.lexists(operands[0]):
            raise ArgsError(f"existing path expected when --netns-type=path: {operands[0]}: No such file or directory")
        a.netns_path = operands[0]
    if len(operands) > 1:
        a.tapname = operands[1]
        if not 0 < len(a.tapname) < IFNAMSIZ or "/" in a.tapname or any(c.isspace() for c in a.tapname):
            raise ArgsError(f"bad TAPNAME {a.tapname!r}: 1-{IFNAMSIZ - 1} characters, no '/' or space")
    if len(operands) > 2:
        a.warnings.append("WARNING: too many arguments")   # slirp4netns: not an error
    return a


SLIRP4NETNS_USAGE = """\
Usage: {prog} [OPTION]... PID|PATH [TAPNAME]
User-mode networking for unprivileged network namespaces (tunstack gateway, slirp4netns {version} command line).

-c, --configure          bring up the interface (address network+100, default route, MTU)
-e, --exit-fd=FD         exit when FD becomes readable or closed
-r, --ready-fd=FD        write "1" to FD and close it once the network is up
-m, --mtu=MTU            specify MTU (default={mtu}, max={max_mtu})
-6, --enable-ipv6        enable IPv6 (experimental)
-a, --api-socket=PATH    specify API socket path (add_hostfwd, list_hostfwd, remove_hostfwd)
--cidr=CIDR              specify network address CIDR (default={cidr})
--disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace
--netns-type=TYPE        specify network namespace type ([path|pid], default=pid)
--userns-path=PATH       specify user namespace path
--enable-sandbox         accepted for compatibility, ignored (warning)
--enable-seccomp         accepted for compatibility, ignored (warning)
--outbound-addr=IPv4     sets outbound ipv4 address to bound to (experimental)
--outbound-addr6=IPv6    sets outbound ipv6 address to bound to (experimental)
--disable-dns            disables 10.0.2.3 (or configured internal ip) to host dns redirect
--macaddress=MAC         specify the MAC address of the TAP (only valid with -c)
--target-type=TYPE       specify the target type (netns only)
-h, --help               show this help and exit
-v, --version            show version and exit
"""


def slirp4netns_usage(prog: str = "slirp4netns") -> str:
    """--help text.  rootlesskit probes features by looking for option names in it
    (--netns-type, --enable-ipv6, --cidr, --disable-host-loopback, --api-socket,
    --enable-sandbox, --enable-seccomp: pkg/network/slirp4netns DetectFeatures)."""
    return SLIRP4NETNS_USAGE.format(prog=prog, version=SLIRP4NETNS_VERSION, mtu=SLIRP_DEFAULT_MTU,
                                    max_mtu=SLIRP_MAX_MTU, cidr=SLIRP_DEFAULT_CIDR)


def slirp4netns_version(tunstack_version: str) -> str:
    """--version, machine-parsable as slirp4netns's ("slirp4netns version X" first)."""
    return f"slirp4netns version {SLIRP4NETNS_VERSION}+tunstack\ntunstack: {tunstack_version}\n"


# ─── 3. slirp4netns's JSON API ──────────────────────────────────────────────────

API_MAX_REQUEST = 4096     # slirp4netns reads one 4096-byte buffer; a request that fills it is refused


@dataclass(frozen=True)
class AddHostFwd:
    proto: Proto
    host_addr: str            # IPv4, "0.0.0.0" when absent or empty
    host_port: int
    guest_addr: str           # IPv4, the default guest address when absent or empty
    guest_port: int


@dataclass(frozen=True)
class ListHostFwd:
    pass


@dataclass(frozen=True)
class RemoveHostFwd:
    id: int


@dataclass(frozen=True)
class HostFwd:
    """One entry of the forward table, as list_hostfwd shows it."""
    id: int
    proto: Proto
    host_addr: str
    host_port: int
    guest_addr: str
    guest_port: int


@dataclass(frozen=True)
class ApiError:
    desc: str                 # "bad request: ..."

    def encode(self) -> bytes:
        return _dump({"error": {"desc": self.desc}})


ApiRequest = AddHostFwd | ListHostFwd | RemoveHostFwd


def _dump(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _no_constants(name: str) -> None:
    raise ValueError(name)     # NaN / Infinity are not JSON


def _api_int(args: dict[str, object], key: str) -> int:
    """A JSON number, as slirp4netns reads it (a double cast to int); 0 or absent is refused."""
    v = args.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return 0
    return int(v) if -2**31 < v < 2**31 else 0


def _api_ipv4(v: object) -> str | None:
    if not isinstance(v, str):
        return None
    try:
        return str(ipaddress.IPv4Address(v))
    except ValueError:
        return None


def _parse_add(args: dict[str, object], default_guest: str) -> AddHostFwd | ApiError:
    def bad(what: str) -> ApiError:
        return ApiError(f"bad request: add_hostfwd: bad arguments.{what}")
    proto = args.get("proto")
    if proto not in ("tcp", "udp"):
        return bad("proto")
    host = args.get("host_addr")
    host_addr = _api_ipv4("0.0.0.0" if host in (None, "") else host)
    if host_addr is None:
        return bad("host_addr")
    host_port = _api_int(args, "host_port")
    if not 0 < host_port <= MAX_PORT:
        return bad("host_port")
    guest = args.get("guest_addr")
    guest_addr = default_guest if guest in (None, "") else _api_ipv4(guest)
    if guest_addr is None:
        return bad("guest_addr")
    guest_port = _api_int(args, "guest_port")
    if not 0 < guest_port <= MAX_PORT:
        return bad("guest_port")
    return AddHostFwd(proto, host_addr, host_port, guest_addr, guest_port)


def parse_api_request(data: bytes, default_guest: str = "10.0.2.100") -> ApiRequest | ApiError:
    """One request as read from an API connection.  An ApiError is the answer to send."""
    if len(data) >= API_MAX_REQUEST:
        return ApiError("bad request: too large message")
    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ApiError("bad request: cannot parse JSON")
    if not isinstance(obj, dict):
        return ApiError("bad request: json_object() failed")
    execute = obj.get("execute")
    if not isinstance(execute, str):
        return ApiError("bad request: no execute found")
    args = obj.get("arguments")
    args = args if isinstance(args, dict) else {}
    if execute == "add_hostfwd":
        return _parse_add(args, default_guest)
    if execute == "list_hostfwd":
        return ListHostFwd()
    if execute == "remove_hostfwd":
        fwd_id = _api_int(args, "id")
        return RemoveHostFwd(fwd_id)    # an unknown id (0 included) is the table's error to give
    return ApiError("bad request: unknown execute")


def format_add_reply(fwd_id: int) -> bytes:
    return _dump({"return": {"id": fwd_id}})


def format_remove_reply() -> bytes:
    return _dump({"return": {}})


def remove_unknown_id() -> ApiError:
    return ApiError("bad request: remove_hostfwd: bad arguments.id")


def format_list_reply(entries: Sequence[HostFwd]) -> bytes:
    return _dump({"entries": [{"id": e.id, "proto": e.proto, "host_addr": e.host_addr, "host_port": e.host_port,
                               "guest_addr": e.guest_addr, "guest_port": e.guest_port} for e in entries]})


@dataclass
class HostFwdTable:
    """The API's table: ids from 1, never reused (slirp4netns's hostfwds_nextid), bounded.
    Binding the host sockets is the gateway's job; this keeps the ids and the answers."""
    limit: int = 1024
    entries: dict[int, HostFwd] = field(default_factory=dict)
    next_id: int = 1

    def add(self, req: AddHostFwd) -> HostFwd | ApiError:
        if len(self.entries) >= self.limit:
            return ApiError(f"bad request: add_hostfwd: too many forwards (limit {self.limit})")
        for e in self.entries.values():
            if e.proto == req.proto and e.host_port == req.host_port and e.host_addr == req.host_addr:
                return ApiError("bad request: add_hostfwd: slirp_add_hostfwd failed")
        fwd = HostFwd(self.next_id, req.proto, req.host_addr, req.host_port, req.guest_addr, req.guest_port)
        self.entries[fwd.id] = fwd
        self.next_id += 1
        return fwd

    def remove(self, fwd_id: int) -> HostFwd | ApiError:
        return self.entries.pop(fwd_id, None) or remove_unknown_id()

    def list(self) -> list[HostFwd]:
        return list(self.entries.values())
