"""Why a container's command or working directory could not be used, as the typed
error a user reads.

execve's errno alone reads as Python's text ("[Errno 40] Too many levels of symbolic
links: b'/bin/sh'"), and the image decides which one comes: a symlink loop, a dangling
link, a directory, a file without an x bit. The container's first process (child.py)
and an exec (exec_helper.py, also a healthcheck's /bin/sh) both call these after
pivot_root/setns, so the few lstat calls here see the container's own files, never
the host's. Exit codes are docker run's: 127 when the command is not there, 126 when
it is but cannot be run, 125 for the rest.
"""

from __future__ import annotations

import errno
import os
import stat

from stackd.errors import (
    CommandNotFoundError,
    CommandNotRunnableError,
    SpecError,
    StackdError,
    UsageError,
)

EXIT_SETUP_FAILED = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127

_FIX_IMAGE = ("the image's command or entrypoint resolves through a symlink loop: fix the "
              "image, or set `command:`/`entrypoint:` to a path that exists")


def exec_failure(command: str, err: OSError) -> tuple[StackdError, int]:
    """The typed error and exit code for execvpe(`command`) failing with `err`."""
    path = _path(command, err)
    code = err.errno
    # A bare name not found anywhere in PATH: the last entry tried says nothing.
    named = path != command and not ("/" not in command and code in (errno.ENOENT,
                                                                     errno.ENOTDIR))
    what = f"cannot run {command!r}" + (f" ({path})" if named else "")
    if code in (errno.ENOENT, errno.ENOTDIR):
        return CommandNotFoundError(f"{what}: {_missing(command, path, code)}",
                                    hint="check the command and the image"), EXIT_NOT_FOUND
    if code == errno.ELOOP:
        return CommandNotRunnableError(f"{what}: the path resolves through a symlink loop "
                                       "in the container", hint=_FIX_IMAGE), EXIT_NOT_EXECUTABLE
    if code in (errno.EACCES, errno.EPERM, errno.EISDIR):
        return CommandNotRunnableError(f"{what}: {_denied(path)}",
                                       hint="check the file's mode and the user"), \
            EXIT_NOT_EXECUTABLE
    if code == errno.ENOEXEC:
        return CommandNotRunnableError(
            f"{what}: not a program the kernel can run (exec format error)",
            hint="a script needs a #! line; a binary must be for this machine"), \
            EXIT_NOT_EXECUTABLE
    if code == errno.E2BIG:
        return UsageError(f"cannot run {command:.100}: its arguments and environment are "
                          "too long for the kernel",
                          hint="keep each argument under 128 KiB and all of them under "
                               "ARG_MAX (getconf ARG_MAX)"), EXIT_SETUP_FAILED
    return CommandNotRunnableError(f"{what}: {err.strerror or 'exec failed'}",
                                   hint="check the command and the image"), EXIT_NOT_EXECUTABLE


def workdir_failure(cwd: str, err: OSError) -> SpecError:
    """The typed error for a working directory the container cannot enter or make."""
    if err.errno == errno.EEXIST:  # makedirs met a name that is there: say what it is
        try:
            os.stat(cwd)
        except OSError as why:
            err = why
    if err.errno == errno.ELOOP:
        reason = "the path resolves through a symlink loop in the container"
        hint = "the image's WORKDIR (or working_dir) resolves through a symlink loop: " \
               "fix the image, or set `working_dir:` to a directory that exists"
    elif err.errno in (errno.ENOTDIR, errno.EEXIST):
        reason = "it (or a directory on its way) is not a directory"
        hint = "set `working_dir:` to a directory"
    else:
        reason = err.strerror or "cannot enter it"
        hint = "give an existing directory the container's user may enter"
    return SpecError(f"cannot use working directory {cwd!r} in the container: {reason}",
                     hint=hint)


def _path(command: str, err: OSError) -> str:
    """The file execvpe tried last (a PATH entry for a bare name), as text."""
    name = err.filename
    if isinstance(name, bytes | str) and name:
        return os.fsdecode(name)
    return command


def _missing(command: str, path: str, code: int) -> str:
    if "/" not in command:
        return "no such file in the container's PATH"
    if code == errno.ENOTDIR:
        return "a directory on its path is a file"
    try:
        st = os.lstat(path)
    except OSError:
        return "no such file in the container"
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"it is a symlink to {target!r}, which does not exist in the container"
    return "no such file in the container (or its #! interpreter is missing)"


def _denied(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "permission denied"
    if stat.S_ISDIR(st.st_mode):
        return "it is a directory"
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if not st.st_mode & 0o111:
        return f"it is not executable (mode {stat.S_IMODE(st.st_mode):04o})"
    return "permission denied for the container's user"
