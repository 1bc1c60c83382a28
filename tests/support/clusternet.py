"""Nodes of a clusterworld whose daemons can run stack networks (bridges, veths, the
nft table, DNS), not only network_mode none.

A daemon in a node's network namespace (nsenter --net) still sees the host's /sys,
whose /sys/class/net lists the host's devices: a veth it made in its namespace has no
brport there (hairpin mode cannot be set), and its bridge checks would find its own
bridges gone. So each node gets a mount namespace of its own, kept by a bind mount of
its ns file, in which /sys/class/net and /sys/devices/virtual/net come from a sysfs
mounted inside the node's network namespace; everything else (cgroups, the state
roots) is the host's. Every stackd of the node runs in both namespaces, so its
containers' mounts are made, seen and removed there. The host's mounts are private
on these machines, so nothing made inside leaks out; `close` unmounts the ns file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.clusterworld import NodeNs

SETUP = ("d=$(mktemp -d /tmp/stksys.XXXXXX) && mount -t sysfs sysfs \"$d\" && "
         "mount --bind \"$d/class/net\" /sys/class/net && "
         "mount --bind \"$d/devices/virtual/net\" /sys/devices/virtual/net && "
         "umount -l \"$d\" && rmdir \"$d\"")


class NetNode:
    def __init__(self, node: NodeNs, tmp: Path) -> None:
        self.node = node
        self.mntns = tmp / f"{node.name}.mntns"
        self.mntns.touch()
        subprocess.run(["nsenter", f"--net=/run/netns/{node.netns}", "unshare",
                        f"--mount={self.mntns}", "sh", "-c", SETUP],
                       check=True, capture_output=True, timeout=30)

    @property
    def name(self) -> str:
        return self.node.name

    def stackd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(["nsenter", f"--mount={self.mntns}",
                            f"--net=/run/netns/{self.node.netns}", sys.executable, "-m",
                            "stackd", *args], env=self.node.env(), capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check and r.returncode:
            raise AssertionError(f"stackd {' '.join(args)} on {self.name} exited "
                                 f"{r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r

    def in_container(self, container_id: str, script: str, *args: str) -> object:
        """Run a Python `script` (printing JSON) in a container's network namespace
        (its file is mounted in the node's mount namespace only); its output."""
        path = self.node.roots.run / "netns" / container_id
        r = subprocess.run(["nsenter", f"--mount={self.mntns}", "--", "nsenter",
                            f"--net={path}", sys.executable, "-c", script, *args],
                           capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise AssertionError(f"in {container_id} on {self.name}: {r.stderr[-800:]}")
        return json.loads(r.stdout)

    def close(self) -> None:
        subprocess.run(["umount", str(self.mntns)], capture_output=True, timeout=30)
