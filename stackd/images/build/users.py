"""`--chown` names → numeric ids, from the image's own /etc/passwd and /etc/group. Pure."""

from __future__ import annotations


def _table(text: str | None) -> dict[str, tuple[int, int]]:
    out = {}
    for line in (text or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit():
            out[fields[0]] = (int(fields[2]), int(fields[3]) if fields[3].isdigit() else 0)
    return out


def resolve_chown(spec: str, passwd: str | None, group: str | None) -> tuple[int, int]:
    """"user", "user:group", "uid:gid" → (uid, gid); KeyError names what is unknown."""
    user, _, grp = spec.partition(":")
    users = _table(passwd)
    if user.isdigit():
        uid, default_gid = int(user), int(user)
    elif user in users:
        uid, default_gid = users[user]
    else:
        raise KeyError(f"user {user!r} is not in the image's /etc/passwd")
    if not grp:
        return uid, default_gid
    if grp.isdigit():
        return uid, int(grp)
    groups = {name: ids[0] for name, ids in _table(group).items()}
    if grp not in groups:
        raise KeyError(f"group {grp!r} is not in the image's /etc/group")
    return uid, groups[grp]
