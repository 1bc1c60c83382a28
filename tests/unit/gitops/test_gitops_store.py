"""The sources' durable record: a commit is recorded in the revision's own
transaction (both or neither), names and credentials as the database keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from stackd.daemon.desired_store import DesiredStore
from stackd.daemon.models import ApplyRequest, StackSource
from stackd.errors import AlreadyExistsError, NotFoundError
from stackd.gitops.git import Commit, Credentials
from stackd.gitops.models import SourceSpec
from stackd.gitops.store import SourceStore
from stackd.state.db import StateDB
from stackd.state.revisions import NewRevision

COMMIT = Commit("a" * 40, 1_700_000_000, "scale web")


def stores(tmp_path: Path) -> tuple[DesiredStore, SourceStore]:
    db = StateDB.open(tmp_path / "stackd.db")
    return DesiredStore(db), SourceStore(db)


def revision() -> NewRevision:
    return NewRevision(cause="gitops", options="{}", source="{}", stack="{}")


def request() -> ApplyRequest:
    return ApplyRequest(source=StackSource(project_name="site"))


def test_the_commit_and_its_revision_are_one_transaction(tmp_path: Path) -> None:
    desired, sources = stores(tmp_path)
    sources.add(SourceSpec(name="site", repo="/srv/site"))

    def crash(c: object, number: int) -> None:
        SourceStore.record_applied(c, "site", number, COMMIT)  # type: ignore[arg-type]
        raise RuntimeError("killed between the two writes")

    with pytest.raises(RuntimeError):
        desired.put("site", request(), revision(), crash)
    assert desired.get("site") is None and desired.revisions.list("site") == []
    assert sources.get("site").applied is None and sources.commits("site") == {}  # neither

    gen = desired.put("site", request(), revision(),
                      lambda c, n: SourceStore.record_applied(c, "site", n, COMMIT))
    source = sources.get("site")
    assert (source.applied, source.applied_gen) == (COMMIT, gen)  # both
    assert desired.revisions.get("site", gen).cause == "gitops"  # type: ignore[union-attr]
    assert sources.commits("site") == {gen: COMMIT}


def test_sources_survive_reopening_and_names_are_unique(tmp_path: Path) -> None:
    _, sources = stores(tmp_path)
    sources.add(SourceSpec(name="site", repo="https://git.example/r.git",
                           token_file="/etc/stackd/token", interval=1))
    with pytest.raises(AlreadyExistsError):
        sources.add(SourceSpec(name="site", repo="/x"))
    sources.set_suspended("site", True)
    _, again = stores(tmp_path)
    [source] = again.all()
    assert source.suspended and source.spec.token_file == "/etc/stackd/token"
    again.remove("site")
    with pytest.raises(NotFoundError):
        again.get("site")


@pytest.mark.parametrize("fields", [
    {"repo": "https://u:secret@git.example/r.git"},  # a password would be stored
    {"repo": "--upload-pack=touch /tmp/x"},
    {"repo": "/r", "branch": "main", "tag": "v1"},
    {"repo": "/r", "path": "../../etc"},
    {"repo": "/r", "files": ["/etc/passwd"]},
    {"repo": "/r", "verify_signatures": True},
    {"repo": "/r", "interval": 0},
    {"repo": "/r", "name": "../x"},
])
def test_specs_that_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises((ValidationError, ValueError)):
        SourceSpec.model_validate({"name": "site", **fields})


def test_a_token_reaches_git_only_through_its_environment() -> None:
    creds = Credentials("deploy:t0ken")
    env = creds.env()
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"] == "Authorization: Basic ZGVwbG95OnQwa2Vu"
    assert "t0ken" in creds.secrets() and "ZGVwbG95OnQwa2Vu" in creds.secrets()
    bare = Credentials("t0ken")
    assert bare.env()["GIT_CONFIG_VALUE_0"].endswith("eC1hY2Nlc3MtdG9rZW46dDBrZW4=")
    assert "eC1hY2Nlc3MtdG9rZW46dDBrZW4=" in bare.secrets()
    colon = Credentials("deploy:pa:ss")  # a password may hold a colon, a user not
    assert colon.env()["GIT_CONFIG_VALUE_0"].endswith("ZGVwbG95OnBhOnNz")
    assert "pa:ss" in colon.secrets()
