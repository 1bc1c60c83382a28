"""`stackd.trees.remove_tree`: any depth, links never followed, the bytes it freed.

`shutil.rmtree` recursed once per level: a tree a container nested ~1,000 deep raised
RecursionError, which no `ignore_errors` caught — the runtime monitor died of it while
sweeping a deleted container's directories (tests/adversarial/test_deep_tree.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackd import trees
from stackd.trees import remove_tree


def _chain(top: Path, depth: int, *, files_every: int = 0) -> None:
    """top/a/a/…/a (`depth` levels) with a file every `files_every` levels; made
    through descriptors (os.makedirs recurses too)."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for level in range(depth):
        os.mkdir("a", dir_fd=fd)
        if files_every and level % files_every == 0:
            f = os.open("f", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
            os.write(f, b"12345")
            os.close(f)
        fd, above = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
        os.close(above)
    os.close(fd)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("depth", [1, 200, 3000])
def test_any_depth_is_removed_with_a_bounded_number_of_descriptors(
        tmp_path: Path, depth: int, monkeypatch: pytest.MonkeyPatch) -> None:
    top = tmp_path / "t"
    _chain(top, depth, files_every=100)
    held, most = 0, 0
    real_open, real_close = os.open, os.close

    def counting_open(*args: object, **kwargs: object) -> int:
        nonlocal held, most
        fd = real_open(*args, **kwargs)  # type: ignore[arg-type]
        held += 1
        most = max(most, held)
        return fd

    def counting_close(fd: int) -> None:
        nonlocal held
        real_close(fd)
        held -= 1

    before = _open_fds()
    monkeypatch.setattr(trees.os, "open", counting_open)
    monkeypatch.setattr(trees.os, "close", counting_close)
    freed = remove_tree(top)
    monkeypatch.undo()
    assert not top.exists() and os.listdir(tmp_path) == []
    assert freed == 5 * len(range(0, depth, 100))
    assert most <= trees.MAX_HELD + 2 and _open_fds() == before


def test_links_are_removed_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "keep").write_text("keep\n")
    top = tmp_path / "t"
    (top / "d").mkdir(parents=True)
    (top / "d" / "to-dir").symlink_to(outside)
    (top / "to-sub").symlink_to("../outside/sub")
    (top / "d" / "file").write_text("x")
    # A link's bytes are its text's, as lstat counts them.
    assert remove_tree(top) == 1 + len(str(outside)) + len("../outside/sub")
    assert not top.exists()
    assert (outside / "sub" / "keep").read_text() == "keep\n"


def test_a_file_a_missing_path_and_ignore_errors(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("abc")
    assert remove_tree(f) == 3 and not f.exists()
    with pytest.raises(FileNotFoundError):
        remove_tree(tmp_path / "missing")
    assert remove_tree(tmp_path / "missing", ignore_errors=True) == 0
    assert remove_tree(tmp_path / "no" / "parent", ignore_errors=True) == 0


def test_tree_size_counts_files_once_and_follows_no_link(tmp_path: Path) -> None:
    from stackd.trees import tree_size

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"x" * 10_000)
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "one").write_bytes(b"1" * 100)
    (tree / "a" / "b" / "two").write_bytes(b"2" * 20)
    os.link(tree / "a" / "one", tree / "a" / "b" / "one-again")  # the same bytes
    (tree / "to-outside").symlink_to(outside)
    (tree / "to-big").symlink_to(outside / "big")
    assert tree_size(tree) == 120
    assert tree_size(tmp_path / "missing") == 0


def test_tree_size_walks_a_tree_past_the_recursion_limit(tmp_path: Path) -> None:
    from support.deeptree import nest

    from stackd.trees import SIZE_DEPTH, remove_tree, tree_size

    (tmp_path / "deep").mkdir()
    (tmp_path / "shallow").mkdir()
    try:
        nest(tmp_path / "deep", 1100, name="d", leaf=b"deep")
        # Deeper than it walks: a lower bound, not a RecursionError.
        assert tree_size(tmp_path / "deep") == 0
        nest(tmp_path / "shallow", SIZE_DEPTH - 2, name="d", leaf=b"1234")
        assert tree_size(tmp_path / "shallow") == 4
    finally:
        remove_tree(tmp_path / "deep", ignore_errors=True)
        remove_tree(tmp_path / "shallow", ignore_errors=True)
