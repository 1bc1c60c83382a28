"""Dockerfile parsing, word expansion, .dockerignore and --chown lookups; pure."""

from __future__ import annotations

import pytest

from stackd.images.build.builder import parse_duration
from stackd.images.build.dockerfile import expand, key_values, parse_dockerfile, split_words
from stackd.images.build.dockerignore import is_ignored, parse_dockerignore
from stackd.images.build.users import resolve_chown
from stackd.images.errors import DockerfileError


def test_lines_continuations_comments_and_exec_form() -> None:
    text = """# syntax=docker/dockerfile:1
FROM busybox AS base

# a comment
run echo one \\
  # dropped inside a continuation
  && echo two
COPY --from=base --chown=app:staff /a /b
CMD ["sh", "-c", "echo hi"]
ENTRYPOINT [not json
"""
    ins = parse_dockerfile(text)
    assert [(i.cmd, i.line) for i in ins] == [("FROM", 2), ("RUN", 5), ("COPY", 8), ("CMD", 9),
                                              ("ENTRYPOINT", 10)]
    assert ins[1].args == "echo one   && echo two"
    assert ins[2].flags == {"from": "base", "chown": "app:staff"} and ins[2].args == "/a /b"
    assert ins[3].json_args == ("sh", "-c", "echo hi")
    assert ins[4].json_args is None


def test_escape_directive() -> None:
    ins = parse_dockerfile("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\n")
    assert ins[1].args == "dir c:\\   && echo"


@pytest.mark.parametrize(("text", "message"), [
    ("FROM x\nONBUILD RUN make\n", "ONBUILD is not supported by stackd (Dockerfile:2)"),
    ("FROM x\nFOO bar\n", "unsupported instruction 'FOO' (Dockerfile:2)"),
    ("FROM x\n\nRUN --security=insecure make\n",
     "RUN: unsupported option '--security' (Dockerfile:3)"),
    ("# only a comment\n", "the Dockerfile has no instructions (Dockerfile)"),
])
def test_unsupported_things_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        parse_dockerfile(text)
    assert str(err.value).splitlines()[0] == message
    assert err.value.exit_code == 2


def test_expansion_like_docker() -> None:
    env = {"A": "1", "EMPTY": "", "P": "/x y"}
    assert expand("$A-${A}-${MISSING:-d}-${EMPTY:-e}-${EMPTY-f}-${A:+set}-${MISSING:+no}",
                  env) == "1-1-d-e--set-"
    assert expand("'$A' \"$A\" \\$A", env) == "$A 1 $A"
    assert expand("${P}/file", env) == "/x y/file"


def test_a_default_holds_expansions_as_buildkits() -> None:
    # Once "missing '}'": the first `}` was taken as the outer one's end.
    env = {"A": "1", "EMPTY": "", "PLATFORM": "linux/amd64", "FILE": "/a/b.tar.gz"}
    assert expand("${MISSING:-${A}}", env) == "1"
    assert expand("${MISSING:-${EMPTY:-${A}-x}}/y", env) == "1-x/y"
    assert expand("${A:+<${A}>}", env) == "<1>"
    assert expand("${MISSING:-\\}}", env) == "}"  # an escaped brace is text
    assert expand("${PLATFORM#linux/}", env) == "amd64"
    assert expand("${FILE#*/}|${FILE##*/}|${FILE%.*}|${FILE%%.*}", env) == (
        "a/b.tar.gz|b.tar.gz|/a/b.tar|/a/b")
    assert expand("${A:?}", env) == "1"
    with pytest.raises(ValueError, match="NEEDED: set it with --build-arg"):
        expand("${NEEDED:?set it with --build-arg}", env)
    with pytest.raises(ValueError, match="EMPTY: is not set"):
        expand("${EMPTY:?}", env)
    with pytest.raises(ValueError, match="missing '}'"):
        expand("${MISSING:-${A}", env)
    deep = "${X:-" * 40 + "end" + "}" * 40
    with pytest.raises(ValueError, match="nest more than 32"):
        expand(deep, env)
    assert expand("${X:-" * 30 + "end" + "}" * 30, env) == "end"


def test_key_values_and_words() -> None:
    env = {"V": "v"}
    assert key_values('A=1 B="two words" C=$V', env, legacy_space_form=True) == [
        ("A", "1"), ("B", "two words"), ("C", "v")]
    assert key_values("LEGACY some value $V", env, legacy_space_form=True) == [
        ("LEGACY", "some value v")]
    assert split_words('a "b c" d\\ e') == ["a", '"b c"', "d\\ e"]


def test_dockerignore_rules() -> None:
    pats = parse_dockerignore("# comment\n*.log\nbuild/\n**/secret*\n!keep.log\n/tmp/*.x\n")
    assert is_ignored("app.log", pats)
    assert not is_ignored("keep.log", pats)
    assert not is_ignored("sub/app.log", pats)  # * does not cross directories
    assert is_ignored("build/out/bin", pats)
    assert is_ignored("a/b/secret.txt", pats) and is_ignored("secret", pats)
    assert is_ignored("tmp/1.x", pats) and not is_ignored("src/main.c", pats)


def test_chown_resolution_from_the_image_files() -> None:
    passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
    group = "root:x:0:\nstaff:x:50:app\n"
    assert resolve_chown("app", passwd, group) == (1000, 1000)
    assert resolve_chown("app:staff", passwd, group) == (1000, 50)
    assert resolve_chown("12:34", None, None) == (12, 34)
    with pytest.raises(KeyError, match="user 'bob' is not in the image's /etc/passwd"):
        resolve_chown("bob", passwd, group)


def test_durations() -> None:
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    with pytest.raises(ValueError):
        parse_duration("5 minutes")
