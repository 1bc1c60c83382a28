"""`stackd image bootstrap`: what it asks mmdebstrap for, the cache key, the mirror it
takes from the host's apt sources, and the errors a user meets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stackd.errors import UsageError
from stackd.images.bootstrap import (
    BootstrapRequest,
    BootstrapToolMissingError,
    UnknownPackageError,
    host_mirror,
    run_mmdebstrap,
    unknown_packages,
)

MIRROR = "http://deb.debian.org/debian"


def test_the_cache_key_is_the_suite_and_the_package_set_in_any_order() -> None:
    a = BootstrapRequest.make("debian", "bookworm", ["redis-server,python3-flask"], MIRROR)
    b = BootstrapRequest.make("debian", "bookworm", ["python3-flask", "redis-server",
                                                     "python3-flask"], MIRROR)
    assert a == b
    assert a.built_by == "debian bookworm python3-flask redis-server"
    assert a.default_name() == b.default_name()
    assert a.default_name().startswith("debian-bookworm:")
    c = BootstrapRequest.make("debian", "trixie", ["python3-flask", "redis-server"], MIRROR)
    assert c.built_by != a.built_by
    assert BootstrapRequest.make("debian", "bookworm", [], MIRROR).default_name() == \
        "debian:bookworm"


def test_mmdebstrap_gets_the_packages_suite_and_mirror() -> None:
    r = BootstrapRequest.make("debian", "bookworm", ["redis-server python3-redis"], MIRROR)
    argv = r.argv(Path("/tmp/out.tar"))
    assert argv[0] == "mmdebstrap"
    assert "--dpkgopt=force-unsafe-io" in argv
    assert "--include=python3-redis,redis-server" in argv
    assert argv[-3:] == ["bookworm", "/tmp/out.tar", f"deb {MIRROR} bookworm main"]


@pytest.mark.parametrize(("args", "message"), [
    (("alpine", "bookworm", []), "cannot bootstrap 'alpine'"),
    (("debian", "Bookworm!", []), "'Bookworm!' is not a Debian suite name"),
    (("debian", "bookworm", ["redis;rm -rf /"]), "'redis;rm' is not a Debian package name"),
    (("debian", "bookworm", ["--option"]), "'--option' is not a Debian package name"),
])
def test_bad_names_are_refused_before_anything_runs(args: tuple[str, str, list[str]],
                                                    message: str) -> None:
    with pytest.raises(UsageError) as err:
        BootstrapRequest.make(*args, MIRROR)
    assert message in str(err.value)


def test_the_mirror_comes_from_the_hosts_apt_sources() -> None:
    deb822 = ("Types: deb\n# http://snapshot.debian.org/archive/debian/2025\n"
              "URIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
              "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    assert host_mirror([deb822]) == "http://mirror.example/debian"
    one_line = "deb [signed-by=/k.gpg arch=amd64] http://m.example/debian bookworm main\n"
    assert host_mirror(["# deb http://old/debian x main\n", one_line]) == \
        "http://m.example/debian"
    assert host_mirror(["deb https://packages.example/apt cloud main\n"]) is None


def test_an_unknown_package_is_named() -> None:
    # mmdebstrap's output for `--include=nosuchpkg-xyz` (apt's words)
    stderr = ("I: installing remaining packages inside the chroot...\n"
              "E: Unable to locate package nosuchpkg-xyz\n"
              "E: setup failed: E: apt-get … install nosuchpkg-xyz failed\n"
              "E: Package 'gone' has no installation candidate\n")
    assert unknown_packages(stderr) == ["nosuchpkg-xyz", "gone"]


def test_unknown_package_error_names_the_package_and_the_fix(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    # A stand-in mmdebstrap on PATH that fails as the real one does.
    fake = tmp_path / "mmdebstrap"
    fake.write_text("#!/bin/sh\necho 'E: Unable to locate package nosuchpkg-xyz' >&2\n"
                    "exit 25\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    r = BootstrapRequest.make("debian", "bookworm", ["nosuchpkg-xyz"], MIRROR)
    with pytest.raises(UnknownPackageError) as err:
        run_mmdebstrap(r, tmp_path / "out.tar")
    assert str(err.value) == (
        f"package nosuchpkg-xyz is not in Debian bookworm ({MIRROR})\n"
        "  hint: check the name with `apt-cache search nosuchpkg-xyz`, or the suite with "
        "--suite; then run the command again")


def test_missing_mmdebstrap_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "STACKD_ROOT": str(tmp_path / "state"),
           "STACKD_RUN": str(tmp_path / "run")}
    r = subprocess.run([sys.executable, "-m", "stackd", "image", "bootstrap", "debian",
                        "--include", "redis-server"], env=env, capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == BootstrapToolMissingError.exit_code
    assert r.stderr == ("stackd: mmdebstrap is not installed: it builds the root filesystem\n"
                        "  hint: apt-get install mmdebstrap (scripts/setup installs it)\n")


def test_the_same_package_set_reuses_the_image_it_built(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in mmdebstrap on PATH writes a one-file root filesystem and counts its
    runs: the second request for the same set (in another order) does not run it."""
    from stackd.images import ImageStore
    from stackd.images.bootstrap import BUILT_BY_LABEL, bootstrap
    from stackd.roots import Roots

    runs = tmp_path / "runs"
    fake = tmp_path / "bin" / "mmdebstrap"
    fake.parent.mkdir()
    # argv: … SUITE TARBALL "deb MIRROR SUITE main": the tarball is the next to last.
    fake.write_text('#!/bin/sh\necho run >> ' + str(runs) + '\n'
                    'for a; do out=$prev; prev=$a; done\n'
                    'd=$(mktemp -d) && mkdir "$d/etc" && echo bookworm > "$d/etc/debian_version"'
                    ' && tar -C "$d" -cf "$out" . && rm -rf "$d"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    store = ImageStore(Roots(state=tmp_path / "state", run=tmp_path / "run").ensure())

    first = BootstrapRequest.make("debian", "bookworm", ["redis-server,python3-redis"], MIRROR)
    image_id, reused = bootstrap(store, first, "base:1")
    assert not reused and runs.read_text().count("run") == 1
    assert store.get("base:1").config.labels[BUILT_BY_LABEL] == \
        "debian bookworm python3-redis redis-server"

    again = BootstrapRequest.make("debian", "bookworm", ["python3-redis", "redis-server"], MIRROR)
    assert bootstrap(store, again, "base:2") == (image_id, True)
    assert runs.read_text().count("run") == 1  # not run again
    assert store.get("base:2").id == image_id

    other = BootstrapRequest.make("debian", "bookworm", ["redis-server"], MIRROR)
    other_id, reused = bootstrap(store, other, "base:3")
    assert not reused and other_id != image_id and runs.read_text().count("run") == 2
