"""What stackd prints of text an image or a container wrote (a command line, a name a
process gave itself): never what a terminal would take as a control sequence."""

from __future__ import annotations


def shown(text: str) -> str:
    """Each character a terminal would not print as itself (ESC, C1 controls, DEL,
    newlines) as `?`, as ps shows a command line. Pure."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?"
                                                    for c in text)


def quoted(text: str) -> str:
    """In double quotes with every such character escaped (`\\u001b`), as Go's
    strconv.Quote, which Docker's COMMAND uses. Pure."""
    import json

    inner = json.dumps(text, ensure_ascii=False)[1:-1]
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in inner) + '"'
