"""The pure parts of compose's verbs: which runs get a TTY, how cp reads its operands,
what ls and stats print, which containers use a volume, which image a container runs."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest

from stackd.cli import cmd_cp, cmd_exec, cmd_images, cmd_ls, cmd_stats
from stackd.cli.humanize import binary_size, decimal_size
from stackd.daemon.host_verbs import volume_users


def exec_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cmd_exec.add_arguments(p)
    return p.parse_args([*argv, "svc", "sh"])


@pytest.mark.parametrize(("argv", "stdin_tty", "stdout_tty", "tty"), [
    ((), True, True, True),
    (("-T",), True, True, False),
    ((), False, True, False),        # `echo hi | stackd exec svc cat`
    ((), True, False, False),        # `stackd exec svc ls | grep x`
    (("-it",), True, False, True),   # asked for: a terminal in, whatever out
    (("-it",), False, False, False),  # nothing to relay a terminal to
])
def test_exec_wants_a_tty_as_compose_decides(argv: tuple[str, ...], stdin_tty: bool,
                                             stdout_tty: bool, tty: bool) -> None:
    assert cmd_exec.wants_tty(exec_args(*argv), stdin_tty, stdout_tty) is tty


def test_exec_it_parses() -> None:
    args = exec_args("-it", "-u", "app")
    assert (args.tty, args.interactive, args.user, args.cmd) == (True, True, "app", ["sh"])


@pytest.mark.parametrize(("arg", "split"), [
    ("web:/etc/hosts", ("web", "/etc/hosts")),
    ("web:", ("web", "/")),
    ("web:rel/x", ("web", "rel/x")),
    ("./a:b", None),
    ("/abs/path", None),
    ("plain", None),
])
def test_cp_operands(arg: str, split: tuple[str, str] | None) -> None:
    assert cmd_cp.split_remote(arg) == split


def test_ls_rows_status_and_filtering() -> None:
    stacks = [{"project": "web", "phase": "active", "files": ["/w/compose.yaml"], "cwd": "/w"}]
    containers = [
        {"project": "web", "state": "running"}, {"project": "web", "state": "running"},
        {"project": "web", "state": "exited"}, {"project": "old", "state": "exited"},
        {"project": None, "state": "running"},
    ]
    rows = cmd_ls.summarise(stacks, containers, all=False)
    assert [(r["name"], r["status"], r["files"]) for r in rows] == [
        ("web", "exited(1), running(2)", ["/w/compose.yaml"])]
    rows = cmd_ls.summarise(stacks, containers, all=True)
    assert [(r["name"], r["status"]) for r in rows] == [
        ("old", "exited(1)"), ("web", "exited(1), running(2)")]
    # one its restart policy starts again counts as restarting, as Compose's ls says
    containers[2]["restarting"] = True
    rows = cmd_ls.summarise(stacks, containers, all=False)
    assert [r["status"] for r in rows] == ["restarting(1), running(2)"]


def test_stats_cpu_percent_over_the_interval() -> None:
    before = {"a": {"id": "a", "cpu_ns": 0, "memory_bytes": 1, "pids": 1},
              "gone": {"id": "g", "cpu_ns": 0, "memory_bytes": 1, "pids": 1}}
    after = {"a": {"id": "a", "cpu_ns": 500_000_000, "memory_bytes": 2048, "pids": 3,
                   "memory_limit": 8192, "net_rx": 1234, "net_tx": 648,
                   "block_read": 45_600_000, "block_write": 0},
             "new": {"id": "n", "cpu_ns": 9, "memory_bytes": 1, "pids": 1}}
    got = cmd_stats.rows(before, after, 1.0)
    assert got == [{"name": "a", "id": "a", "cpu_percent": 50.0, "memory_bytes": 2048,
                    "memory_limit": 8192, "memory_percent": 25.0, "pids": 3,
                    "net_rx": 1234, "net_tx": 648, "block_read": 45_600_000,
                    "block_write": 0}]
    # Docker's `MEM USAGE / LIMIT`, `MEM %`, `NET I/O` and `BLOCK I/O`
    assert cmd_stats.table(got).splitlines()[1].split() == [
        "a", "50.00%", "2.0KiB", "/", "8.0KiB", "25.00%", "1.23kB", "/", "648B",
        "45.6MB", "/", "0B", "3"]
    assert binary_size(512) == "512B"
    assert [decimal_size(n) for n in (0, 999, 1000, 2_500_000_000)] == [
        "0B", "999B", "1kB", "2.5GB"]
    assert binary_size(3 * 1024 * 1024) == "3.0MiB"


def _container(name: str, *mounts: tuple[str, str], layers: tuple[str, ...] = ()) -> object:
    spec = SimpleNamespace(mounts=[SimpleNamespace(type=t, source=s) for t, s in mounts],
                           layers=layers)
    return SimpleNamespace(name=name, spec=spec)


def test_volume_users_are_volume_mounts_of_that_path_only() -> None:
    cs = [_container("a", ("volume", "/v/data")), _container("b", ("bind", "/v/data")),
          _container("c", ("volume", "/v/other")), _container("d", ("volume", "/v/data"))]
    assert volume_users(cs, "/v/data") == ["a", "d"]


def test_stack_images_by_layers() -> None:
    img = SimpleNamespace(references=("busybox:latest",), id="sha256:" + "ab" * 32, size=7,
                          created="2024-01-02T03:04:05Z", os="linux", architecture="amd64")
    rows = cmd_images.stack_rows([("p-b-1", ("l2", "l1")), ("p-a-1", ("x",))],
                                 {("l2", "l1"): img})
    assert rows == [
        {"container": "p-a-1", "image": None, "id": None, "size": None, "created": None,
         "platform": None},
        {"container": "p-b-1", "image": "busybox:latest", "id": img.id, "size": 7,
         "created": "2024-01-02T03:04:05Z", "platform": "linux/amd64"}]
