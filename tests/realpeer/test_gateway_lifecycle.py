"""What "the target namespace goes away" means for the gateway, against the kernel."""
from __future__ import annotations

import trio

from drivers.tuntap import TapNdd
from tools.gateway.ifconfig import link_up
from tools.gateway.lifecycle import wait_namespace_file_gone
from tools.gateway.nsenter import NamespaceTarget, netns_opener
from tools.lab.netns import NetnsHost, unique_name

from .conftest import require_real_peer


async def test_our_fds_keep_a_deleted_namespace_and_the_name_watch_sees_it_go() -> None:
    require_real_peer()
    host = NetnsHost.create(unique_name())
    name = unique_name("tg")
    ndd = TapNdd(name, opener=netns_opener(NamespaceTarget.from_spec(host.name)))
    ndd.create()
    try:
        gone = trio.Event()

        async def watch() -> None:
            await wait_namespace_file_gone(f"/run/netns/{host.name}", interval=0.02)
            gone.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await trio.sleep(0.1)
            assert not gone.is_set()
            host.delete()                                     # ip netns delete
        assert gone.is_set()
        assert ndd.control is not None
        link_up(ndd.control, name)      # the namespace lives on: the TAP's and the control socket's references
    finally:
        ndd.release()
        host.delete()
