"""Another local user reads nothing stackd keeps: not a stack's environment, not a
secret, not a volume, not a log (issue #13, item 3).

A stack with a secret (`mode: 0400`, source file 0600), a config, an environment
variable and a named volume is brought up — by a CLI running under umask 000, so no
mode below comes from the umask. Then every file and directory under the state and run
roots is walked as root and tried as `nobody` in a forked child (setgroups([]),
setgid, setuid): nothing below the roots may even be reached, and nothing may be read.

The roots live in a fresh 0755 directory under /tmp (not pytest's 0700 tmp dir), so
only stackd's own modes stand between `nobody` and the files, as under /var/lib and
/run. The one path `nobody` reaches is each root itself (its parent is open): it can
see that it exists, not list it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI

from stackd.daemon.desired_store import db_path
from stackd.filemodes import tighten
from stackd.roots import Roots
from stackd.runtime.containerdirs import tighten_container_dir

pytestmark = pytest.mark.root

NOBODY = 65534
SECRET = b"hunter2-secret-3c1f"
ENV_MARKER = "env-marker-9d2a"
CONFIG = b"config-body-77e0"

STACK = f"""\
services:
  app:
    image: stackd-demo/busybox:latest
    command: ["sh", "-c", "echo started; sleep 600"]
    environment:
      PASSWORD: {ENV_MARKER}
    secrets:
      - source: pw
        mode: 0400
    configs:
      - cfg
    volumes:
      - data:/data
secrets:
  pw:
    file: ./secret.txt
configs:
  cfg:
    file: ./config.txt
volumes:
  data: {{}}
"""


@pytest.fixture
def roots(monkeypatch: pytest.MonkeyPatch) -> Iterator[Roots]:
    """This module's roots: in an open (0755) directory, so the test measures the
    roots' own modes, not pytest's private tmp dir."""
    base = Path(tempfile.mkdtemp(prefix="stackd-modes-", dir="/tmp"))
    os.chmod(base, 0o755)
    r = Roots(state=base / "state", run=base / "run").ensure()
    monkeypatch.setenv("STACKD_ROOT", str(r.state))
    monkeypatch.setenv("STACKD_RUN", str(r.run))
    try:
        yield r
    finally:
        shutil.rmtree(base, ignore_errors=True)


def walk(root: Path) -> list[Path]:
    """Every path under `root` (itself included), not descending into mounts (a
    container's merged root, a network namespace's file): they are the container's."""
    dev = root.stat().st_dev
    found = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            found.append(Path(dirpath, name))
        dirnames[:] = [d for d in dirnames if os.lstat(Path(dirpath, d)).st_dev == dev]
    return found


def as_nobody(paths: list[Path]) -> dict[str, dict[str, bool]]:
    """For each path, what `nobody` (no supplementary groups) can do: reach it (lstat)
    and read it (list a directory, open a file, connect to a socket)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out: dict[str, dict[str, bool]] = {}
            for p in paths:
                out[str(p)] = {"reach": _tries(os.lstat, p), "read": _read(p)}
            data = json.dumps(out).encode()
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        raw = f.read()
    os.waitpid(pid, 0)
    result: dict[str, dict[str, bool]] = json.loads(raw)
    return result


def _tries(fn, *args) -> bool:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except PermissionError:
        return False
    except OSError as e:
        # Anything but "permission denied" after reaching the object means the
        # permission check let us through (e.g. ENXIO opening a whiteout device).
        return e.errno not in (errno.EACCES, errno.EPERM)
    return True


def _read(p: Path) -> bool:
    try:
        st = os.lstat(p)
    except PermissionError:
        return False
    if stat.S_ISDIR(st.st_mode):
        return _tries(os.listdir, p)
    if stat.S_ISSOCK(st.st_mode):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            return _tries(s.connect, str(p))
    if stat.S_ISLNK(st.st_mode):
        return _tries(os.readlink, p)
    return _tries(lambda: os.close(os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW
                                           | os.O_NOCTTY)))


def _bring_up(cli: CLI) -> None:
    (cli.cwd / "compose.yaml").write_text(STACK)
    for name, body in (("secret.txt", SECRET), ("config.txt", CONFIG)):
        (cli.cwd / name).write_bytes(body)
        os.chmod(cli.cwd / name, 0o600)
    old = os.umask(0)  # the CLI, the daemon it starts, the monitor: none may need 077
    try:
        cli("up", "-d")
    finally:
        os.umask(old)
    out = cli("exec", "-T", "app", "cat", "/run/secrets/pw").stdout
    assert out.encode() == SECRET


def test_nobody_reaches_nothing_under_the_roots(cli: CLI) -> None:
    _bring_up(cli)
    roots = cli.roots
    paths = walk(roots.state) + walk(roots.run)
    names = {p.name for p in paths}
    # The walk saw what matters (so the test cannot pass on an empty tree): the spec
    # with the environment, the state record, the log, the secret's copy, the volume.
    specs = [p for p in paths if p.name == "spec.json"]
    assert specs and ENV_MARKER in specs[0].read_text()
    assert {"state.json", "log.json", "stackd.db", "data", "stackd.sock",
            "monitor.sock"} <= names
    assert any(p.is_file() and p.read_bytes() == SECRET for p in paths)

    # The probe can read what is open (a 0644 file in the roots' 0755 parent).
    control = roots.state.parent / "control"
    control.write_text("x")
    os.chmod(control, 0o644)
    seen = as_nobody([*paths, control])
    assert seen.pop(str(control)) == {"reach": True, "read": True}

    reached = sorted(p for p, what in seen.items() if what["reach"])
    assert reached == sorted([str(roots.state), str(roots.run)])
    readable = sorted(p for p, what in seen.items() if what["read"])
    assert readable == []


def test_what_stackd_keeps_is_private_even_below_the_roots(cli: CLI) -> None:
    """Defence in depth: were a root opened by mistake, stackd's own records would
    still be root's only. Only what the container sees keeps the mode it needs."""
    _bring_up(cli)
    state, run = cli.roots.state, cli.roots.run

    def container_content(p: Path) -> bool:
        rel = p.relative_to(state).parts if p.is_relative_to(state) else ()
        return ((rel[:2] == ("images", "snapshots") and len(rel) > 2)
                or (rel[:1] == ("containers",) and len(rel) > 3
                and rel[2] in ("upper", "rootfs", "files"))
                or (rel[:1] == ("volumes",) and len(rel) > 2 and rel[2] == "data")
                or (rel[:1] == ("files",) and len(rel) == 2))

    wide = []
    for p in walk(state) + walk(run):
        st = os.lstat(p)
        mounted = st.st_dev != os.lstat(p.parent).st_dev  # a netns file: nsfs's mode
        if (stat.S_ISLNK(st.st_mode) or mounted or container_content(p)
                or p.name in ("upper", "rootfs")):
            continue
        if stat.S_IMODE(st.st_mode) & 0o077:
            wide.append(f"{oct(stat.S_IMODE(st.st_mode))} {p}")
    assert wide == []

    # The secret asked for 0400 from a 0600 file: no copy anywhere is wider.
    holders = [p for p in walk(state) + walk(run)
               if p.is_file() and not p.is_symlink()
               and os.lstat(p).st_dev == os.lstat(p.parent).st_dev
               and SECRET in p.read_bytes()]
    assert holders
    for p in holders:
        assert stat.S_IMODE(p.stat().st_mode) & ~0o600 == 0, p
    assert any(stat.S_IMODE(p.stat().st_mode) == 0o400 for p in holders)


def test_an_open_root_of_an_older_stackd_is_closed_at_start(cli: CLI) -> None:
    roots = cli.roots
    for root in (roots.state, roots.run):
        os.chmod(root, 0o755)
    (roots.state / "logs").mkdir(mode=0o755, exist_ok=True)
    os.chmod(roots.state / "logs", 0o755)
    old_log = roots.state / "logs" / "daemon.log"
    old_log.write_text("an older daemon's log\n")
    os.chmod(old_log, 0o644)
    db = db_path(roots.state)
    db.write_bytes(b"")
    os.chmod(db, 0o644)
    (roots.run / "containers").mkdir(mode=0o755)
    os.chmod(roots.run / "containers", 0o755)

    cli("-p", "none", "ps")  # starts the daemon

    assert stat.S_IMODE(roots.state.stat().st_mode) == 0o700
    assert stat.S_IMODE(roots.run.stat().st_mode) == 0o700
    assert stat.S_IMODE((roots.state / "logs").stat().st_mode) == 0o700
    assert stat.S_IMODE(old_log.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE((roots.run / "containers").stat().st_mode) == 0o700


def test_tighten_closes_a_directory_and_what_lies_in_it(tmp_path: Path) -> None:
    d = tmp_path / "root"
    d.mkdir(mode=0o755)
    (d / "sub").mkdir(mode=0o755)
    (d / "f").write_text("x")
    os.chmod(d / "f", 0o644)
    os.chmod(d, 0o755)
    tighten(d)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in [d, *d.iterdir()]} == {
        "root": 0o700, "sub": 0o700, "f": 0o600}


def test_an_older_container_dir_is_closed_but_its_root_stays_open(tmp_path: Path) -> None:
    d = tmp_path / "c1"
    for sub in ("upper", "rootfs", "work", "files"):
        (d / sub).mkdir(parents=True)
        os.chmod(d / sub, 0o755)
    for name in ("log.json", "spec.json"):
        (d / name).write_text("{}")
        os.chmod(d / name, 0o644)
    (d / "files" / "0").write_text("cfg")
    os.chmod(d / "files" / "0", 0o444)
    os.chmod(d, 0o755)
    tighten_container_dir(d)
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode)
             for p in [d, *d.iterdir(), d / "files" / "0"]}
    assert modes == {"c1": 0o700, "c1/upper": 0o755, "c1/rootfs": 0o755, "c1/work": 0o700,
                     "c1/files": 0o700, "c1/log.json": 0o600, "c1/spec.json": 0o600,
                     "c1/files/0": 0o444}
