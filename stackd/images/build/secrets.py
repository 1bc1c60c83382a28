"""`RUN --mount=type=secret,id=X[,target=/path][,required=true]`: a build secret, the
host file bind-mounted read-only into that one RUN step's container (at
/run/secrets/X unless `target` says otherwise) and never part of a layer.

The secret's content is in no cache key (Docker's rule too: changing a secret does not
rebuild). The runtime makes the mount point in the container's upper dir; `traces`
names what of that the image did not have, so the layer leaves it out.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stackd.images.build.dockerfile import Instruction
from stackd.images.build.mergedview import lookup
from stackd.images.errors import BuildError

_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@dataclass(frozen=True, slots=True)
class SecretMount:
    id: str
    target: str
    required: bool = False


def parse_mounts(ins: Instruction, file: str) -> list[SecretMount]:
    """The RUN's `--mount` flags; any type but secret is refused by name."""
    out = []
    for text in filter(None, ins.flags.get("mount", "").split("\n")):
        fields: dict[str, str] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            fields[key] = value if sep else "true"
        kind = fields.pop("type", "bind")
        if kind != "secret":
            raise ins.error(file, f"--mount=type={kind} is not supported",
                            hint="stackd's builder mounts type=secret only")
        sid = fields.pop("id", "")
        target = fields.pop("target", fields.pop("dst", fields.pop("destination", "")))
        if not sid and target:
            sid = os.path.basename(target)
        required = fields.pop("required", "false") in ("true", "")
        if not sid or not set(sid) <= _ID:
            raise ins.error(file, f"--mount={text}: the secret needs an id of letters, "
                            "digits, '_', '.' or '-'", hint="e.g. --mount=type=secret,id=token")
        if fields:
            raise ins.error(file, f"--mount={text}: unsupported option "
                            f"{', '.join(sorted(fields))}",
                            hint="a secret mount takes id, target and required")
        target = target or f"/run/secrets/{sid}"
        if not target.startswith("/") or ".." in target.split("/"):
            raise ins.error(file, f"--mount={text}: target must be an absolute path",
                            hint="e.g. target=/run/secrets/token")
        out.append(SecretMount(sid, os.path.normpath(target), required))
    return out


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


def traces(layers: tuple[str, ...], upper: Path, mounts: Sequence[SecretMount]) -> frozenset[str]:
    """Paths (relative, as the layer writer takes them) of the mount points a RUN's
    secrets left in `upper` that the image did not have: the target, and each directory
    made for it that holds nothing else. Read with lstat only: the RUN may have put a
    symlink anywhere, and nothing here follows one."""
    out: set[str] = set()
    for m in mounts:
        rel = m.target.strip("/")
        if lookup(layers, rel) is not None:
            continue
        out.add(rel)
        parts = rel.split("/")
        for i in range(len(parts) - 1, 0, -1):
            parent = "/".join(parts[:i])
            if lookup(layers, parent) is not None:
                break
            try:
                if not stat.S_ISDIR(os.lstat(upper / parent).st_mode):
                    break
                if set(os.listdir(upper / parent)) != {parts[i]}:
                    break
            except OSError:
                break
            out.add(parent)
    return frozenset(out)
