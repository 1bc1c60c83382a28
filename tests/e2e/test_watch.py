"""`stackd watch` as a developer runs it (Compose's `watch`, develop.watch rules): the
service is built and started, files are synced in as they are saved — written,
removed, ignored ones left alone —, a sync+exec runs its command, a rebuild makes the
container again from the new image, and Ctrl-C leaves the stack running."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_helpers import CLI, DEMO_IMAGE, stack_dir

from stackd.roots import Roots

pytestmark = pytest.mark.root

COMPOSE = """\
name: dev
services:
  web:
    build: .
    command: [sleep, '1000']
    stop_signal: SIGKILL
    develop:
      watch:
        - {action: sync, path: ./src, target: /app, ignore: [tmp/], initial_sync: true}
        - action: sync+exec
          path: ./conf
          target: /etc/app
          exec: {command: "sh -c 'cat /etc/app/a.conf > /tmp/reloaded'"}
        - {action: sync+restart, path: ./settings, target: /etc/settings}
        - {action: rebuild, path: ./Dockerfile}
"""


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_watch_syncs_execs_and_rebuilds(no_leaks: Roots, demo_image: str,
                                        tmp_path: Path) -> None:
    with stack_dir(no_leaks, tmp_path, "dev", COMPOSE) as cli:
        (cli.cwd / "settings").mkdir()
        (cli.cwd / "Dockerfile").write_text(f"FROM {DEMO_IMAGE}\nRUN echo v1 > /version\n")
        (cli.cwd / "src/sub").mkdir(parents=True)
        (cli.cwd / "src/main.txt").write_text("one\n")
        (cli.cwd / "src/sub/gone.txt").write_text("x\n")
        (cli.cwd / "conf").mkdir()
        log = tmp_path / "watch.log"
        with open(log, "w") as out:
            watch = subprocess.Popen([sys.executable, "-m", "stackd", "watch"], cwd=cli.cwd,
                                     env=cli.env(), stdout=out, stderr=subprocess.STDOUT)
        try:
            _drive(cli, log)
        finally:
            if watch.poll() is None:
                watch.send_signal(signal.SIGINT)
            code = watch.wait(30)
        text = log.read_text()
        assert code == 0, text
        assert "watch stopped; dev keeps running" in text
        assert cli("ps", "-q").stdout.strip()  # the stack still runs


def _drive(cli: CLI, log: Path) -> None:
    def cat(path: str) -> str:
        r = cli("exec", "-T", "web", "cat", path, check=False)
        return r.stdout if r.returncode == 0 else ""

    eventually(lambda: "watching" in log.read_text(), "the watch started")
    assert cat("/app/main.txt") == "one\n"  # initial_sync
    assert cat("/version") == "v1\n"

    (cli.cwd / "src/main.txt").write_text("two\n")
    (cli.cwd / "src/new").mkdir()
    (cli.cwd / "src/new/deep.txt").write_text("deep\n")
    (cli.cwd / "src/tmp").mkdir()
    (cli.cwd / "src/tmp/scratch").write_text("ignored\n")
    eventually(lambda: cat("/app/main.txt") == "two\n" and cat("/app/new/deep.txt") == "deep\n",
               "the changed and the new file synced")
    assert cat("/app/tmp/scratch") == ""  # ignored: never synced

    (cli.cwd / "src/sub/gone.txt").unlink()
    (cli.cwd / "src/sub").rmdir()
    eventually(lambda: cli("exec", "-T", "web", "test", "-e", "/app/sub",
                           check=False).returncode == 1, "the removed directory removed")

    (cli.cwd / "conf/a.conf").write_text("level=debug\n")
    eventually(lambda: cat("/tmp/reloaded") == "level=debug\n", "sync+exec ran its command")

    started = cli("exec", "-T", "web", "cat", "/proc/1/stat").stdout.split()[21]
    (cli.cwd / "settings/app.env").write_text("MODE=dev\n")
    # Synced, then restarted: the restart keeps the layer, so the file is still there.
    eventually(lambda: cli("exec", "-T", "web", "cat", "/proc/1/stat", check=False)
               .stdout.split()[21:22] not in ([], [started]), "restarted")
    assert cat("/etc/settings/app.env") == "MODE=dev\n"
    assert cat("/app/new/deep.txt") == "deep\n"  # an earlier sync survives it too

    (cli.cwd / "Dockerfile").write_text(f"FROM {DEMO_IMAGE}\nRUN echo v2 > /version\n")
    eventually(lambda: cat("/version") == "v2\n", "rebuilt and made again", timeout=60)
    text = log.read_text()
    assert "web: synced /app/main.txt" in text and "web: rebuilding after 1 change" in text


def test_watch_without_rules_says_what_to_add(no_leaks: Roots, tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        f"name: plain\nservices:\n  web:\n    image: {DEMO_IMAGE}\n")
    r = CLI(no_leaks, tmp_path)("watch", check=False)
    assert r.returncode == 2
    assert r.stderr.startswith("stackd: none of the services has develop.watch rules")
    assert CLI(no_leaks, tmp_path).daemon_pid() is None  # nothing was started


def test_up_watch_follows_the_rules_beside_the_logs(no_leaks: Roots, demo_image: str,
                                                    tmp_path: Path) -> None:
    compose = (f"name: devup\nservices:\n  web:\n    image: {DEMO_IMAGE}\n"
               "    command: [sh, -c, 'echo listening; exec sleep 1000']\n"
               "    stop_signal: SIGKILL\n    develop:\n      watch:\n"
               "        - {action: sync, path: ./src, target: /app}\n")
    with stack_dir(no_leaks, tmp_path, "devup", compose) as cli:
        (cli.cwd / "src").mkdir()
        assert cli("up", "-d", "--watch", check=False).returncode == 2  # -d: nothing followed
        log = tmp_path / "up.log"
        with open(log, "w") as out:
            up = subprocess.Popen([sys.executable, "-m", "stackd", "up", "--watch"],
                                  cwd=cli.cwd, env=cli.env(), stdout=out,
                                  stderr=subprocess.STDOUT)
        try:
            eventually(lambda: "watch: watching" in log.read_text()
                       and "listening" in log.read_text(), "up attached and watching")
            (cli.cwd / "src/page.html").write_text("<p>hi</p>\n")
            eventually(lambda: cli("exec", "-T", "web", "cat", "/app/page.html",
                                   check=False).stdout == "<p>hi</p>\n", "synced")
        finally:
            if up.poll() is None:
                up.send_signal(signal.SIGINT)
            code = up.wait(30)
        assert code == 130, log.read_text()  # Ctrl-C stops the stack, as up does
        assert "watch: web: synced /app/page.html after 1 change" in log.read_text()
