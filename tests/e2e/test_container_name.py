"""`container_name` (issue #13, item 7): the container is named exactly that — in
`ps`, for `logs`/`exec`/`stop` by name and in DNS — keeps the io.stackd.* labels, so a
second `up` finds it again and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, torn_down
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = pytest.mark.root

STACK = """\
services:
  db:
    image: stackd-demo/busybox:latest
    container_name: Main.DB
    command: ["sh", "-c", "echo db-ready; sleep 600"]
  app:
    image: stackd-demo/busybox:latest
    command: ["sleep", "600"]
"""


@pytest.fixture
def cli(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "project"
    work.mkdir()
    with torn_down(CLI(no_leaks, work)) as c:
        yield c


def test_container_name_is_the_name_everywhere(cli: CLI) -> None:
    (cli.cwd / "compose.yaml").write_text(STACK)
    cli("up", "-d")
    rows = ps_rows(cli("ps", "--format", "json").stdout)
    assert sorted(r["name"] for r in rows) == ["Main.DB", "project-app-1"]
    assert cli("exec", "-T", "db", "hostname").stdout.strip() == "Main.DB"
    # /etc/hostname as Docker's containers have it (there was none), on any network.
    assert cli("exec", "-T", "db", "cat", "/etc/hostname").stdout == "Main.DB\n"
    alone = cli("run", "--rm", "--network", "none", "--name", "lone",
                "stackd-demo/busybox:latest", "sh", "-c", 'test "$(cat /etc/hostname)" = '
                '"$(hostname)" && echo same')
    assert alone.stdout.strip() == "same"
    # DNS: the other service reaches it by its container_name (and its service name).
    for host in ("main.db", "db"):
        out = cli("exec", "-T", "app", "nslookup", host).stdout
        assert "Address" in out.split("Name:")[-1], out
    logs = cli("logs", "db").stdout
    assert "db-ready" in logs
    # Found again by its labels: a second up changes nothing.
    again = cli("up", "-d")
    assert "recreate" not in again.stdout.lower() and "create" not in again.stdout.lower()
    assert sorted(r["name"] for r in ps_rows(cli("ps", "--format", "json").stdout)) == [
        "Main.DB", "project-app-1"]


def test_scaling_a_container_name_is_refused(cli: CLI) -> None:
    (cli.cwd / "compose.yaml").write_text(STACK)
    r = cli("up", "-d", "--scale", "db=2", check=False)
    assert r.returncode != 0
    # Found when the applied revision is translated, so without the file position a
    # stored revision no longer has (docs/daemon.md, revisions' limits).
    assert ("service 'db': container_name 'Main.DB' names one container, it cannot be "
            "scaled to 2") in r.stderr
    assert ps_rows(cli("ps", "-a", "--format", "json").stdout) == []


def test_a_container_name_another_stack_holds_is_refused_before_anything_is_made(
        cli: CLI, tmp_path: Path) -> None:
    """Docker's container names are the host's: a second stack with the same
    `container_name` got a second container of that name (two `Main.DB` in
    `container ls`, `exec Main.DB` choosing one). It is refused, naming the holder,
    and nothing of the second stack is made."""
    (cli.cwd / "compose.yaml").write_text(STACK)
    cli("up", "-d")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    (other_dir / "compose.yaml").write_text(STACK)
    other = CLI(cli.roots, other_dir)
    try:
        r = other("up", "-d", check=False)
        assert r.returncode != 0 and "Traceback" not in r.stderr
        assert "container name Main.DB is already in use by container" in r.stderr
        assert "of stack project" in r.stderr and "change container_name" in r.stderr
        assert [c["project"] for c in ps_rows(
            cli("ps", "--all-projects", "-a", "--format", "json").stdout)] == [
            "project", "project"]
        assert "other_default" not in cli("network", "ls", "-q").stdout.split()
        # Its own container is found again: a recreate of the holder is no conflict.
        cli("up", "-d", "--force-recreate", "db")
    finally:
        other("down", check=False)
