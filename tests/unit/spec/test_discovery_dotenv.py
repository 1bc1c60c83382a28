"""Finding the project's files, naming it, and reading .env files, as compose does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stackd.errors import SpecError, UsageError
from stackd.spec import LoadOptions, ProjectSource, load, normalize_project_name
from stackd.spec.dotenv import parse_dotenv, parse_raw_env

Write = Callable[[str, str], Path]


@pytest.mark.parametrize("name", ["compose.yaml", "compose.yml", "docker-compose.yaml",
                                  "docker-compose.yml"])
def test_default_file_names(write: Write, tmp_path: Path, name: str) -> None:
    write(name, "services: {}\n")
    src = ProjectSource.discover(cwd=tmp_path)
    assert src.files == (str(tmp_path / name),)
    assert src.project_directory == tmp_path


def test_compose_yaml_wins_and_override_is_merged(write: Write, tmp_path: Path) -> None:
    write("docker-compose.yml", "services: {old: {image: old}}\n")
    write("compose.yaml", "services: {web: {image: web:1}}\n")
    write("compose.override.yaml", "services: {web: {image: web:dev}}\n")
    src = ProjectSource.discover(cwd=tmp_path)
    assert src.files == (str(tmp_path / "compose.yaml"),
                         str(tmp_path / "compose.override.yaml"))
    stack = load(LoadOptions(cwd=tmp_path, environ={}))
    assert stack.services["web"].image == "web:dev" and "old" not in stack.services


def test_found_in_a_parent_directory(write: Write, tmp_path: Path) -> None:
    write("compose.yaml", "services: {}\n")
    (tmp_path / "src" / "deep").mkdir(parents=True)
    assert ProjectSource.discover(cwd=tmp_path / "src" / "deep").project_directory == tmp_path


def test_no_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no stack file found"):
        ProjectSource.discover(cwd=tmp_path)
    with pytest.raises(UsageError, match=r"stack file '.*nope.yaml' does not exist"):
        ProjectSource.discover(["nope.yaml"], cwd=tmp_path)


def test_project_directory_is_the_first_files_unless_given(write: Write, tmp_path: Path) -> None:
    f = write("deploy/stack.yaml", "services: {}\n")
    assert ProjectSource.discover([str(f)], cwd=tmp_path).project_directory == f.parent
    assert ProjectSource.discover([str(f)], project_directory=".", cwd=tmp_path
                                  ).project_directory == tmp_path


@pytest.mark.parametrize(("raw", "normalized"), [
    ("My App", "myapp"), ("web_Shop-2", "web_shop-2"), ("__x", "x"), ("-a.b", "ab"),
])
def test_project_name_normalisation(raw: str, normalized: str) -> None:
    assert normalize_project_name(raw) == normalized


def test_project_name_sources(write: Write, tmp_path: Path) -> None:
    f = write("My Project/compose.yaml", "services: {}\n")
    assert load(LoadOptions(files=[str(f)], environ={})).name == "myproject"
    f.write_text("name: Named_Stack\nservices: {}\n")
    assert load(LoadOptions(files=[str(f)], environ={})).name == "named_stack"
    assert load(LoadOptions(files=[str(f)], environ={}, project_name="cli")).name == "cli"
    assert load(LoadOptions(files=[str(f)], environ={"STACKD_PROJECT_NAME": "Env"})
                ).name == "env"
    f.write_text("name: '!!!'\nservices: {}\n")
    with pytest.raises(SpecError, match="has no letters or digits left"):
        load(LoadOptions(files=[str(f)], environ={}))


def test_composes_variables_as_a_dotenv_written_for_compose_sets_them(
        write: Write, tmp_path: Path) -> None:
    """COMPOSE_FILE, COMPOSE_PROJECT_NAME and COMPOSE_PROFILES, from the shell or from
    .env, mean what they mean to Compose (stackd's own names win over them)."""
    write("base.yml", "services: {web: {image: 'web:1'}, tool: {image: t, profiles: [ops]}}\n")
    write("prod.yml", "services: {web: {image: 'web:prod'}}\n")
    write("compose.yaml", "services: {other: {image: o}}\n")
    write(".env", "COMPOSE_FILE=base.yml:prod.yml\nCOMPOSE_PROJECT_NAME=shop\n"
                  "COMPOSE_PROFILES=ops\n")
    stack = load(LoadOptions(cwd=tmp_path, environ={}))
    assert stack.name == "shop" and "other" not in stack.services
    assert stack.services["web"].image == "web:prod" and "tool" in stack.services
    # The shell's win over .env; stackd's names over Compose's; -f over both.
    stack = load(LoadOptions(cwd=tmp_path, environ={
        "COMPOSE_FILE": "base.yml", "COMPOSE_PROJECT_NAME": "shell",
        "STACKD_PROJECT_NAME": "mine", "STACKD_PROFILES": "none"}))
    assert (stack.name, stack.services["web"].image) == ("mine", "web:1")
    assert "tool" not in stack.services
    stack = load(LoadOptions(cwd=tmp_path, environ={}, files=["compose.yaml"]))
    assert list(stack.services) == ["other"]
    # Another separator, as COMPOSE_PATH_SEPARATOR says.
    stack = load(LoadOptions(cwd=tmp_path, environ={
        "COMPOSE_FILE": "base.yml;prod.yml", "COMPOSE_PATH_SEPARATOR": ";"}))
    assert stack.services["web"].image == "web:prod"
    with pytest.raises(UsageError, match=r"stack file '.*nowhere\.yml' does not exist"):
        load(LoadOptions(cwd=tmp_path, environ={"COMPOSE_FILE": "nowhere.yml"}))


def test_shell_wins_over_dotenv_and_env_file_replaces_it(write: Write, tmp_path: Path) -> None:
    f = write("compose.yaml", "services: {s: {image: 'x:${TAG}-${OTHER:-none}'}}\n")
    write(".env", "TAG=dotenv\nOTHER=dotenv\n")
    write("prod.env", "TAG=prod\n")
    img = lambda **kw: load(LoadOptions(files=[str(f)], **kw)).services["s"].image  # noqa: E731
    assert img(environ={}) == "x:dotenv-dotenv"
    assert img(environ={"TAG": "shell"}) == "x:shell-dotenv"
    assert img(environ={}, env_files=[str(tmp_path / "prod.env")]) == "x:prod-none"
    with pytest.raises(SpecError, match=r"env file '.*missing.env' does not exist"):
        img(environ={}, env_files=[str(tmp_path / "missing.env")])


def test_dotenv_syntax() -> None:
    text = (
        "# comment\n"
        "\n"
        "PLAIN=value\n"
        "export EXPORTED=yes\n"
        "SPACED = around \n"
        "COMMENTED=value # trailing comment\n"
        "HASH=a#b\n"
        "SINGLE='no $PLAIN expansion'\n"
        'DOUBLE="with $PLAIN and \\n newline"\n'
        "REF=${PLAIN}-${FROM_SHELL}\n"
        'MULTI="line one\n'
        'line two"\n'
        "EMPTY=\n"
        "BARE\n"
        "INHERITED\n"
    )
    # A bare name passes the variable through when it is set, as compose-go's (it set
    # nothing, so an env_file's `AWS_REGION` line left the container without it).
    assert parse_dotenv(text, ".env", {"FROM_SHELL": "sh", "INHERITED": "shell's"}) == {
        "PLAIN": "value", "EXPORTED": "yes", "SPACED": "around", "COMMENTED": "value",
        "HASH": "a#b", "SINGLE": "no $PLAIN expansion", "DOUBLE": "with value and \n newline",
        "REF": "value-sh", "MULTI": "line one\nline two", "EMPTY": "",
        "INHERITED": "shell's",
    }


def test_raw_env_lines_are_docker_runs_env_file() -> None:
    text = ("\ufeff# comment\n"
            "  PLAIN=value with 'quotes' and ${NOT} # nor a comment\n"
            "EMPTY=\n"
            "INHERITED\n"
            "UNSET\n"
            "EQUALS=a=b\n")
    assert parse_raw_env(text, "app.env", {"INHERITED": "shell's", "NOT": "x"}) == {
        "PLAIN": "value with 'quotes' and ${NOT} # nor a comment", "EMPTY": "",
        "INHERITED": "shell's", "EQUALS": "a=b"}


@pytest.mark.parametrize(("text", "message"), [
    ("=x\n", r"app\.env: line 1 names no variable"),
    ("A B=x\n", r"app\.env: line 1: the name 'A B' holds whitespace"),
])
def test_raw_env_errors(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_raw_env(text, "app.env", {})


def test_an_env_file_is_read_in_its_format(write: Write, tmp_path: Path) -> None:
    """`format: raw` was taken and ignored: the file was read as .env, its `$x`
    interpolated away and its quotes taken off."""
    write("raw.env", 'RAW="$HOME as is"\n')
    f = write("compose.yaml", "services:\n  s:\n    image: x\n    env_file:\n"
              "      - {path: raw.env, format: raw}\n      - {path: raw.env}\n"
              "    environment: {LATER: 1}\n")
    env = load(LoadOptions(files=[str(f)], environ={"HOME": "/root"})).services["s"].environment
    assert env["RAW"] == "/root as is"  # the second, .env syntax, wins
    f.write_text(f.read_text().replace("      - {path: raw.env}\n", ""))
    env = load(LoadOptions(files=[str(f)], environ={"HOME": "/root"})).services["s"].environment
    assert env["RAW"] == '"$HOME as is"'
    f.write_text(f.read_text().replace("format: raw", "format: yaml"))
    with pytest.raises(SpecError, match=r"env_file '.*raw\.env': unsupported format 'yaml'"):
        load(LoadOptions(files=[str(f)], environ={}))


@pytest.mark.parametrize(("text", "message"), [
    ("1BAD=x\n", r"\.env: line 1 is not NAME=value"),
    ("A='open\n", r"\.env: the value of A has no closing '"),
])
def test_dotenv_errors(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_dotenv(text, ".env", {})


def test_places_are_relative_to_the_callers_directory(write: Write, tmp_path: Path) -> None:
    f = write("proj/compose.yaml", "services:\n  web: {image: x}\n")
    stack = load(LoadOptions(files=[str(f)], environ={}, cwd=tmp_path))
    loc = stack.location_of(("services", "web"))
    assert loc is not None and loc.file == "proj/compose.yaml"
