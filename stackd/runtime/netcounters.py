"""A container's network traffic as `stats` shows it (Docker's NET I/O): the bytes its
interfaces received and sent, from /proc/<pid>/net/dev — which shows the network
namespace of that process, so the container's own, read from the host."""

from __future__ import annotations

from pathlib import Path


def parse_net_dev(text: str) -> tuple[int, int]:
    """(received, sent) bytes over every interface but loopback, whose traffic never
    leaves the container. Pure."""
    rx = tx = 0
    for line in text.splitlines()[2:]:  # two header lines
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() == "lo" or len(fields) < 9:
            continue
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def net_bytes(pid: int, proc: Path = Path("/proc")) -> tuple[int, int]:
    """(received, sent) of the process's network namespace; (0, 0) once it is gone."""
    try:
        return parse_net_dev((proc / str(pid) / "net" / "dev").read_text())
    except (OSError, ValueError):
        return 0, 0
