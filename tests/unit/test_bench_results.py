"""bench/run's one table: a failed peer shows as failed with its reason, never a time;
ratios are ours over the peer's, from the same run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from results import Peer, Report, Row, table, to_json


def test_failed_peer_has_its_reason_and_no_ratio() -> None:
    report = Report([
        Row("run_rm", "run --rm IMG true (none)", 0.1, peer=Peer.ok("podman (runc)",
            [0.3, 0.25, 0.2]), goal="<= 0.5x podman", met=True, samples=3),
        Row("run_rm", "run --rm IMG true (none)", 0.1,
            peer=Peer.failed("podman (crun)", "crun: cgroups in hybrid mode not supported")),
    ])
    lines = table(report).splitlines()
    assert lines[1].split() == ["run_rm", "run", "--rm", "IMG", "true", "(none)", "100",
                                "ms", "podman", "(runc)", "250", "ms", "0.40", "<=", "0.5x",
                                "podman", "yes"]
    assert "failed [1]" in lines[2] and "0." not in lines[2].split("failed")[1]
    assert lines[3] == "[1] podman (crun): crun: cgroups in hybrid mode not supported"
    rows = json.loads(to_json(report))["rows"]
    assert [r["ratio"] for r in rows] == [0.4, None]
    assert rows[1]["peer"] == {"name": "podman (crun)", "status": "failed", "value": None,
                               "reason": "crun: cgroups in hybrid mode not supported"}
