"""`top`'s rows: what /proc says of a process, in `ps -ef`'s columns."""

from __future__ import annotations

import time
from pathlib import Path

from stackd.runtime.processes import TITLES, ProcStat, read, rows

HZ = 100
NOON = time.mktime((2026, 12, 5, 12, 0, 0, 0, 0, -1))


def stat(pid: int, **kw: object) -> ProcStat:
    base: dict[str, object] = dict(pid=pid, ppid=1, uid=0, tty_nr=0, cpu_ticks=0,
                                   start_ticks=0, comm="sleep", argv=("sleep", "1000"))
    return ProcStat(**{**base, **kw})  # type: ignore[arg-type]


def test_a_process_started_today_shows_its_time_others_their_day_or_year() -> None:
    booted = NOON - 3600  # 11:00
    today, = rows([stat(7, start_ticks=1800 * HZ)], now=NOON, booted=booted, hz=HZ)
    assert today[4] == "11:30"
    yesterday, = rows([stat(7)], now=NOON, booted=NOON - 86400 * 3, hz=HZ)
    assert yesterday[4] == "Dec02"
    last_year, = rows([stat(7)], now=NOON, booted=NOON - 86400 * 400, hz=HZ)
    assert last_year[4] == "2025"


def test_cpu_time_and_share() -> None:
    busy, idle, long = rows(
        [stat(1, cpu_ticks=90 * HZ, start_ticks=0),  # 90 s of CPU in 100 s: 90%
         stat(2, cpu_ticks=0, start_ticks=50 * HZ),
         stat(3, cpu_ticks=(2 * 86400 + 3 * 3600 + 4 * 60 + 5) * HZ)],
        now=NOON, booted=NOON - 100, hz=HZ)
    assert (busy[3], busy[6]) == ("90", "00:01:30")
    assert (idle[3], idle[6]) == ("0", "00:00:00")
    assert long[3] == "99" and long[6] == "2-03:04:05"  # capped, as ps caps it


def test_terminals_users_and_order() -> None:
    out = rows([stat(9, tty_nr=(136 << 8) | 3, uid=1000), stat(4, tty_nr=(4 << 8) | 1),
                stat(5, uid=0)], now=NOON, booted=NOON - 10, hz=HZ, user_name={0: "root"})
    assert [r[1] for r in out] == ["4", "5", "9"]  # by PID
    assert [r[5] for r in out] == ["tty1", "?", "pts/3"]
    assert [r[0] for r in out] == ["root", "root", "1000"]  # no name: the number
    assert len(out[0]) == len(TITLES)


def test_a_command_line_cannot_write_control_sequences_to_the_terminal() -> None:
    hostile, kernel = rows([stat(1, argv=("sh", "-c", "\x1b]0;owned\x07\x1b[2J")),
                            stat(2, argv=(), comm="kworker/0:1")],
                           now=NOON, booted=NOON - 10, hz=HZ)
    assert hostile[7] == "sh -c ?]0;owned??[2J"
    assert kernel[7] == "[kworker/0:1]"


def test_read_takes_comm_up_to_its_last_parenthesis(tmp_path: Path) -> None:
    p = tmp_path / "42"
    p.mkdir()
    (p / "stat").write_text("42 (a) b (c)) S 7 42 42 34816 42 4194560 1 0 0 0 "
                            "12 8 0 0 20 0 1 0 5000 1000 100 0\n")
    (p / "status").write_text("Name:\ta) b (c)\nUid:\t1000\t33\t33\t33\n")
    (p / "cmdline").write_bytes(b"python3\0-c\0\0x\0")
    s = read(42, tmp_path)
    assert s == ProcStat(pid=42, ppid=7, uid=33, tty_nr=34816, cpu_ticks=20,
                         start_ticks=5000, comm="a) b (c)", argv=("python3", "-c", "", "x"))
    assert read(43, tmp_path) is None  # gone
