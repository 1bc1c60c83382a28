"""A container's directories and given files, at modes that do not depend on the umask.

What the runtime keeps about a container (its spec with the environment, state and
exit records, logs, the overlay work dir) is root's only: 0700 directories, 0600
files. What the container itself sees keeps the mode it needs: the upper dir is the
root directory of its filesystem (0755, as Docker's), and each file given by the spec
(configs and secrets at Compose's default mode, /etc/hosts, /etc/resolv.conf) is
bind-mounted as is, so it must be readable by the container's non-root users: 0444,
or 0644 for the files programs rewrite. Their parent directories stay closed.
"""

from __future__ import annotations

import os
from pathlib import Path

from stackd.filemodes import PRIVATE_FILE, private_dir, tighten, write_private
from stackd.roots import Roots
from stackd.runtime.layout import ContainerPaths, containers_dir
from stackd.runtime.rootfs import WRITABLE_FILES

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from stackd.runtime.containerspec import ContainerSpec

ROOT_DIR_MODE = 0o755
GIVEN_FILE_MODE = 0o444  # Compose's default for configs and secrets


def given_file_mode(target: str) -> int:
    return 0o644 if os.path.normpath(target) in WRITABLE_FILES else GIVEN_FILE_MODE


def make(spec: ContainerSpec, paths: ContainerPaths, *, run_dir_kept: bool = False) -> None:
    """The run dir (must not exist yet, unless `run_dir_kept`: a respawn's, holding
    the last run's records) and the state dir with its upper, work, rootfs and files;
    the spec's files written into files/ by index of their sorted target."""
    for base in (paths.run_dir.parent, paths.state_dir.parent):
        private_dir(base, parents=True)
    if not run_dir_kept:
        os.mkdir(paths.run_dir, 0o700)
    private_dir(paths.state_dir)
    for d, mode in ((paths.upper, ROOT_DIR_MODE), (paths.work, 0o700),
                    (paths.rootfs, ROOT_DIR_MODE), (paths.files, 0o700)):
        try:
            os.mkdir(d, mode)
        except FileExistsError:
            pass
        os.chmod(d, mode)
    for index, target in enumerate(sorted(spec.files)):
        write_private(paths.files / str(index), spec.files[target].encode(),
                      mode=given_file_mode(target))


def prepare(roots: Roots) -> None:
    """The directories every container's lie in, made and marked for their
    subdirectories to be spread over the filesystem (stackd.dirplacement): at the
    monitor's start, before any create."""
    from stackd.dirplacement import spread_subdirectories

    for base in (containers_dir(roots), roots.state / "containers"):
        spread_subdirectories(private_dir(base, parents=True))


def tighten_all(roots: Roots) -> None:
    """Close the container directories an older stackd left open (0755 dirs, 0644
    records and logs): each container's run and state dir, and what lies in them."""
    for base in (containers_dir(roots), roots.state / "containers"):
        if not base.is_dir():
            continue
        tighten(base)
        for entry in base.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                tighten_container_dir(entry)


def tighten_container_dir(directory: Path) -> None:
    """Like filemodes.tighten, but the upper dir and the rootfs mount point keep the
    mode of the container's root, and files/ (given files) only closes its parent."""
    try:
        os.chmod(directory, 0o700)
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return  # removed meanwhile
    for entry in entries:
        if entry.name in ("upper", "rootfs") or entry.is_symlink():
            continue
        try:
            if entry.is_dir():
                os.chmod(entry.path, 0o700)
            elif entry.is_file():
                os.chmod(entry.path, os.stat(entry.path).st_mode & PRIVATE_FILE)
        except FileNotFoundError:
            continue
