"""The `git` command, run in a worker thread (everything here blocks).

Each source has a bare cache repository under the state root (0700) into which its
ref is fetched with `--depth 1`: a repository of 10k commits costs one commit's
objects. A commit's tree is exported with `git archive` and unpacked as it streams
(never held in memory) with tarfile's `data` filter, so a hostile repository's
absolute or `..` paths and links pointing out of the tree are refused, never
followed. Credentials: a token file becomes an
HTTP header given through git's GIT_CONFIG_* environment (never on a command line
others can read with ps); otherwise git's own credential helpers and ssh keys.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stackd.errors import ConflictError, UnavailableError, UsageError
from stackd.gitops.masking import mask_text
from stackd.trees import remove_tree

TIMEOUT = 300.0
MESSAGE_MAX = 200
HEAD_REF = "refs/stackd/head"


@dataclass(frozen=True)
class Commit:
    sha: str
    author_time: int
    message: str  # the subject line


@dataclass(frozen=True)
class Credentials:
    token: str = ""  # "TOKEN" or "USER:TOKEN", read from the token file at each fetch

    def _pair(self) -> tuple[str, str]:
        # Basic auth's user name holds no colon; the password may.
        if ":" in self.token:
            user, _, password = self.token.partition(":")
            return user, password
        return "x-access-token", self.token

    def _basic(self) -> str:
        user, password = self._pair()
        return base64.b64encode(f"{user}:{password}".encode()).decode()

    def env(self) -> dict[str, str]:
        if not self.token:
            return {}
        return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": "Authorization: Basic " + self._basic()}

    def secrets(self) -> list[str]:
        """What must never be shown: the password and the header carrying it."""
        if not self.token:
            return []
        return [self._pair()[1], self._basic()]


def read_token(path: str | None) -> Credentials:
    if not path:
        return Credentials()
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise UsageError(f"cannot read the token file {path}: {exc.strerror}",
                         hint="give --token-file a readable file holding TOKEN or "
                         "USER:TOKEN") from None
    return Credentials(token)


def normalise_url(url: str) -> str:
    """A local path becomes file://, which (unlike a plain path) honours --depth."""
    if url.startswith("/"):
        return "file://" + url
    return url


def _env(git_dir: Path, creds: Credentials, extra_env: dict[str, str] | None
         ) -> dict[str, str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_DIR": str(git_dir),
           "LC_ALL": "C", **creds.env(), **(extra_env or {})}
    env.pop("GIT_WORK_TREE", None)
    return env


_NO_GIT = UnavailableError("the git command is not installed",
                           hint="install git (apt-get install git)")


def _failed(what: str, stderr: bytes, code: int, creds: Credentials) -> UnavailableError:
    err = stderr.decode(errors="replace").strip().splitlines()
    text = mask_text(" / ".join(line for line in err if line)[-600:], creds.secrets())
    return UnavailableError(f"{what}: {text or f'git exited {code}'}",
                            hint="check --repo, the ref and the credentials")


def _run(args: list[str], *, git_dir: Path, creds: Credentials = Credentials(),
         extra_env: dict[str, str] | None = None, what: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], env=_env(git_dir, creds, extra_env),
                              capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                              check=False)
    except FileNotFoundError:
        raise _NO_GIT from None
    except subprocess.TimeoutExpired:
        raise UnavailableError(f"{what}: git did not finish within {TIMEOUT:g}s",
                               hint="check that the repository answers") from None
    if done.returncode != 0:
        raise _failed(what, done.stderr, done.returncode, creds)
    return done.stdout


def fetch(url: str, kind: Literal["branch", "tag", "commit"], ref: str, cache: Path,
          creds: Credentials) -> Commit:
    """Fetch `ref` (depth 1) into the bare repository `cache`; its commit."""
    if not (cache / "HEAD").exists():
        tmp = cache.with_name(cache.name + ".new")
        remove_tree(tmp, ignore_errors=True)
        _run(["init", "--bare", "-q", str(tmp)], git_dir=tmp, what="git init")
        os.chmod(tmp, 0o700)
        os.rename(tmp, cache)
    source = {"branch": f"refs/heads/{ref}", "tag": f"refs/tags/{ref}", "commit": ref}[kind]
    shown = mask_text(url, creds.secrets())
    _run(["fetch", "--quiet", "--depth", "1", "--no-tags", "--no-write-fetch-head", "--",
          normalise_url(url), f"+{source}:{HEAD_REF}"],
         git_dir=cache, creds=creds, what=f"fetching {kind} {ref} from {shown}")
    return describe(cache, HEAD_REF)


def describe(cache: Path, rev: str) -> Commit:
    out = _run(["log", "-1", "--format=%H%x00%at%x00%s", rev, "--"], git_dir=cache,
               what="reading the fetched commit").decode(errors="replace")
    sha, at, subject = out.rstrip("\n").split("\x00", 2)
    return Commit(sha, int(at or 0), subject[:MESSAGE_MAX])


def export(cache: Path, sha: str, dest: Path) -> None:
    """The tree of commit `sha`, alone, at `dest` (replaced)."""
    tmp = dest.with_name(dest.name + ".new")
    remove_tree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    try:
        _unpack_archive(cache, sha, tmp)
    except BaseException:
        remove_tree(tmp, ignore_errors=True)
        raise
    old = dest.with_name(dest.name + ".old")
    remove_tree(old, ignore_errors=True)
    if dest.exists():
        os.rename(dest, old)
    os.rename(tmp, dest)
    remove_tree(old, ignore_errors=True)


def _unpack_archive(cache: Path, sha: str, into: Path) -> None:
    """`git archive` of commit `sha` unpacked into `into` as it streams: a repository
    holding large files is never held in the daemon's memory (it was, whole, twice)."""
    what = f"reading the tree of commit {sha[:12]}"
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(["git", "archive", "--format=tar", sha],
                                    env=_env(cache, Credentials(), None),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=stderr)
        except FileNotFoundError:
            raise _NO_GIT from None
        assert proc.stdout is not None
        late = threading.Timer(TIMEOUT, proc.kill)
        late.start()
        refused: tarfile.FilterError | None = None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                tar.extractall(into, filter="data")
        except tarfile.FilterError as exc:
            refused = exc
        except tarfile.TarError:
            pass  # git's own failure: its exit status and stderr say what
        finally:
            late.cancel()
            proc.stdout.close()
            code = proc.wait()
        if refused is not None:
            raise UsageError(f"commit {sha[:12]} holds a path stackd refuses to unpack: "
                             f"{refused}", hint="links and paths must stay inside the "
                             "repository") from None
        if code != 0:
            if code == -signal.SIGKILL:
                raise UnavailableError(f"{what}: git did not finish within {TIMEOUT:g}s",
                                       hint="check that the repository answers")
            stderr.seek(0)
            raise _failed(what, stderr.read(), code, Credentials())


def verify(cache: Path, sha: str, *, keyring: str | None, allowed_signers: str | None
           ) -> None:
    """Refuse commit `sha` unless `git verify-commit` accepts its signature with the given
    GnuPG home (keyring) or ssh allowed-signers file."""
    extra: dict[str, str] = {}
    args = ["verify-commit", sha]
    if keyring:
        extra["GNUPGHOME"] = keyring
    if allowed_signers:
        args = ["-c", f"gpg.ssh.allowedSignersFile={allowed_signers}", *args]
    try:
        _run(args, git_dir=cache, extra_env=extra, what=f"verifying commit {sha[:12]}")
    except UnavailableError as exc:
        raise ConflictError(f"commit {sha[:12]} is not signed by a trusted key: "
                            f"{exc.message}", hint="sign it with a key of the keyring / "
                            "allowed signers given to --verify-signatures") from None
