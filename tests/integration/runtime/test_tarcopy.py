"""`cp SVC:PATH -` and `cp - SVC:DIR` (stackd.runtime.tarcopy), on a directory standing
for a container's root.

They went through a copy on the host's /tmp: `cp db:/var/lib/postgresql/data - | gzip`
first copied the whole tree there (on Debian a RAM-backed tmpfs), and a tree nested
past Python's recursion limit ended in a RecursionError traceback. Now the tree streams
straight into the tar, and a tar from stdin waits in an unnamed file of the state root
while every member is checked, then is made in the container directly."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.deeptree import nest

from stackd.errors import UsageError
from stackd.runtime.copy import copy_in, copy_out
from stackd.runtime.inroot import open_root
from stackd.runtime.tarcopy import _Refused, check_members, tar_in, tar_out


@pytest.fixture
def host_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The host's temporary directory, as Python's tempfile sees it: watched."""
    d = tmp_path / "hosttmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "srv").mkdir(parents=True)
    return r


class _Watching(io.RawIOBase):
    """An output (or input) that notes, at each write (read), what the host's temporary
    directory holds."""

    def __init__(self, watched: Path, data: bytes = b"") -> None:
        self.watched, self.seen = watched, set[str]()
        self.out, self._in = io.BytesIO(), io.BytesIO(data)

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.seen |= set(os.listdir(self.watched))
        return self.out.write(b)

    def read(self, n: int = -1) -> bytes:
        self.seen |= set(os.listdir(self.watched))
        return self._in.read(n)


@pytest.mark.root
def test_a_tree_streams_out_as_the_container_has_it(root: Path, host_tmp: Path) -> None:
    d = root / "srv" / "d"
    d.mkdir()
    (d / "f").write_bytes(b"data\n")
    os.chown(d / "f", 7, 8)
    os.chmod(d / "f", 0o4751)
    os.utime(d / "f", (1e9, 1e9))
    os.link(d / "f", d / "g")
    (d / "abs").symlink_to("/etc/passwd")
    os.mkfifo(d / "p")
    os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    out = _Watching(host_tmp)
    fd = open_root(root)
    try:
        tar_out(fd, "/srv/d", out)  # type: ignore[arg-type]
    finally:
        os.close(fd)
    assert out.seen == set()  # nothing gathered on the host first
    with tarfile.open(fileobj=io.BytesIO(out.out.getvalue())) as tar:
        m = {x.name: x for x in tar.getmembers()}
        assert list(m) == ["d", "d/abs", "d/f", "d/g", "d/null", "d/p"]
        f = m["d/f"]
        assert (f.uid, f.gid, f.mode, int(f.mtime), f.uname) == (7, 8, 0o4751, 10**9, "")
        assert tar.extractfile(f).read() == b"data\n"  # type: ignore[union-attr]
        assert m["d/g"].islnk() and m["d/g"].linkname == "d/f"
        assert m["d/abs"].issym() and m["d/abs"].linkname == "/etc/passwd"
        assert m["d/p"].isfifo()
        assert m["d/null"].ischr() and (m["d/null"].devmajor, m["d/null"].devminor) == (1, 3)


DEPTH = 1200


@pytest.fixture
def deep_trees(tmp_path: Path) -> Iterator[list[Path]]:
    """Directories holding a chain a/a/…: removed a level at a time afterwards
    (pytest's own removal recurses, and fails on them)."""
    places: list[Path] = []
    yield places
    for d in places:
        while (d / "a" / "a").is_dir():
            os.rename(d / "a" / "a", d / "next")
            shutil.rmtree(d / "a")
            os.rename(d / "next", d / "a")
        shutil.rmtree(d / "a", ignore_errors=True)


def _nest(root: Path, depth: int) -> None:
    nest(root / "srv", depth, leaf=b"deep\n")


def test_a_tree_nested_past_pythons_recursion_limit_streams_out(
        root: Path, deep_trees: list[Path]) -> None:
    depth = DEPTH
    deep_trees.append(root / "srv")
    _nest(root, depth)
    out = io.BytesIO()
    fd = open_root(root)
    try:
        tar_out(fd, "/srv/a", out)
    finally:
        os.close(fd)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
    assert len(names) == depth + 1 and names[-1] == "/".join(["a"] * depth) + "/leaf"


def test_a_tree_nested_past_pythons_recursion_limit_copies_to_the_host(
        root: Path, tmp_path: Path, deep_trees: list[Path]) -> None:
    """`cp SVC:PATH DEST` of a hostile tree: a RecursionError's traceback before."""
    deep_trees += [root / "srv", tmp_path / "out"]
    _nest(root, DEPTH)
    fd = open_root(root)
    try:
        copy_out(fd, "/srv/a", str(tmp_path / "out"))
    finally:
        os.close(fd)
    assert (tmp_path / "out" / "/".join(["a"] * (DEPTH - 1)) / "leaf").read_text() == "deep\n"


def test_a_host_tree_nested_past_pythons_recursion_limit_copies_in(
        root: Path, tmp_path: Path, deep_trees: list[Path]) -> None:
    """`cp DIR SVC:PATH` of a tree ~1,000 deep: a RecursionError's traceback before."""
    host = tmp_path / "host"
    (host / "srv").mkdir(parents=True)
    deep_trees += [host / "srv", root / "srv"]
    _nest(host, DEPTH)
    src = host / "srv"
    fd = open_root(root)
    try:
        copy_in(fd, str(src / "a"), "/srv")
    finally:
        os.close(fd)
    assert (root / "srv" / "/".join(["a"] * DEPTH) / "leaf").read_text() == "deep\n"


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _m(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644,
       uid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uid, info.gid = kind, link, mode, uid, uid
    info.mtime = 1_000_000_000
    return info


def _unpack(root: Path, data: bytes, spool: Path, *, owners: bool = False,
            into: str = "/srv") -> _Watching:
    src = _Watching(Path(tempfile.gettempdir()), data)
    fd = open_root(root)
    try:
        tar_in(fd, src, into, spool_dir=str(spool), owners=owners)  # type: ignore[arg-type]
    finally:
        os.close(fd)
    return src


@pytest.mark.root
@pytest.mark.parametrize("owners", [False, True], ids=["as-root", "cp-a"])
def test_a_tar_unpacks_into_the_container_with_links_modes_and_times(
        root: Path, tmp_path: Path, host_tmp: Path, owners: bool) -> None:
    spool = tmp_path / "state"
    spool.mkdir()
    src = _unpack(root, _tar(
        (_m("./", tarfile.DIRTYPE, mode=0o700), b""),
        (_m("d", tarfile.DIRTYPE, mode=0o750, uid=7), b""),
        (_m("d/f", mode=0o4755, uid=7), b"payload\n"),
        (_m("d/h", tarfile.LNKTYPE, "d/f"), b""),
        (_m("d/l", tarfile.SYMTYPE, "f"), b""),
        (_m("d/p", tarfile.FIFOTYPE, mode=0o600), b""),
        (_m("e/deeper/g"), b"parents made\n"),
    ), spool, owners=owners)
    assert src.seen == set() and os.listdir(spool) == []
    d = root / "srv" / "d"
    assert (d / "f").read_bytes() == b"payload\n"
    st = os.stat(d / "f")
    assert stat.S_IMODE(st.st_mode) == 0o4755 and st.st_mtime == 1e9
    assert (st.st_uid, st.st_gid) == ((7, 7) if owners else (0, 0))
    assert os.stat(d / "h").st_ino == st.st_ino
    assert os.readlink(d / "l") == "f"
    assert stat.S_ISFIFO(os.stat(d / "p").st_mode)
    dst = os.stat(d)
    assert stat.S_IMODE(dst.st_mode) == 0o750 and dst.st_mtime == 1e9
    assert dst.st_uid == (7 if owners else 0)
    assert (root / "srv" / "e" / "deeper" / "g").read_text() == "parents made\n"
    assert stat.S_IMODE(os.stat(root / "srv").st_mode) == 0o755  # DIR itself: as it was


def test_a_link_the_container_holds_is_followed_inside_its_root(
        root: Path, tmp_path: Path) -> None:
    """As docker cp's chroot: the container's /srv/etc -> /etc is its own /etc."""
    (root / "etc").mkdir()
    (root / "srv" / "etc").symlink_to("/etc")
    (root / "srv" / "old").write_text("a file where the tar has a link\n")
    spool = tmp_path / "state"
    spool.mkdir()
    _unpack(root, _tar((_m("etc/stackd-test-written"), b"inside\n"),
                       (_m("old", tarfile.SYMTYPE, "/nowhere"), b"")), spool)
    assert (root / "etc" / "stackd-test-written").read_text() == "inside\n"
    assert not Path("/etc/stackd-test-written").exists()
    assert os.readlink(root / "srv" / "old") == "/nowhere"


@pytest.mark.parametrize(("members", "why"), [
    ([_m("../up")], "leads out of the directory"),
    ([_m("a/../../up")], "leads out of the directory"),
    ([_m("out", tarfile.SYMTYPE, "/"), _m("out/tmp/written")], "leads out"),
    ([_m("up", tarfile.SYMTYPE, ".."), _m("up/x")], "leads out"),
    ([_m("a", tarfile.SYMTYPE, "."), _m("b", tarfile.SYMTYPE, "a/.."), _m("b/x")], "leads out"),
    ([_m("loop", tarfile.SYMTYPE, "loop/x"), _m("loop/y")], "leads out"),
    ([_m("hard", tarfile.LNKTYPE, "/etc/hostname")], "not a file of the archive before it"),
    ([_m("hard", tarfile.LNKTYPE, "later"), _m("later")], "not a file of the archive"),
    ([_m("hard", tarfile.LNKTYPE, "../x")], "not a file of the archive"),
    ([_m("null", tarfile.CHRTYPE)], "a device node is not copied"),
    ([_m(".", tarfile.SYMTYPE, "/")], "would replace the directory"),
], ids=["dotdot", "dotdot-later", "abs-link", "dotdot-link", "link-chain", "link-loop",
        "hardlink-out", "hardlink-forward", "hardlink-dotdot", "device", "replace-dir"])
def test_members_that_would_land_outside_refuse_the_tar(
        members: list[tarfile.TarInfo], why: str) -> None:
    with pytest.raises(_Refused, match=why):
        check_members([_m("first"), *members])


def test_names_land_under_the_directory_as_tar_puts_them() -> None:
    plan = check_members([_m("/abs"), _m("./dot"), _m("d", tarfile.DIRTYPE),
                          _m("in", tarfile.SYMTYPE, "d"), _m("in/x"),
                          _m("d/../back"), _m("h", tarfile.LNKTYPE, "/d/x")])
    assert [where for where, _ in plan] == ["abs", "dot", "d", "in", "d/x", "back", "h"]
    assert plan[-1][1].linkname == "d/x"


def test_a_refused_tar_writes_nothing_and_leaves_no_spool(root: Path, tmp_path: Path) -> None:
    spool = tmp_path / "state"
    spool.mkdir()
    with pytest.raises(UsageError, match="refused, and nothing of it copied"):
        _unpack(root, _tar((_m("first"), b"x"), (_m("../up"), b"y")), spool)
    assert os.listdir(root / "srv") == [] and os.listdir(spool) == []
    assert not (tmp_path / "up").exists()
    with pytest.raises(UsageError, match="not a tar archive"):
        _unpack(root, b"not a tar" * 100, spool)
    assert os.listdir(spool) == []
