"""What a user reads when execve or chdir fails on a file of the image: the typed
error and docker run's exit code for each errno, never Python's errno text."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from stackd.errors import CommandNotFoundError, CommandNotRunnableError, SpecError, UsageError
from stackd.runtime.execfail import exec_failure, workdir_failure


def fail(command: str, path: str | bytes, code: int) -> tuple[str, type, int]:
    """exec_failure for execvpe(`command`) having failed on `path` with `code`."""
    error, exit_code = exec_failure(command, OSError(code, os.strerror(code), path))
    text = str(error)
    assert "Errno" not in text and "b'" not in text
    return text, type(error), exit_code


def test_each_errno_is_a_typed_error_with_docker_runs_exit_code(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "plain").write_text("echo\n")
    (tmp_path / "dangling").symlink_to("/nowhere/at/all")
    d, p, g = (str(tmp_path / n) for n in ("dir", "plain", "dangling"))
    text, cls, code = fail("sh", b"/bin/sh", errno.ELOOP)
    assert (cls, code) == (CommandNotRunnableError, 126)
    assert "'sh' (/bin/sh)" in text and "symlink loop" in text and "fix the image" in text
    assert fail(d, d, errno.EACCES)[0].endswith("it is a directory\n  hint: check the "
                                                "file's mode and the user")
    assert "not executable (mode 0644)" in fail(p, p, errno.EACCES)[0]
    text, cls, code = fail(g, g, errno.ENOENT)
    assert (cls, code) == (CommandNotFoundError, 127)
    assert "symlink to '/nowhere/at/all'" in text
    text, cls, code = fail("nope", b"/bin/nope", errno.ENOENT)
    assert text.startswith("cannot run 'nope': no such file in the container's PATH")
    assert fail(p + "/x", p + "/x", errno.ENOTDIR)[1:] == (CommandNotFoundError, 127)
    assert fail(p, p, errno.ENOEXEC)[1:] == (CommandNotRunnableError, 126)
    assert fail("x", "x", errno.E2BIG)[1:] == (UsageError, 125)
    assert issubclass(CommandNotRunnableError, SpecError)  # terminal: never retried


@pytest.mark.parametrize(("code", "says"), [
    (errno.ELOOP, "symlink loop"), (errno.ENOTDIR, "not a directory"),
    (errno.EACCES, "Permission denied")])
def test_workdir_failures_say_why(code: int, says: str) -> None:
    error = workdir_failure("/wd", OSError(code, os.strerror(code), "/wd"))
    assert isinstance(error, SpecError)
    assert "working directory '/wd'" in str(error) and says in str(error)
    assert "Errno" not in str(error)


def test_a_workdir_that_exists_as_a_loop_is_reported_as_the_loop(tmp_path: Path) -> None:
    """makedirs says EEXIST for a link loop; the error says what the name really is."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    wd = str(tmp_path / "a")
    error = workdir_failure(wd, OSError(errno.EEXIST, os.strerror(errno.EEXIST), wd))
    assert "symlink loop" in str(error) and "WORKDIR" in str(error.hint)
