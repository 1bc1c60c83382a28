"""Restart policies and the restart backoff: pure decisions, no waiting.

Policies are Compose's `restart:` (no, always, on-failure[:N], unless-stopped) and
`deploy.restart_policy` (condition none|on-failure|any, delay, max_attempts,
window); the latter wins when both are set, as in Compose. The supervisor asks
`should_restart` when a container exits and sleeps `Backoff.next_delay()` before
starting it again.

Backoff numbers (docs/reconciler.md compares them with Docker's and Kubernetes'):
the first restart is immediate, the second waits 100 ms, each further one doubles it,
capped at 30 s; a container that ran for 10 s or longer before exiting starts the
sequence afresh (so its next restart is immediate again). A crash loop still backs
off: only one restart in a row goes without a wait.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from stackd.errors import SpecError

FIRST_DELAY = 0.0  # the first restart (of a fresh sequence) is immediate, as Compose's
INITIAL_DELAY = 0.1  # seconds before the second restart in a row
FACTOR = 2.0
MAX_DELAY = 30.0  # the cap
RESET_AFTER = 10.0  # a run at least this long resets the backoff

PolicyName = Literal["no", "always", "on-failure", "unless-stopped"]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    name: PolicyName = "no"
    max_attempts: int | None = None  # None: unlimited
    delay: float | None = None  # fixed wait between restarts (deploy.restart_policy.delay)
    window: float | None = None  # only restarts within this many seconds count to max_attempts

    @property
    def restarts_at_all(self) -> bool:
        return self.name != "no" and self.max_attempts != 0


def parse_restart(text: str) -> RestartPolicy:
    """Compose's `restart:` string: "no", "always", "unless-stopped", "on-failure[:N]"."""
    value = text.strip()
    if value in ("no", "always", "unless-stopped", ""):
        return RestartPolicy(name="no" if value == "" else value)  # type: ignore[arg-type]
    name, sep, count = value.partition(":")
    if name == "on-failure":
        if not sep:
            return RestartPolicy(name="on-failure")
        if count.isdigit():
            return RestartPolicy(name="on-failure", max_attempts=int(count))
    raise SpecError(
        f"restart: {text!r} is not a restart policy",
        hint='use "no", "always", "unless-stopped" or "on-failure[:N]"',
    )


def from_deploy(
    condition: str | None,
    *,
    delay: float | None = None,
    max_attempts: int | None = None,
    window: float | None = None,
) -> RestartPolicy:
    """`deploy.restart_policy`: condition none|on-failure|any (Swarm's words)."""
    names: dict[str, PolicyName] = {"none": "no", "on-failure": "on-failure", "any": "always"}
    key = condition or "any"  # Swarm's default condition is any
    if key not in names:
        raise SpecError(
            f"deploy.restart_policy.condition: {condition!r} is not a condition",
            hint="use none, on-failure or any",
        )
    return RestartPolicy(name=names[key], max_attempts=max_attempts, delay=delay, window=window)


def should_restart(
    policy: RestartPolicy, exit_code: int | None, *, stopped_by_user: bool, attempts: int
) -> bool:
    """Whether an exited container is started again.

    `attempts` is how many restarts already count against max_attempts (see
    `RestartHistory`). A container the user (or the executor) stopped never restarts.
    """
    if stopped_by_user or not policy.restarts_at_all:
        return False
    if policy.max_attempts is not None and attempts >= policy.max_attempts:
        return False
    if policy.name == "on-failure":
        return exit_code != 0
    return True  # always, unless-stopped


class RestartHistory:
    """Restart times, so `window` can forget old ones (Swarm's sliding window)."""

    def __init__(self, window: float | None) -> None:
        self._window = window
        self._times: deque[float] = deque()

    def record(self, now: float) -> None:
        self._times.append(now)

    def count(self, now: float) -> int:
        if self._window is not None:
            while self._times and now - self._times[0] > self._window:
                self._times.popleft()
        return len(self._times)

    @property
    def total(self) -> int:
        return len(self._times)


class Backoff:
    """0, then 100 ms, 200 ms, 400 ms … capped at MAX_DELAY; reset by a run of
    RESET_AFTER or more."""

    def __init__(self, fixed: float | None = None) -> None:
        self._fixed = fixed
        self._next = FIRST_DELAY

    def next_delay(self, ran_for: float) -> float:
        if self._fixed is not None:
            return self._fixed
        if ran_for >= RESET_AFTER:
            self._next = FIRST_DELAY
        delay = self._next
        self._next = max(INITIAL_DELAY, min(self._next * FACTOR, MAX_DELAY))
        return delay
