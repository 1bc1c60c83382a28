"""`stackd cp` with an image whose /etc is a link to a host directory: reading and
writing svc:/etc/x go to that directory's path *inside* the container; the host
directory stays byte for byte what it was."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from e2e_helpers import CLI
from test_host_boundary import craft_image, snapshot, up

pytestmark = pytest.mark.root


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    d = tmp_path / "hostdir"
    (d / "sub").mkdir(parents=True)
    (d / "x").write_text("host x\n")
    (d / "secret").write_text("host secret\n")
    (d / "escape").symlink_to("/")
    return d


def test_cp_through_etc_linked_to_a_host_dir_stays_in_the_container(
        cli: CLI, tmp_path: Path, host_dir: Path) -> None:
    before = snapshot(host_dir)
    image = craft_image(cli, tmp_path, "evil/cp-etc-link", [("etc", str(host_dir))],
                        drop=("etc",))
    up(cli, image, "")
    # Inside, /etc leads to <host dir> in the container's root: give it an x there.
    cli("exec", "-T", "app", "sh", "-c", f"mkdir -p {host_dir} && echo inside > /etc/x")

    local = tmp_path / "local"
    local.mkdir()
    cli("cp", "app:/etc/x", str(local / "x"))
    assert (local / "x").read_text() == "inside\n"  # not the host's "host x"
    r = cli("cp", "app:/etc/secret", str(local / "secret"), check=False)
    assert r.returncode == 1 and "no such file in the container" in r.stderr
    assert not (local / "secret").exists()

    (local / "x").write_text("written by cp\n")
    cli("cp", str(local / "x"), "app:/etc/x")
    (local / "new").write_text("new file\n")
    cli("cp", str(local / "new"), "app:/etc/")
    out = cli("exec", "-T", "app", "sh", "-c", "cat /etc/x /etc/new").stdout
    assert out == "written by cp\nnew file\n"
    assert snapshot(host_dir) == before

    # Exited: its /etc files are bound into its detached tree where /etc leads inside.
    hostname = cli("exec", "-T", "app", "cat", "/etc/hostname").stdout
    cli("stop", "app")
    cli("cp", "app:/etc/hostname", str(local / "hostname"))
    assert (local / "hostname").read_text() == hostname and hostname.strip()
    cli("cp", str(local / "new"), "app:/etc/after")
    with open("/proc/self/mounts") as mounts:
        assert str(host_dir) not in mounts.read()
    assert snapshot(host_dir) == before


def test_cp_never_writes_through_a_link_the_container_holds(
        cli: CLI, tmp_path: Path, host_dir: Path) -> None:
    """A link at the destination (absolute, to the host dir's path) and a `..` chain are
    followed inside the container's root only."""
    before = snapshot(host_dir)
    up(cli, "stackd-demo/busybox:latest", "")
    cli("exec", "-T", "app", "sh", "-c",
        f"mkdir -p /box {host_dir} && ln -s {host_dir}/x /box/target && ln -s {host_dir} /box/dir")
    src = tmp_path / "payload"
    src.write_text("payload\n")
    cli("cp", str(src), "app:/box/target")
    # `..` after the link: its parent inside the container (on the host: tmp_path).
    cli("cp", str(src), "app:/box/dir/../escaped")
    cli("cp", str(src), "app:/box/dir")
    out = cli("exec", "-T", "app", "sh", "-c",
              f"cat {host_dir}/x {tmp_path}/escaped {host_dir}/payload").stdout
    assert out == "payload\n" * 3
    assert snapshot(host_dir) == before
    assert not (tmp_path / "escaped").exists()


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize("members", [
    [(_member("../up"), b"x")],
    [(_member("out", tarfile.SYMTYPE, "/"), b""), (_member("out/tmp/written"), b"x")],
    [(_member("hard", tarfile.LNKTYPE, "/etc/hostname"), b"")],
    [(_member("null", tarfile.CHRTYPE), b"")],
], ids=["dotdot", "through-a-link", "hardlink-out", "device"])
def test_cp_from_stdin_refuses_a_tar_leading_out_and_copies_nothing(
        cli: CLI, tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    """`cp - SVC:DIR` checks every member of stdin's tar before it writes any: a member
    that would land outside (or a device node) refuses the whole tar. (A leading "/"
    is dropped, as tar drops it: `/x` lands in DIR.)"""
    up(cli, "stackd-demo/busybox:latest", "")
    good = (_member("first"), b"unpacked before the bad one\n")
    done = subprocess.run([sys.executable, "-m", "stackd", "cp", "-", "app:/tmp"],
                          input=_tar(good, *members), capture_output=True, cwd=cli.cwd,
                          env=cli.env(), timeout=60)
    assert done.returncode == 2, done.stderr
    assert b"the tar on stdin is refused, and nothing of it copied" in done.stderr
    assert b"Traceback" not in done.stderr
    assert not Path("/tmp/written").exists() and not Path("/up").exists()
    assert cli("exec", "-T", "app", "ls", "-A", "/tmp").stdout == ""
