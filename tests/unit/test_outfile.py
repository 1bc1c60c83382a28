"""A file the user named for output (stackd.outfile): whole or not there, and a name
that cannot be one said as such — `export -o ''` and `-o ..` were tracebacks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackd.errors import UsageError
from stackd.outfile import replaced


def test_the_file_appears_whole_and_nothing_else_is_left(tmp_path: Path) -> None:
    target = tmp_path / "out.tar"
    with replaced(target, "export -o") as out:
        out.write(b"part one ")
        assert not target.exists()  # not until it is complete
        out.write(b"part two")
    assert target.read_bytes() == b"part one part two"
    assert os.listdir(tmp_path) == ["out.tar"]
    with replaced(target, "export -o") as out:  # over an older one
        out.write(b"new")
    assert target.read_bytes() == b"new"


def test_a_failure_half_way_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.tar"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replaced(target, "export -o") as out:
        out.write(b"half")
        raise RuntimeError("the export failed")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.tar"]


@pytest.mark.parametrize(("name", "said"), [
    ("", "not a file name"),
    ("..", "not a file name"),
    ("nosuchdir/out.tar", "cannot write it: No such file or directory"),
    ("a" * 300, "longer than a file system allows"),
    ("adir", "cannot write it: Is a directory"),
])
def test_a_name_that_cannot_be_written_is_said(tmp_path: Path, name: str, said: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir" / "kept").write_text("kept")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=said) as e, replaced(name, "export -o") as out:
        out.write(b"x")
    assert "export -o" in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ["adir"]  # no temporary left
    assert (tmp_path / "adir" / "kept").read_text() == "kept"
