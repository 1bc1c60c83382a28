"""The runtime's list reuses what it read of a container only while its records and
its process are unchanged (runtime.ListCache): every change a container's records or
its process can go through shows in the next list, as a fresh read would show it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackd.roots import Roots
from stackd.runtime.containerspec import ContainerSpec, ProcessSpec
from stackd.runtime.runtime import ListCache, _load_all
from stackd.runtime.statefile import now_iso, process_start_time, write_json


@pytest.fixture
def roots(tmp_path: Path) -> Roots:
    return Roots(tmp_path / "state", tmp_path / "run")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(["sleep", "60"])
    yield p
    p.kill()
    p.wait()


def _add(roots: Roots, cid: str, pid: int, *, started: bool = True) -> Path:
    run = roots.run / "containers" / cid
    run.mkdir(parents=True)
    (roots.state / "containers" / cid).mkdir(parents=True)
    spec = ContainerSpec(id=cid, name=cid, layers=(), process=ProcessSpec(args=("sleep",)),
                         labels={"io.stackd.project": "p"})
    write_json(run / "spec.json", spec.model_dump(mode="json"))
    write_json(run / "state.json", {"pid": pid, "pid_start": process_start_time(pid),
                                    "created_at": now_iso(),
                                    "started_at": now_iso() if started else None})
    return run


def _same(cache: ListCache, roots: Roots) -> list[object]:
    listed = cache.list()
    assert listed == _load_all(roots)
    return listed  # type: ignore[return-value]


def test_unchanged_containers_are_not_read_again(roots: Roots,
                                                  sleeper: subprocess.Popen[bytes]) -> None:
    _add(roots, "a-1", sleeper.pid)
    cache = ListCache(roots)
    first = _same(cache, roots)
    assert [s.status for s in first] == ["running"]  # type: ignore[attr-defined]
    assert _same(cache, roots)[0] is first[0]


def test_every_change_shows_in_the_next_list(roots: Roots,
                                             sleeper: subprocess.Popen[bytes]) -> None:
    run = _add(roots, "a-1", sleeper.pid, started=False)
    cache = ListCache(roots)
    assert [s.status for s in _same(cache, roots)] == ["created"]  # type: ignore[attr-defined]
    state = {"pid": sleeper.pid, "pid_start": process_start_time(sleeper.pid),
             "created_at": now_iso(), "started_at": now_iso()}
    write_json(run / "state.json", state)
    assert [s.status for s in _same(cache, roots)] == ["running"]  # type: ignore[attr-defined]

    # Killed with nobody writing its exit: the process is gone, the files are not.
    sleeper.kill()
    sleeper.wait()
    listed = _same(cache, roots)
    assert [(s.status, s.exit) for s in listed] == [("exited", None)]  # type: ignore[attr-defined]

    write_json(run / "exit.json", {"code": 137, "signal": 9, "oom_killed": False,
                                   "finished_at": now_iso()})
    listed = _same(cache, roots)
    assert [(s.status, s.exit and s.exit.code) for s in listed] == [  # type: ignore[attr-defined]
        ("exited", 137)]

    shutil.rmtree(run)
    assert _same(cache, roots) == []


def test_a_restart_under_the_same_id_is_seen(roots: Roots,
                                             sleeper: subprocess.Popen[bytes]) -> None:
    run = _add(roots, "a-1", sleeper.pid)
    cache = ListCache(roots)
    _same(cache, roots)
    shutil.rmtree(run)
    shutil.rmtree(roots.state / "containers" / "a-1")
    _add(roots, "a-1", os.getpid())
    assert [s.pid for s in _same(cache, roots)] == [os.getpid()]  # type: ignore[attr-defined]


def test_an_unreadable_record_is_read_every_time(roots: Roots,
                                                 sleeper: subprocess.Popen[bytes]) -> None:
    run = _add(roots, "a-1", sleeper.pid)
    cache = ListCache(roots)
    (run / "state.json").write_text("{garbled")
    first = _same(cache, roots)
    assert first[0].problem  # type: ignore[attr-defined]
    assert _same(cache, roots)[0] is not first[0]
    write_json(run / "state.json", {"pid": sleeper.pid,
                                    "pid_start": process_start_time(sleeper.pid),
                                    "created_at": now_iso(), "started_at": now_iso()})
    assert [s.problem for s in _same(cache, roots)] == [None]  # type: ignore[attr-defined]


def test_a_respawn_in_place_is_seen_at_each_step(roots: Roots,
                                                 sleeper: subprocess.Popen[bytes]) -> None:
    """A respawn keeps the run dir: the spec is written again, then the new process's
    state replaces the old, then the old exit goes (monitor.respawn): each step shows."""
    run = _add(roots, "a-1", os.getpid())
    write_json(run / "exit.json", {"code": 3, "signal": None, "oom_killed": False,
                                   "finished_at": now_iso()})
    cache = ListCache(roots)
    assert [(s.status, s.exit and s.exit.code) for s in _same(cache, roots)] == [  # type: ignore[attr-defined]
        ("exited", 3)]
    spec = ContainerSpec(id="a-1", name="a-1", layers=(), process=ProcessSpec(args=("sleep",)),
                         labels={"io.stackd.project": "p"})
    write_json(run / "spec.json", spec.model_dump(mode="json"))
    assert [s.status for s in _same(cache, roots)] == ["exited"]  # type: ignore[attr-defined]
    write_json(run / "state.json", {"pid": sleeper.pid,
                                    "pid_start": process_start_time(sleeper.pid),
                                    "created_at": now_iso(), "started_at": None})
    assert [s.status for s in _same(cache, roots)] == ["exited"]  # type: ignore[attr-defined]
    (run / "exit.json").unlink()
    assert [(s.status, s.pid) for s in _same(cache, roots)] == [  # type: ignore[attr-defined]
        ("created", sleeper.pid)]
