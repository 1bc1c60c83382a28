"""`--host` / STACKD_HOST (stackd/cli/remote.py): what a host URL means, which verbs may
go to another node, and a missing identity said before any connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackd.cli import remote, unixhttp
from stackd.cli.main import main
from stackd.cluster.config import ClusterConfig
from stackd.errors import UsageError


def test_host_urls() -> None:
    assert remote.parse("") is None
    assert remote.parse("unix:///run/x.sock") == "/run/x.sock"
    assert remote.parse("tcp://node2:2377") == remote.Remote("tcp://node2:2377",
                                                             ("node2", 2377))
    assert remote.parse("tcp://[::1]:2377/").address == ("::1", 2377)  # type: ignore[union-attr]
    for bad in ("node2:2377", "tcp://node2", "tcp://node2:99999", "unix://rel.sock",
                "http://node2:2377"):
        with pytest.raises(UsageError):
            remote.parse(bad)


def test_a_verb_acting_on_this_host_is_refused_by_name(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STACKD_HOST", "")  # recorded: main's setting is undone after
    assert main(["--host", "tcp://127.0.0.1:9", "cp", "web:/x", "."]) == 2
    err = capsys.readouterr().err
    assert "`stackd cp` acts on this host directly and cannot run against " \
           "tcp://127.0.0.1:9" in err and "Traceback" not in err
    for verb in ("up", "ps", "logs", "exec"):
        remote.check_verb(verb)  # allowed (STACKD_HOST was set by main)


def test_no_identity_is_said_before_connecting(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("STACKD_ROOT", str(tmp_path / "state"))
    monkeypatch.setenv("STACKD_RUN", str(tmp_path / "run"))
    for name in ("STACKD_TLSCACERT", "STACKD_TLSCERT", "STACKD_TLSKEY"):
        monkeypatch.delenv(name, raising=False)
    target = remote.Remote("tcp://127.0.0.1:9", ("127.0.0.1", 9))
    with pytest.raises(UsageError, match=r"no TLS identity to reach tcp://127\.0\.0\.1:9"):
        remote.tls_context(target)


def test_listen_addresses() -> None:
    base = {"endpoints": ["http://127.0.0.1:2379"], "name": "alpha"}
    assert ClusterConfig.from_json({**base, "listen": "0.0.0.0:2377"}).listen == \
        "0.0.0.0:2377"
    assert ClusterConfig.from_json(base).to_json()["listen"] == ""
    for bad in ("2377", "host:", ":2377", "host:0", "host:http"):
        with pytest.raises(UsageError, match="is not HOST:PORT"):
            ClusterConfig.from_json({**base, "listen": bad})


def test_a_connection_closed_before_any_answer_is_told_apart() -> None:
    import socket

    a, b = socket.socketpair()
    b.close()
    with pytest.raises(unixhttp.NoAnswer):
        unixhttp.Response(a)
    a.close()
    a, b = socket.socketpair()
    b.sendall(b"HTTP/1.1 200 OK\r\n")
    b.close()
    with pytest.raises(unixhttp.ProtocolError) as caught:
        unixhttp.Response(a)
    assert not isinstance(caught.value, unixhttp.NoAnswer)
    a.close()
