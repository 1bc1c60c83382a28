"""A GitOps source as the API takes it and the state database keeps it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field, field_validator, model_validator

from stackd.daemon.models import Request
from stackd.errors import UsageError
from stackd.gitops.masking import has_password
from stackd.gitops.names import check_name, check_ref, check_sha, check_subpath

MIN_INTERVAL = 0.2


def _plain(check: Callable[..., str], *args: str) -> str:
    """A check's UsageError as the ValueError pydantic turns into a 422 naming the field."""
    try:
        return check(*args)
    except UsageError as exc:
        raise ValueError(f"{exc.message} ({exc.hint})" if exc.hint else exc.message) from None
MAX_INTERVAL = 7 * 86400.0


class SourceSpec(Request):
    """What `stackd gitops add` records. Paths (env file, token file, keyring) are the
    daemon's host paths, read at each sync; a token's content is never stored."""

    name: str = Field(max_length=63)
    repo: str = Field(min_length=1, max_length=4096)
    branch: str | None = Field(default=None, max_length=200)
    tag: str | None = Field(default=None, max_length=200)
    commit: str | None = Field(default=None, max_length=64)
    path: str = Field(default=".", max_length=4096)
    files: list[str] = Field(default_factory=list, max_length=64)
    interval: float = Field(default=30.0, ge=MIN_INTERVAL, le=MAX_INTERVAL)
    prune: bool = False
    prune_volumes: bool = False
    self_heal: bool = True
    env_file: str | None = Field(default=None, max_length=4096)
    profiles: list[str] = Field(default_factory=list, max_length=64)
    token_file: str | None = Field(default=None, max_length=4096)
    verify_signatures: bool = False
    keyring: str | None = Field(default=None, max_length=4096)  # a GNUPGHOME directory
    allowed_signers: str | None = Field(default=None, max_length=4096)  # ssh signatures

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _plain(check_name, v)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _plain(check_subpath, "--path", v)

    @field_validator("files")
    @classmethod
    def _files(cls, v: list[str]) -> list[str]:
        return [_plain(check_subpath, "-f", f) for f in v]

    @model_validator(mode="after")
    def _ref(self) -> SourceSpec:
        given = [k for k in ("branch", "tag", "commit") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError("give one of --branch, --tag, --commit")
        if self.branch:
            _plain(check_ref, "branch", self.branch)
        if self.tag:
            _plain(check_ref, "tag", self.tag)
        if self.commit:
            _plain(check_sha, self.commit)
        if has_password(self.repo):
            raise ValueError("the repository URL holds a password; give it with "
                             "--token-file or a git credential helper instead")
        if self.repo.startswith("-"):
            raise ValueError("the repository URL must not start with '-'")
        if self.prune_volumes and not self.prune:
            raise ValueError("--prune-volumes needs --prune")
        if self.verify_signatures and not (self.keyring or self.allowed_signers):
            raise ValueError("--verify-signatures needs --keyring or --allowed-signers")
        return self

    @property
    def ref(self) -> tuple[Literal["branch", "tag", "commit"], str]:
        if self.tag:
            return "tag", self.tag
        if self.commit:
            return "commit", self.commit
        return "branch", self.branch or "main"
