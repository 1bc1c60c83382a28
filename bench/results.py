"""What one bench/run measurement is, and the one table and JSON made of them.

A Row is one figure of ours beside one peer's, both medians of the same run. A peer
that could not be measured carries its reason (`failed: …`, `not installed`) and no
time: a failed peer is never timed, and never silently left out.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

PeerStatus = Literal["ok", "failed", "not installed", "none"]


@dataclass(frozen=True)
class Peer:
    name: str
    status: PeerStatus
    value: float | None = None  # the peer's median, in the row's unit
    reason: str = ""

    @staticmethod
    def ok(name: str, samples: list[float]) -> Peer:
        return Peer(name, "ok", statistics.median(samples))

    @staticmethod
    def failed(name: str, reason: str) -> Peer:
        return Peer(name, "failed", None, reason)

    @staticmethod
    def missing(name: str, hint: str = "bench/run --install-peers") -> Peer:
        return Peer(name, "not installed", None, hint)


NO_PEER = Peer("-", "none")


@dataclass(frozen=True)
class Row:
    """`what`: the figure; `value`: ours (median) in `unit`; `goal`: the issue's, as
    text; `met`: whether ours meets it (None: a figure without a goal)."""

    bench: str
    what: str
    value: float | None
    unit: Literal["s", "q/s", "MB", "MiB", "x", "%", "Gbit/s", "MB/s"] = "s"
    peer: Peer = NO_PEER
    goal: str = ""
    met: bool | None = None
    samples: int = 0
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """Ours over the peer's (for times: below 1 is faster than the peer)."""
        if self.value is None or self.peer.value in (None, 0.0):
            return None
        return self.value / self.peer.value  # type: ignore[operator]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    host: dict[str, str] = field(default_factory=dict)

    def add(self, rows: list[Row]) -> None:
        self.rows.extend(rows)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        if value < 0.001:
            return f"{value * 1e6:.0f} us"
        if value < 0.01:
            return f"{value * 1000:.1f} ms"
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    if unit == "q/s":
        return f"{value / 1000:.1f}k q/s"
    if unit in ("Gbit/s", "MB/s"):
        return f"{value:.2f} {unit}"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:.2f} {unit}"


def table(report: Report) -> str:
    """The one table: a line per figure and peer; why a peer failed, below it."""
    head = ("bench", "figure", "stackd", "peer", "peer's", "ratio", "goal", "met")
    lines = [head]
    reasons: list[str] = []
    for r in report.rows:
        peer = r.peer
        if peer.status == "ok":
            theirs = fmt(peer.value, r.unit)
        elif peer.status == "none":
            theirs = ""
        else:
            reason = f"{peer.name}: {peer.reason}"
            if reason not in reasons:
                reasons.append(reason)
            theirs = f"{peer.status} [{reasons.index(reason) + 1}]"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        met = {None: "", True: "yes", False: "NO"}[r.met]
        ours = fmt(r.value, r.unit) if r.value is not None else r.note
        lines.append((r.bench, r.what, ours,
                      peer.name if peer.status != "none" else "", theirs, ratio, r.goal, met))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
           for line in lines]
    out += [f"[{i}] {reason}" for i, reason in enumerate(reasons, 1)]
    return "\n".join(out)


def to_json(report: Report) -> str:
    return json.dumps({"host": report.host,
                       "rows": [{**asdict(r), "ratio": r.ratio} for r in report.rows]},
                      indent=2)


def save(report: Report, out: Path, stamp: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"run-{stamp}.json"
    path.write_text(to_json(report) + "\n")
    (out / "last.json").write_text(to_json(report) + "\n")
    return path
