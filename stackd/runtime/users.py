"""Resolving `user` ("uid", "uid:gid", "name", "name:group") against the container's
own /etc/passwd and /etc/group. Pure (it takes the files' text), but for
`read_account_files`, which reads them as the image has them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from stackd.errors import SpecError


@dataclass(frozen=True, slots=True)
class ResolvedUser:
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary, in order, without duplicates
    home: str


def _table(text: str, width: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) >= width:
            rows.append(fields)
    return rows


# Far above any real passwd or group file; a bound on what an image can make us read.
MAX_ACCOUNT_FILE = 4 << 20


def read_account_files() -> tuple[str, str]:
    """/etc/passwd and /etc/group as this process sees them ("" for a missing one):
    what `resolve_user` reads, called from inside a container's root."""
    return _account_file("/etc/passwd"), _account_file("/etc/group")


def _account_file(path: str) -> str:
    """The file's text, if it is a regular file of sane size. The image decides what
    the path is: a FIFO would block the container's setup (or an `exec --user`) until
    a timeout, a link to /dev/zero would be read until memory runs out — so it is
    opened without blocking and checked before a byte is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SpecError(f"the image's {path} is not a regular file",
                            hint=f"make {path} a plain file in the image, or rebuild it")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ACCOUNT_FILE:
                raise SpecError(f"the image's {path} is larger than "
                                f"{MAX_ACCOUNT_FILE >> 20} MiB",
                                hint=f"no real {path} is; rebuild the image")
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", errors="replace")


def resolve_user(user: str, additional_groups: tuple[str, ...], passwd: str,
                 group: str) -> ResolvedUser:
    users = _table(passwd, 7)
    groups = _table(group, 4)
    name_part, _, group_part = user.partition(":")
    name_part = name_part or "0"

    entry = next((u for u in users if u[0] == name_part), None)
    if entry is None and name_part.isdigit():
        entry = next((u for u in users if u[2] == name_part), None)
    if entry is None and not name_part.isdigit():
        raise SpecError(f"user {name_part!r} is not in the container's /etc/passwd",
                        hint="use a numeric uid or add the user to the image")
    uid = int(entry[2]) if entry else int(name_part)
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry else "/"
    username = entry[0] if entry else None

    if group_part:
        gid = _group_id(group_part, groups)

    supplementary: list[int] = []
    if username is not None and not group_part:
        # Docker adds every group that lists the user, when no group was forced.
        for g in groups:
            if username in g[3].split(","):
                supplementary.append(int(g[2]))
    for extra in additional_groups:
        supplementary.append(_group_id(extra, groups))
    seen: list[int] = []
    for group_id in [gid, *supplementary]:
        if group_id not in seen:
            seen.append(group_id)
    return ResolvedUser(uid=uid, gid=gid, groups=tuple(seen), home=home)


def _group_id(name: str, groups: list[list[str]]) -> int:
    entry = next((g for g in groups if g[0] == name), None)
    if entry is not None:
        return int(entry[2])
    if name.isdigit():
        return int(name)
    raise SpecError(f"group {name!r} is not in the container's /etc/group",
                    hint="use a numeric gid or add the group to the image")
