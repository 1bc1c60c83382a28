"""`RUN --mount=…`: what each flag asks for, parsed and checked (pure), and which of the
mount points a RUN step left behind belong to no layer.

The four types BuildKit's Dockerfile frontend has, as it reads them:

- `type=bind` (the default): `source` (a path in the build context, or in the stage or
  image `from` names; the whole of it when absent) at `target`, read-only unless
  `rw`/`readwrite` (then writes are thrown away after the step);
- `type=cache`: a directory kept between builds (`id`, by default the target), owned
  by `uid`:`gid` with `mode` when first made, `sharing` shared, private or locked;
- `type=tmpfs`: an empty tmpfs (`size` in bytes);
- `type=secret`: a build secret's file (build/secrets.py).

A relative target is under the step's working directory. `type=ssh` is refused by
name: stackd forwards no SSH agent.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stackd.images.build.dockerfile import Instruction, expand
from stackd.images.build.mergedview import lookup
from stackd.images.models import in_image

_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
SHARING = ("shared", "private", "locked")


@dataclass(frozen=True, slots=True)
class SecretMount:
    id: str
    target: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class BindMount:
    target: str
    source: str = ""  # relative to the context, or absolute in `from`; "" is the whole of it
    from_: str | None = None  # a stage's name or index, or an image
    readwrite: bool = False


@dataclass(frozen=True, slots=True)
class CacheMount:
    id: str
    target: str
    readonly: bool = False
    sharing: str = "shared"
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True, slots=True)
class TmpfsMount:
    target: str
    size: int | None = None


RunMount = SecretMount | BindMount | CacheMount | TmpfsMount

# The options each type takes, beside `type` and the target's three spellings.
_OPTIONS = {
    "bind": {"source", "src", "from", "rw", "readwrite", "ro", "readonly"},
    "cache": {"id", "ro", "readonly", "sharing", "mode", "uid", "gid"},
    "tmpfs": {"size"},
    "secret": {"id", "required"},
}


def parse_mounts(ins: Instruction, file: str, workdir: str,
                 env: Mapping[str, str] | None = None) -> list[RunMount]:
    """The RUN's `--mount` flags, each checked, their values expanded with `env` (build
    args and ENV, as BuildKit does); an error names the line and the flag."""
    out: list[RunMount] = []
    for text in filter(None, ins.flags.get("mount", "").split("\n")):
        out.append(_parse_one(ins, file, workdir, text, dict(env or {})))
    targets = [m.target for m in out]
    for t in targets:
        if targets.count(t) > 1:
            raise ins.error(file, f"two --mount flags have the target {t}",
                            hint="give each mount its own target")
    return out


def _parse_one(ins: Instruction, file: str, workdir: str, text: str,
               env: dict[str, str]) -> RunMount:
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        try:
            fields[key.strip().lower()] = expand(value, env) if sep else "true"
        except ValueError as err:
            raise ins.error(file, f"--mount={text}: {err}") from None
    kind = fields.pop("type", "bind")
    if kind == "ssh":
        raise ins.error(file, "--mount=type=ssh is not supported",
                        hint="stackd forwards no SSH agent into builds; fetch what the step "
                             "needs into the build context first")
    if kind not in _OPTIONS:
        raise ins.error(file, f"--mount=type={kind} is not a mount type",
                        hint="use type=bind, cache, tmpfs or secret")
    raw_target = fields.pop("target", fields.pop("dst", fields.pop("destination", "")))
    unknown = sorted(set(fields) - _OPTIONS[kind])
    if unknown:
        raise ins.error(file, f"--mount={text}: unsupported option {', '.join(unknown)}",
                        hint=f"a {kind} mount takes target, "
                             + ", ".join(sorted(_OPTIONS[kind])))

    def target(default: str = "") -> str:
        t = raw_target or default
        if not t:
            raise ins.error(file, f"--mount={text}: a {kind} mount needs a target",
                            hint="e.g. target=/root/.cache")
        return _in_workdir(ins, file, text, workdir, t)

    def flag(*names: str) -> bool:
        return any(fields.get(n, "false").lower() in ("true", "1") for n in names)

    if kind == "secret":
        sid = fields.get("id", "") or os.path.basename(raw_target)
        if not sid or not set(sid) <= _ID:
            raise ins.error(file, f"--mount={text}: the secret needs an id of letters, "
                            "digits, '_', '.' or '-'", hint="e.g. --mount=type=secret,id=token")
        return SecretMount(sid, target(f"/run/secrets/{sid}"), flag("required"))
    if kind == "bind":
        source = fields.get("source", fields.get("src", ""))
        if "\x00" in source:
            raise ins.error(file, f"--mount={text}: the source holds a NUL byte")
        return BindMount(target(), source, fields.get("from") or None,
                         flag("rw", "readwrite") and not flag("ro", "readonly"))
    if kind == "tmpfs":
        size = None
        if "size" in fields:
            size = _number(ins, file, text, "size", fields["size"], 10)
        return TmpfsMount(target(), size)
    t = target()
    sharing = fields.get("sharing", "shared")
    if sharing not in SHARING:
        raise ins.error(file, f"--mount={text}: sharing={sharing} is not one of "
                        + ", ".join(SHARING), hint="e.g. sharing=locked")
    mode = _number(ins, file, text, "mode", fields.get("mode", "0755"), 8)
    if mode > 0o7777:
        raise ins.error(file, f"--mount={text}: mode {fields['mode']} is not a file mode",
                        hint="e.g. mode=0755")
    return CacheMount(fields.get("id") or t, t, flag("ro", "readonly"), sharing, mode,
                      _number(ins, file, text, "uid", fields.get("uid", "0"), 10),
                      _number(ins, file, text, "gid", fields.get("gid", "0"), 10))


def _in_workdir(ins: Instruction, file: str, text: str, workdir: str, target: str) -> str:
    path = in_image(target, workdir or "/")
    if path == "/" or "\x00" in path:
        raise ins.error(file, f"--mount={text}: cannot mount over the root",
                        hint="choose a directory such as /root/.cache")
    return path


def _number(ins: Instruction, file: str, text: str, name: str, value: str, base: int) -> int:
    try:
        n = int(value, base)
    except ValueError:
        n = -1
    if n < 0 or n >= 2 ** 32:
        raise ins.error(file, f"--mount={text}: {name}={value} is not a "
                        + ("number in octal" if base == 8 else "non-negative number"),
                        hint=f"e.g. {name}=" + ("0755" if base == 8 else "1000"))
    return n


def traces(layers: tuple[str, ...], upper: Path, targets: Iterable[str]) -> frozenset[str]:
    """Paths (relative, as the layer writer takes them) of the mount points a RUN's
    mounts left in `upper` that the image did not have: the target, and each directory
    made for it that holds nothing else. Read with lstat only: the RUN may have put a
    symlink anywhere, and nothing here follows one."""
    out: set[str] = set()
    for target in targets:
        rel = target.strip("/")
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
                if set(os.listdir(upper / parent)) - _out_names(out, parent):
                    break
            except OSError:
                break
            out.add(parent)
    return frozenset(out)


def _out_names(out: set[str], parent: str) -> set[str]:
    """The names directly under `parent` that are already left out."""
    prefix = parent + "/"
    return {p[len(prefix):] for p in out if p.startswith(prefix) and "/" not in p[len(prefix):]}
