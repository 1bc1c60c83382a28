"""Resolving a container's paths inside its root (stackd.runtime.inroot) against hostile
trees: absolute links, `..` escapes, loops, links to /proc/self/…. Every case runs both
ways — openat2 with RESOLVE_IN_ROOT for the directory part, and the walk alone (what a
kernel before 5.6 gets) — and both must end at the same place inside the root, with
nothing outside it touched."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stackd.runtime import inroot
from stackd.runtime import syscalls as sc

KERNEL_OR_WALK = pytest.mark.parametrize("use_openat2", [True, False],
                                         ids=["openat2", "walk"])


def snapshot(top: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry below `top`: mode and content (file) or link text, byte for byte."""
    out: dict[str, tuple[int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            body: bytes | str = os.readlink(p) if p.is_symlink() else \
                p.read_bytes() if p.is_file() else ""
            out[str(p.relative_to(top))] = (st.st_mode, body)
    return out


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[Path, Path, int]]:
    """(root, outside, root_fd): a container root full of traps, and a host directory
    beside it that must stay as it is."""
    outside = tmp_path / "outside"
    (outside / "etc").mkdir(parents=True)
    (outside / "etc/secret").write_text("host secret\n")
    (outside / "etc/resolv.conf").symlink_to("/run/host-resolv.conf")
    root = tmp_path / "root"
    for d in ("usr/lib3", "etc", "dir/sub", "proc"):
        (root / d).mkdir(parents=True)
    (root / "etc/hostname").write_text("container\n")
    (root / "lib3").symlink_to("/usr/lib3")                 # legitimate absolute link
    (root / "hostlink").symlink_to(outside)                 # absolute, at the host
    (root / "up").symlink_to("../../../../../../..")         # relative, climbing out
    (root / "dir/sub/rel").symlink_to("../../etc")          # relative, staying in
    (root / "dir/sub/escape").symlink_to(f"../../..{outside}")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    (root / "file").write_text("x")
    (root / "dangling").symlink_to(f"{outside}/new/file")
    for i in range(45):
        (root / f"chain{i}").symlink_to(f"chain{i + 1}")
    (root / "chain45").mkdir()
    fd = inroot.open_root(root)
    yield root, outside, fd
    os.close(fd)


def where(found: inroot.Found, root: Path) -> str:
    """The resolved thing's place, relative to the root ("" is the root itself)."""
    if found.fd is not None:
        real = os.readlink(inroot.proc_path(found.fd))
    else:
        real = os.path.join(os.readlink(inroot.proc_path(found.parent)), found.name)
    assert real == str(root) or real.startswith(str(root) + "/"), f"{real} is outside"
    return os.path.relpath(real, root) if real != str(root) else ""


@KERNEL_OR_WALK
def test_links_and_dotdot_stay_inside_the_root(tree: tuple[Path, Path, int],
                                               use_openat2: bool) -> None:
    root, outside, fd = tree
    before = snapshot(outside)
    # The host path a link names becomes the same path under the root.
    re_rooted = str(outside).lstrip("/")
    for d in (f"{re_rooted}/etc",):
        (root / d).mkdir(parents=True)
        (root / d / "secret").write_text("image's own\n")
    expected = {
        "lib3/x": "usr/lib3/x",
        "/lib3/../lib3/x": "usr/lib3/x",
        "hostlink/etc/secret": f"{re_rooted}/etc/secret",
        "up/etc/hostname": "etc/hostname",
        "../../../etc/hostname": "etc/hostname",
        "dir/sub/rel/hostname": "etc/hostname",
        "dir/sub/escape/etc/secret": f"{re_rooted}/etc/secret",
        "chain5": "chain45",
        "dir/..": "",
        "/": "",
        "dir/sub/..": "dir",
    }
    for path, want in expected.items():
        with inroot.resolve(fd, path, use_openat2=use_openat2) as found:
            assert where(found, root) == want, path
    with inroot.resolve(fd, "hostlink/etc/secret", use_openat2=use_openat2) as found:
        assert found.fd is not None
        assert Path(inroot.proc_path(found.fd)).read_text() == "image's own\n"
    assert snapshot(outside) == before


@KERNEL_OR_WALK
def test_missing_directories_are_made_inside_never_outside(tree: tuple[Path, Path, int],
                                                           use_openat2: bool) -> None:
    root, outside, fd = tree
    before = snapshot(outside)
    re_rooted = str(outside).lstrip("/")
    for path, want in (("hostlink/etc/new/dir", f"{re_rooted}/etc/new/dir"),
                       ("lib3/foo/bar", "usr/lib3/foo/bar"),
                       ("up/made", "made")):
        with inroot.mkdir_all(fd, path) as found:
            assert found.created
            assert where(found, root) == want
            assert (root / want).is_dir()
    # A dangling link's target is made where the container would see it.
    with inroot.resolve(fd, "dangling", mkdir_mode=0o755, use_openat2=use_openat2) as found:
        assert found.fd is None and found.name == "file"
        assert where(found, root) == f"{re_rooted}/new/file"
    assert snapshot(outside) == before


@KERNEL_OR_WALK
def test_last_link_is_returned_itself_unless_followed(tree: tuple[Path, Path, int],
                                                      use_openat2: bool) -> None:
    root, _, fd = tree
    with inroot.resolve(fd, "etc/../hostlink", follow_last=False,
                        use_openat2=use_openat2) as found:
        assert found.name == "hostlink" and found.fd is not None
        assert os.readlink("", dir_fd=found.fd) == os.readlink(root / "hostlink")
    with inroot.resolve(fd, "lib3", use_openat2=use_openat2) as found:
        assert where(found, root) == "usr/lib3"


@KERNEL_OR_WALK
@pytest.mark.parametrize(("path", "code"), [
    ("loop1", errno.ELOOP),
    ("loop1/x", errno.ELOOP),
    ("chain0", errno.ELOOP),          # 45 links: more than the kernel's 40
    ("file/x", errno.ENOTDIR),
    ("nothing/x", errno.ENOENT),
])
def test_refusals(tree: tuple[Path, Path, int], use_openat2: bool, path: str,
                  code: int) -> None:
    _, _, fd = tree
    with pytest.raises(OSError) as err:
        inroot.resolve(fd, path, use_openat2=use_openat2).close()
    assert err.value.errno == code


@KERNEL_OR_WALK
def test_forty_links_are_followed(tree: tuple[Path, Path, int], use_openat2: bool) -> None:
    root, _, fd = tree
    with inroot.resolve(fd, "chain5", use_openat2=use_openat2) as found:
        assert where(found, root) == "chain45"


def in_private_mount_ns(body: Callable[[], int]) -> int:
    """Run `body` in a forked child with its own mount namespace; its exit code."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            code = body()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.root
@KERNEL_OR_WALK
def test_proc_magic_links_are_refused(tree: tuple[Path, Path, int], use_openat2: bool) -> None:
    """With a procfs inside the root, /proc/self/root would lead to the host's root
    (this process's root) if followed as the kernel follows it."""
    root, outside, _ = tree
    (root / "magic").symlink_to("/proc/self/root")
    before = snapshot(outside)

    def body() -> int:
        sc.mount("proc", str(root / "proc"), "proc", 0)
        # A descriptor from before unshare would still look through the old
        # namespace's mounts, without this procfs.
        here = inroot.open_root(root)
        results = []
        me = f"proc/{os.getpid()}"
        for path in (f"{me}/root{outside}/etc", f"{me}/cwd", "magic", f"magic{outside}/etc/x"):
            try:
                inroot.resolve(here, path, mkdir_mode=0o755, use_openat2=use_openat2).close()
                results.append(0)
            except OSError as e:
                results.append(e.errno or -1)
        return 0 if results == [errno.ELOOP] * 4 else 1

    assert in_private_mount_ns(body) == 0
    assert snapshot(outside) == before


def test_watch_sync_writes_and_removes_inside_the_root_only(
        tree: tuple[Path, Path, int], tmp_path: Path) -> None:
    """`stackd watch`'s sync (runtime/copy.sync_in, remove_in) through the traps: what
    lands behind `/hostlink` or `..` is inside the root, and the host dir is as it was."""
    from stackd.runtime.copy import remove_in, sync_in

    root, outside, fd = tree
    before = snapshot(outside)
    src = tmp_path / "src.txt"
    src.write_text("synced\n")
    sync_in(fd, str(src), "/hostlink/etc/secret")       # the link leads inside the root
    sync_in(fd, str(src), "/up/new/deep/file.txt")      # `..` stops at the root
    sync_in(fd, str(src), "/dangling")                   # a link there is replaced
    assert (root / outside.relative_to("/") / "etc/secret").read_text() == "synced\n"
    assert (root / "new/deep/file.txt").read_text() == "synced\n"
    assert not (root / "dangling").is_symlink() and (root / "dangling").read_text() == "synced\n"
    assert remove_in(fd, "/hostlink/etc") is True         # the one inside the root
    assert not (root / outside.relative_to("/") / "etc").exists()
    assert remove_in(fd, "/lib3") is True and (root / "usr/lib3").is_dir()  # link, not target
    assert remove_in(fd, "/nothing/here") is False
    assert snapshot(outside) == before


def test_cp_keeps_owners_only_when_asked(tree: tuple[Path, Path, int], tmp_path: Path) -> None:
    """`cp -a`: each file, directory and link keeps its numeric owner both ways (and a
    set-id bit survives the chown); without it what is written is root's, as docker cp
    leaves it."""
    from stackd.runtime.copy import copy_in, copy_out

    root, _, fd = tree
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub/f").write_text("f\n")
    (src / "tool").write_text("#!/bin/sh\n")
    (src / "link").symlink_to("sub/f")
    for p, owner in ((src, (1000, 1000)), (src / "sub", (1001, 1002)),
                     (src / "sub/f", (1003, 1004)), (src / "tool", (1005, 1005))):
        os.chown(p, *owner)
    os.lchown(src / "link", 1006, 1007)
    os.chmod(src / "tool", 0o4755)

    def owners(top: Path) -> dict[str, tuple[int, int, int]]:
        return {str(p.relative_to(top)): (p.lstat().st_uid, p.lstat().st_gid,
                                          stat.S_IMODE(p.lstat().st_mode) & 0o4000)
                for p in [top, *sorted(top.rglob("*"))]}

    want = owners(src)
    copy_in(fd, str(src), "/kept", owners=True)
    assert owners(root / "kept") == want
    copy_in(fd, str(src), "/plain")
    assert {uid_gid[:2] for uid_gid in owners(root / "plain").values()} == {(0, 0)}
    out = tmp_path / "out"
    out.mkdir()
    copy_out(fd, "/kept", str(out / "back"), owners=True)
    assert owners(out / "back") == want
    copy_out(fd, "/kept", str(out / "root"))
    assert {uid_gid[:2] for uid_gid in owners(out / "root").values()} == {(0, 0)}


def test_cp_a_changes_owners_inside_the_root_only(tree: tuple[Path, Path, int],
                                                  tmp_path: Path) -> None:
    """`cp -a` chowns what it writes: through the traps (a link at the host, `..`, a
    dangling link) every chown lands inside the root, and nothing of the host directory
    changes owner — the snapshot above sees modes and contents, not owners."""
    from stackd.runtime.copy import copy_in, copy_out

    root, outside, fd = tree
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub/f").write_text("f\n")
    (src / "secret").write_text("mine\n")
    for p in (src, src / "sub", src / "sub/f", src / "secret"):
        os.chown(p, 4242, 4243)

    def owners(top: Path) -> dict[str, tuple[int, int]]:
        return {str(p): (p.lstat().st_uid, p.lstat().st_gid)
                for p in [top, *sorted(top.rglob("*"))]}

    before, host_owners = snapshot(outside), owners(outside)
    re_rooted = root / str(outside).lstrip("/")
    (re_rooted / "etc").mkdir(parents=True)  # the host path a link names, in the root
    copy_in(fd, str(src), "/hostlink/etc", owners=True)  # into the re-rooted /…/etc
    copy_in(fd, str(src / "secret"), "/hostlink/etc/secret", owners=True)
    copy_in(fd, str(src), "/up/climbed", owners=True)
    from stackd.errors import NotFoundError

    with pytest.raises(NotFoundError):  # it leads to <root>/<outside>/new, not made
        copy_in(fd, str(src / "secret"), "/dangling", owners=True)
    assert (re_rooted / "etc/secret").stat().st_uid == 4242
    assert (re_rooted / "etc/src/sub/f").stat().st_uid == 4242
    assert (root / "climbed/sub/f").stat().st_gid == 4243
    assert snapshot(outside) == before and owners(outside) == host_owners

    # Out: a link in the root that names a host file is copied as the link, and the
    # link's owner is what changes, never the host file's.
    (root / "pointer").symlink_to(outside / "etc/secret")
    os.lchown(root / "pointer", 4244, 4245)
    dest = tmp_path / "out"
    dest.mkdir()
    copy_out(fd, "/pointer", str(dest / "pointer"), owners=True)
    assert (dest / "pointer").is_symlink()
    assert ((dest / "pointer").lstat().st_uid, (dest / "pointer").lstat().st_gid) == (4244, 4245)
    assert owners(outside) == host_owners
