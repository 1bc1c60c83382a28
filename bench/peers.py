"""The peers bench/run measures beside stackd: which are here, how podman is run on
this host, and each peer's verification (it really ran) before its time counts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Peers installed from PyPI (podman-compose, py-spy) live beside this interpreter.
os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"

# podman asks for nofile/nproc above this host's hard limits (root lacks
# CAP_SYS_RESOURCE here) and its runtime then refuses to start anything.
PODMAN_ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    text = (proc.stderr or proc.stdout or "").strip()
    return text.splitlines()[-1][:200] if text else f"exit code {proc.returncode}"


def podman_conf(directory: Path, runtime: str = "runc") -> dict[str, str]:
    """The environment that makes podman (and podman-compose) use `runtime`."""
    conf = directory / f"containers-{runtime}.conf"
    conf.write_text(f'[engine]\nruntime = "{runtime}"\n')
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman_image(tar: Path, image: str) -> str:
    """The bench image imported into podman's store; its name there."""
    name = f"localhost/{image}"
    subprocess.run(["podman", "import", str(tar), name], check=True, capture_output=True)
    return name


def docker_refusal() -> str | None:
    """Why docker cannot be measured here, or None if it can."""
    if not have("docker"):
        return "not installed"
    proc = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, timeout=30)
    return None if proc.returncode == 0 else f"failed: {last_line(proc)}"


def podman_forget(name: str) -> None:
    """Remove the image podman_image imported (the host is left as found)."""
    subprocess.run(["podman", "rmi", "-f", name], capture_output=True)


def remove_peer_cgroups(root_id: str, tools: tuple[str, ...]) -> None:
    """A peer runtime's cgroups under this root (`stackd/<root>/<tool>`, made by runc,
    crun or podman in *every* hierarchy, blkio and name=systemd too), then the root's
    and the shared `stackd` parent where empty. stackd's own exit removes these
    parents only in the hierarchies it uses, so the others were left behind."""
    from stackd.hostnames import cgroup_relpath
    from stackd.runtime.cgroups.base import rmdir_if_empty

    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for tool in tools:
            d = hierarchy / cgroup_relpath(root_id, tool)
            if d.is_dir():
                for sub in sorted(d.rglob("*"), key=lambda p: -len(p.parts)):
                    if sub.is_dir():
                        sub.rmdir()
                d.rmdir()
        rmdir_if_empty(hierarchy / "stackd" / root_id)
        rmdir_if_empty(hierarchy / "stackd")
