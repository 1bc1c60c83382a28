"""Hostile API requests over the daemon's unix socket (issue #13, item 7): each gets
a 4xx with a short typed error body that never echoes the request, never a 500, and
the daemon stays alive, small, and serves a normal request afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from e2e_helpers import CLI

from stackd.daemon.bodylimit import MAX_BODY
from stackd.daemon.paths import socket_path

pytestmark = pytest.mark.root

STACK = """\
services:
  app:
    image: stackd-demo/busybox:latest
    command: ["sleep", "600"]
"""
MARKER = "echo-marker-51c9"


@pytest.fixture
def api(cli: CLI) -> Iterator[tuple[httpx.Client, str, CLI]]:
    (cli.cwd / "compose.yaml").write_text(STACK)
    cli("up", "-d")
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path(cli.roots))),
                      base_url="http://stackd", timeout=60) as client:
        rows = client.get("/v1/containers", params={"project": "project"}).json()
        assert [r["service"] for r in rows] == ["app"]
        yield client, rows[0]["name"], cli


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def assert_refused(r: httpx.Response, status: int | None = None) -> dict[str, str]:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    if status is not None:
        assert r.status_code == status, r.text[:500]
    assert len(r.content) < 4096
    assert MARKER not in r.text
    error: dict[str, str] = r.json()["error"]
    assert error["type"] == "UsageError" and error["message"]
    return error


def still_serving(client: httpx.Client, name: str, cli: CLI, pid: int) -> None:
    assert cli.daemon_pid() == pid
    assert client.get("/v1/ping").json() == {"status": "ok"}
    r = client.post(f"/v1/containers/{name}/exec", json={"cmd": ["echo", "fine"]})
    assert r.status_code == 200 and r.json()["stdout"] == "fine\n"


def test_nul_bytes_in_exec_are_refused(api: tuple[httpx.Client, str, CLI]) -> None:
    client, name, cli = api
    pid = cli.daemon_pid()
    assert pid is not None
    for body in ({"cmd": ["echo", f"a\x00{MARKER}"]},
                 {"cmd": ["env"], "env": [f"A=b\x00{MARKER}"]},
                 {"cmd": ["env"], "env": [f"A\x00{MARKER}=b"]},
                 {"cmd": ["pwd"], "workdir": f"/tmp\x00{MARKER}"},
                 {"cmd": ["id"], "user": f"root\x00{MARKER}"}):
        error = assert_refused(client.post(f"/v1/containers/{name}/exec", json=body), 422)
        assert "NUL" in error["message"]
    still_serving(client, name, cli, pid)


ODD_BODIES = [
    b'{"cmd": ["true"], "timeout": 1e309}',
    b'{"cmd": ["true"], "timeout": -1e309}',
    b'{"cmd": ["true"], "timeout": NaN}',
    b'{"cmd": ["true"], "timeout": Infinity}',
    b'{"cmd": ["true"], "timeout": 1e308}',
    b'{"cmd": ["true"], "timeout": ' + b"9" * 5000 + b"}",
    b'{"cmd": ["true"], "timeout": ' + b"9" * 400 + b"}",
    b'{"cmd": ["true"',
    b'\xff\xfe{"cmd"',
    b"[" * 100_000,
    b'{"cmd": []}',
    b'{"cmd": ["true"], "extra": "' + MARKER.encode() + b'"}',
]


def test_odd_numbers_and_broken_json_in_exec(api: tuple[httpx.Client, str, CLI]) -> None:
    client, name, cli = api
    pid = cli.daemon_pid()
    assert pid is not None
    for raw in ODD_BODIES:
        r = client.post(f"/v1/containers/{name}/exec", content=raw,
                        headers={"content-type": "application/json"})
        assert_refused(r)
    still_serving(client, name, cli, pid)


def test_an_argument_list_the_kernel_refuses_is_a_usage_error(
        api: tuple[httpx.Client, str, CLI]) -> None:
    """Under the body cap but over execve's limits (E2BIG): the caller's mistake."""
    client, name, cli = api
    pid = cli.daemon_pid()
    assert pid is not None
    for cmd in (["echo", MARKER * 20_000], ["echo", *[MARKER * 1000] * 300]):
        r = client.post(f"/v1/containers/{name}/exec", json={"cmd": cmd})
        error = assert_refused(r, 400)
        assert "too long" in error["message"]
    still_serving(client, name, cli, pid)


def test_huge_numbers_in_an_apply_are_refused(api: tuple[httpx.Client, str, CLI]) -> None:
    client, name, cli = api
    pid = cli.daemon_pid()
    assert pid is not None
    for scale in ("1" + "0" * 30, "-1", "1e309", "NaN"):
        source = json.dumps({"cwd": str(cli.cwd)})
        raw = f'{{"source": {source}, "options": {{"scale": {{"app": {scale}}}}}}}'.encode()
        assert_refused(client.post("/v1/stacks/apply", content=raw,
                                   headers={"content-type": "application/json"}), 422)
    rows = client.get("/v1/containers", params={"project": "project"}).json()
    assert len(rows) == 1  # nothing was scaled
    still_serving(client, name, cli, pid)


def test_a_50_mb_body_gets_413_without_echo_or_growth(
        api: tuple[httpx.Client, str, CLI]) -> None:
    client, name, cli = api
    pid = cli.daemon_pid()
    assert pid is not None
    big = json.dumps({"cmd": ["echo", MARKER * (50 * 1024 * 1024 // len(MARKER))]}).encode()
    assert len(big) > 3 * MAX_BODY
    before = rss_kib(pid)
    # With a Content-Length: refused on the header, the body is read and dropped.
    r = client.post(f"/v1/containers/{name}/exec", content=big,
                    headers={"content-type": "application/json"})
    error = assert_refused(r, 413)
    assert "MiB" in error["message"]
    assert rss_kib(pid) - before < 8 * 1024

    # Chunked, without a length: counted as it arrives, refused at the limit.
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 1024 * 1024):
            yield big[i:i + 1024 * 1024]

    r = client.post(f"/v1/containers/{name}/exec", content=chunks(),
                    headers={"content-type": "application/json"})
    assert_refused(r, 413)
    assert rss_kib(pid) - before < 2 * MAX_BODY // 1024 + 16 * 1024
    still_serving(client, name, cli, pid)


def test_a_body_under_the_cap_still_works(api: tuple[httpx.Client, str, CLI]) -> None:
    """The cap leaves room for the largest real request: a stack file on stdin, which
    may be 4 MB."""
    client, _, cli = api
    content = STACK + "# " + "x" * 3_900_000 + "\n"
    r = client.post("/v1/stacks/plan", json={"source": {
        "content": content, "cwd": str(cli.cwd), "project_name": "project"}})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["project"] == "project"
