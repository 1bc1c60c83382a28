"""Healthchecks, run inside the container through the runtime's exec.

Semantics follow Docker's: the status starts as `starting`; a passing probe makes it
`healthy` and ends the start period; a failing one counts towards `retries` only once
the start period is over, and `retries` failures in a row make it `unhealthy`.
During the start period probes run every `start_interval`, afterwards every
`interval`; a probe that outlives `timeout` is a failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import trio

from stackd.errors import PausedError, SpecError, StackdError
from stackd.reconciler.ports import RuntimePort

HealthStatus = Literal["starting", "healthy", "unhealthy"]

# Docker's defaults, in seconds.
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class HealthCheck:
    args: tuple[str, ...]  # what exec runs: CMD's args, or /bin/sh -c for CMD-SHELL
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    start_period: float = DEFAULT_START_PERIOD
    start_interval: float = DEFAULT_START_INTERVAL


def probe_args(test: Sequence[str] | str) -> tuple[str, ...] | None:
    """Compose/Docker `test` → exec args; None for NONE (healthcheck disabled)."""
    if isinstance(test, str):
        return ("/bin/sh", "-c", test)
    if not test:
        return None
    kind, rest = test[0], tuple(test[1:])
    if kind == "NONE":
        return None
    if kind == "CMD" and rest:
        return rest
    if kind == "CMD-SHELL" and len(rest) == 1:
        return ("/bin/sh", "-c", rest[0])
    raise SpecError(
        f"healthcheck test {list(test)!r} is not understood",
        hint='use ["CMD", prog, args…], ["CMD-SHELL", "command"], a string, or ["NONE"]',
    )


def too_fast(check: HealthCheck) -> str | None:
    """The timing under Docker's 1ms floor, if one is (an image's, read as written)."""
    for name in ("interval", "timeout", "start_period", "start_interval"):
        if 0 < getattr(check, name) < 0.001:
            return name
    return None


def from_image(config: object) -> HealthCheck | None:
    """An image's HEALTHCHECK (the image store's Healthcheck: test, durations in seconds)."""
    if config is None:
        return None
    test = getattr(config, "test", None)
    if not isinstance(test, (list, tuple)) or not test:
        return None
    args = probe_args([str(t) for t in test])
    if args is None:
        return None

    def seconds(key: str, default: float) -> float:
        value = getattr(config, key, None)
        return float(value) if isinstance(value, (int, float)) and value > 0 else default

    retries = getattr(config, "retries", None)
    return HealthCheck(
        args=args,
        interval=seconds("interval", DEFAULT_INTERVAL),
        timeout=seconds("timeout", DEFAULT_TIMEOUT),
        retries=retries if isinstance(retries, int) and retries > 0 else DEFAULT_RETRIES,
        start_period=seconds("start_period", DEFAULT_START_PERIOD),
        start_interval=seconds("start_interval", DEFAULT_START_INTERVAL),
    )


@dataclass(frozen=True, slots=True)
class HealthState:
    status: HealthStatus = "starting"
    failing_streak: int = 0
    in_start_period: bool = True
    last_output: str = ""


def step(state: HealthState, passed: bool, output: str, *, check: HealthCheck,
         elapsed: float) -> HealthState:
    """The state after one probe that ended `elapsed` seconds after the container started."""
    in_start = state.in_start_period and elapsed < check.start_period
    if passed:
        return HealthState("healthy", 0, False, output)
    if in_start:
        return replace(state, in_start_period=True, last_output=output)
    streak = state.failing_streak + 1
    status: HealthStatus = "unhealthy" if streak >= check.retries else state.status
    return HealthState(status, streak, False, output)


async def probe(runtime: RuntimePort, container_id: str, check: HealthCheck
                ) -> tuple[bool | None, str]:
    """Run the check once. A runtime error (container gone…) is a failed probe, not a
    crash; a paused container is not probed (None): frozen, it cannot answer, and a
    `pause` must not read as sickness that restarts it."""
    try:
        with trio.move_on_after(check.timeout) as scope:
            result = await runtime.exec(container_id, list(check.args))
    except PausedError as err:
        return None, str(err)
    except StackdError as err:
        return False, str(err)
    if scope.cancelled_caught:
        return False, f"timed out after {check.timeout:g}s"
    output = (result.stdout + result.stderr)[-4096:].decode("utf-8", "replace")
    return result.exit_code == 0, output


Report = Callable[[HealthState], Awaitable[None]]


async def run_healthcheck(
    runtime: RuntimePort, container_id: str, check: HealthCheck, report: Report, *,
    at_once: bool = False
) -> None:
    """Probe forever (until cancelled), calling `report` whenever the status changes;
    the first probe `at_once` (a container a new daemon found running), else after an
    interval."""
    started = trio.current_time()
    state = HealthState()
    await report(state)
    while True:
        elapsed = trio.current_time() - started
        wait = check.start_interval if state.in_start_period and elapsed < check.start_period \
            else check.interval
        await trio.sleep(0 if at_once else wait)
        at_once = False
        passed, output = await probe(runtime, container_id, check)
        if passed is None:
            continue  # paused: its health stays as it was until it runs again
        new = step(state, passed, output, check=check, elapsed=trio.current_time() - started)
        changed = new.status != state.status
        state = new
        if changed:
            await report(state)
