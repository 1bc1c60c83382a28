"""Helpers for the hardening tests (a unique module name: test dirs share sys.path)."""

from __future__ import annotations

from stackd.runtime import ExitStatus, Runtime
from stackd.runtime.containerspec import ContainerSpec


async def run_to_end(rt: Runtime, spec: ContainerSpec) -> tuple[ExitStatus, str]:
    """Create, start, wait, delete; (exit, stdout and stderr lines in order)."""
    await rt.create(spec)
    try:
        await rt.start(spec.id)
        exit_status = await rt.wait(spec.id)
        lines = [rec.line async for rec in rt.logs(spec.id)]
    finally:
        await rt.delete(spec.id, force=True)
    return exit_status, "\n".join(lines)
