"""A container's processes as `ps -ef` on the host shows them: what `top` lists.

Docker's `top` runs `ps -ef` and keeps the rows of the container's PIDs; here the
PIDs come from the container's cgroup and each row from /proc, in the same columns
(host PIDs, users by the host's names). A command line is the container's to write:
what a terminal would take as a control sequence is shown as `?`, as ps shows it.
"""

from __future__ import annotations

import os
import pwd
import time
from dataclasses import dataclass
from pathlib import Path

from stackd.printable import shown

TITLES = ("UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD")
Rows = list[list[str]]  # one per process, a cell per title
PTS_MAJORS = range(136, 144)  # Unix98 pseudo-terminals (devices.txt)
TTY_MAJOR = 4


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What a row is made from, as /proc gives it."""
    pid: int
    ppid: int
    uid: int  # effective
    tty_nr: int
    cpu_ticks: int  # utime + stime
    start_ticks: int  # since boot
    comm: str
    argv: tuple[str, ...]


def read(pid: int, proc: Path = Path("/proc")) -> ProcStat | None:
    """None if the process is gone (it may exit while it is read)."""
    base = proc / str(pid)
    try:
        stat = (base / "stat").read_bytes().decode(errors="replace")
        status = (base / "status").read_bytes().decode(errors="replace")
        cmdline = (base / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parentheses: it ends at the last ')'.
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    uid = next(int(line.split()[2]) for line in status.splitlines()
               if line.startswith("Uid:"))
    argv = tuple(a.decode(errors="replace") for a in cmdline.rstrip(b"\0").split(b"\0")) \
        if cmdline.strip(b"\0") else ()  # empty: a kernel thread, or a zombie
    return ProcStat(pid=pid, ppid=int(fields[1]), uid=uid, tty_nr=int(fields[4]),
                    cpu_ticks=int(fields[11]) + int(fields[12]),
                    start_ticks=int(fields[19]), comm=comm, argv=argv)


def boot_time(proc: Path = Path("/proc")) -> float:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def rows(stats: list[ProcStat], *, now: float, booted: float, hz: int,
         user_name: dict[int, str] | None = None) -> Rows:
    """The `ps -ef` rows of `stats`, by PID (pure: the clock and users are given)."""
    names = user_name or {}
    out = []
    for s in sorted(stats, key=lambda s: s.pid):
        started = booted + s.start_ticks / hz
        cpu = s.cpu_ticks / hz
        elapsed = max(now - started, 1e-9)
        out.append([names.get(s.uid, str(s.uid)), str(s.pid), str(s.ppid),
                    str(min(int(100 * cpu / elapsed), 99)), _stime(started, now),
                    _tty(s.tty_nr), _cpu_time(cpu), _command(s)])
    return out


def _stime(started: float, now: float) -> str:
    then, today = time.localtime(started), time.localtime(now)
    if then[:3] == today[:3]:
        return time.strftime("%H:%M", then)
    if then.tm_year == today.tm_year:
        return time.strftime("%b%d", then)
    return str(then.tm_year)


def _tty(tty_nr: int) -> str:
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if major in PTS_MAJORS:
        return f"pts/{(major - PTS_MAJORS.start) * 256 + minor}"
    if major == TTY_MAJOR and tty_nr:
        return f"tty{minor}"
    return "?"


def _cpu_time(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    text = f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days}-{text}" if days else text


def _command(s: ProcStat) -> str:
    return shown(" ".join(s.argv) if s.argv else f"[{s.comm}]")


def table(pids: list[int], proc: Path = Path("/proc")) -> Rows:
    """The rows for these PIDs now (blocking: reads /proc and the user database)."""
    stats = [s for pid in pids if (s := read(pid, proc)) is not None]
    names = {}
    for uid in {s.uid for s in stats}:
        try:
            names[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            pass
    return rows(stats, now=time.time(), booted=boot_time(proc),
                hz=os.sysconf("SC_CLK_TCK"), user_name=names)
