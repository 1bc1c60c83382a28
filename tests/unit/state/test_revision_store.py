"""The revision store: numbering, pruning, blobs, and what a revision captures."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stackd.daemon.desired_store import DesiredStore
from stackd.daemon.models import ApplyRequest, RemoveOptions, StackSource
from stackd.daemon.revision import capture, given_files, history_rows
from stackd.errors import NotFoundError
from stackd.spec import load_text
from stackd.state.db import StateDB
from stackd.state.revisions import BlobStore, NewRevision, RevisionStore, sha256


def db_at(tmp_path: Path) -> StateDB:
    return StateDB.open(tmp_path / "stackd.db")


def up(stack: str = "{}") -> NewRevision:
    return NewRevision(cause="up", options="{}", source="{}", stack=stack)


def request(project: str, **environ: str) -> ApplyRequest:
    return ApplyRequest(source=StackSource(project_name=project, environ=environ))


def test_numbers_grow_across_down_and_forget(tmp_path: Path) -> None:
    store = DesiredStore(db_at(tmp_path))
    assert store.put("p", request("p"), up()) == 1
    assert store.mark_removing("p", RemoveOptions(), None) == 2
    assert store.forget("p", 2)
    assert store.get("p") is None
    assert store.put("p", request("p"), up()) == 3  # not 1 again: the counter stayed
    assert store.put("q", request("q"), up()) == 1  # per project
    assert [(r.number, r.cause, r.consumed) for r in store.revisions.list("p")] == [
        (1, "up", False), (2, "down", True), (3, "up", False)]


def test_numbers_survive_reopening_the_database(tmp_path: Path) -> None:
    db = db_at(tmp_path)
    DesiredStore(db).put("p", request("p"), up())
    db.close()
    assert DesiredStore(db_at(tmp_path)).put("p", request("p"), up()) == 2


def test_only_the_last_n_revisions_are_kept(tmp_path: Path) -> None:
    db = db_at(tmp_path)
    store = DesiredStore(db, RevisionStore(db, keep=3))
    for _ in range(7):
        store.put("p", request("p"), up())
    assert [r.number for r in store.revisions.list("p")] == [5, 6, 7]
    assert store.put("p", request("p"), up()) == 8


def test_a_revisions_rollouts_outlive_the_daemon_and_go_with_the_revision(
        tmp_path: Path) -> None:
    db = db_at(tmp_path)
    store = DesiredStore(db, RevisionStore(db, keep=2))
    store.put("p", request("p"), up())
    store.revisions.keep_rollouts("p", 1, {"web": {"batches": 1, "done": [1]}})
    store.revisions.keep_rollouts("p", 1, {"web": {"batches": 2, "done": [1, 2]}})
    db.close()
    again = DesiredStore(db_at(tmp_path), RevisionStore(db_at(tmp_path), keep=2))
    assert again.revisions.rollouts("p") == {1: {"web": {"batches": 2, "done": [1, 2]}}}
    again.put("p", request("p"), up())
    again.put("p", request("p"), up())  # revision 1 is dropped, and its rollouts
    assert again.revisions.rollouts("p") == {}


def test_a_paused_or_rolled_back_revision_says_so_in_history(tmp_path: Path) -> None:
    store = DesiredStore(db_at(tmp_path))
    for cause in ("up", "up", "rollback", "up"):
        store.put("p", request("p"), NewRevision(cause=cause, options="{}",  # type: ignore[arg-type]
                                                 source="{}", stack=None))
    rows = history_rows(store.revisions.list("p"), current=4, outcome=(4, "ok", ""),
                        rolling={4: "paused: update of web paused: batch 1/3 (web-1) failed"})
    assert [r["outcome"] for r in rows] == [
        "superseded", "rolled back", "superseded",
        "paused: update of web paused: batch 1/3 (web-1) failed"]


def test_the_first_pin_of_an_image_holds(tmp_path: Path) -> None:
    db = db_at(tmp_path)
    store = DesiredStore(db)
    n = store.put("p", request("p"), up())
    assert store.revisions.pin("p", n, "busybox:latest", "sha256:aaa") == "sha256:aaa"
    assert store.revisions.pin("p", n, "busybox:latest", "sha256:bbb") == "sha256:aaa"
    assert store.revisions.get("p", n).images == {"busybox:latest": "sha256:aaa"}  # type: ignore[union-attr]


def test_consumed_is_durable(tmp_path: Path) -> None:
    db = db_at(tmp_path)
    n = DesiredStore(db).put("p", request("p"), up())
    RevisionStore(db).consume("p", n)
    db.close()
    assert RevisionStore(db_at(tmp_path)).get("p", n).consumed  # type: ignore[union-attr]


def test_the_stored_request_carries_no_shell_environment(tmp_path: Path) -> None:
    store = DesiredStore(db_at(tmp_path))
    store.put("p", request("p", DB_PASSWORD="hunter2"), up())
    assert store.get("p").request.source.environ == {}  # type: ignore[union-attr]
    raw = (tmp_path / "stackd.db").read_bytes() + (tmp_path / "stackd.db-wal").read_bytes()
    assert b"hunter2" not in raw


def test_blobs_are_root_only_and_never_visible_half_written(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    os.umask(0o000)  # the mode must not depend on the caller's umask
    try:
        digest = blobs.put(b"s3cret")
    finally:
        os.umask(0o022)
    assert digest == sha256(b"s3cret")
    assert stat.S_IMODE(os.stat(blobs.dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(blobs.dir / digest).st_mode) == 0o600
    assert os.listdir(blobs.dir) == [digest]
    assert blobs.get(digest) == b"s3cret"


def test_a_corrupt_or_missing_blob_is_a_typed_error(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest = blobs.put(b"one")
    (blobs.dir / digest).write_bytes(b"two")
    with pytest.raises(NotFoundError, match="corrupt"):
        blobs.get(digest)
    with pytest.raises(NotFoundError, match="missing"):
        blobs.get(sha256(b"never stored"))


def test_collect_removes_what_no_kept_revision_refers_to(tmp_path: Path) -> None:
    db = db_at(tmp_path)
    revisions = RevisionStore(db, keep=1)
    store = DesiredStore(db, revisions)
    blobs = BlobStore(tmp_path)
    stack = load_text(SECRET_STACK.format(path=tmp_path / "pw"), project_name="p")
    first = capture(stack, [], {str(tmp_path / "pw"): b"old"}, {})
    second = capture(stack, [], {str(tmp_path / "pw"): b"new"}, {})
    for c in (first, second):
        for data in c.contents.values():
            blobs.put(data)
        store.put("p", request("p"), NewRevision(cause="up", options="{}", source="{}",
                                                 stack=c.stack, files=c.files))
    (blobs.dir / ".abc.1.tmp").write_bytes(b"half")  # a put killed before its rename
    assert blobs.collect(revisions.referenced_blobs()) == [".abc.1.tmp", sha256(b"old")]
    assert os.listdir(blobs.dir) == [sha256(b"new")]


SECRET_STACK = """
services:
  app:
    image: busybox
    secrets: [pw, token]
    configs: [conf]
    build:
      context: .
      args: [VERSION]
secrets:
  pw:
    file: {path}
  token:
    environment: TOKEN
configs:
  conf:
    content: inline
"""


def test_capture_keeps_what_containers_get_and_digests_the_rest(tmp_path: Path) -> None:
    stack = load_text(SECRET_STACK.format(path=tmp_path / "pw"), project_name="p")
    c = capture(stack, [("/x/compose.yaml", "stack", "services: {}"),
                        ("/x/.env", "env", "A=1")],
                {str(tmp_path / "pw"): b"hunter2"},
                {"TOKEN": "t0k", "VERSION": "1.2", "HOME": "/root", "OTHER": "x"})
    kinds = {f.path: f.kind for f in c.files}
    assert kinds == {"/x/compose.yaml": "stack", "/x/.env": "env",
                     str(tmp_path / "pw"): "secret", "env:TOKEN": "environ",
                     "env:VERSION": "environ"}
    # Contents kept: the secret file and the two variables; the stack and env files
    # are in the resolved stack already, so only their digests.
    assert sorted(c.contents.values()) == [b"1.2", b"hunter2", b"t0k"]
    assert "hunter2" not in c.stack and "t0k" not in c.stack


def test_a_revision_gives_back_exactly_what_it_captured(tmp_path: Path) -> None:
    db = db_at(tmp_path)
    store = DesiredStore(db)
    blobs = BlobStore(tmp_path)
    stack = load_text(SECRET_STACK.format(path=tmp_path / "pw"), project_name="p")
    c = capture(stack, [], {str(tmp_path / "pw"): b"hunter2"}, {"TOKEN": "t0k"})
    for data in c.contents.values():
        blobs.put(data)
    n = store.put("p", request("p"), NewRevision(cause="up", options="{}", source="{}",
                                                 stack=c.stack, files=c.files))
    files, environ = given_files(store.revisions.get("p", n), blobs.get)  # type: ignore[arg-type]
    assert files == {str(tmp_path / "pw"): b"hunter2"}
    assert environ == {"TOKEN": "t0k"}
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"hunter2" not in (tmp_path / "stackd.db").read_bytes()
    assert b"t0k" not in (tmp_path / "stackd.db").read_bytes()


def test_the_loader_reports_every_file_it_reads(tmp_path: Path) -> None:
    from stackd.spec import LoadOptions, load

    (tmp_path / "compose.yaml").write_text(
        "services:\n  a: {image: busybox, env_file: a.env, extends: {file: base.yaml,"
        " service: b}}\n")
    (tmp_path / "base.yaml").write_text("services:\n  b: {image: busybox}\n")
    (tmp_path / "a.env").write_text("X=1\n")
    (tmp_path / ".env").write_text("Y=2\n")
    reads: list[tuple[str, str]] = []
    load(LoadOptions(project_directory=tmp_path, cwd=tmp_path, environ={},
                     on_read=lambda path, kind, _text: reads.append((path, kind))))
    assert sorted(reads) == sorted([
        (str(tmp_path / "compose.yaml"), "stack"), (str(tmp_path / "base.yaml"), "stack"),
        (str(tmp_path / ".env"), "env"), (str(tmp_path / "a.env"), "env")])


def test_history_says_which_services_each_revision_changed(tmp_path: Path) -> None:
    db = db_at(tmp_path)
    store = DesiredStore(db)
    two = "services:\n  a: {{image: busybox, command: [{a}]}}\n  b: {{image: busybox}}\n"
    for a in ("one", "one", "two"):
        c = capture(load_text(two.format(a=a), project_name="p"), [], {}, {})
        store.put("p", request("p"), NewRevision(cause="up", options="{}", source="{}",
                                                 stack=c.stack, files=c.files))
    store.mark_removing("p", RemoveOptions(), None)
    rows = history_rows(store.revisions.list("p"), current=4, outcome=None)
    assert [(r["number"], r["cause"], r["changed"], r["outcome"]) for r in rows] == [
        (1, "up", ["a", "b"], "superseded"), (2, "up", [], "superseded"),
        (3, "up", ["a"], "superseded"), (4, "down", ["a", "b"], "pending")]


def test_a_stack_numbered_before_revisions_existed_keeps_counting_up(tmp_path: Path) -> None:
    db = db_at(tmp_path)
    with db.transaction() as c:
        c.execute("INSERT INTO daemon_stacks (project, generation, phase, request, updated)"
                  " VALUES ('p', 5, 'active', ?, 0)", (request("p").model_dump_json(),))
    assert DesiredStore(db).put("p", request("p"), up()) == 6


STACKS = sorted(p for p in (Path(__file__).resolve().parents[2] / "stacks").iterdir()
                if p.is_dir())


@pytest.mark.parametrize("directory", STACKS, ids=lambda p: p.name)
def test_a_revision_gives_back_the_same_stack(directory: Path) -> None:
    """Every reconcile of a revision runs the stack read back from its JSON: it must be
    the stack `up` loaded, field for field."""
    from stackd.daemon.revision import stack_from_json, stack_json
    from stackd.spec import LoadOptions, load

    stack = load(LoadOptions(project_directory=directory, cwd=directory, environ={},
                             profiles=["*"]))
    again = stack_from_json(stack_json(stack))
    assert again.model_dump() == stack.model_dump()
    assert stack_json(again) == stack_json(stack)
