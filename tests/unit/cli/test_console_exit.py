"""`stackd` as a program leaves with os._exit once its output is flushed (issue #20:
start-up and teardown are most of a short command's time): what it printed must all
arrive, through a pipe that is read slowly too, and its exit code must be the verb's."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml


def _stackd(*args: str, cwd: Path, slow_reader: bool = False
            ) -> tuple[int, bytes, bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "stackd", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={"PATH": "/usr/bin:/bin", "STACKD_NO_AUTOSTART": "1"})
    if slow_reader:
        time.sleep(0.5)  # the pipe (64 KiB) fills and the writer waits for us
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_all_of_a_long_output_arrives_through_a_slow_pipe(tmp_path: Path) -> None:
    services = {f"svc{i:04d}": {"image": "busybox", "command": ["sh", "-c", "x" * 100],
                                "environment": {"K": "v" * 50}} for i in range(1500)}
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump({"services": services}))
    code, out, err = _stackd("config", cwd=tmp_path, slow_reader=True)
    assert code == 0, err.decode()
    assert len(out) > 256 * 1024  # several pipe buffers' worth
    assert out.endswith(b"\n")
    assert set(yaml.safe_load(out)["services"]) == set(services)
    # Many small writes: the last of them sit in stdout's buffer until the flush.
    code, out, err = _stackd("config", "--services", cwd=tmp_path, slow_reader=True)
    assert code == 0, err.decode()
    assert out.decode().split() == sorted(services)


def test_the_exit_code_is_the_verbs(tmp_path: Path) -> None:
    code, out, err = _stackd("config", cwd=tmp_path)  # no stack file here
    assert out == b""
    assert code != 0
    assert b"stackd:" in err and b"Traceback" not in err
