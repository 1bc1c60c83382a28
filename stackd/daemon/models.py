"""The API's request and response bodies (pydantic, so FastAPI validates and documents them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Request(BaseModel):
    """A request body: unknown fields, non-finite numbers (JSON's NaN, 1e309) and NUL
    bytes anywhere are refused (422). Its strings become argv words, environment
    entries and paths, which the kernel takes as C strings: a NUL could otherwise only
    fail deep inside (execve), as a 500."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = nul_in(data)
        if where is not None:
            raise ValueError(f"{where or 'the body'} contains a NUL byte")
        return data


def nul_in(data: Any) -> str | None:
    """The path (e.g. `cmd[1]`, `environ.KEY`) of the first string, or mapping key,
    holding a NUL; None when there is none. Iterative: JSON nests deep."""
    todo: list[tuple[str, Any]] = [("", data)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and "\x00" in k:
                    return f"{path}.<key>" if path else "<key>"
                todo.append((f"{path}.{k}" if path else str(k), v))
        elif isinstance(value, list):
            todo.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
    return None


Replicas = Annotated[int, Field(ge=0, le=10_000)]


class StackSource(Request):
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
    # Named on the command line (`up tools`, `run tools`): their profiles are enabled.
    services: list[str] | None = Field(default=None, max_length=1000)
    environ: dict[str, str] = Field(default_factory=dict)


class ApplyOptions(Request):
    services: list[str] = Field(default_factory=list, max_length=1000)
    # Written by the daemon as it records a revision, whatever a client sent: the
    # services of the files that their profiles left out (not orphans).
    disabled: list[str] = Field(default_factory=list, max_length=10000)
    remove_orphans: bool = False
    # Of the services named (all when none is); what they depend on is recreated only
    # if changed, unless always_recreate_deps (Compose's --always-recreate-deps).
    force_recreate: bool = False
    always_recreate_deps: bool = False
    no_recreate: bool = False
    no_deps: bool = False
    build: bool = False
    # Compose's --parallel: at most this many pulls, builds and container steps at once
    # (None: no limit; Compose's -1).
    parallel: int | None = Field(default=None, ge=1, le=10000)
    # `up --no-build`: a service's image is never built, even when missing; one whose
    # `image:` names it is then pulled as a service without `build:` would be.
    no_build: bool = False
    # None: each service's own pull_policy (Compose's default: missing)
    pull: Literal["always", "missing", "never"] | None = None
    scale: dict[str, Replicas] = Field(default_factory=dict, max_length=1000)
    wait: bool = False
    no_start: bool = False  # `create`, `up --no-start`: make the containers, start none
    # `up -t`: the stop grace of the containers this apply replaces or stops (None:
    # each one's stop_grace_period). Not kept: a resync uses the spec's.
    timeout: int | None = Field(default=None, ge=0, le=86400)
    # `up -V`: recreate (as --force-recreate, unless --no-recreate), each container with
    # new anonymous volumes instead of its predecessor's. Not kept by a resync.
    renew_anon_volumes: bool = False
    # Set by the daemon while the current revision is a rollback: rolling updates then
    # follow each service's deploy.rollback_config instead of its update_config.
    rolling_back: bool = False


class ApplyRequest(Request):
    source: StackSource
    options: ApplyOptions = Field(default_factory=ApplyOptions)


class PlanRequest(ApplyRequest):
    # `up --dry-run`: plan as `up` itself would, starting every exited container of
    # its services (finished jobs, ones a user stopped); `stackd plan` shows only
    # what the stack lacks (reconciler/asks.py).
    as_up: bool = False


class RemoveOptions(Request):
    volumes: bool = False
    remove_orphans: bool = False
    images: Literal["none", "local", "all"] = "none"
    timeout: int | None = Field(default=None, ge=0, le=86400)  # `down -t`, seconds


class LifecycleRequest(Request):
    """`start`, `stop`, `restart`, `kill`, `rm` of a stack's containers: carried out by
    the stack's controller (reconciler/asks.py says what each verb means)."""

    services: list[str] = Field(default_factory=list, max_length=1000)
    containers: list[str] = Field(default_factory=list, max_length=1000)
    signal: str = Field(default="SIGKILL", pattern=r"^(SIG[A-Z0-9+-]{1,12}|[0-9]{1,2})$")
    force: bool = False
    timeout: int | None = Field(default=None, ge=0, le=86400)  # stop, restart: `-t`
    volumes: bool = False  # rm -v: the removed containers' anonymous volumes too
    no_deps: bool = False  # restart --no-deps: not their `restart: true` dependents

    @field_validator("signal")
    @classmethod
    def _a_signal(cls, value: str) -> str:
        # Checked as the request comes: `kill -s NOTASIG` failed its step and said 0.
        from stackd.errors import StackdError
        from stackd.runtime.signals import signal_number

        try:
            signal_number(value)
        except StackdError as err:
            raise ValueError(err.message) from None
        return value


class ExecRequest(Request):
    cmd: list[str] = Field(min_length=1, max_length=4096)
    env: list[str] = Field(default_factory=list, max_length=4096)
    user: str = Field(default="", max_length=256)
    workdir: str = Field(default="", max_length=4096)
    timeout: float | None = Field(default=None, gt=0, le=86400)
    # `exec -d`: answered once the program runs (exit_code 0), which goes on after.
    detach: bool = False
    privileged: bool = False  # `exec --privileged`: every capability, no seccomp filter


class ExecResult(BaseModel):
    exit_code: int
    stdout: str
    stderr: str


class StackStatus(BaseModel):
    project: str
    generation: int
    phase: Literal["active", "removing"]
    files: list[str]
    cwd: str = ""  # where the client ran `up`: relative files, and discovery, start here
    reconciles: int = 0
    last_result: Literal["", "ok", "requeue", "retry", "terminal"] = ""
    last_error: str = ""
    last_finished: float = 0.0
    # The current revision is a rollback: which, and why (this daemon's life only;
    # `history` keeps the cause for good).
    rollback: str = ""
    # Why the current revision's rolling update is paused ("" when none is): no batch
    # runs until the next `up` or `stackd resume`.
    paused: str = ""


class Fault(BaseModel):
    """A fault of the host the daemon works around while it lasts (daemon status)."""

    kind: Literal["disk_full"]
    path: str
    message: str
    since: float


class Version(BaseModel):
    version: str
    api: str = "v1"
    pid: int
    state_root: str
    run_root: str
    root_id: str
    started: float
    faults: list[Fault] = Field(default_factory=list)
