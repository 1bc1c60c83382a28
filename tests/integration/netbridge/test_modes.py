"""network_mode none / container:x / host, as the reconciler wires them."""

from __future__ import annotations

import pytest
import trio
from support.networld import World

from stackd.errors import NotFoundError
from stackd.netbridge import namespace_for, parse_network_mode
from stackd.runtime.containerspec import ContainerSpec, Namespaces, ProcessSpec

pytestmark = pytest.mark.root


async def start(world: World, cid: str, net: str, *args: str) -> None:
    spec = ContainerSpec(id=cid, name=cid, layers=(str(world.layer),),
                         process=ProcessSpec(args=args or ("sleep", "3600")),
                         namespaces=Namespaces(net=net), stop_grace=1.0)
    await world.runtime.create(spec)
    await world.runtime.start(cid)


async def run_in(world: World, cid: str, *args: str) -> tuple[int, str]:
    with trio.fail_after(15):
        r = await world.runtime.exec(cid, list(args))
    return r.exit_code, (r.stdout + r.stderr).decode()


async def test_none_container_and_host_modes(world: World) -> None:
    rid = world.roots.id
    await world.network("m")
    web = await world.box("web", ["m"], args=("sh", "-c", "mkdir -p /w && echo shared > "
                                              "/w/index.html && exec httpd -f -p 80 -h /w"))
    lonely, sidecar, hosty = f"lonely-{rid}", f"sidecar-{rid}", f"hosty-{rid}"
    try:
        mode = parse_network_mode("none")
        await start(world, lonely, namespace_for(
            mode, own_netns=await world.nets.create_netns(lonely)))
        _, out = await run_in(world, lonely, "ls", "/sys/class/net")
        assert out.split() == ["lo"]

        mode = parse_network_mode(f"container:{web.name}")
        await start(world, sidecar, namespace_for(mode, joined_netns=web.netns))
        code, out = await run_in(world, sidecar, "timeout", "3", "wget", "-q", "-O-",
                                 "http://127.0.0.1/")
        assert (code, out) == (0, "shared\n")  # the same loopback: one network namespace

        await start(world, hosty, namespace_for(parse_network_mode("host")))
        _, out = await run_in(world, hosty, "ls", "/sys/class/net")
        assert web.addresses[0].host_ifname in out.split()  # it sees the host's devices
    finally:
        with trio.CancelScope(shield=True):
            for cid in (lonely, sidecar, hosty):
                try:
                    await world.runtime.delete(cid, force=True)
                except NotFoundError:
                    pass  # the test failed before making it
            await world.nets.remove_netns(lonely)
