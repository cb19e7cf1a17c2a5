"""What `tunstack up` does with a stack once its device exists (tools/cli/device.py), over a
memory Ethernet link and without root: `attach` configures every --addr and --gw, `settle`
waits out DAD and turns a duplicate --addr into an error, `ready_line` lists every address
with its state, `report_address_changes` prints later changes."""
from __future__ import annotations

import io
import re
from typing import Any

import pytest
import trio
import trio.testing

from drivers.memlink import MemoryNdd
from protocols.ipv6.addr import ip6_to_int
from stack import Stack, StackConfig
from tools.cli import main as cli
from tools.cli.command import CliError
from tools.cli.device import Device, attach, report_address_changes, settle, stack_config

from .helpers import link_pair


def up_args(*argv: str) -> Any:
    """`tunstack up --tap m1 ARGV`, parsed and checked as the command does."""
    args = cli.build_parser().parse_args(["up", "--tap", "m1", *argv])
    cli.check_device_options(args.cmd_parser, args)
    return args


def device(ndd: MemoryNdd) -> Device:
    ndd.vnet = False            # type: ignore[attr-defined]   # what ready_line shows of a TUN/TAP NDD
    return Device(ndd, None, "tap")  # type: ignore[arg-type]


async def test_attach_settle_and_ready_line(autojump_clock: trio.testing.MockClock) -> None:
    args = up_args("--addr", "10.0.0.2/24", "--addr", "fd00:1::2/64", "--addr", "10.9.0.2/16",
                   "--gw", "10.0.0.1", "--gw", "fe80::1", "--peer-addr", "fd00:1::1/64")
    _, b = link_pair("ether")
    async with Stack("cli", stack_config(args)) as st:
        dev = device(b)
        attach(st, dev, args)
        assert any(i.state == "TENTATIVE" for i in dev.addresses6())        # DAD on Ethernet
        t0 = trio.current_time()
        await settle(dev, args)
        assert trio.current_time() - t0 <= 3                               # 1 s delay at most + 1 s probe
        states = {i.addr: (i.state, i.origin) for i in dev.addresses6()}
        assert states[ip6_to_int("fd00:1::2")] == ("PREFERRED", "static")
        assert sorted(s for s, _ in states.values()) == ["PREFERRED", "PREFERRED"]   # and the link-local
        line = dev.ready_line(args)
        assert line.startswith("ready: dev=m1 kind=tap addr=10.0.0.2/24,10.9.0.2/16 "
                               "addr6=fd00:1::2/64(preferred),fe80:")
        assert " peer=fd00:1::1/64 " in line and "tentative" not in line and line.endswith(" offload=off")
        # both --gw routes are in: the IPv4 default via 10.0.0.1, the IPv6 one via fe80::1 on m1
        assert st.routes.lookup(0x08080808).gateway == 0x0A000001
        hop = st.inet6.route(ip6_to_int("2001:db8::1"), st.now(), None)
        assert not isinstance(hop, int) and hop.nexthop == ip6_to_int("fe80::1") and hop.ifp.name == "m1"


async def test_a_duplicate_addr_is_an_error(autojump_clock: trio.testing.MockClock) -> None:
    a, b = link_pair("ether")
    async with Stack("other", StackConfig(seed=1)) as other:
        other.add_interface(a, "10.0.0.1/24")
        other.add_address("m0", "fd00:1::7/64")
        await trio.sleep(3)
        args = up_args("--addr", "fd00:1::8/64", "--addr", "fd00:1::7/64")
        async with Stack("cli", stack_config(args)) as st:
            dev = device(b)
            attach(st, dev, args)
            with pytest.raises(CliError) as info:
                await settle(dev, args)
    assert str(info.value).startswith("--addr fd00:1::7/64: duplicate address detected on m1")
    assert "dadfailed" in str(info.value)


async def test_tentative_for_too_long_is_shown_not_waited_for(autojump_clock: trio.testing.MockClock) -> None:
    args = up_args("--addr", "fd00:1::2/64")
    _, b = link_pair("ether")
    async with Stack("cli", stack_config(args)) as st:
        dev = device(b)
        attach(st, dev, args)
        await settle(dev, args, timeout=0.0)           # the bound: ready anyway, the state told
        assert "fd00:1::2/64(tentative)" in dev.ready_line(args)


async def test_no_ipv6_and_no_slaac(autojump_clock: trio.testing.MockClock) -> None:
    args = up_args("--addr", "10.0.0.2/24", "--no-ipv6")
    _, b = link_pair("ether")
    async with Stack("cli", stack_config(args)) as st:
        dev = device(b)
        attach(st, dev, args)
        await settle(dev, args)
        assert dev.addresses6() == [] and "addr6=" not in dev.ready_line(args)
    args = up_args("--addr", "10.0.0.2/24", "--no-slaac")
    async with Stack("cli", stack_config(args)) as st:
        assert not st.inet6.config.accept_ra and not st.inet6.config.autoconf


async def test_ipv4_only_is_ready_at_once_and_reports_later_changes(autojump_clock: trio.testing.MockClock) -> None:
    # options naming no IPv6: no wait for DAD (ready as soon as before), the link-local address
    # shown tentative, then announced by a line once usable; later addresses as they change
    args = up_args("--addr", "10.0.0.2/24")
    _, b = link_pair("ether")
    out = io.StringIO()
    async with Stack("cli", stack_config(args)) as st:
        dev = device(b)
        attach(st, dev, args)
        t0 = trio.current_time()
        await settle(dev, args)
        assert trio.current_time() == t0
        assert re.search(r" addr6=fe80:[0-9a-f:]+/64\(tentative\) ", dev.ready_line(args))
        async with trio.open_nursery() as n:
            n.start_soon(report_address_changes, dev, out)
            await trio.sleep(3)
            lines = out.getvalue().splitlines()
            assert len(lines) == 1 and re.fullmatch(r"addr6: dev=m1 fe80:[0-9a-f:]+/64\(preferred\)", lines[0])
            st.add_address("m1", "fd00:5::9/64")
            await trio.sleep(4)
            st.inet6.remove_address(st.interface("m1"), ip6_to_int("fd00:5::9"), st.now())
            await trio.sleep(1)
            n.cancel_scope.cancel()
    assert out.getvalue().splitlines()[1:] == ["addr6: dev=m1 fd00:5::9/64(tentative)",
                                               "addr6: dev=m1 fd00:5::9/64(preferred)",
                                               "addr6: dev=m1 fd00:5::9/64(removed)"]


async def test_settle_waits_when_asked(autojump_clock: trio.testing.MockClock) -> None:
    # `tunstack ping -6 ...` with IPv4-only options still waits: its source must be usable
    args = up_args("--addr", "10.0.0.2/24")
    _, b = link_pair("ether")
    async with Stack("cli", stack_config(args)) as st:
        dev = device(b)
        attach(st, dev, args)
        await settle(dev, args, wait=True)
        assert [i.state for i in dev.addresses6()] == ["PREFERRED"]
