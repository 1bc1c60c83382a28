"""Docker's `--detach-keys` names as the bytes a terminal sends for them. Pure."""

from __future__ import annotations

DEFAULT = "ctrl-p,ctrl-q"


def parse_detach_keys(text: str) -> bytes:
    """Docker's --detach-keys: comma-separated keys, each a character or `ctrl-X`
    (X one of a-z, @, [, \\, ], ^, _). ValueError naming what is wrong."""
    out = bytearray()
    for key in text.split(","):
        if key.startswith("ctrl-") and len(key) == 6:
            c = key[5].lower()
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
                continue
            specials = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if key[5] in specials:
                out.append(specials[key[5]])
                continue
        elif len(key) == 1 and key.isprintable():
            out += key.encode()
            continue
        raise ValueError(f"{key!r} is not a key: give a character or ctrl-<a-z@[\\]^_>")
    return bytes(out)
