"""Helpers for the runtime's integration tests (a unique module name: test dirs share sys.path)."""

from __future__ import annotations

from stackd.runtime import ExitStatus, Runtime
from stackd.runtime.containerspec import ContainerSpec


async def run_to_end(rt: Runtime, spec: ContainerSpec, *, keep: bool = False
                     ) -> tuple[ExitStatus, str, str]:
    """Create, start, wait; (exit, stdout, stderr). Deletes the container unless keep."""
    await rt.create(spec)
    await rt.start(spec.id)
    exit_status = await rt.wait(spec.id)
    out, err = [], []
    async for rec in rt.logs(spec.id):
        (out if rec.stream == "stdout" else err).append(rec.line)
    if not keep:
        await rt.delete(spec.id)
    return exit_status, "\n".join(out), "\n".join(err)
