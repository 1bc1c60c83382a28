"""Small stacks written by the test: placement refusal, build on `up`, `logs -f`
across restarts, `up` attached (Ctrl-C stops)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, restart_daemon, torn_down
from support.psrows import ps_rows

from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    """An empty project directory `small` and a CLI in it; torn down after."""
    work = tmp_path / "small"
    work.mkdir()
    with torn_down(CLI(no_leaks, work)) as cli:
        yield cli


def ps(cli: CLI, *args: str) -> list[dict]:
    return ps_rows(cli("ps", "--format", "json", *args).stdout)


def wait_for(predicate, timeout: float = 15, step: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")


def sleeper(name: str, *lines: str) -> str:
    """A service of the demo image that sleeps, with these lines of its own."""
    return (f"  {name}:\n    image: stackd-demo/busybox:latest\n    pull_policy: never\n"
            "    command: [sleep, '1000']\n" + "".join(f"    {line}\n" for line in lines))


def test_overcommitted_stack_is_refused_before_anything_starts(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n" + sleeper("ok") + sleeper(
            "hog", "deploy:", "  resources:", "    reservations:", "      memory: 64000g"))
    r = stack("up", "-d", check=False)
    assert r.returncode != 0
    err = r.stderr + r.stdout
    assert "hog" in err, err
    assert "memory" in err.lower(), err
    assert ps(stack, "-a") == []


def built_app(stack: CLI, dockerfile_body: str, image: str | None = None) -> None:
    """A service `app` built from ./app (the demo image plus `dockerfile_body`) that
    prints /greeting and sleeps."""
    (stack.cwd / "app").mkdir(exist_ok=True)
    (stack.cwd / "app" / "Dockerfile").write_text(
        f"FROM stackd-demo/busybox:latest\n{dockerfile_body}")
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n"
        "  app:\n    build: ./app\n" + (f"    image: {image}\n" if image else "")
        + "    command: [sh, -c, 'cat /greeting; exec sleep 1000']\n"
        "    stop_signal: SIGKILL\n")


def test_up_builds_a_missing_build_image(stack: CLI) -> None:
    (stack.cwd / "app").mkdir()
    (stack.cwd / "app" / "greeting").write_text("built by stackd\n")
    built_app(stack, "COPY greeting /greeting\n", image="small-app:dev")
    stack("up", "-d")
    rows = ps(stack)
    assert [r["service"] for r in rows] == ["app"]
    assert rows[0]["state"] == "running"
    out = wait_for(lambda: "built by stackd" in stack("logs", "app").stdout and "ok")
    assert out


def test_up_no_build_uses_a_built_image_and_never_builds(stack: CLI) -> None:
    built_app(stack, "RUN echo one > /greeting\n")
    both = stack("up", "-d", "--build", "--no-build", check=False)
    assert both.returncode == 2 and "not allowed with" in both.stderr, both.stderr
    refused = stack("up", "-d", "--no-build", check=False)
    assert refused.returncode != 0
    err = refused.stderr + refused.stdout
    assert "service 'app' needs its image built" in err and "--no-build" in err, err
    assert "Traceback" not in err and "ExceptionGroup" not in err
    assert ps(stack, "-a") == []
    assert "small-app" not in stack("images").stdout  # nothing was built

    # `app` is the service (beside its stack file), not the directory ./app: built
    # under the service's image name, as Compose's `build app`.
    stack("build", "app")
    assert "small-app" in stack("images").stdout
    (stack.cwd / "app" / "Dockerfile").write_text(
        "FROM stackd-demo/busybox:latest\nRUN echo two > /greeting\n")
    stack("up", "-d", "--no-build")
    assert [r["state"] for r in ps(stack)] == ["running"]
    assert wait_for(lambda: "one" in stack("logs", "app").stdout)  # the image built first


def test_up_timeout_is_the_stop_grace_of_what_it_replaces(stack: CLI) -> None:
    """A container that ignores SIGTERM, with a minute's stop_grace_period: `up -t 1`
    replaces it (its config changed) after one second, not a minute."""
    compose = ("name: small\nservices:\n"
               "  stubborn:\n    image: stackd-demo/busybox:latest\n    pull_policy: never\n"
               "    stop_grace_period: 1m\n    environment: {{V: '{v}'}}\n"
               "    command: [sh, -c, 'trap \"\" TERM; while :; do sleep 1; done']\n")
    (stack.cwd / "compose.yaml").write_text(compose.format(v=1))
    stack("up", "-d")
    old = ps(stack)[0]["id"]
    (stack.cwd / "compose.yaml").write_text(compose.format(v=2))
    t0 = time.monotonic()
    stack("up", "-d", "-t", "1")
    took = time.monotonic() - t0
    rows = ps(stack)
    assert [r["state"] for r in rows] == ["running"] and rows[0]["id"] != old
    assert 1 <= took < 20, took
    # Attached, Ctrl-C stops the stack with the same grace.
    up = subprocess.Popen([sys.executable, "-m", "stackd", "up", "-t", "1"], cwd=stack.cwd,
                          env=stack.env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # following the logs by now
        t0 = time.monotonic()
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 130
        took = time.monotonic() - t0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert [r["state"] for r in ps(stack, "-a")] == ["exited"]
    assert took < 20, took
    stack("down", "-t", "0")


def test_up_v_and_rm_v_renew_only_anonymous_volumes(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n"
        + sleeper("box", "volumes: [/scratch, 'kept:/kept']", "stop_signal: SIGKILL")
        + "volumes:\n  kept: {}\n")

    def sh(script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return stack("exec", "-T", "box", "sh", "-c", script, check=check)

    def recreated() -> bool:  # a new container has a new writable layer
        return sh("test -e /layer-mark", check=False).returncode != 0

    stack("up", "-d")
    sh("echo a > /scratch/f; echo k > /kept/f; touch /layer-mark")
    stack("up", "-d", "--force-recreate")  # the new container finds its data
    assert recreated()
    assert sh("cat /scratch/f").stdout == "a\n"
    sh("touch /layer-mark")
    stack("up", "-d", "-V")  # recreated (as --force-recreate), its anonymous volume new
    assert recreated()
    gone = sh("cat /scratch/f", check=False)
    assert gone.returncode != 0 and "No such file" in gone.stderr + gone.stdout
    assert sh("cat /kept/f").stdout == "k\n"  # a named volume is kept
    sh("echo b > /scratch/f; touch /layer-mark")
    stack("up", "-d", "-V", "--no-recreate")  # nothing recreated: nothing renewed
    assert not recreated()
    assert sh("cat /scratch/f").stdout == "b\n"
    # `rm` without -v: the anonymous volume is kept, set apart (Docker's dangling
    # volume), and the next container of the slot starts with a new one, as a new
    # container of Compose's does.
    slot_volumes = {v for v in stack("volume", "ls", "-q").stdout.split()
                    if v.startswith("small_box-1_")}
    stack("rm", "-s", "box")
    stack("up", "-d")
    assert sh("cat /scratch/f", check=False).returncode != 0
    (kept,) = [v for v in stack("volume", "ls", "-q").stdout.split()
               if v.startswith("small_box-1_") and v not in slot_volumes]
    (old,) = slot_volumes
    assert kept.startswith(old + ".")
    (row,) = json.loads(stack("volume", "inspect", kept).stdout)
    assert (Path(row["mountpoint"]) / "f").read_text() == "b\n"
    # Docker's dangling volume: `volume prune` removes it; the named one stays (-a).
    pruned = stack("volume", "prune", "-f").stdout.split()
    assert kept in pruned and "small_kept" not in pruned and old not in pruned
    # `rm -v` (Compose's `rm -fsv`): the container and its anonymous volume go; the
    # named one stays, and the next up starts afresh.
    sh("echo c > /scratch/f")
    before = stack("volume", "ls", "-q").stdout.split()
    stack("rm", "-s", "-v", "box")
    assert ps(stack, "-a") == []
    # Gone, not made again empty for a container that stays gone until `up`.
    after = stack("volume", "ls", "-q").stdout.split()
    assert [v for v in before if v not in after] == [old]
    assert len(after) == len(before) - 1
    stack("up", "-d")
    assert sh("cat /scratch/f", check=False).returncode != 0
    assert sh("cat /kept/f").stdout == "k\n"
    # `down` then `up`: the same, a new anonymous volume (the named one is kept);
    # `down -v` removes the stack's volumes, those set apart too.
    sh("echo d > /scratch/f")
    stack("down")
    stack("up", "-d")
    assert sh("cat /scratch/f", check=False).returncode != 0
    assert sh("cat /kept/f").stdout == "k\n"
    stack("down", "-v")
    assert stack("volume", "ls", "-q").stdout.split() == []


def test_progress_ansi_and_dry_run_as_ci_scripts_set_them(stack: CLI) -> None:
    """`docker compose --ansi never` / `--progress plain|json|quiet` in CI scripts: the
    same flags (or COMPOSE_PROGRESS) give lines with no escape code, JSON, or nothing;
    `--dry-run up` says what it would do, a stopped container started again too."""
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n" + sleeper("a", "stop_signal: SIGKILL"))
    dry = stack("--dry-run", "up", "-d")  # what would be done, and nothing done
    assert "a-1: create — new service" in dry.stdout and ps(stack, "-a") == []
    not_yet = stack("--dry-run", "down", check=False)
    assert not_yet.returncode == 2 and "--dry-run of down is not supported" in not_yet.stderr
    as_json = stack("--progress", "json", "up", "-d")
    events = [json.loads(line) for line in as_json.stderr.splitlines()]
    assert {(e["resource"], e["state"]) for e in events} >= {("a-1", "working"),
                                                             ("a-1", "done")}
    forced = stack("--ansi", "never", "--progress", "tty", "up", "-d", "--force-recreate")
    assert "a-1" in forced.stderr and "\x1b" not in forced.stderr
    quiet = stack("up", "-d", "--force-recreate", COMPOSE_PROGRESS="quiet")
    assert (quiet.stdout, quiet.stderr) == ("", "")
    bad = stack("ps", check=False, COMPOSE_ANSI="sometimes")
    assert bad.returncode == 2 and "--ansi 'sometimes' is not one of" in bad.stderr
    assert [r["state"] for r in ps(stack)] == ["running"]
    stack("stop")  # `up` starts it again, so `--dry-run up` says so; `plan` has no drift
    assert "a-1: start — exited" in stack("--dry-run", "up", "-d").stdout
    assert "up to date" in stack("plan").stdout
    assert [r["state"] for r in ps(stack, "-a")] == ["exited"]


def test_parallel_1_makes_one_container_at_a_time(stack: CLI) -> None:
    """Compose's --parallel (COMPOSE_PARALLEL_LIMIT): at most N steps at once. With 1,
    each container's step ends before the next one's begins."""
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n"
        + "".join(sleeper(n, "stop_signal: SIGKILL") for n in ("a", "b", "c", "d")))
    up = stack("--parallel", "1", "--progress", "json", "up", "-d")
    steps = [(e["resource"], e["state"]) for e in map(json.loads, up.stderr.splitlines())
             if e.get("resource", "").endswith("-1")]
    assert len(steps) == 8, steps
    for begun, ended in zip(steps[::2], steps[1::2], strict=True):
        assert begun[0] == ended[0] and (begun[1], ended[1]) == ("working", "done"), steps
    assert [r["state"] for r in ps(stack)] == ["running"] * 4
    for bad, said in ((("--parallel", "0"), "--parallel 0: at least 1"),
                      ((), "COMPOSE_PARALLEL_LIMIT='lots' is not a number")):
        r = stack(*bad, "up", "-d", check=False, COMPOSE_PARALLEL_LIMIT="lots")
        assert r.returncode == 2 and said in r.stderr, r.stderr


def test_logs_follow_goes_on_across_a_restart(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n"
        "  counter:\n    image: stackd-demo/busybox:latest\n    pull_policy: never\n"
        "    restart: always\n    stop_signal: SIGKILL\n"
        "    volumes: [count:/count]\n"
        "    command: [sh, -c, 'n=$$(cat /count/n 2>/dev/null || echo 0); n=$$((n+1)); "
        "echo $$n > /count/n; echo run-$$n; exec sleep 1000']\n"
        "volumes:\n  count: {}\n")
    stack("up", "-d")
    first = ps(stack)[0]
    follower = subprocess.Popen([sys.executable, "-m", "stackd", "logs", "-f"],
                                cwd=stack.cwd, env=stack.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert follower.stdout is not None
    # readline blocks: a thread reads, the test waits on the queue with a deadline.
    threading.Thread(target=lambda: [lines.put(x) for x in follower.stdout],  # type: ignore[union-attr]
                     daemon=True).start()
    seen: list[str] = []

    def read_until(word: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append(line)
            if word in line:
                return
        raise AssertionError(f"{word!r} not in logs -f output:\n{''.join(seen)}")

    try:
        read_until("run-1")
        os.kill(first["pid"], signal.SIGKILL)
        read_until("run-2")
        assert follower.poll() is None, "logs -f ended at the restart"
    finally:
        follower.kill()
        follower.wait()


def test_a_stopped_container_stays_stopped_across_a_daemon_restart(stack: CLI) -> None:
    # `stop` is the user's word: neither the restart policy nor the reconcile a new
    # daemon runs for every stored stack may start it again; `start` does.
    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n"
        "  keep:\n    image: stackd-demo/busybox:latest\n    pull_policy: never\n"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n    restart: always\n"
        "  other:\n    image: stackd-demo/busybox:latest\n    pull_policy: never\n"
        "    command: [sleep, '1000']\n    stop_signal: SIGKILL\n    restart: always\n")
    stack("up", "-d")
    stack("stop", "keep")
    states = {r["service"]: r["state"] for r in ps(stack, "-a")}
    assert states == {"keep": "exited", "other": "running"}
    restart_daemon(stack, "small", stopped=["small-keep-1"])
    states = {r["service"]: r["state"] for r in ps(stack, "-a")}
    assert states == {"keep": "exited", "other": "running"}
    stack("start", "keep")
    wait_for(lambda: {r["service"]: r["state"] for r in ps(stack)} ==
             {"keep": "running", "other": "running"})


def test_a_crash_loop_shows_as_restarting_not_as_stopped(stack: CLI) -> None:
    """Docker's ps says "Restarting (1)" of a container its policy will start again,
    and lists it without -a: a crash loop is told from a container that stopped."""
    def exits(name: str, code: int, policy: str) -> str:
        return (f"  {name}:\n    image: stackd-demo/busybox:latest\n    pull_policy: never\n"
                f"    command: [sh, -c, 'sleep 0.2; exit {code}']\n    restart: {policy}\n")

    (stack.cwd / "compose.yaml").write_text(
        "name: small\nservices:\n" + exits("loop", 1, "always")
        + exits("once", 2, "on-failure:1") + sleeper("up", "stop_signal: SIGKILL"))
    stack("up", "-d")

    def restarting() -> list[dict]:
        return [r for r in ps(stack) if r["State"] == "restarting" and r["service"] == "loop"]

    (row,) = wait_for(restarting)
    assert row["Status"].startswith("Restarting (1) ") and row["Status"].endswith(" ago")
    assert row["ExitCode"] == 1
    # on-failure:1 ran twice and stopped: exited, listed only with -a.
    wait_for(lambda: any(r["service"] == "once" and r["State"] == "exited"
                         for r in ps(stack, "-a")), timeout=30)
    wait_for(lambda: "small-loop-1" in stack("ps", "--status", "restarting").stdout)
    assert "once" not in {r["service"] for r in ps(stack)}
    (once,) = [r for r in ps(stack, "-a") if r["service"] == "once"]
    assert once["Status"].startswith("Exited (2) ") and once["Status"].endswith(" ago")
    # A container a user stopped is not restarting, whatever its policy.
    stack("stop", "loop")
    assert [r["State"] for r in ps(stack, "-a") if r["service"] == "loop"] == ["exited"]
    assert "loop" not in {r["service"] for r in ps(stack)}
