"""`container inspect -f` as scripts written for Docker use it: the address of a Compose
container (a range over its networks), its published port, its health, its state and
exit code, its volumes by name. stackd refused every such template: its
`container inspect` took no -f, and its templates had no range, index or functions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from e2e_helpers import DEMO_IMAGE, stack_dir

from stackd.roots import Roots

pytestmark = pytest.mark.root

COMPOSE = f"""\
name: insp
services:
  web:
    image: {DEMO_IMAGE}
    command: [sleep, '1000']
    stop_signal: SIGKILL
    ports: ["127.0.0.1::80"]
    volumes: ["data:/data", "./conf:/conf:ro"]
    labels: {{tier: front}}
    networks: [default, back]
    healthcheck:
      test: [CMD, "true"]
      interval: 1s
  job:
    image: {DEMO_IMAGE}
    command: [sh, -c, 'exit 3']
volumes:
  data: {{}}
networks:
  back: {{}}
"""


def test_container_inspect_f_answers_dockers_templates(no_leaks: Roots, demo_image: str,
                                                       tmp_path: Path) -> None:
    with stack_dir(no_leaks, tmp_path, "insp", COMPOSE) as cli:
        (cli.cwd / "conf").mkdir()
        cli("up", "-d")

        def inspect(template: str, name: str = "insp-web-1") -> str:
            return cli("container", "inspect", "-f", template, name).stdout

        deadline = time.monotonic() + 30
        while inspect("{{.State.Health.Status}}") != "healthy\n":
            assert time.monotonic() < deadline, inspect("{{json .State}}")
            time.sleep(0.2)
        while inspect("{{.State.Status}} {{.State.ExitCode}}", "insp-job-1") != "exited 3\n":
            assert time.monotonic() < deadline, inspect("{{json .State}}", "insp-job-1")
            time.sleep(0.2)

        # The addresses the networks hold for it, one per network, by network name.
        held = {}
        for net in ("insp_default", "insp_back"):
            described = json.loads(cli("network", "inspect", net).stdout)
            described = described[0] if isinstance(described, list) else described
            held[net] = next(c["ip"] for c in described["containers"]
                             if c["id"].startswith("insp-web-1"))
        assert inspect("{{range $n, $s := .NetworkSettings.Networks}}"
                       "{{$n}}={{$s.IPAddress}} {{end}}") == (
            f"insp_back={held['insp_back']} insp_default={held['insp_default']} \n")
        assert inspect('{{(index .NetworkSettings.Networks "insp_default").IPAddress}}') == (
            held["insp_default"] + "\n")

        # The host port it was given is the one `port` prints.
        port = cli("port", "web", "80").stdout.strip().rsplit(":", 1)[1]
        assert inspect('{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}') == (
            port + "\n")
        assert inspect('{{index .Config.Labels "tier"}} {{.State.Running}} '
                       '{{.Name}} {{.Path}} {{.Args}}') == (
            "front true /insp-web-1 sleep [1000]\n")
        assert inspect('{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}}{{end}}{{end}} '
                       '{{range .Mounts}}{{if not .RW}}{{.Destination}}{{end}}{{end}}') == (
            "insp_data /conf\n")
        assert inspect("{{.State.Running}} {{.State.ExitCode}} {{.State.FinishedAt}}",
                       "insp-job-1").startswith("false 3 20")
        docs = json.loads(cli("container", "inspect", "-f", "json", "insp-web-1").stdout)
        assert docs[0]["State"]["Status"] == "running" and docs[0]["Id"].startswith("insp-web")

        # Docker's other objects, by their `inspect -f` and `ls --format` fields.
        mountpoint = json.loads(cli("volume", "inspect", "insp_data").stdout)[0]["mountpoint"]
        assert cli("volume", "inspect", "-f", "{{.Mountpoint}} {{.Driver}}",
                   "insp_data").stdout == f"{mountpoint} local\n"
        assert "insp_data|io.stackd.project=insp" in cli(
            "volume", "ls", "--format", "{{.Name}}|{{.Labels}}").stdout.splitlines()
        described = json.loads(cli("network", "inspect", "insp_back").stdout)[0]
        assert cli("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}} "
                   "{{range .Containers}}{{.Name}}={{.IPv4Address}}{{end}}",
                   "insp_back").stdout == (
            f"{described['subnet']} insp-web-1={held['insp_back']}/"
            f"{described['subnet'].split('/')[1]}\n")
        assert sorted(cli("network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout
                      .splitlines()) == ["insp_back bridge", "insp_default bridge"]

        # `inspect` finds each name as Docker does: a container, an image, a network, a
        # volume; --type looks for one kind.
        assert cli("inspect", "-f", "{{.Name}}|{{.Mountpoint}}|{{.Driver}}", "insp-web-1",
                   "insp_back", "insp_data").stdout == (
            f"/insp-web-1||\ninsp_back||bridge\ninsp_data|{mountpoint}|local\n")
        assert cli("inspect", "-f", "{{.RepoTags}}", DEMO_IMAGE).stdout == f"[{DEMO_IMAGE}]\n"
        assert json.loads(cli("inspect", "insp-web-1").stdout)[0]["Name"] == "/insp-web-1"
        r = cli("inspect", "--type", "volume", "insp-web-1", check=False)
        assert r.returncode == 1 and "no volume 'insp-web-1'" in r.stderr and r.stdout == ""
        r = cli("inspect", "-f", "{{.Name}}", "insp-web-1", "nothing-here", check=False)
        assert r.returncode == 1 and "'nothing-here'" in r.stderr and r.stdout == ""

        cli("pause", "web")
        assert inspect("{{.State.Status}} {{.State.Paused}} {{.State.Running}}") == (
            "paused true true\n")
        cli("unpause", "web")
        cli("stop", "web")
        assert inspect("{{.State.Status}} {{len .NetworkSettings.Ports}}") == "exited 0\n"

        # What stackd does not know is refused, naming the fields there are; an unknown
        # container is named; neither prints anything on stdout.
        r = cli("container", "inspect", "-f", "{{.Image}}", "insp-web-1", check=False)
        assert r.returncode == 2 and "there is no field 'Image'" in r.stderr, r.stderr
        assert "NetworkSettings" in r.stderr and r.stdout == ""
        r = cli("container", "inspect", "-f", "{{.Name}}", "insp-web-1", "nope", check=False)
        assert r.returncode != 0 and "no container 'nope'" in r.stderr and r.stdout == ""
        assert "Traceback" not in r.stderr
