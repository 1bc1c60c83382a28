"""The API's request and response bodies (pydantic, so FastAPI validates and documents them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StackSource(_Strict):
    """Where the stack comes from: what `spec.load` needs, as the client saw it.

    The daemon reads the files itself (same host, same paths); the client's environment
    is sent along because Compose interpolates `${VAR}` from the shell that ran `up`.
    """

    files: list[str] | None = Field(default=None, max_length=64)  # None: discover
    content: str | None = Field(default=None, max_length=4_000_000)  # what `-f -` read
    cwd: str | None = Field(default=None, max_length=4096)
    project_name: str | None = Field(default=None, max_length=200)
    project_directory: str | None = Field(default=None, max_length=4096)
    env_files: list[str] | None = Field(default=None, max_length=64)
    profiles: list[str] | None = Field(default=None, max_length=64)
    environ: dict[str, str] = Field(default_factory=dict)


class ApplyOptions(_Strict):
    services: list[str] = Field(default_factory=list, max_length=1000)
    remove_orphans: bool = False
    force_recreate: bool = False
    no_recreate: bool = False
    no_deps: bool = False
    build: bool = False
    # None: each service's own pull_policy (Compose's default: missing)
    pull: Literal["always", "missing", "never"] | None = None
    scale: dict[str, int] = Field(default_factory=dict)
    wait: bool = False
    # Set by the daemon while the current revision is a rollback: rolling updates then
    # follow each service's deploy.rollback_config instead of its update_config.
    rolling_back: bool = False


class ApplyRequest(_Strict):
    source: StackSource
    options: ApplyOptions = Field(default_factory=ApplyOptions)


class RemoveOptions(_Strict):
    volumes: bool = False
    remove_orphans: bool = False
    images: Literal["none", "local", "all"] = "none"


class LifecycleRequest(_Strict):
    """`start`, `stop`, `restart`, `kill`, `rm` of a stack's containers: carried out by
    the stack's controller (reconciler/asks.py says what each verb means)."""

    services: list[str] = Field(default_factory=list, max_length=1000)
    containers: list[str] = Field(default_factory=list, max_length=1000)
    signal: str = Field(default="SIGKILL", pattern=r"^SIG[A-Z0-9]{1,12}$")
    force: bool = False


class ExecRequest(_Strict):
    cmd: list[str] = Field(min_length=1, max_length=4096)
    env: list[str] = Field(default_factory=list, max_length=4096)
    user: str = Field(default="", max_length=256)
    workdir: str = Field(default="", max_length=4096)
    timeout: float | None = Field(default=None, gt=0, le=86400)


class ExecResult(BaseModel):
    exit_code: int
    stdout: str
    stderr: str


class StackStatus(BaseModel):
    project: str
    generation: int
    phase: Literal["active", "removing"]
    files: list[str]
    reconciles: int = 0
    last_result: Literal["", "ok", "requeue", "retry", "terminal"] = ""
    last_error: str = ""
    last_finished: float = 0.0
    # The current revision is a rollback: which, and why (this daemon's life only;
    # `history` keeps the cause for good).
    rollback: str = ""


class Version(BaseModel):
    version: str
    api: str = "v1"
    pid: int
    state_root: str
    run_root: str
    root_id: str
    started: float
