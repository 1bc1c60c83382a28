"""Images whose command, entrypoint or working directory is a hostile path.

Each image is busybox plus a few links or files that make the container's command
(or its WORKDIR) impossible to run: a symlink loop, a dangling link, a directory, a
file without an x bit, a loop in a directory on the way. `up` and `run` must say which
service, which path and what to fix, as a typed error — never raw errno text — and the
host must be untouched (the image's links are only ever followed inside its root).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from e2e_helpers import CLI
from support.busybox import make_busybox_tar

from stackd.images import ImageConfig, ImageStore

pytestmark = pytest.mark.root

Entry = tuple[str, str | bytes | None, int]  # name, link text | file bytes | None (a dir), mode


def craft_image(cli: CLI, tmp_path: Path, ref: str, entries: list[Entry], *,
                workdir: str = "", drop: tuple[str, ...] = ()) -> str:
    """busybox without the entries named in `drop`, + `entries`, imported as `ref`
    (with `workdir` as its WORKDIR)."""
    stem = ref.replace("/", "_")
    base = make_busybox_tar(tmp_path / f"{stem}-base.tar", tmp_path / stem)
    out = tmp_path / f"{stem}.tar"
    with tarfile.open(base) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
        for m in src:
            if m.name.lstrip("./") in drop:
                continue
            dst.addfile(m, src.extractfile(m) if m.isreg() else None)
        for name, what, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mode = mode
            if isinstance(what, str):
                ti.type, ti.linkname = tarfile.SYMTYPE, what
                dst.addfile(ti)
            elif what is None:
                ti.type = tarfile.DIRTYPE
                dst.addfile(ti)
            else:
                ti.size = len(what)
                dst.addfile(ti, io.BytesIO(what))
    ImageStore(cli.roots).import_rootfs(out, ref=ref,
                                        config=ImageConfig(working_dir=workdir))
    return ref


LOOP: list[Entry] = [("bin/loop", "/bin/loop2", 0o777), ("bin/loop2", "/bin/loop", 0o777)]
HOSTILE: list[Entry] = [
    *LOOP,
    ("bin/dangling", "/nowhere/at/all", 0o777),
    ("bin/adir", None, 0o755),
    ("bin/noexec", b"#!/bin/sh\necho hi\n", 0o644),
    ("loopdir", "/loopdir2", 0o777),
    ("loopdir2", "/loopdir", 0o777),
    ("wd", "/wd2", 0o777),
    ("wd2", "/wd", 0o777),
]


@pytest.fixture
def hostile(cli: CLI, tmp_path: Path) -> str:
    return craft_image(cli, tmp_path, "evil/commands", HOSTILE)


def compose(cli: CLI, image: str, service: str) -> None:
    (cli.cwd / "compose.yaml").write_text(
        "name: hostile\nservices:\n"
        f"  app:\n    image: {image}\n    pull_policy: never\n    stop_signal: SIGKILL\n"
        f"{service}")


RAW = ("Errno", "b'", "Traceback", "OSError")


def assert_typed(text: str, *needles: str) -> None:
    """A message a user can act on: what it says, and no Python text."""
    for needle in needles:
        assert needle in text, text
    for raw in RAW:
        assert raw not in text, text


def test_up_with_sh_a_symlink_loop_names_the_service_path_and_fix(
        cli: CLI, tmp_path: Path) -> None:
    """The reported bug: `/bin/sh -> /bin/sh2 -> /bin/sh`, command `sh -c …` found
    through PATH. `up` fails once (no retry loop), naming the container, the path and
    the fix; nothing runs."""
    image = craft_image(cli, tmp_path, "evil/sh-loop",
                        [("bin/sh", "/bin/sh2", 0o777), ("bin/sh2", "/bin/sh", 0o777)],
                        drop=("bin/sh",))
    compose(cli, image, "    command: [sh, -c, 'sleep 1000']\n")
    r = cli("up", "-d", check=False)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert_typed(out, "app-1", "cannot run 'sh' (/bin/sh)", "symlink loop",
                 "fix the image")
    assert "retrying" not in out


def test_run_reports_each_unrunnable_command_as_docker_does(
        cli: CLI, tmp_path: Path) -> None:
    """`run` of a command that cannot be run: 127 when it is not there, 126 when it
    is but cannot be run, each with a message that says why."""
    image = craft_image(cli, tmp_path, "evil/commands", HOSTILE)
    compose(cli, image, "    command: [sleep, '1000']\n")
    cases = [
        ("/bin/loop", 126, ["'/bin/loop'", "symlink loop", "fix the image"]),
        ("loop", 126, ["'loop' (/bin/loop)", "symlink loop", "fix the image"]),
        ("/loopdir/sh", 126, ["'/loopdir/sh'", "symlink loop", "fix the image"]),
        ("/bin/dangling", 127, ["'/bin/dangling'", "symlink to '/nowhere/at/all'"]),
        ("/bin/adir", 126, ["'/bin/adir'", "is a directory"]),
        ("/bin/noexec", 126, ["'/bin/noexec'", "not executable (mode 0644)"]),
        ("/bin/noexec/x", 127, ["'/bin/noexec/x'", "on its path is a file"]),
    ]
    for command, code, needles in cases:
        r = cli("run", "--rm", "app", command, check=False)
        assert r.returncode == code, (command, r.returncode, r.stderr)
        assert_typed(r.stderr, *needles)


def test_workdir_through_a_symlink_loop_is_a_clear_error(
        cli: CLI, tmp_path: Path) -> None:
    """The image's WORKDIR `/wd -> /wd2 -> /wd`: `up` says which directory and why;
    `exec -w` into a running container says the same."""
    image = craft_image(cli, tmp_path, "evil/workdir-loop", HOSTILE, workdir="/wd")
    compose(cli, image, "    command: [sleep, '1000']\n")
    r = cli("up", "-d", check=False)
    assert r.returncode != 0
    assert_typed(r.stdout + r.stderr, "app-1", "working directory '/wd'", "symlink loop",
                 "WORKDIR")
    compose(cli, image, "    command: [sleep, '1000']\n    working_dir: /\n")
    cli("up", "-d")
    r = cli("exec", "-T", "-w", "/loopdir/x", "app", "true", check=False)
    assert r.returncode != 0
    assert_typed(r.stderr, "working directory '/loopdir/x'", "symlink loop")
    r = cli("exec", "-T", "app", "/bin/loop", check=False)
    assert r.returncode == 126
    assert_typed(r.stderr, "'/bin/loop'", "symlink loop")
