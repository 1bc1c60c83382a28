"""GitOps end to end over file://, with real git and a real daemon on a private root.

Two sources follow one repository (one with --prune), each polling every second:
commits that scale a service, change its environment, add and remove a service,
break the stack file and fix it are each on the host within the interval; drift by
hand (stop, down) is undone and reported; a daemon SIGKILLed and started again keeps
its sources and applies no commit twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, torn_down
from support.gitops import Repo, source_status, wait_applied, wait_for
from support.sshd import sshd

from stackd.cli.client import Client
from stackd.roots import Roots


def stack(*, replicas: int = 1, greeting: str = "one", extra: bool = False,
          conf: bool = False) -> str:
    text = f"""\
services:
  web:
    image: {DEMO_IMAGE}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    environment:
      GREETING: {greeting}
    volumes: {'["./conf:/conf:ro"]' if conf else "[]"}
    deploy:
      replicas: {replicas}
"""
    if extra:
        text += f"""\
  extra:
    image: {DEMO_IMAGE}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    volumes: ["extradata:/data"]
volumes:
  extradata: {{}}
"""
    return text


@pytest.fixture
def cli(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "work"
    work.mkdir()
    c = CLI(no_leaks, work)
    with torn_down(c):
        try:
            yield c
        finally:
            # Forget the sources first: a source would bring its stack back.
            for name in ("keep", "pruned"):
                c("gitops", "remove", name, check=False)
                c("-p", name, "down", "-v", check=False, timeout=90)


def running(roots: Roots, project: str) -> dict[str, dict[str, Any]]:
    with Client(roots, autostart=False) as c:
        return {r["name"]: r for r in c.get("/v1/containers", project=project)
                if r["state"] == "running"}


def run_in(roots: Roots, container: str, command: str) -> str:
    """A shell command's output in the container ("" while it is being replaced)."""
    from stackd.errors import StackdError

    try:
        with Client(roots, autostart=False) as c:
            r = c.post(f"/v1/containers/{container}/exec", {"cmd": ["sh", "-c", command]})
    except StackdError:
        return ""
    return str(r["stdout"]).strip()


def printenv(roots: Roots, container: str, name: str) -> str:
    return run_in(roots, container, "echo $" + name)


def volumes(roots: Roots) -> set[str]:
    with Client(roots, autostart=False) as c:
        return {v["name"] for v in c.get("/v1/volumes")}


def events(roots: Roots) -> list[dict[str, Any]]:
    with Client(roots, autostart=False) as c:
        return [json.loads(line) if isinstance(line, str) else line
                for line in c.stream("GET", "/v1/events", params={"follow": "false"})]


def test_commits_reach_the_host_within_the_interval(cli: CLI, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    first = repo.commit("one web", {"compose.yaml": stack(conf=True), "conf/motd": "first\n"})
    url = f"file://{repo.path}"
    cli("gitops", "add", "keep", "--repo", url, "--interval", "1s")
    cli("gitops", "add", "pruned", "--repo", url, "--interval", "1s", "--prune",
        "--prune-volumes")
    for name in ("keep", "pruned"):
        st = wait_applied(cli.roots, name, first, timeout=60)
        assert st["applied"]["message"] == "one web"
    assert set(running(cli.roots, "keep")) == {"keep-web-1"}
    assert run_in(cli.roots, "keep-web-1", "cat /conf/motd") == "first"

    # Scale: a second replica appears.
    scaled = repo.commit("two webs", {"compose.yaml": stack(replicas=2)})
    wait_applied(cli.roots, "keep", scaled)
    wait_for("two web replicas", lambda: set(running(cli.roots, "keep")) ==
             {"keep-web-1", "keep-web-2"})

    # Environment, and a bind-mounted file of the repository: the containers are
    # recreated with the new values.
    env = repo.commit("greet two", {"compose.yaml": stack(replicas=2, greeting="two", conf=True),
                                    "conf/motd": "second\n"})
    wait_applied(cli.roots, "keep", env)
    wait_for("GREETING=two in web-1", lambda: printenv(cli.roots, "keep-web-1",
                                                       "GREETING") == "two")
    assert run_in(cli.roots, "keep-web-1", "cat /conf/motd") == "second"
    motd = repo.commit("motd only", {"conf/motd": "third\n"})  # the stack file as it was
    wait_applied(cli.roots, "keep", motd)
    wait_for("the new motd in web-1", lambda: run_in(cli.roots, "keep-web-1",
                                                     "cat /conf/motd") == "third")

    # Add a service, then remove it: kept without --prune, removed with it.
    added = repo.commit("add extra", {"compose.yaml": stack(greeting="two", extra=True)})
    for name in ("keep", "pruned"):
        wait_applied(cli.roots, name, added)
        wait_for(f"{name}-extra-1 running", lambda n=name: f"{n}-extra-1" in running(
            cli.roots, n))
    assert {"keep_extradata", "pruned_extradata"} <= volumes(cli.roots)
    removed = repo.commit("drop extra", {"compose.yaml": stack(greeting="two")})
    for name in ("keep", "pruned"):
        wait_applied(cli.roots, name, removed)
    wait_for("pruned's extra removed", lambda: "pruned-extra-1" not in running(
        cli.roots, "pruned"))
    wait_for("pruned's volume removed (--prune-volumes)",
             lambda: "pruned_extradata" not in volumes(cli.roots))
    time.sleep(1.5)
    assert "keep-extra-1" in running(cli.roots, "keep"), "removed without --prune"
    assert "keep_extradata" in volumes(cli.roots)

    # A broken stack file changes nothing on the host; its error names file:line:col.
    before = {n: r["id"] for n, r in running(cli.roots, "pruned").items()}
    broken = repo.commit("break it", {"compose.yaml": stack(greeting="two") +
                                      "  bad:\n    image: [\n"})
    st = wait_for("Failed on the broken commit", lambda: (
        s := source_status(cli.roots, "pruned"))["status"] == "Failed"
        and (s["head"] or {}).get("sha") == broken and s)
    assert "compose.yaml:" in st["error"], st["error"]
    assert str(cli.roots.state) not in st["error"]
    assert st["applied"]["sha"] == removed
    time.sleep(1.5)
    assert {n: r["id"] for n, r in running(cli.roots, "pruned").items()} == before
    errors = [e for e in events(cli.roots) if e["type"] == "gitops"
              and e["project"] == "pruned" and e["attrs"]["what"] == "error"]
    assert len(errors) == 1, "a broken commit is reported once, not at every interval"
    out = cli("gitops", "status", "pruned", check=False)
    assert out.returncode == 1 and "Failed" in out.stdout and "compose.yaml:" in out.stdout
    # A "/" in a name made another path (the list's): a TypeError traceback.
    for bad in ("/", "pruned/sync"):
        out = cli("gitops", "status", bad, check=False)
        assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
        assert "path.name" in out.stderr, out.stderr
    fixed = repo.commit("fix it", {"compose.yaml": stack(greeting="three")})
    for name in ("keep", "pruned"):
        wait_applied(cli.roots, name, fixed)

    # `gitops diff` shows what the next sync would do, as `plan` prints it.
    cli("gitops", "suspend", "keep")
    nxt = repo.commit("greet four", {"compose.yaml": stack(greeting="four")})
    diff = cli("gitops", "diff", "keep").stdout
    assert nxt[:12] in diff and "recreate" in diff, diff
    time.sleep(1.5)
    assert source_status(cli.roots, "keep")["applied"]["sha"] == fixed
    cli("gitops", "resume", "keep")
    wait_applied(cli.roots, "keep", nxt)


def test_drift_is_undone_and_reported(cli: CLI, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    sha = repo.commit("one web", {"compose.yaml": stack(greeting="${GREETING}")})
    env_file = tmp_path / "site.env"
    env_file.write_text("GREETING=from-the-env-file\n")
    cli("gitops", "ls")  # the daemon, started without GREETING
    # Variables come from the source's env file (and the daemon's environment), never
    # from the shell of the command that added it.
    cli("gitops", "add", "keep", "--repo", str(repo.path), "--interval", "1s",
        "--env-file", str(env_file), GREETING="from-the-shell")
    wait_applied(cli.roots, "keep", sha, timeout=60)
    assert printenv(cli.roots, "keep-web-1", "GREETING") == "from-the-env-file"

    cli("-p", "keep", "stop", "web")
    wait_for("web running again", lambda: "keep-web-1" in running(cli.roots, "keep"))
    cli("-p", "keep", "down")
    wait_for("web back after down", lambda: "keep-web-1" in running(cli.roots, "keep"))
    # `up` with another file: its revision is replaced by the commit's again.
    (cli.cwd / "other.yaml").write_text(stack(greeting="by-hand"))
    cli("-p", "keep", "-f", "other.yaml", "up", "-d")
    wait_for("GREETING back to the commit's", lambda: printenv(
        cli.roots, "keep-web-1", "GREETING") == "from-the-env-file")
    drift = [e for e in events(cli.roots) if e["type"] == "drift"]
    whats = " | ".join(e["attrs"]["what"] for e in drift)
    assert "stopped or removed by hand" in whats and "removed (down)" in whats, whats
    assert "(cause up) replaced the commit's revision" in whats, whats
    wait_applied(cli.roots, "keep", sha)
    # `scale` by hand: the commit's one replica again, and reported.
    before = len(drift)
    cli("-p", "keep", "-f", "other.yaml", "scale", "web=3")
    wait_for("the commit's scale back", lambda: set(running(cli.roots, "keep")) == {
        "keep-web-1"}, timeout=60)
    drift = [e for e in events(cli.roots) if e["type"] == "drift"]
    assert "replaced the commit's revision" in drift[before:][0]["attrs"]["what"], drift
    wait_applied(cli.roots, "keep", sha)

    # A daemon SIGKILLed mid-sync — the commit's revision recorded, its rollout under
    # way — keeps its sources and applies no commit twice: the commit is recorded in
    # the revision's own transaction.
    def history() -> list[tuple[int, str]]:
        with Client(cli.roots, autostart=False) as c:
            return [(r["number"], r["cause"]) for r in c.get("/v1/stacks/keep/history")]

    last = history()[-1][0]
    nxt = repo.commit("greet two", {"compose.yaml": stack(greeting="two")})
    pid = cli.daemon_pid()
    assert pid is not None
    at_kill = wait_for("the commit's revision recorded", lambda: (
        h := history())[-1][0] > last and h, every=0.01)
    os.kill(pid, signal.SIGKILL)
    assert at_kill[-1][1] == "gitops"
    wait_for("the killed daemon gone", lambda: cli.daemon_pid() is None)
    assert "keep" in cli("gitops", "ls").stdout  # a new daemon, the source kept
    wait_applied(cli.roots, "keep", nxt, timeout=60)
    wait_for("GREETING=two", lambda: printenv(cli.roots, "keep-web-1", "GREETING") == "two")
    time.sleep(2.5)  # two more intervals: nothing is applied again
    assert history() == at_kill, "a commit was applied again after the restart"
    commits = [r["commit"]["sha"] for r in source_status(cli.roots, "keep")["revisions"]]
    assert commits[-1] == nxt and commits.count(nxt) == 1, commits

    # Removing the source takes its stack down.
    cli("gitops", "remove", "keep")
    wait_for("keep's containers gone", lambda: not running(cli.roots, "keep"))


def ssh_key(path: Path) -> Path:
    from support.hostpackages import require_command

    require_command("ssh-keygen", "openssh-client")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "t", "-f",
                    str(path)], check=True)
    return path


def test_only_signed_commits_apply_and_drift_can_be_reported_only(
        cli: CLI, tmp_path: Path) -> None:
    trusted, stranger = ssh_key(tmp_path / "trusted"), ssh_key(tmp_path / "stranger")
    signers = tmp_path / "allowed_signers"
    signers.write_text("test@example.invalid " + (tmp_path / "trusted.pub").read_text())
    repo = Repo(tmp_path / "repo")
    repo.git("config", "gpg.format", "ssh")

    def commit(message: str, key: Path | None, **kw: Any) -> str:
        if key is not None:
            repo.git("config", "user.signingkey", str(key))
        repo.git("config", "commit.gpgsign", "true" if key else "false")
        return repo.commit(message, {"compose.yaml": stack(**kw)})

    signed = commit("signed", trusted)
    cli("gitops", "add", "keep", "--repo", str(repo.path), "--interval", "1s",
        "--verify-signatures", "--allowed-signers", str(signers), "--no-self-heal")
    wait_applied(cli.roots, "keep", signed, timeout=60)

    # Drift with --no-self-heal: reported (Degraded), and the container stays stopped.
    cli("-p", "keep", "stop", "web")
    st = wait_for("drift reported", lambda: (s := source_status(cli.roots, "keep"))[
        "status"] == "Degraded" and s)
    assert "stopped or removed by hand" in st["drift"]
    time.sleep(2.5)
    assert "keep-web-1" not in running(cli.roots, "keep")
    drift = [e for e in events(cli.roots) if e["type"] == "drift"]
    assert drift and drift[-1]["attrs"]["self_heal"] == "false"
    cli("-p", "keep", "start", "web")

    for key, message in ((None, "unsigned"), (stranger, "signed by a stranger")):
        bad = commit(message, key, greeting="evil")
        st = wait_for(f"{message} refused", lambda b=bad: (
            s := source_status(cli.roots, "keep"))["status"] == "Failed"
            and (s["head"] or {}).get("sha") == b and s)
        assert "not signed by a trusted key" in st["error"]
        assert st["applied"]["sha"] == signed
    assert printenv(cli.roots, "keep-web-1", "GREETING") == "one"
    good = commit("signed again", trusted, greeting="two")
    wait_applied(cli.roots, "keep", good)

    # Forgetting the source with --keep-stack leaves the stack as it is.
    cli("gitops", "remove", "keep", "--keep-stack")
    assert "keep" not in cli("gitops", "ls").stdout
    time.sleep(1.5)
    assert printenv(cli.roots, "keep-web-1", "GREETING") == "two"


def test_a_source_over_ssh_is_applied_through_a_real_sshd(cli: CLI, tmp_path: Path) -> None:
    """An ssh:// source end to end: the daemon's git reaches OpenSSH's sshd on loopback
    with the deploy key GIT_SSH_COMMAND names in the daemon's environment."""
    repo = Repo(tmp_path / "repo")
    sha = repo.commit("one web", {"compose.yaml": stack()})
    with sshd(tmp_path / "sshd") as server:
        cli.environ["GIT_SSH_COMMAND"] = server.command()  # the daemon starts with it
        cli("gitops", "add", "keep", "--repo",
            f"ssh://root@127.0.0.1:{server.port}{repo.path}", "--interval", "1s")
        wait_applied(cli.roots, "keep", sha, timeout=60)
        assert set(running(cli.roots, "keep")) == {"keep-web-1"}
        cli("gitops", "remove", "keep")
