"""The forms of `ps` and `config` that scripts use with Compose: `ps --services`,
`ps --status`/`--filter status=`, `config --images`/`--networks`/`-o`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from e2e_helpers import DEMO_IMAGE, stack_dir

from stackd.roots import Roots

pytestmark = pytest.mark.root

COMPOSE = f"""\
name: scripts
services:
  web:
    image: {DEMO_IMAGE}
    command: [sleep, '1000']
    stop_signal: SIGKILL
  job:
    image: {DEMO_IMAGE}
    command: ['true']
  api:
    build: ./api
    command: [sleep, '1000']
    stop_signal: SIGKILL
    networks: [back]
networks:
  back: {{}}
"""


def test_ps_and_config_as_scripts_use_them(no_leaks: Roots, demo_image: str,
                                           tmp_path: Path) -> None:
    with stack_dir(no_leaks, tmp_path, "scripts", COMPOSE) as cli:
        (cli.cwd / "api").mkdir()
        (cli.cwd / "api/Dockerfile").write_text(f"FROM {DEMO_IMAGE}\n")
        assert cli("config", "--images").stdout == f"scripts-api\n{DEMO_IMAGE}\n"
        assert cli("config", "--networks").stdout == "back\ndefault\n"
        cli("config", "-o", "resolved.yaml")
        assert "name: scripts" in (cli.cwd / "resolved.yaml").read_text()

        cli("up", "-d")
        deadline = time.monotonic() + 20
        while "Exited (0)" not in cli("ps", "-a", "job").stdout:
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.2)
        assert cli("ps", "--services").stdout == "api\nweb\n"
        assert cli("ps", "-a", "--format", "{{.Service}}={{.State}}").stdout == (
            "api=running\njob=exited\nweb=running\n")
        names = cli("container", "ls", "--format", "{{.Names}}").stdout.split()
        assert sorted(names) == ["scripts-api-1", "scripts-web-1"], names
        r = cli("ps", "--format", "{{.Nope}}", check=False)
        assert r.returncode == 2 and "there is no field 'Nope'" in r.stderr
        assert cli("ps", "-a", "--services").stdout == "api\njob\nweb\n"
        assert cli("ps", "--status", "exited", "--services").stdout == "job\n"
        cli("pause", "web")
        assert cli("ps", "--filter", "status=paused", "--services").stdout == "web\n"
        assert cli("ps", "--filter", "status=running", "--services").stdout == "api\n"
        cli("unpause", "web")
        r = cli("ps", "--filter", "name=web", check=False)
        assert r.returncode == 2 and "stackd filters by status only" in r.stderr
        assert cli("ps", "--no-trunc", "--services").stdout == "api\nweb\n"
        assert cli("ls", "-q", "--filter", "name=scri").stdout == "scripts\n"
        assert cli("ls", "-q", "--filter", "name=other").stdout == ""
        r = cli("ls", "--filter", "status=running", check=False)
        assert r.returncode == 2 and "ls filters by name only" in r.stderr

        # Each lifecycle verb takes its own flags: one it would ignore is an error.
        r = cli("start", "-t", "5", "web", check=False)
        assert r.returncode == 2 and "unrecognized arguments: -t" in r.stderr, r.stderr
        # Compose's rm leaves running containers alone, -f too (it only skips the
        # question); -s stops them first, then removes them.
        for argv in (("rm", "web"), ("rm", "-f", "web")):
            r = cli(*argv)
            assert "No stopped containers" in r.stderr, r.stderr
        assert "web" in cli("ps", "--services").stdout
        cli("rm", "-s", "web")
        assert cli("ps", "-a", "--services").stdout == "api\njob\n"


def test_a_dotenv_written_for_compose_names_the_files_and_the_project(
        no_leaks: Roots, demo_image: str, tmp_path: Path) -> None:
    """COMPOSE_FILE and COMPOSE_PROJECT_NAME in .env: `up`, `ps` and `down` work on
    the stack Compose would (the daemon loads it with them too)."""
    compose = "services: {}\n"
    with stack_dir(no_leaks, tmp_path, "checkout", compose) as cli:
        (cli.cwd / "base.yml").write_text(
            f"services:\n  web:\n    image: {DEMO_IMAGE}\n    command: [sleep, '1000']\n"
            "    stop_signal: SIGKILL\n")
        (cli.cwd / "prod.yml").write_text("services:\n  web:\n    environment: {MODE: prod}\n")
        (cli.cwd / ".env").write_text("COMPOSE_FILE=base.yml:prod.yml\n"
                                      "COMPOSE_PROJECT_NAME=shop\n")
        cli("up", "-d")
        assert cli("ps", "--services").stdout == "web\n"
        assert cli("exec", "-T", "web", "sh", "-c", "echo $MODE").stdout == "prod\n"
        assert "shop-web-1" in cli("ps").stdout
        cli("down")
        assert cli("ps", "-a", "-q").stdout == ""
