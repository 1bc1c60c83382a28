"""Seeding a named volume from the image (stackd.runtime.volume_seed): owners, modes
and times kept, and links copied as links — never followed to what they name."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from stackd.runtime import inroot, volume_seed

pytestmark = pytest.mark.root  # chown to other users, mknod


def listing(top: Path) -> dict[str, tuple[int, int, int, int, bytes | str]]:
    out: dict[str, tuple[int, int, int, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in ["", *dirnames, *filenames]:
            p = Path(dirpath) / name if name else Path(dirpath)
            st = p.lstat()
            body: bytes | str = os.readlink(p) if stat.S_ISLNK(st.st_mode) else \
                p.read_bytes() if stat.S_ISREG(st.st_mode) else ""
            mtime = 0 if stat.S_ISLNK(st.st_mode) else st.st_mtime_ns
            out[str(p.relative_to(top))] = (st.st_mode, st.st_uid, st.st_gid, mtime, body)
    return out


def test_seed_copies_the_tree_with_its_metadata_and_links_as_links(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    src = tmp_path / "image-dir"
    (src / "conf.d").mkdir(parents=True)
    (src / "conf.d" / "a.conf").write_text("a\n")
    os.chown(src / "conf.d", 1000, 1000)
    os.chmod(src / "conf.d", 0o750)
    (src / "tool").write_bytes(b"\x7fELF")
    os.chown(src / "tool", 0, 50)
    os.chmod(src / "tool", 0o4755)  # after the chown, which clears set-uid
    (src / "to-host").symlink_to(host)
    (src / "to-secret").symlink_to(host / "secret")
    (src / "up").symlink_to("../../..")
    os.mkfifo(src / "fifo", 0o640)
    os.utime(src / "conf.d" / "a.conf", ns=(1, 1_000_000_000))
    os.chmod(src, 0o711)
    volume = tmp_path / "volume"
    volume.mkdir()
    before_host = listing(host)

    fd = inroot.open_root(src)
    try:
        volume_seed.seed(fd, volume)
    finally:
        os.close(fd)

    assert listing(volume) == listing(src)
    assert stat.S_IMODE(os.stat(volume / "tool").st_mode) == 0o4755
    assert os.readlink(volume / "to-host") == str(host)
    assert listing(host) == before_host


def test_an_image_directory_nested_past_the_recursion_limit_seeds_the_volume(
        tmp_path: Path) -> None:
    """The copy recursed per level: a tree ~1,000 deep failed the container's start."""
    from support.deeptree import nest

    from stackd.trees import remove_tree

    depth = 1100
    src, volume = tmp_path / "image-dir", tmp_path / "volume"
    src.mkdir()
    volume.mkdir()
    nest(src, depth, name="d", leaf=b"deep")
    root = inroot.open_root(src)
    try:
        volume_seed.seed(root, volume)
        assert (volume / "/".join(["d"] * depth) / "leaf").read_bytes() == b"deep"
    finally:
        os.close(root)
        for d in (src, volume):  # pytest's own removal of tmp_path recurses
            remove_tree(d, ignore_errors=True)


def _image_dir(tmp_path: Path, files: int) -> Path:
    src = tmp_path / "image-dir"
    (src / "sub").mkdir(parents=True)
    for i in range(files):
        (src / "sub" / f"f{i:03}").write_text(f"{i}\n")
    return src


def test_seed_once_copies_into_an_empty_volume_only(tmp_path: Path) -> None:
    src = _image_dir(tmp_path, 3)
    volume = tmp_path / "volume"
    volume.mkdir()
    fd = inroot.open_root(src)
    try:
        assert volume_seed.seed_once(fd, volume) is True
        assert listing(volume) == listing(src)
        (volume / "sub" / "f000").write_text("the container's own\n")
        assert volume_seed.seed_once(fd, volume) is False  # in use: left as it is
        assert (volume / "sub" / "f000").read_text() == "the container's own\n"
    finally:
        os.close(fd)


def test_a_copy_that_fails_leaves_the_volume_empty_for_the_next(tmp_path: Path) -> None:
    """A failed copy left what it had copied: the next container found the volume
    "in use" and ran without the rest."""
    src = _image_dir(tmp_path, 20)
    volume = tmp_path / "volume"
    volume.mkdir()
    calls = 0

    def dies() -> None:
        nonlocal calls
        calls += 1
        if calls > 5:
            raise OSError(28, "No space left on device")

    fd = inroot.open_root(src)
    try:
        with pytest.raises(OSError, match="No space left"):
            volume_seed.seed_once(fd, volume, alive=dies)
        assert os.listdir(volume) == []
        with pytest.raises(OSError):
            os.getxattr(volume, volume_seed.SEEDING)
        assert volume_seed.seed_once(fd, volume) is True
        assert listing(volume) == listing(src)
    finally:
        os.close(fd)


def test_a_copy_cut_short_by_a_kill_is_made_again(tmp_path: Path) -> None:
    """What a seeder killed mid-copy left (its mark still on the volume) is removed
    and the copy made whole by the next."""
    src = _image_dir(tmp_path, 5)
    volume = tmp_path / "volume"
    (volume / "sub").mkdir(parents=True)
    (volume / "sub" / "f000").write_text("0\n")
    os.setxattr(volume, volume_seed.SEEDING, b"1")
    fd = inroot.open_root(src)
    try:
        assert volume_seed.seed_once(fd, volume) is True
        assert listing(volume) == listing(src)
        with pytest.raises(OSError):
            os.getxattr(volume, volume_seed.SEEDING)
    finally:
        os.close(fd)


def test_a_second_seeder_waits_for_the_first_and_uses_its_copy(tmp_path: Path) -> None:
    """Containers created at once on one new volume: the others saw the first's copy
    half made, skipped their own, and ran without the files."""
    src = _image_dir(tmp_path, 40)
    volume = tmp_path / "volume"
    volume.mkdir()
    started_r, started_w = os.pipe()
    fd = inroot.open_root(src)
    try:
        pid = os.fork()
        if pid == 0:  # the first seeder, slowed down entry by entry
            code = 1
            try:
                def slow() -> None:
                    os.write(started_w, b"x")
                    time.sleep(0.01)

                volume_seed.seed_once(fd, volume, alive=slow)
                code = 0
            finally:
                os._exit(code)
        os.close(started_w)
        assert os.read(started_r, 1) == b"x"  # it holds the lock and is copying
        waited: list[int] = []
        assert volume_seed.seed_once(fd, volume, alive=lambda: waited.append(1)) is False
        assert waited, "the second did not wait for the first"
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert listing(volume) == listing(src)
    finally:
        os.close(fd)
        os.close(started_r)


def test_a_lock_a_container_holds_on_its_volume_holds_up_no_seed(tmp_path: Path) -> None:
    """A container that mounts the volume can flock its directory: were that the
    seeders' lock, every container made on the volume after would wait for ever."""
    import fcntl

    src = _image_dir(tmp_path, 2)
    volume = tmp_path / "volumes" / "v" / "data"
    volume.mkdir(parents=True)
    hostile = os.open(volume, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(hostile, fcntl.LOCK_EX)
    fd = inroot.open_root(src)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if volume_seed.seed_once(fd, volume) else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 10
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if done[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the seed waited on the container's lock")
        assert os.waitstatus_to_exitcode(done[1]) == 0
        assert listing(volume) == listing(src)
    finally:
        os.close(fd)
        os.close(hostile)
