"""Dockerfile 1.4's heredocs and every `RUN --mount` type, as parsed (pure): what
`docker init`'s Dockerfiles use (a cache for pip or Go modules, the lock files bound in
from the context, a script written inline)."""

from __future__ import annotations

import pytest

from stackd.images.build.builder import platform_args
from stackd.images.build.dockerfile import Heredoc, expand, parse_dockerfile
from stackd.images.build.runmounts import (
    BindMount,
    CacheMount,
    SecretMount,
    TmpfsMount,
    parse_mounts,
)
from stackd.images.errors import DockerfileError
from stackd.images.platform import Platform

DOCKER_INIT_GO = """\
# syntax=docker/dockerfile:1
FROM golang AS build
WORKDIR /src
RUN --mount=type=cache,target=/go/pkg/mod/ \\
    --mount=type=bind,source=go.sum,target=go.sum \\
    --mount=type=bind,source=go.mod,target=go.mod \\
    go mod download -x
RUN --mount=type=cache,target=/go/pkg/mod/ --mount=type=bind,target=. \\
    go build -o /bin/server .
"""


def test_heredocs_are_read_verbatim_up_to_their_word() -> None:
    text = (
        "FROM busybox\n"
        "RUN <<EOF\n"
        "set -e\n"
        "# not a Dockerfile comment here\n"
        "echo \"$HOME\" \\\n"
        "EOF\n"
        "RUN <<-'END' cat > /x && <<TWO sh\n"
        "\t\tindented\n"
        "\tEND\n"
        "echo two\n"
        "TWO\n"
        "COPY <<conf.ini /etc/app/\n"
        "[x]\n"
        "conf.ini\n"
        "CMD [\"sh\"]\n"
    )
    ins = parse_dockerfile(text)
    assert [(i.cmd, i.line) for i in ins] == [("FROM", 1), ("RUN", 2), ("RUN", 7),
                                              ("COPY", 12), ("CMD", 15)]
    assert ins[1].heredocs == (Heredoc("EOF", 'set -e\n# not a Dockerfile comment here\n'
                                       'echo "$HOME" \\\n', True, "<<EOF"),)
    assert ins[2].heredocs == (Heredoc("END", "indented\n", False, "<<-'END'"),
                               Heredoc("TWO", "echo two\n", True, "<<TWO"))
    assert ins[3].heredocs[0].content == "[x]\n" and ins[3].args == "<<conf.ini /etc/app/"
    # Not heredocs: a here-string, a shift, and the exec form.
    for line in ("RUN cat <<<word", "RUN echo $((1<<2))", 'RUN ["sh", "-c", "cat <<EOF"]'):
        assert parse_dockerfile(f"FROM x\n{line}\n")[1].heredocs == ()


def test_a_heredoc_without_its_word_names_the_line() -> None:
    with pytest.raises(DockerfileError) as err:
        parse_dockerfile("FROM x\n\nRUN <<EOF\necho\n")
    assert str(err.value).splitlines()[0] == (
        "RUN: the heredoc <<EOF has no line 'EOF' to end it (Dockerfile:3)")


def test_heredoc_bodies_expand_variables_but_keep_quotes() -> None:
    env = {"NAME": "web", "PORT": "80"}
    body = "name='$NAME' port=\"${PORT}\" \\$literal ${MISSING:-none} $(date)\n"
    assert expand(body, env, quotes=False) == (
        "name='web' port=\"80\" $literal none $(date)\n")


def test_docker_inits_mounts() -> None:
    ins = parse_dockerfile(DOCKER_INIT_GO)
    assert parse_mounts(ins[2], "Dockerfile", "/src") == [
        CacheMount("/go/pkg/mod", "/go/pkg/mod"),
        BindMount("/src/go.sum", "go.sum"), BindMount("/src/go.mod", "go.mod")]
    assert parse_mounts(ins[3], "Dockerfile", "/src") == [
        CacheMount("/go/pkg/mod", "/go/pkg/mod"), BindMount("/src")]


@pytest.mark.parametrize(("flag", "mount"), [
    ("type=cache,id=pip,target=/root/.cache/pip,sharing=locked,mode=0700,uid=1000,gid=50,ro",
     CacheMount("pip", "/root/.cache/pip", True, "locked", 0o700, 1000, 50)),
    ("type=bind,from=builder,source=/out,target=/in,rw",
     BindMount("/in", "/out", "builder", readwrite=True)),
    ("type=bind,src=$DIR,dst=lib", BindMount("/work/lib", "vendored")),
    ("type=tmpfs,target=/scratch,size=1048576", TmpfsMount("/scratch", 1048576)),
    ("type=secret,id=token", SecretMount("token", "/run/secrets/token")),
    ("type=secret,target=/etc/key,required", SecretMount("key", "/etc/key", True)),
])
def test_each_mount_type_and_its_options(flag: str, mount: object) -> None:
    ins = parse_dockerfile(f"FROM x\nRUN --mount={flag} true\n")[1]
    assert parse_mounts(ins, "Dockerfile", "/work", {"DIR": "vendored"}) == [mount]


@pytest.mark.parametrize(("flag", "message"), [
    ("type=ssh", "--mount=type=ssh is not supported"),
    ("type=nfs,target=/x", "--mount=type=nfs is not a mount type"),
    ("type=cache", "a cache mount needs a target"),
    ("type=cache,target=/c,sharing=sometimes", "sharing=sometimes is not one of"),
    ("type=cache,target=/c,mode=rwx", "mode=rwx is not a number in octal"),
    ("type=cache,target=/c,uid=-1", "uid=-1 is not a non-negative number"),
    ("type=bind,target=/c,size=1", "unsupported option size"),
    ("type=secret,id=a/b", "the secret needs an id"),
    ("type=tmpfs,target=/", "cannot mount over the root"),
])
def test_a_bad_mount_is_refused_naming_the_line(flag: str, message: str) -> None:
    ins = parse_dockerfile(f"FROM x\n\nRUN --mount={flag} true\n")[1]
    with pytest.raises(DockerfileError) as err:
        parse_mounts(ins, "Dockerfile", "/")
    assert message in str(err.value) and "(Dockerfile:3)" in str(err.value)


def test_two_mounts_on_one_target_are_refused() -> None:
    ins = parse_dockerfile("FROM x\nRUN --mount=type=cache,target=/c "
                           "--mount=type=tmpfs,target=/c true\n")[1]
    with pytest.raises(DockerfileError, match="two --mount flags have the target /c"):
        parse_mounts(ins, "Dockerfile", "/")


def test_platform_args_are_buildkits() -> None:
    assert platform_args(Platform("linux", "arm", "v7")) == {
        "TARGETPLATFORM": "linux/arm/v7", "TARGETOS": "linux", "TARGETARCH": "arm",
        "TARGETVARIANT": "v7", "BUILDPLATFORM": "linux/arm/v7", "BUILDOS": "linux",
        "BUILDARCH": "arm", "BUILDVARIANT": "v7"}
