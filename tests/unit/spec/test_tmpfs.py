"""`tmpfs:` lines (and `run --tmpfs`) read as Docker reads them."""

from __future__ import annotations

import pytest

from stackd.errors import SpecError
from stackd.spec import load_text
from stackd.spec.tmpfs import Tmpfs, parse_tmpfs


@pytest.mark.parametrize(("line", "want"), [
    ("/run", Tmpfs("/run")),
    ("/run:", Tmpfs("/run")),
    ("/run:size=64m,mode=1777", Tmpfs("/run", size=64 << 20, mode=0o1777)),
    ("/cache:uid=1000,gid=1001,exec", Tmpfs("/cache", uid=1000, gid=1001, exec=True)),
    ("/x:exec,noexec", Tmpfs("/x")),  # the later option wins, as Docker merges them
    ("/x:noexec,exec,nosuid,nodev,rw", Tmpfs("/x", exec=True)),
    ("/x:ro", Tmpfs("/x", readonly=True)),
    ("/x:ro,rw", Tmpfs("/x")),
])
def test_lines(line: str, want: Tmpfs) -> None:
    assert parse_tmpfs(line) == want


@pytest.mark.parametrize(("line", "message"), [
    ("run", "tmpfs 'run': the path must be absolute"),
    ("/x:size=lots", "tmpfs '/x:size=lots': size 'lots' is not a size like 64m"),
    ("/x:mode=999", "tmpfs '/x:mode=999': 'mode=999' needs an octal mode like 1777"),
    ("/x:uid=-1", "tmpfs '/x:uid=-1': 'uid=-1' needs a numeric id"),
    ("/x:uid=www", "tmpfs '/x:uid=www': 'uid=www' needs a numeric id"),
    ("/x:suid", "tmpfs '/x:suid': option 'suid' is not supported"),
    ("/x:exec=1", "tmpfs '/x:exec=1': option 'exec=1' is not supported"),
    ("/x:huge=always", "tmpfs '/x:huge=always': option 'huge=always' is not supported"),
])
def test_refused(line: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_tmpfs(line)
    assert str(err.value) == message


def test_a_stack_file_line_is_refused_where_it_is() -> None:
    with pytest.raises(SpecError, match=r"option 'suid' is not supported"):
        load_text("services:\n  s:\n    image: x\n    tmpfs: ['/run:size=1m', '/x:suid']\n",
                  environ={})
