"""A tmpfs mount written as Docker's `--tmpfs` takes it — `/run:size=64m,mode=1777` —
in a service's `tmpfs:` list and in `stackd run --tmpfs`: the one reading of both.

Docker mounts every tmpfs `noexec,nosuid,nodev` and lets the options turn `exec` back
on; a later option wins over an earlier one (`noexec,exec` is exec), as its merge does.
"""

from __future__ import annotations

from dataclasses import dataclass

from stackd.spec.units import parse_bytes

# The options with nothing to change here: the defaults, and what Linux ignores.
_NO_OPS = frozenset({"nosuid", "nodev", "rprivate", "private"})
OPTIONS_HINT = ("options are size=64m, mode=1777, uid=N, gid=N, exec, noexec, ro and rw "
                "(e.g. /run:size=64m,mode=1777)")


@dataclass(frozen=True)
class Tmpfs:
    target: str
    size: int | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    exec: bool = False
    readonly: bool = False


def parse_tmpfs(text: str) -> Tmpfs:
    """`/path[:opt,opt=value,…]`. Raises ValueError naming what is wrong."""
    target, _, opts = text.partition(":")
    if not target.startswith("/"):
        raise ValueError(f"tmpfs {text!r}: the path must be absolute")
    fields: dict[str, int | bool] = {}
    for opt in filter(None, opts.split(",")):
        key, eq, value = opt.partition("=")
        number = _number(text, opt, key, value) if eq else None
        if key == "size" and eq:
            fields["size"] = _size(text, value)
        elif key in ("mode", "uid", "gid") and number is not None:
            fields[key] = number
        elif not eq and key in ("exec", "noexec"):
            fields["exec"] = key == "exec"
        elif not eq and key in ("ro", "rw"):
            fields["readonly"] = key == "ro"
        elif not eq and key in _NO_OPS:
            pass
        else:
            raise ValueError(f"tmpfs {text!r}: option {opt!r} is not supported")
    return Tmpfs(target=target, **fields)  # type: ignore[arg-type]


def _size(text: str, value: str) -> int:
    try:
        return parse_bytes(value)
    except ValueError:
        raise ValueError(f"tmpfs {text!r}: size {value!r} is not a size like 64m") from None


def _number(text: str, opt: str, key: str, value: str) -> int | None:
    """mode is octal, uid and gid decimal; None for a key that is not one of them."""
    if key not in ("mode", "uid", "gid"):
        return None
    try:
        number = int(value, 8 if key == "mode" else 10)
    except ValueError:
        number = -1
    limit = 0o7777 if key == "mode" else 2**32 - 2
    if not 0 <= number <= limit:
        what = "an octal mode like 1777" if key == "mode" else "a numeric id"
        raise ValueError(f"tmpfs {text!r}: {opt!r} needs {what}")
    return number
