"""Docker's rules for what a container takes from its image when the user says nothing.

One place for them: a stack's service (`translate.py`), `stackd run IMAGE` (`daemon/single.py`)
and `stackd run SERVICE` (`daemon/oneoff.py`) all call these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def process_args(image_entrypoint: Sequence[str] | None, image_cmd: Sequence[str] | None,
                 entrypoint: Sequence[str] | None, command: Sequence[str] | None
                 ) -> tuple[str, ...]:
    """ENTRYPOINT + CMD as Docker merges them; `None` means "not set by the user".

    A user's entrypoint replaces the image's and also discards the image's CMD (never a
    command the user gave); a user's command replaces only the image's CMD.
    """
    entry = tuple(entrypoint) if entrypoint is not None else tuple(image_entrypoint or ())
    if command is not None:
        cmd = tuple(command)
    elif entrypoint is not None:
        cmd = ()
    else:
        cmd = tuple(image_cmd or ())
    return entry + cmd


def merge_env(image_env: Iterable[str], overrides: Mapping[str, str | None]) -> dict[str, str]:
    """The image's `KEY=value` list overlaid by the user's; a `None` value unsets the key
    (Compose drops a bare name the shell leaves unset)."""
    env: dict[str, str] = {}
    for kv in image_env:
        key, _, value = kv.partition("=")
        env[key] = value
    for key, val in overrides.items():
        if val is None:
            env.pop(key, None)
        else:
            env[key] = val
    return env
