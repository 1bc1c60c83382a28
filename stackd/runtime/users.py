"""Resolving `user` ("uid", "uid:gid", "name", "name:group") against the container's
own /etc/passwd and /etc/group. Pure: takes the files' text.
"""

from __future__ import annotations

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


def read_account_files() -> tuple[str, str]:
    """/etc/passwd and /etc/group as this process sees them ("" for a missing one):
    what `resolve_user` reads, called from inside a container's root."""
    texts = []
    for path in ("/etc/passwd", "/etc/group"):
        try:
            with open(path) as f:
                texts.append(f.read())
        except OSError:
            texts.append("")
    return texts[0], texts[1]


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
