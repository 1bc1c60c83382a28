"""`stackd config` on the stacks in tests/stacks and examples/, and on broken ones.

Each realistic stack must print, and its printed form must load back to the very same
text (YAML and JSON agree). Each kind of mistake must exit 2 with file:line:col in one
or two lines of stderr and never a traceback.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from stackd.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
STACKS = sorted(p for p in (ROOT / "tests" / "stacks").iterdir() if p.is_dir())
EXAMPLES = sorted(p.parent for p in (ROOT / "examples").glob("*/compose.yaml"))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only PATH and HOME: a stack must not depend on whoever runs the test."""
    for key in list(os.environ):
        if key not in ("PATH", "HOME"):
            monkeypatch.delenv(key)


def run(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def stack_args(directory: Path) -> list[str]:
    """Global options a stack is meant to be used with (its `args` file)."""
    extra = directory / "args"
    return shlex.split(extra.read_text()) if extra.exists() else []


def without_files(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("-f", "--file"):
            skip = True
        else:
            out.append(a)
    return out


def test_there_are_at_least_25_realistic_stacks() -> None:
    assert len(STACKS) >= 25


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("directory", STACKS + EXAMPLES, ids=lambda p: p.name)
def test_stack_round_trips(directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(directory)
    code, first, err = run([*stack_args(directory), "config"], capsys)
    assert (code, err) == (0, "")
    assert first.startswith("name: ")
    assert "services:" in first
    # Fed back in (from stdin, away from the stack's .env), the output is a fixed point.
    monkeypatch.chdir(tmp_path)
    again = ["-f", "-", *without_files(stack_args(directory))]
    code, second, err = run([*again, "config"], capsys, stdin=first, monkeypatch=monkeypatch)
    assert (code, err) == (0, "")
    assert second == first
    code, as_json, _ = run([*again, "config", "--format", "json"], capsys, stdin=first,
                           monkeypatch=monkeypatch)
    assert code == 0
    assert json.loads(as_json) == yaml.safe_load(first)


@pytest.mark.usefixtures("clean_env")
def test_list_flags(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT / "tests" / "stacks" / "profiles-tools")
    assert run(["config", "--services"], capsys)[:2] == (0, "app\ndb\n")
    assert run(["--profile", "debug", "config", "--services"], capsys)[:2] == (
        0, "adminer\napp\ndb\nmailhog\n")
    assert run(["config", "--volumes"], capsys)[:2] == (0, "pg\n")
    assert run(["config", "--profiles"], capsys)[:2] == (0, "bench\ndebug\nmail\n")
    assert run(["config", "-q"], capsys) == (0, "", "")


NARROWED = textwrap.dedent("""\
    services:
      web:
        image: web
        depends_on: [api]
        networks: [front]
      api:
        image: api
        depends_on: [db]
        networks: [front, back]
        secrets: [token]
      db:
        image: db
        networks: [back]
        volumes: ["pg:/var/lib/postgresql/data"]
      tool:
        image: tool
        networks: [tools]
        volumes: ["cache:/cache"]
        configs: [settings]
    networks: {front: {}, back: {}, tools: {}, spare: {}}
    volumes: {pg: {}, cache: {}, spare: {}}
    configs: {settings: {content: x}}
    secrets: {token: {environment: HOME}}
    """)


@pytest.mark.usefixtures("clean_env")
def test_config_shows_what_would_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Compose's `config [SERVICE…]`: the named services with their dependencies,
    and only the networks, volumes, configs and secrets those use (no others are
    made by `up` either)."""
    (tmp_path / "compose.yaml").write_text(NARROWED)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["config", "--format", "json"], capsys)
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert sorted(doc["networks"]) == ["back", "front", "tools"]
    assert sorted(doc["volumes"]) == ["cache", "pg"]
    code, out, err = run(["config", "--format", "json", "api"], capsys)
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert sorted(doc["services"]) == ["api", "db"]
    assert sorted(doc["networks"]) == ["back", "front"]
    assert sorted(doc["volumes"]) == ["pg"]
    assert sorted(doc["secrets"]) == ["token"] and "configs" not in doc
    assert run(["config", "--services", "web"], capsys)[:2] == (0, "api\ndb\nweb\n")
    assert run(["config", "--volumes", "tool"], capsys)[:2] == (0, "cache\n")
    code, out, err = run(["config", "nosuch"], capsys)
    assert (code, out) == (2, "")
    assert "no such service: nosuch" in err and "Traceback" not in err


@pytest.mark.usefixtures("clean_env")
def test_config_hash_changes_with_what_the_containers_are_made_from(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Compose's `config --hash`: one line per service, `name digest`; the digest
    moves when the service's containers would change, not for its replica count,
    dependencies or profiles."""
    monkeypatch.chdir(tmp_path)
    stack = tmp_path / "compose.yaml"

    def hashes(text: str, which: str = "*") -> dict[str, str]:
        stack.write_text(text)
        code, out, err = run(["config", "--hash", which], capsys)
        assert (code, err) == (0, "")
        return dict(line.split(" ") for line in out.splitlines())

    base = ("services:\n  web:\n    image: web\n    environment: {A: '1'}\n"
            "  db:\n    image: db\n")
    first = hashes(base)
    assert list(first) == ["db", "web"]
    assert all(len(h) == 64 for h in first.values())
    assert hashes(base) == first
    assert hashes(base, "web") == {"web": first["web"]}
    changed = hashes(base.replace("A: '1'", "A: '2'"))
    assert changed["web"] != first["web"] and changed["db"] == first["db"]
    not_reaching = base.replace("    image: web\n", "    image: web\n    depends_on: [db]\n"
                                "    deploy: {replicas: 3}\n    pull_policy: never\n")
    assert hashes(not_reaching) == first
    code, out, err = run(["config", "--hash", "web,nosuch"], capsys)
    assert (code, out) == (2, "")
    assert "no such service: nosuch" in err


@pytest.mark.usefixtures("clean_env")
def test_global_options(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "stack.yml").write_text(
        "services:\n  web:\n    image: 'web:${TAG}'\n    volumes: ['./html:/html']\n")
    (tmp_path / "prod.env").write_text("TAG=prod\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["-f", "app/stack.yml", "-p", "Shop Front", "--env-file", "prod.env",
                          "--project-directory", ".", "config", "--format", "json"], capsys)
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["name"] == "shopfront"
    assert doc["services"]["web"]["image"] == "web:prod"
    assert doc["services"]["web"]["volumes"][0]["source"] == str(tmp_path / "html")


@pytest.mark.usefixtures("clean_env")
def test_unset_variable_warns_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: 'web:${NOPE}'\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["config"], capsys)
    assert code == 0 and "image: 'web:'" in out
    assert err == ("stackd: warning: variable 'NOPE' is not set; using an empty string "
                   "(compose.yaml:3:12)\n")


MISTAKES = {
    "yaml-syntax": ("services:\n  web:\n    image: [x\n", "compose.yaml:4:1"),
    "unsupported": ("services:\n  web:\n    image: x\n    gpus: all\n", "compose.yaml:4:5"),
    "unknown-key": ("services:\n  web:\n    imag: x\n", "compose.yaml:3:5"),
    "bad-value": ("services:\n  web:\n    image: x\n    cpus: many\n", "compose.yaml:4:5"),
    "bad-port": ("services:\n  web:\n    image: x\n    ports: ['80:80:80']\n",
                 "compose.yaml:4:13"),
    "required-variable": ("services:\n  web:\n    image: ${IMAGE:?set IMAGE}\n",
                          "compose.yaml:3:12"),
    "undefined-service": ("services:\n  web:\n    image: x\n    depends_on: [db]\n",
                          "compose.yaml:4:18"),
    "extends-cycle": ("services:\n  a: {extends: b}\n  b: {extends: a}\n",
                      "compose.yaml:3:7"),
    "wrong-shape": ("services: 42\n", "compose.yaml:1:1"),
}


@pytest.mark.parametrize("kind", sorted(MISTAKES))
def test_mistakes_exit_2_with_a_place_and_no_traceback(kind: str, tmp_path: Path) -> None:
    text, place = MISTAKES[kind]
    (tmp_path / "compose.yaml").write_text(text)
    proc = subprocess.run([sys.executable, "-m", "stackd", "config"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert 1 <= len(lines) <= 2
    assert lines[0].startswith("stackd: ")
    assert f"({place})" in lines[0]


def test_a_dependency_cycle_is_refused_by_config_as_by_up(tmp_path: Path) -> None:
    """`config -q` is the lint people run in CI: what up refuses, it refuses too."""
    (tmp_path / "compose.yaml").write_text(
        "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n")
    for argv in (["config"], ["config", "-q"], ["config", "--services"]):
        proc = subprocess.run([sys.executable, "-m", "stackd", *argv], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60,
                              env={"PATH": os.environ["PATH"]})
        assert proc.returncode == 2, (argv, proc.stderr)
        assert proc.stdout == ""
        assert proc.stderr.startswith("stackd: dependency cycle: a → b → a\n"), proc.stderr
        assert "Traceback" not in proc.stderr


def test_variables_and_environment_list_what_interpolation_uses(tmp_path: Path) -> None:
    """Compose's `config --variables`: every variable the files (and what they include)
    use, with its default, alternate or requirement — also when a required one is
    unset, which is what one looks for; `--environment`: the values interpolation saw,
    the shell's over .env's."""
    (tmp_path / "compose.yaml").write_text(
        "include: [more.yaml]\nservices:\n  web:\n    image: ${IMAGE:-busybox}\n"
        "    environment: {A: '${TOKEN:?set TOKEN}', B: '${OPT:+on}'}\n")
    (tmp_path / "more.yaml").write_text("services:\n  db:\n    image: db:${TAG-1}\n")
    (tmp_path / ".env").write_text("IMAGE=from-dotenv\nTAG=2\n")

    def config(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "stackd", "config", *argv], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60,
                              env={"PATH": os.environ["PATH"], **env})

    r = config("--variables")
    assert r.returncode == 0, r.stderr
    assert [line.split() for line in r.stdout.splitlines()] == [
        ["NAME", "REQUIRED", "DEFAULT", "VALUE", "ALTERNATE", "VALUE"],
        ["IMAGE", "false", "busybox"], ["OPT", "false", "on"], ["TAG", "false", "1"],
        ["TOKEN", "true"]]
    data = json.loads(config("--variables", "--format", "json").stdout)
    assert data["TOKEN"] == {"name": "TOKEN", "required": True, "default": None,
                             "alternate": None}
    env = config("--environment", TAG="3").stdout.splitlines()
    assert "IMAGE=from-dotenv" in env and "TAG=3" in env  # the shell's wins
    assert config().returncode == 2  # the stack itself still needs TOKEN


def test_no_stack_file_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "stackd", "config"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("stackd: no stack file found in ")
    assert "Traceback" not in proc.stderr


def test_help_and_version() -> None:
    for argv in (["--version"], ["config", "--help"], ["--help"]):
        proc = subprocess.run([sys.executable, "-m", "stackd", *argv], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, (argv, proc.stderr)
        assert proc.stdout
    proc = subprocess.run([sys.executable, "-m", "stackd", "config", "--help"],
                          capture_output=True, text=True, timeout=60)
    for flag in ("--format", "--services", "--volumes", "--profiles", "--quiet"):
        assert flag in proc.stdout


def test_help_does_not_import_the_loader() -> None:
    code = textwrap.dedent("""\
        import sys
        from stackd.cli.main import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        print(sorted(m for m in sys.modules if m.startswith(("stackd.spec", "pydantic", "yaml"))))
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "[]"
