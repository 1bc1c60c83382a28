"""`stackd graph` as a user runs it, on a stack file in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.hostpackages import require_command

from stackd.cli.main import main

STACK = """\
services:
  web:
    image: web
    depends_on:
      api:
        condition: service_healthy
  api:
    image: api
    links: [db]
    depends_on:
      migrate:
        condition: service_completed_successfully
  migrate:
    image: api
    depends_on: [db]
  db:
    image: postgres
  sidecar:
    image: envoy
    network_mode: service:api
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "compose.yaml").write_text(STACK)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_text_tree(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-p", "shop", "graph"]) == 0
    assert capsys.readouterr().out == """\
sidecar
└── api  [network_mode]
    ├── db  [links]
    └── migrate  [depends_on: service_completed_successfully]
        └── db  [depends_on: service_started]
web
└── api  [depends_on: service_healthy]  (see above)
"""


def test_named_services_show_only_what_they_need(project: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "migrate"]) == 0
    assert capsys.readouterr().out == "migrate\n└── db  [depends_on: service_started]\n"


def test_dot_and_mermaid_formats(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-f", str(project / "compose.yaml"), "-p", "shop", "graph",
                 "--format", "dot"]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith('digraph "shop" {\n')
    assert '  "sidecar" -> "api" [label="network_mode"];\n' in dot
    assert main(["graph", "--format", "mermaid"]) == 0
    assert '|"depends_on: service_healthy"|' in capsys.readouterr().out


def test_output_to_a_text_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "--format", "mermaid", "--output", "g.mmd"]) == 0
    assert capsys.readouterr().out == ""
    assert (project / "g.mmd").read_text().splitlines()[3] == "flowchart TD"


def test_output_svg_is_drawn_by_graphviz(project: Path) -> None:
    require_command("dot", "graphviz")
    assert main(["graph", "-o", "g.svg"]) == 0
    svg = (project / "g.svg").read_text()
    assert "<svg" in svg and ">sidecar</text>" in svg


def test_picture_without_graphviz_is_a_clear_error(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(project))  # nowhere holds a `dot`
    assert main(["graph", "-o", "g.png"]) == 1
    assert capsys.readouterr().err == (
        "stackd: cannot draw g.png: Graphviz's `dot` command is not installed\n"
        "  hint: install graphviz (apt-get install graphviz), or use --format dot and "
        "render it elsewhere\n")
    assert not (project / "g.png").exists()


def test_a_cycle_is_reported_with_its_places(project: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (project / "compose.yaml").write_text(STACK.replace("    image: postgres\n",
                                                        "    image: postgres\n"
                                                        "    volumes_from: [web]\n"))
    assert main(["graph"]) == 2
    assert capsys.readouterr().err == (
        "stackd: dependency cycle: api → db → web → api\n"
        "  api → db: links (compose.yaml:9:13)\n"
        "  db → web: volumes_from (compose.yaml:18:20)\n"
        "  web → api: depends_on: service_healthy (compose.yaml:5:7)\n"
        "  hint: remove one of these dependencies\n")


def test_unknown_service_is_a_usage_error(project: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "wbe"]) == 2
    assert "no such service: wbe" in capsys.readouterr().err


def test_loader_warnings_go_to_stderr_not_into_the_graph(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("STACKD_TEST_UNSET", raising=False)
    (project / "compose.yaml").write_text(
        "services:\n  web:\n    image: web${STACKD_TEST_UNSET}\n")
    assert main(["graph"]) == 0
    out, err = capsys.readouterr()
    assert out == "web\n"
    assert err.startswith("stackd: warning: ") and "STACKD_TEST_UNSET" in err
