"""The git side alone (real git, no daemon): shallow fetches stay one commit deep
however long the history, and a hostile tree cannot write outside its directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.freeaddrs import free_port
from support.gitops import GIT_ENV, Repo
from support.sshd import keypair, sshd

from stackd.errors import UnavailableError, UsageError
from stackd.gitops import git


def count(cache: Path) -> int:
    out = subprocess.run(["git", "rev-list", "--count", git.HEAD_REF], check=True,
                         capture_output=True, text=True,
                         env={**os.environ, **GIT_ENV, "GIT_DIR": str(cache)}).stdout
    return int(out)


def test_a_long_history_is_fetched_one_commit_deep(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    for i in range(20):
        repo.commit(f"c{i}", {"compose.yaml": f"# {i}\n"})
    head = repo.git("rev-parse", "HEAD").strip()
    cache = tmp_path / "cache.git"
    commit = git.fetch(str(repo.path), "branch", "main", cache, git.Credentials())
    assert (commit.sha, commit.message) == (head, "c19")
    assert count(cache) == 1
    repo.commit("c20", {"compose.yaml": "# 20\n"})
    assert git.fetch(f"file://{repo.path}", "branch", "main", cache,
                     git.Credentials()).message == "c20"
    assert count(cache) == 1
    tree = tmp_path / "tree"
    git.export(cache, git.describe(cache, git.HEAD_REF).sha, tree)
    assert (tree / "compose.yaml").read_text() == "# 20\n"
    assert oct(tree.stat().st_mode & 0o777) == "0o700"


def test_a_tag_or_a_fixed_commit_is_fetched_as_a_branch_is(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    first = repo.commit("first", {"compose.yaml": "# 1\n"})
    repo.git("tag", "v1")
    repo.commit("second", {"compose.yaml": "# 2\n"})
    cache = tmp_path / "cache.git"
    assert git.fetch(str(repo.path), "tag", "v1", cache, git.Credentials()).sha == first
    assert git.fetch(str(repo.path), "commit", first, cache,
                     git.Credentials()).message == "first"
    with pytest.raises(UnavailableError, match="branch nosuch"):
        git.fetch(str(repo.path), "branch", "nosuch", cache, git.Credentials())


def test_a_large_file_is_unpacked_as_it_streams(tmp_path: Path) -> None:
    """The whole `git archive` of a commit was read into the daemon's memory (and
    copied once more for tarfile): a repository holding a 200 MB asset cost the
    daemon 400 MB. Measured in a process of its own: its peak memory."""
    import sys

    repo = Repo(tmp_path / "repo")
    with open(repo.path / "asset.bin", "wb") as f:  # zeros: small in git, 200 MB out
        f.truncate(200 << 20)
    repo.commit("asset", {"compose.yaml": "services: {}\n"})
    cache = tmp_path / "cache.git"
    sha = git.fetch(str(repo.path), "branch", "main", cache, git.Credentials()).sha
    probe = (
        "import resource, sys\nfrom pathlib import Path\nfrom stackd.gitops import git\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "git.export(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(cache), sha, str(tmp_path / "t")],
                          capture_output=True, text=True, check=True, timeout=120)
    assert int(done.stdout) < 50 << 10, f"peak grew {int(done.stdout) >> 10} MiB"  # KiB
    assert (tmp_path / "t" / "asset.bin").stat().st_size == 200 << 20


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../outside"])
def test_links_out_of_the_tree_are_refused(tmp_path: Path, target: str) -> None:
    repo = Repo(tmp_path / "repo")
    (repo.path / "link").symlink_to(target)
    repo.commit("hostile", {"compose.yaml": "services: {}\n"})
    cache = tmp_path / "cache.git"
    commit = git.fetch(str(repo.path), "branch", "main", cache, git.Credentials())
    tree = tmp_path / "a" / "tree"
    tree.parent.mkdir()
    with pytest.raises(UsageError, match="refuses to unpack"):
        git.export(cache, commit.sha, tree)
    assert not tree.exists() and os.listdir(tree.parent) == []


def test_a_failed_fetch_never_shows_the_token(tmp_path: Path) -> None:
    creds = git.Credentials("deploy:s3cr3t-t0ken")
    port = free_port()  # nothing listens there: refused at once
    with pytest.raises(UnavailableError) as err:
        git.fetch(f"http://deploy@127.0.0.1:{port}/r.git", "branch", "main",
                  tmp_path / "c.git", creds)
    assert "s3cr3t-t0ken" not in str(err.value)
    assert f"127.0.0.1:{port}" in str(err.value)


def test_gpg_signed_commits_verify_against_the_given_keyring(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.hostpackages import require_command

    from stackd.errors import ConflictError

    require_command("gpg", "gpg")
    require_command("gpg-agent", "gpg-agent")
    signer, keyring = tmp_path / "signer", tmp_path / "keyring"
    for home in (signer, keyring):
        home.mkdir(mode=0o700)
    try:
        gpg = {**os.environ, "GNUPGHOME": str(signer)}
        subprocess.run(["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key",
                        "Test <test@example.invalid>", "ed25519", "sign", "never"],
                       check=True, env=gpg, capture_output=True)
        public = subprocess.run(["gpg", "--batch", "--export", "test@example.invalid"],
                                check=True, env=gpg, capture_output=True).stdout
        subprocess.run(["gpg", "--batch", "--quiet", "--import"], input=public, check=True,
                       env={**os.environ, "GNUPGHOME": str(keyring)}, capture_output=True)
        repo = Repo(tmp_path / "repo")
        repo.commit("unsigned", {"compose.yaml": "services: {}\n"})
        cache = tmp_path / "cache.git"
        unsigned = git.fetch(str(repo.path), "branch", "main", cache, git.Credentials())
        with pytest.raises(ConflictError, match="not signed by a trusted key"):
            git.verify(cache, unsigned.sha, keyring=str(keyring), allowed_signers=None)
        with monkeypatch.context() as m:
            m.setenv("GNUPGHOME", str(signer))  # for `git commit -S` only
            repo.git("-c", "user.signingkey=test@example.invalid", "commit", "-q", "-S",
                     "--allow-empty", "-m", "signed")
        signed = git.fetch(str(repo.path), "branch", "main", cache, git.Credentials())
        git.verify(cache, signed.sha, keyring=str(keyring), allowed_signers=None)
        empty = tmp_path / "empty"
        empty.mkdir(mode=0o700)
        with pytest.raises(ConflictError):  # a keyring without the signer's key
            git.verify(cache, signed.sha, keyring=str(empty), allowed_signers=None)
    finally:
        # gpg started an agent per home: ours, ended by gpgconf for that home.
        for home in (signer, keyring, tmp_path / "empty"):
            if home.exists():
                subprocess.run(["gpgconf", "--kill", "all"], check=False,
                               env={**os.environ, "GNUPGHOME": str(home)},
                               capture_output=True)


def test_ssh_urls_fetch_from_a_real_sshd_with_the_daemons_ssh_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git's own ssh transport against OpenSSH's sshd on loopback: GIT_SSH_COMMAND (as
    the daemon's environment sets it, docs/gitops.md) names the deploy key; a key the
    server does not know is refused with git's reason, and nothing is fetched."""
    repo = Repo(tmp_path / "repo")
    sha = repo.commit("over ssh", {"compose.yaml": "services: {}\n"})
    with sshd(tmp_path / "sshd") as server:
        url = f"ssh://root@127.0.0.1:{server.port}{repo.path}"
        monkeypatch.setenv("GIT_SSH_COMMAND", server.command())
        got = git.fetch(url, "branch", "main", tmp_path / "cache.git", git.Credentials())
        assert got.sha == sha
        stranger = keypair(tmp_path / "stranger")
        monkeypatch.setenv("GIT_SSH_COMMAND", server.command(stranger))
        with pytest.raises(UnavailableError, match="Permission denied"):
            git.fetch(url, "branch", "main", tmp_path / "other.git", git.Credentials())
        assert not (tmp_path / "other.git" / "refs" / "heads" / "main").exists()
