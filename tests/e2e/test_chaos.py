"""The daemon killed with SIGKILL at any instant: containers keep running, nothing is
duplicated or orphaned, and the stack converges once a daemon is back."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_helpers import CLI, torn_down
from support.psrows import ps_rows as parse_ps

from stackd.cli.client import Client
from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

SERVICES = 20


def chaos_stack(path: Path) -> Path:
    """20 services in five chains of four (each depends on the one before)."""
    lines = ["name: chaos", "services:"]
    for i in range(SERVICES):
        lines += [f"  s{i:02d}:", "    image: stackd-demo/busybox:latest",
                  "    pull_policy: never", '    command: ["sleep", "3600"]',
                  "    stop_signal: SIGKILL", "    restart: unless-stopped",
                  # Each round changes it, so each up recreates everything: the kills
                  # land in the middle of real work.
                  "    environment:", "      ROUND: ${ROUND:-0}"]
        if i % 4:
            lines += ["    depends_on:", f"      - s{i - 1:02d}"]
    path.mkdir(parents=True, exist_ok=True)
    (path / "compose.yaml").write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def chaos(no_leaks: Roots, demo_image: str, tmp_path: Path):
    with torn_down(CLI(no_leaks, chaos_stack(tmp_path / "chaos"))) as cli:
        yield cli


def runtime_containers(roots: Roots) -> list[dict]:
    """What the runtime itself holds, read from its run dir (no daemon involved)."""
    import trio

    from stackd.runtime.runtime import Runtime

    return [{"id": c.id, "status": c.status} for c in trio.run(Runtime(roots).list)]


def ps_rows(cli: CLI) -> list[dict]:
    return parse_ps(cli("ps", "-a", "--format", "json").stdout)


def converged(cli: CLI) -> bool:
    rows = ps_rows(cli)
    return (len(rows) == SERVICES and all(r["state"] == "running" for r in rows)
            and len({r["name"] for r in rows}) == SERVICES)


def acted_on(roots: Roots) -> set[str]:
    """The containers of the intents a killed daemon had begun and not finished (its
    journal, read from the state database as it left it)."""
    import sqlite3

    db = sqlite3.connect(f"file:{roots.state / 'stackd.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT container_id FROM intents WHERE finished IS NULL "
                          "AND container_id IS NOT NULL").fetchall()
    finally:
        db.close()
    return {r[0] for r in rows}


def wait_daemon_gone(cli: CLI, timeout: float = 15) -> None:
    """Until the killed daemon's pid file lock is free (the kernel releases it at exit)."""
    deadline = time.monotonic() + timeout
    while cli.daemon_pid() is not None:
        assert time.monotonic() < deadline, f"the daemon was still there {timeout}s after SIGKILL"
        time.sleep(0.01)


def test_sigkill_at_random_moments_during_up(chaos: CLI) -> None:
    cli = chaos
    seed = int(os.environ.get("CHAOS_SEED", time.time()))
    rng = random.Random(seed)
    print(f"chaos seed {seed}")
    cli("daemon", "status", check=False)
    kills = 0
    for round_ in range(1, 11):
        up = subprocess.Popen([sys.executable, "-m", "stackd", "up", "-d"], cwd=cli.cwd,
                              env=cli.env(ROUND=str(round_)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        try:
            # Wait for the daemon this up starts (or reuses) to answer, then kill it at a
            # random moment of the apply.
            deadline = time.monotonic() + 20
            with Client(cli.roots, autostart=False) as client:
                while not client.alive():
                    assert time.monotonic() < deadline, \
                        f"round {round_}: no daemon answered within 20 s (up: {up.poll()})"
                    time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 1.5))
            pid = cli.daemon_pid()
            if pid is not None:
                # The daemon's process group: it and any helper it forked at that instant
                # (a healthcheck exec, `unshare`), as an OOM kill or a crash of the unit
                # would take them; containers and the runtime monitor have sessions of
                # their own.
                os.killpg(pid, signal.SIGKILL)
                kills += 1
                wait_daemon_gone(cli)
            # Containers outlive the daemon: what ran when it died still runs without it
            # — but for a container the daemon was replacing or removing right then: the
            # runtime carries out a stop it was already asked for.
            running = {c["id"] for c in runtime_containers(cli.roots)
                       if c["status"] == "running"} - acted_on(cli.roots)
            up.wait(timeout=60)
        finally:
            if up.poll() is None:  # a hung up: fail (above), but leave no process behind
                up.kill()
                up.wait()
        time.sleep(0.3)
        still = {c["id"] for c in runtime_containers(cli.roots) if c["status"] == "running"}
        assert running <= still, f"died with the daemon: {sorted(running - still)}"
        print(f"kill {kills}: {len(running)} containers running, up exited {up.returncode}")
    assert kills >= 10
    print(f"containers before the last up: {len(runtime_containers(cli.roots))}")

    # A last up, with a daemon left alone, converges the stack.
    cli("up", "-d", timeout=90, ROUND="10")
    deadline = time.monotonic() + 30
    while not converged(cli):
        assert time.monotonic() < deadline, ps_rows(cli)
        time.sleep(0.5)
    rows = ps_rows(cli)
    assert sorted(r["name"] for r in rows) == [f"chaos-s{i:02d}-1" for i in range(SERVICES)]
    # No duplicates or orphans below the daemon either: the runtime holds exactly these.
    assert sorted(c["id"] for c in runtime_containers(cli.roots)) == sorted(
        r["id"] for r in rows)
    assert "nothing to do" in cli("plan", ROUND="10").stdout


def test_daemon_sigkill_keeps_containers_and_the_next_one_adopts_them(chaos: CLI) -> None:
    cli = chaos
    cli("up", "-d", timeout=180)
    before = {r["name"]: (r["id"], r["pid"]) for r in ps_rows(cli)}
    old = cli.daemon_pid()
    assert old is not None
    os.killpg(old, signal.SIGKILL)
    wait_daemon_gone(cli)
    for _, pid in before.values():
        os.kill(pid, 0)  # still running without a daemon

    # The next command starts a new daemon, which adopts them as they are.
    after = {r["name"]: (r["id"], r["pid"]) for r in ps_rows(cli)}
    assert cli.daemon_pid() not in (None, old)
    assert after == before
    assert "nothing to do" in cli("up", "-d").stderr

    # And supervises them: a container killed now is brought back by the new daemon.
    _, victim = before["chaos-s05-1"]
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while True:
        # Between the old run's delete and the new one's create it is in no list.
        row = {r["name"]: r for r in ps_rows(cli)}.get("chaos-s05-1")
        if row is not None and row["state"] == "running" and row["pid"] != victim:
            break
        assert time.monotonic() < deadline, row
        time.sleep(0.05)
    print(f"healed by the adopting daemon in {time.monotonic() - t0:.2f}s")
