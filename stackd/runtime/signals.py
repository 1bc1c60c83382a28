"""A signal as the runtime takes it: a name (`SIGTERM`, `term`, `HUP`) or a number."""

from __future__ import annotations

import signal

from stackd.errors import UsageError

_BY_NAME = {s.name: s for s in signal.Signals}


def signal_number(name: object) -> int:
    """The signal `name` means; UsageError, naming it, for what is none."""
    hint = "use e.g. SIGTERM, SIGKILL, HUP, 9"
    if isinstance(name, int) and not isinstance(name, bool):
        key = str(name)
    elif isinstance(name, str):
        key = name.upper()
    else:
        raise UsageError(f"a signal is a name or a number, not {name!r}", hint=hint)
    if key.isdigit():
        if not 0 < int(key) <= signal.SIGRTMAX:
            raise UsageError(f"no signal number {key}", hint=hint)
        return int(key)
    if not key.startswith("SIG"):
        key = "SIG" + key
    if key not in _BY_NAME:
        raise UsageError(f"unknown signal {name!r}", hint=hint)
    return int(_BY_NAME[key])
