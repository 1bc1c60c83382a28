"""`stackd run SERVICE CMD…`: compose's one-off container, with the real daemon and
runtime: exit code, the service's env and networks, depends_on, the controller leaving
one-offs alone, --rm, and `down` removing what is kept."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, Terminal, torn_down
from support.freeaddrs import free_port
from support.psrows import ps_rows

from stackd.leaks import find_leaks
from stackd.roots import Roots

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = f"""\
name: oneoff
services:
  db:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
  app:
    image: {DEMO_IMAGE}
    pull_policy: never
    environment: {{GREETING: hello}}
    depends_on: [db]
    volumes: [/scratch]
    command: [sleep, "1000"]
    stop_signal: SIGKILL
"""


@pytest.fixture
def stack(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "oneoff"
    work.mkdir()
    (work / "compose.yaml").write_text(STACK)
    with torn_down(CLI(no_leaks, work)) as cli:
        yield cli


def ps(cli: CLI) -> list[dict]:
    return ps_rows(cli("ps", "-a", "--format", "json").stdout)


def names(cli: CLI) -> list[str]:
    return sorted(r["name"] for r in ps(cli))


def test_run_passes_exit_code_env_and_dns_after_its_dependency(stack: CLI) -> None:
    # --no-deps: only the one-off, which finds no db to resolve.
    r = stack("run", "--rm", "--no-deps", "app", "sh", "-c", "nslookup db", check=False)
    assert r.returncode != 0
    assert names(stack) == [], "--no-deps started a dependency or --rm left the one-off"
    # -e/-w/-u over the service's, --entrypoint over the image's.
    r = stack("run", "--rm", "--no-deps", "-e", "GREETING=bye", "-w", "/tmp", "-u", "1000",
              "--entrypoint", "sh", "app", "-c", 'echo "$GREETING $(pwd) $(id -u)"')
    assert r.stdout == "bye /tmp 1000\n"
    # A bare -e KEY takes this shell's value, and is left out when it has none.
    r = stack("run", "--rm", "--no-deps", "-e", "FROM_HERE", "-e", "NOT_SET", "app", "sh",
              "-c", 'echo "$FROM_HERE ${NOT_SET-unset}"', FROM_HERE="here")
    assert r.stdout == "here unset\n", r.stderr

    r = stack("run", "--rm", "app", "sh", "-c",
              "echo greeting=$GREETING; nslookup db && echo resolved; exit 3", check=False)
    assert r.returncode == 3, r.stderr
    assert "greeting=hello" in r.stdout
    assert "resolved" in r.stdout, r.stdout
    assert "db-1: create" in r.stderr  # the dependency's progress, shown
    rows = ps(stack)
    assert [(row["service"], row["state"]) for row in rows] == [("db", "running")], rows


def test_run_starts_a_stopped_dependency_and_runs_a_finished_job_again(stack: CLI
                                                                        ) -> None:
    """Compose's `run` starts its dependencies as `up` does. Once the stack kept them,
    stackd's left a dependency the user had stopped stopped (the one-off then found no
    db) and a finished `migrate` unrun."""
    (stack.cwd / "compose.yaml").write_text(STACK.replace(
        "depends_on: [db]", "depends_on: {db: {condition: service_started}, "
        "migrate: {condition: service_completed_successfully}}") + f"""\
  migrate:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [echo, migrated]
""")
    stack("run", "--rm", "app", "true")
    stack("stop", "db")
    assert {r["service"]: r["state"] for r in ps(stack)} == {"db": "exited",
                                                               "migrate": "exited"}
    r = stack("run", "--rm", "app", "sh", "-c", "nslookup db && echo resolved", check=False)
    assert r.returncode == 0 and "resolved" in r.stdout, (r.stdout, r.stderr)
    assert {r["service"]: r["state"] for r in ps(stack)} == {"db": "running",
                                                               "migrate": "exited"}
    assert stack("logs", "--no-log-prefix", "migrate").stdout == "migrated\n" * 2


def test_use_aliases_makes_the_oneoff_answer_for_its_service(stack: CLI) -> None:
    """A run container answers to none of its service's names (Compose's), unless
    --use-aliases: then `db` resolves to it too, beside the service's own container."""
    def addresses(name: str) -> set[str]:
        out = stack("exec", "-T", "app", "nslookup", name).stdout
        return set(re.findall(r"\b\d+\.\d+\.\d+\.\d+\b", out.split("Name:", 1)[-1]))

    stack("up", "-d")
    assert len(addresses("db")) == 1
    plain = stack("run", "-d", "--no-deps", "db", "sleep", "100").stdout.strip()
    assert len(addresses("db")) == 1, "a run container answered for its service"
    aliased = stack("run", "-d", "--no-deps", "--use-aliases", "db", "sleep", "100")
    assert aliased.returncode == 0 and plain
    assert len(addresses("db")) == 2
    image_run = CLI(stack.roots, stack.cwd.parent)  # no stack file: docker run's
    refused = image_run("run", "--rm", "--use-aliases", DEMO_IMAGE, "true", check=False)
    assert refused.returncode != 0 and "--use-aliases: only for a service run" in refused.stderr
    assert "pull:" not in stack("run", "--rm", "--quiet-pull", "--no-deps", "db",
                                "true").stderr


def test_controller_keeps_a_running_oneoff_and_down_removes_kept_ones(stack: CLI) -> None:
    started = stack("run", "-d", "--no-deps", "app", "sleep", "1000").stdout.strip()
    assert re.fullmatch(r"oneoff-app-run-[0-9a-f]{6}", started), started
    brief = stack("run", "-d", "--rm", "--no-deps", "app", "sleep", "0.5").stdout.strip()
    stack("run", "--name", "kept", "--no-deps", "app", "true")  # exits, stays (no --rm)
    again = stack("run", "--name", "kept", "--no-deps", "app", "true", check=False)
    assert again.returncode == 1 and "a container named kept exists" in again.stderr
    # A full reconcile, orphans included, must see neither as a slot or an orphan.
    stack("up", "-d", "--remove-orphans")
    rows = {r["name"]: r for r in ps(stack)}
    assert rows[started]["state"] == "running", rows
    assert rows["kept"]["state"] == "exited", rows
    assert {"oneoff-app-1", "oneoff-db-1"} <= set(rows)
    # As Compose's ps: a running one-off is listed with -a, not without.
    plain = {r["name"] for r in ps_rows(stack("ps", "--format", "json").stdout)}
    assert {"oneoff-app-1", "oneoff-db-1"} <= plain and started not in plain, plain
    assert "nothing to do" in stack("up", "-d").stderr  # one-offs change no plan
    wait_for(lambda: brief not in names(stack))  # -d --rm: removed once it exited
    # Each one-off has anonymous volumes of its own (compose's), gone with --rm.
    stack("run", "--rm", "--no-deps", "app", "touch", "/scratch/from-oneoff")
    assert stack("exec", "app", "ls", "/scratch").stdout == ""
    assert volumes(stack.roots) == sorted(
        ["oneoff_app-1_", "oneoff_kept_", f"oneoff_{started}_"]), volumes(stack.roots)

    stack("down")
    assert names(stack) == []
    assert leftovers(stack.roots) == []


def volumes(roots: Roots) -> list[str]:
    """The named volumes on disk, their hash suffix cut."""
    base = roots.state / "volumes"
    return sorted(p.name.rsplit("_", 1)[0] + "_" for p in base.iterdir()) if base.is_dir() else []


def wait_for(predicate: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def leftovers(roots: Roots) -> list[str]:
    """What tools/leaks finds of the root's containers (the monitor and its cgroup
    parents live on until the daemon stops; the fixture checks those after)."""
    parent = f"/stackd/{roots.id}"
    return [str(leak) for leak in find_leaks(roots.id, [roots])
            if leak.kind != "monitor" and not leak.what.endswith(parent)]


def test_a_name_that_is_neither_service_nor_image(stack: CLI) -> None:
    r = stack("run", "nosuch", "true", check=False)
    assert r.returncode == 1
    assert ("no service 'nosuch' in compose.yaml, and no image 'nosuch' in the store"
            " — services are: app, db") in r.stderr, r.stderr
    # An image's name still reads as `docker run`, stack file or not.
    r = stack("run", "--rm", DEMO_IMAGE, "echo", "from the image")
    assert r.stdout == "from the image\n"
    assert names(stack) == []


def test_a_run_label_under_stackds_prefix_is_refused_and_makes_nothing(stack: CLI) -> None:
    # With it a one-off named another stack's volume as its own anonymous one.
    r = stack("run", "--rm", "-l", "io.stackd.anonymous-volumes=other_data", "app", "true",
              check=False)
    assert r.returncode != 0, r.stdout
    assert "-l io.stackd.anonymous-volumes: the io.stackd. prefix is stackd's own" in r.stderr
    assert names(stack) == []


def test_service_ports_only_when_asked(stack: CLI) -> None:
    port, extra = free_port(), free_port()
    (stack.cwd / "compose.yaml").write_text(STACK + f"""\
  web:
    image: {DEMO_IMAGE}
    pull_policy: never
    command: [sleep, "1000"]
    stop_signal: SIGKILL
    ports: ["127.0.0.1:{port}:80"]
""")
    plain = stack("run", "-d", "--no-deps", "web").stdout.strip()
    asked = stack("run", "-d", "--no-deps", "--service-ports", "-p", f"127.0.0.1:{extra}:81",
                  "web").stdout.strip()
    published = {r["name"]: sorted(r["ports"]) for r in ps(stack)}
    assert published == {plain: [], asked: sorted([f"127.0.0.1:{port}->80/tcp",
                                                   f"127.0.0.1:{extra}->81/tcp"])}
    # Stopped, it publishes nothing, and `ps -a` says so, as Docker's does.
    stack("container", "stop", asked)
    stopped = {r["name"]: r for r in ps(stack)}[asked]
    assert (stopped["state"], stopped["ports"]) == ("exited", [])


def test_down_after_only_a_run_removes_the_networks_the_run_made(stack: CLI) -> None:
    """A `run` of a service makes the project's network (and its resolver) with no
    stack desired; `down` answered "no resource found" and left both behind."""
    import subprocess

    stack("run", "--rm", "--no-deps", "db", "true")
    row = next(line.split() for line in stack("network", "ls").stdout.splitlines()
               if line.startswith("oneoff_default "))
    bridge = row[2]
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0
    r = stack("down", "-v")
    assert "network oneoff_default" in r.stdout + r.stderr, r
    assert "oneoff_default" not in stack("network", "ls").stdout
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0


def test_run_v_mounts_a_path_or_a_stack_volume_into_a_service_run(stack: CLI) -> None:
    (stack.cwd / "compose.yaml").write_text(STACK + "volumes:\n  shared: {}\n")
    r = stack("run", "--rm", "--no-deps", "-v", "./made:/mnt", "-v", "shared:/scratch",
              "app", "sh", "-c", "echo hi > /mnt/f; echo kept > /scratch/f; ls /scratch")
    assert r.stdout == "f\n", r.stderr  # the stack's volume over the service's /scratch
    assert (stack.cwd / "made" / "f").read_text() == "hi\n"  # made, as docker run -v
    r = stack("run", "--rm", "--no-deps", "-v", "shared:/again:ro", "app", "cat", "/again/f")
    assert r.stdout == "kept\n"
    r = stack("run", "--rm", "--no-deps", "-v", "nosuch:/x", "app", "true", check=False)
    assert r.returncode == 2 and "volume 'nosuch' is not one of the stack's" in r.stderr
    assert names(stack) == []


def test_run_build_builds_the_services_image_first(stack: CLI) -> None:
    (stack.cwd / "compose.override.yaml").write_text(
        "services:\n  tool:\n    build: ./tool\n    command: [cat, /version]\n")
    (stack.cwd / "tool").mkdir()
    dockerfile = stack.cwd / "tool/Dockerfile"
    dockerfile.write_text(f"FROM {DEMO_IMAGE}\nRUN echo v1 > /version\n")
    assert stack("run", "--rm", "tool").stdout == "v1\n"  # built: it was missing
    dockerfile.write_text(f"FROM {DEMO_IMAGE}\nRUN echo v2 > /version\n")
    assert stack("run", "--rm", "tool").stdout == "v1\n"  # present: not built again
    assert stack("run", "--rm", "--build", "tool").stdout == "v2\n"
    r = stack("run", "--rm", "--build", DEMO_IMAGE, "true", check=False)  # an image run
    assert r.returncode == 2 and "are only for a service run" in r.stderr, r.stderr


def _cap_eff(text: str) -> int:
    return int(re.search(r"CapEff:\s*([0-9a-f]+)", text)[1], 16)  # type: ignore[index]


def test_run_cap_add_cap_drop_and_env_from_file_reach_a_service_run(stack: CLI) -> None:
    """Compose's run flags on a service: capabilities added to and dropped from the
    service's own, an env file read here."""
    sys_ptrace, net_raw = 1 << 19, 1 << 13
    plain = _cap_eff(stack("run", "--rm", "--no-deps", "app", "cat", "/proc/self/status").stdout)
    assert not plain & sys_ptrace and plain & net_raw
    changed = _cap_eff(stack("run", "--rm", "--no-deps", "--cap-add", "SYS_PTRACE",
                             "--cap-drop", "NET_RAW", "app", "cat", "/proc/self/status").stdout)
    assert changed == (plain | sys_ptrace) & ~net_raw
    (stack.cwd / "run.env").write_text("# a comment\nFROM_FILE=yes\n")
    r = stack("run", "--rm", "--no-deps", "--env-from-file", "run.env", "app",
              "sh", "-c", "echo $FROM_FILE $GREETING")
    assert r.stdout == "yes hello\n", r.stderr
    r = stack("run", "--rm", "--no-deps", "--cap-add", "NOT_A_CAP", "app", "true", check=False)
    assert r.returncode != 0 and "NOT_A_CAP" in r.stderr and "Traceback" not in r.stderr
    assert names(stack) == []


def test_a_service_run_reads_stdin_and_gets_a_pty_in_a_terminal_as_compose_run(
        stack: CLI) -> None:
    """Compose's run is interactive, with a pty when it has a terminal: stackd's
    attached neither without -i/-t, so `run app psql < dump.sql` read nothing and
    `run app sh` in a terminal was a shell without a terminal that ended at once."""
    piped = subprocess.run([sys.executable, "-m", "stackd", "run", "--rm", "--no-deps",
                            "app", "cat"], cwd=stack.cwd, env=stack.env(),
                           input=b"a dump\n", capture_output=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == b"a dump\n"

    shell = Terminal(stack, "run", "--rm", "--no-deps", "app", "sh", "-c",
                     "tty; echo done", rows=30, cols=90)
    assert b"/dev/pts/" in shell.read_until(b"done")
    assert shell.close() == 0
    plain = Terminal(stack, "run", "--rm", "--no-deps", "-T", "app", "sh", "-c",
                     "tty; echo done", rows=30, cols=90)
    assert b"not a tty" in plain.read_until(b"done")
    assert plain.close() == 0

    # An image (not a service) keeps docker run's reading: stdin only with -i.
    image = subprocess.run([sys.executable, "-m", "stackd", "run", "--rm", DEMO_IMAGE,
                            "cat"], cwd=stack.cwd, env=stack.env(), input=b"unread\n",
                           capture_output=True, timeout=60)
    assert image.returncode == 0, image.stderr
    assert image.stdout == b""
    assert names(stack) == []  # --rm left nothing, and no dependency was started


def test_verbs_with_a_closed_stdin_run_as_with_an_empty_one(stack: CLI) -> None:
    """`0<&-` (a cron job, a daemon's child) left Python no sys.stdin, and exec and
    run failed with a traceback asking whether it was a terminal."""
    stack("up", "-d", "db")
    for verb in (["exec", "-T", "db"], ["run", "--rm", "--no-deps", "app"]):
        r = subprocess.run(["sh", "-c", 'exec "$@" 0<&-', "sh", sys.executable, "-m",
                            "stackd", *verb, "sh", "-c", "cat; echo read-to-the-end"],
                           cwd=stack.cwd, env=stack.env(), capture_output=True, text=True,
                           timeout=60)
        assert (r.returncode, r.stdout, r.stderr) == (0, "read-to-the-end\n", ""), verb


def test_ps_of_a_service_the_stack_lacks_says_so(stack: CLI) -> None:
    stack("up", "-d", "db")
    r = stack("ps", "nosuch", check=False)
    assert r.returncode == 1
    assert "no such service: nosuch in project oneoff" in r.stderr
    assert [row["service"] for row in ps_rows(stack("ps", "db", "--format",
                                                    "json").stdout)] == ["db"]
