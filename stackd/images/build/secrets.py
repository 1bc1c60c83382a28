"""`RUN --mount=type=secret,id=X[,target=/path][,required=true]`: a build secret, the
host file bind-mounted read-only into that one RUN step's container (at
/run/secrets/X unless `target` says otherwise) and never part of a layer.

The secret's content is in no cache key (Docker's rule too: changing a secret does not
rebuild). The runtime makes the mount point in the container's upper dir;
`runmounts.traces` names what of that the image did not have, so the layer leaves it
out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from stackd.images.build.dockerfile import Instruction
from stackd.images.build.runmounts import SecretMount
from stackd.images.errors import BuildError


def sources(mounts: Sequence[SecretMount], secrets: Mapping[str, Path], ins: Instruction,
            file: str) -> list[tuple[SecretMount, Path]]:
    """Each mount with its host file; a missing one is skipped unless required."""
    out = []
    for m in mounts:
        path = secrets.get(m.id)
        if path is None:
            if m.required:
                raise BuildError(f"{file}:{ins.line}: RUN needs the build secret {m.id!r}, "
                                 "which was not given",
                                 hint=f"stackd build --secret id={m.id},src=FILE")
            continue
        out.append((m, path))
    return out
