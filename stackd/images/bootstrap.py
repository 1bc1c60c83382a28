"""Base images made offline from a distribution's packages: `stackd image bootstrap`.

mmdebstrap builds a Debian root filesystem tarball from the host's apt mirror (no
registry, no Docker); the tarball goes into the store through `import_rootfs`, the
one import path. The image carries a label naming what built it (suite + sorted
package set), so asking for the same thing again reuses the image instead of
spending a minute on mmdebstrap.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stackd.errors import HostError, StackdError, UnavailableError, UsageError

BUILT_BY_LABEL = "io.stackd.bootstrap"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"
HOST_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
# Debian's package names (Policy 5.6.1) and suite/codename words.
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_SUITE = re.compile(r"^[a-z][a-z0-9-]{1,40}$")
_UNKNOWN_PACKAGE = re.compile(r"E: Unable to locate package (\S+)|"
                              r"E: Package '([^']+)' has no installation candidate")
if TYPE_CHECKING:
    from stackd.images.store import ImageStore

_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BootstrapToolMissingError(UnavailableError):
    """mmdebstrap is not installed on the host."""


class UnknownPackageError(UsageError):
    """A package asked for is not in the suite's archive."""


class BootstrapFailedError(HostError):
    """mmdebstrap failed for another reason (mirror unreachable, disk, dpkg)."""


@dataclass(frozen=True)
class BootstrapRequest:
    distro: str
    suite: str
    packages: tuple[str, ...]  # sorted, unique
    mirror: str

    @classmethod
    def make(cls, distro: str, suite: str, packages: Iterable[str],
             mirror: str) -> BootstrapRequest:
        if distro != "debian":
            raise UsageError(f"cannot bootstrap '{distro}'",
                             hint="only 'debian' is supported: stackd image bootstrap debian")
        if not _SUITE.match(suite):
            raise UsageError(f"'{suite}' is not a Debian suite name",
                             hint="give a codename such as bookworm or trixie")
        names: set[str] = set()
        for item in packages:
            for name in item.replace(",", " ").split():
                if not _PACKAGE.match(name):
                    raise UsageError(f"'{name}' is not a Debian package name",
                                     hint="package names are lower-case letters, digits "
                                          "and + . - (e.g. python3-flask)")
                names.add(name)
        return cls(distro, suite, tuple(sorted(names)), mirror)

    @property
    def built_by(self) -> str:
        """The label value: equal for equal requests, whatever the package order."""
        return f"{self.distro} {self.suite} {' '.join(self.packages)}".strip()

    def default_name(self) -> str:
        """`debian:<suite>` for the bare suite; else a tag naming the package set."""
        if not self.packages:
            return f"{self.distro}:{self.suite}"
        digest = hashlib.sha256(" ".join(self.packages).encode()).hexdigest()[:12]
        return f"{self.distro}-{self.suite}:{digest}"

    def argv(self, tarball: Path) -> list[str]:
        """The mmdebstrap command line building `tarball`."""
        argv = ["mmdebstrap", "--variant=apt", "--mode=root",
                # No fsync per file: the tree is thrown away once it is a tarball,
                # and the syncs are most of dpkg's time on a busy disk.
                "--dpkgopt=force-unsafe-io",
                # Docs, man pages and translations are a third of a small image and
                # nothing in a container reads them.
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*"]
        if self.packages:
            argv.append("--include=" + ",".join(self.packages))
        argv += [self.suite, str(tarball), f"deb {self.mirror} {self.suite} main"]
        return argv


def host_mirror(sources: Iterable[str]) -> str | None:
    """The first Debian archive URI in apt sources (one-line or deb822 text), skipping
    the security archive (it has no main suite); None if there is none."""
    for text in sources:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            uris: list[str] = []
            if line.startswith("deb "):
                # `deb [signed-by=… arch=…] URI suite…`: the options come in brackets
                rest = line[4:].split("]", 1)[1] if "[" in line else line[4:]
                uris = rest.split()[:1]
            elif line.lower().startswith("uris:"):
                uris = line.split(":", 1)[1].split()
            for uri in uris:
                if "security" not in uri and uri.rstrip("/").endswith("/debian"):
                    return uri.rstrip("/")
    return None


def read_host_sources() -> list[str]:
    texts = []
    for path in HOST_SOURCES:
        files = sorted(path.glob("*.list")) + sorted(path.glob("*.sources")) \
            if path.is_dir() else [path]
        for f in files:
            try:
                texts.append(f.read_text(errors="replace"))
            except OSError:
                continue
    return texts


def unknown_packages(stderr: str) -> list[str]:
    """The package names apt could not find, from mmdebstrap's output."""
    found = []
    for m in _UNKNOWN_PACKAGE.finditer(stderr):
        name = m.group(1) or m.group(2)
        if name not in found:
            found.append(name)
    return found


def require_mmdebstrap() -> None:
    if shutil.which("mmdebstrap") is None:
        raise BootstrapToolMissingError(
            "mmdebstrap is not installed: it builds the root filesystem",
            hint="apt-get install mmdebstrap (scripts/setup installs it)")


def run_mmdebstrap(request: BootstrapRequest, tarball: Path) -> None:
    """Build the root filesystem tarball; typed errors for what a user can fix."""
    require_mmdebstrap()
    try:
        r = subprocess.run(request.argv(tarball), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise BootstrapToolMissingError(f"mmdebstrap could not be run: {exc.strerror}",
                                        hint="apt-get install --reinstall mmdebstrap") from None
    if r.returncode == 0:
        return
    output = r.stderr + r.stdout
    missing = unknown_packages(output)
    if missing:
        names = ", ".join(missing)
        raise UnknownPackageError(
            f"package {names} is not in Debian {request.suite} ({request.mirror})",
            hint=f"check the name with `apt-cache search {missing[0]}`, or the suite "
                 "with --suite; then run the command again")
    tail = "\n".join(line for line in output.splitlines()[-8:] if line.strip())
    raise BootstrapFailedError(f"mmdebstrap failed (exit {r.returncode}):\n{tail}",
                               hint="check that the mirror answers (--mirror URL) and "
                                    "that the disk has space")


def bootstrap(store: ImageStore, request: BootstrapRequest, name: str | None = None,
              *, rebuild: bool = False,
              building: Callable[[], None] = lambda: None) -> tuple[str, bool]:
    """Make (or reuse) the image for `request` in `store` and name it; returns
    (image id, reused). `building` is called before a build starts (it takes a while)."""
    from stackd.images.models import ImageConfig

    name = name or request.default_name()
    if not rebuild:
        cached = find_built(store, request)
        if cached is not None:
            store.tag(cached, name)
            return store.get(name).id, True
    ingest = store.root / "ingest"
    ingest.mkdir(mode=0o700, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bootstrap-", dir=ingest) as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        require_mmdebstrap()
        building()
        run_mmdebstrap(request, tarball)
        config = ImageConfig(env=(_PATH,), cmd=("bash",),
                             labels={BUILT_BY_LABEL: request.built_by})
        image = store.import_rootfs(tarball, name, config=config)
    return image.id, False


def find_built(store: ImageStore, request: BootstrapRequest) -> str | None:
    """The id of an image in `store` that `request` built before, if any."""
    for summary in store.list():
        try:
            image = store.get(summary.id)
        except (StackdError, OSError):  # a half-removed image is no cache hit
            continue
        if image.config.labels.get(BUILT_BY_LABEL) == request.built_by:
            return image.id
    return None
