"""The records table the daemon writes for the resolver process: a round trip keeps
every answer (who sees what, readiness, static names), and garbage is refused."""

from __future__ import annotations

import json

import pytest

from stackd.netbridge.dns import Records, TableError

GATEWAYS = {"p_front": "10.0.0.1", "p_back": "10.0.1.1"}


def filled() -> Records:
    r = Records()
    r.add("p_front", "web-1", "10.0.0.2", ["p-web-1", "web"])
    r.add("p_front", "web-2", "10.0.0.3", ["p-web-2", "web"])
    r.add("p_front", "cli-1", "10.0.0.4", ["p-cli-1", "cli"])
    r.add("p_back", "db-1", "10.0.1.2", ["p-db-1", "db"])
    r.add("p_back", "cli-1", "10.0.1.3", ["p-cli-1", "cli"], {"database": "db"})
    r.set_records("p_back", "legacy", ["192.0.2.10"])
    r.set_ready("web-2", False)
    r.set_ready("cli-1", False, running=True)  # starting: answered for its own names
    r.set_ready("gone-1", False)  # never added: not written
    return r


def test_a_round_trip_answers_the_same() -> None:
    before = filled()
    table = json.loads(json.dumps(before.table(GATEWAYS)))  # as the file holds it
    assert (table["unready"], table["running_unready"]) == (["cli-1", "web-2"], ["cli-1"])
    after, gateways = Records.from_table(table)
    assert gateways == GATEWAYS
    for source in ("10.0.0.2", "10.0.0.4", "10.0.1.2", "10.9.9.9"):
        for name in ("web", "db", "cli", "legacy", "p-web-2", "nope", "database"):
            assert after.lookup(source, name) == before.lookup(source, name), (source, name)
    assert after.table(gateways) == table
    assert after.lookup("10.0.1.3", "database") == ["10.0.1.2"]


def test_a_resolver_of_an_older_stackd_reads_a_table_with_links() -> None:
    """The link aliases are a key of their own: a resolver that predates them (it
    outlives a daemon's upgrade) still serves everything else."""
    table = filled().table(GATEWAYS)
    assert table["links"] == [["p_back", "cli-1", "database", "db"]]
    assert all(len(row) == 4 for row in table["endpoints"])
    del table["links"]
    older, _ = Records.from_table(table)
    assert older.lookup("10.0.1.3", "db") == ["10.0.1.2"]
    assert older.lookup("10.0.1.3", "database") is None


def test_a_table_of_an_older_daemon_counts_its_unready_as_stopped() -> None:
    table = filled().table(GATEWAYS)
    del table["running_unready"]
    older, _ = Records.from_table(table)
    assert older.lookup("10.0.0.2", "cli") is None
    assert filled().lookup("10.0.0.2", "cli") == ["10.0.0.4"]


def test_rotation_carries_over_a_reload() -> None:
    r = Records()
    r.add("n", "a", "10.0.0.2", ["api"])
    r.add("n", "b", "10.0.0.3", ["api"])
    r.add("n", "c", "10.0.0.4", ["c"])
    first = r.lookup("10.0.0.4", "api")
    again, _ = Records.from_table(r.table({"n": "10.0.0.1"}), turns=r._turn)
    assert again.lookup("10.0.0.4", "api") != first


@pytest.mark.parametrize("table", [
    None, [], {"version": 2}, {"version": 1},
    {"version": 1, "networks": {}, "endpoints": [["n", "c"]], "static": {}, "unready": []},
    {"version": 1, "networks": [], "endpoints": 5, "static": {}, "unready": []},
])
def test_garbage_is_refused(table: object) -> None:
    with pytest.raises(TableError):
        Records.from_table(table)
