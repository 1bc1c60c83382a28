"""What a load asked of the filesystem, so that a later load can tell it would come out
the same without doing it again.

Every question the loader asks of the disk goes through one `Probes`: whether a path is
a file or a directory, where a path resolves to, the working directory, and the bytes
of each file it reads. Each answer is kept; `unchanged()` asks them all again. A load
is a pure function of its options and of these answers (docs/spec.md), so a load of
the same options whose every answer is still the same would build the same stack —
including the override file or `.env` it looked for and did not find, since "no such
file" is an answer too.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

_MISSING = "missing"
# A stack or env file larger than this is refused, and a device is not read at all:
# `-f /dev/zero` read until the memory ran out. A pipe (`-f <(…)`) is read as a file.
MAX_TEXT_BYTES = 16 << 20


def _ask(kind: str, path: str) -> object:
    """One question, answered now (the answer is what `Probes` keeps and compares)."""
    if kind == "file":
        return os.path.isfile(path)
    if kind == "dir":
        return os.path.isdir(path)
    if kind == "resolve":
        return str(Path(path).resolve())
    if kind == "cwd":
        return os.getcwd()
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return _MISSING


@dataclass
class Probes:
    """The answers one load got, in the order asked (not thread-safe: one per load)."""

    answers: dict[tuple[str, str], object] = field(default_factory=dict)

    def _keep(self, kind: str, path: str | Path, answer: object) -> None:
        self.answers.setdefault((kind, str(path)), answer)

    def _asked(self, kind: str, path: str | Path) -> object:
        answer = _ask(kind, str(path))
        self._keep(kind, path, answer)
        return answer

    def is_file(self, path: str | Path) -> bool:
        return bool(self._asked("file", path))

    def is_dir(self, path: str | Path) -> bool:
        return bool(self._asked("dir", path))

    def resolve(self, path: str | Path) -> Path:
        return Path(str(self._asked("resolve", path)))

    def cwd(self) -> Path:
        return Path(str(self._asked("cwd", "")))

    def read_text(self, path: str | Path) -> str:
        """The file's text as UTF-8; its errors as open() and decode raise them (a
        missing file is kept as such: a later one there is a change)."""
        try:
            with open(path, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                    raise OSError(errno.ENODEV, "a device, not a file", str(path))
                data = f.read(MAX_TEXT_BYTES + 1)
                if len(data) > MAX_TEXT_BYTES:
                    raise OSError(errno.EFBIG, f"larger than {MAX_TEXT_BYTES >> 20} MiB",
                                  str(path))
        except FileNotFoundError:
            self._keep("read", path, _MISSING)
            raise
        self._keep("read", path, hashlib.sha256(data).hexdigest())
        # As open(path, encoding="utf-8").read() reads it: universal newlines.
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")

    def unchanged(self) -> bool:
        """Whether every question asked would be answered the same now."""
        try:
            return all(_ask(kind, path) == answer
                       for (kind, path), answer in self.answers.items())
        except (OSError, RuntimeError):  # unreadable now, a symlink loop: not the same
            return False
