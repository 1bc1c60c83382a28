"""Short and long syntax of each service key, against the normalised (long) result."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from typing import Any

import pytest

from stackd.errors import SpecError
from stackd.spec import load_text
from stackd.spec.model import Service


def service(body: str, environ: dict[str, str] | None = None, **extra: str) -> Service:
    text = "services:\n  s:\n    image: busybox\n" + textwrap.indent(
        textwrap.dedent(body), "    ")
    for section, content in extra.items():
        text += f"{section}:\n" + textwrap.indent(textwrap.dedent(content), "  ")
    return load_text(text, environ=environ or {}, project_directory="/proj").services["s"]


def dumped(svc: Service, key: str) -> Any:
    return svc.model_dump(mode="json", exclude_defaults=True)[key]


# ---------------------------------------------------------------------------- ports

@pytest.mark.parametrize(("short", "long"), [
    ("'80'", [{"target": 80}]),
    ("80", [{"target": 80}]),
    ("'8080:80'", [{"target": 80, "published": "8080"}]),
    ("'127.0.0.1:8080:80'", [{"target": 80, "published": "8080", "host_ip": "127.0.0.1"}]),
    ("'127.0.0.1::80'", [{"target": 80, "host_ip": "127.0.0.1"}]),
    ("'[::1]:8080:80'", [{"target": 80, "published": "8080", "host_ip": "::1"}]),
    ("'53:53/udp'", [{"target": 53, "published": "53", "protocol": "udp"}]),
    ("'9000-9001:8000-8001'", [{"target": 8000, "published": "9000"},
                               {"target": 8001, "published": "9001"}]),
    ("'8000-8001'", [{"target": 8000}, {"target": 8001}]),
    ("'8000-8010:80'", [{"target": 80, "published": "8000-8010"}]),
    ("{target: 80, published: 8080, protocol: udp, mode: host}",
     [{"target": 80, "published": "8080", "protocol": "udp", "mode": "host"}]),
    ("{target: 80, published: '8080-8081', host_ip: 0.0.0.0, name: http}",
     [{"target": 80, "published": "8080-8081", "host_ip": "0.0.0.0", "name": "http"}]),
])
def test_ports(short: str, long: list[dict[str, Any]]) -> None:
    assert dumped(service(f"ports:\n  - {short}\n"), "ports") == long


@pytest.mark.parametrize(("spec", "message"), [
    ("'80/icmp'", "protocol must be tcp, udp or sctp"),
    ("'http:80'", "'http' is not a port or a port range"),
    ("'70000'", "'70000' is not a valid range"),
    ("'9000-9002:8000-8001'", "host and container ranges differ in size"),
    ("'foo:8080:80'", "'foo' is not an IP address"),
    ("{target: 80, published: abc}", "published port 'abc' must be a port or a range"),
    ("[80]", "each port must be a string or a mapping, not a list"),
])
def test_bad_ports(spec: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        service(f"ports:\n  - {spec}\n")


def test_expose_becomes_strings() -> None:
    assert service("expose: [3000, '8000-8010/tcp']").expose == ("3000", "8000-8010/tcp")


# -------------------------------------------------------------------------- volumes

@pytest.mark.parametrize(("short", "long"), [
    ("/data", {"type": "volume", "target": "/data"}),
    ("data:/data", {"type": "volume", "source": "data", "target": "/data"}),
    ("data:/data:ro", {"type": "volume", "source": "data", "target": "/data",
                       "read_only": True}),
    ("data:/data:nocopy", {"type": "volume", "source": "data", "target": "/data",
                           "volume": {"nocopy": True}}),
    ("./html:/usr/share/html:ro", {"type": "bind", "source": "/proj/html",
                                   "target": "/usr/share/html", "read_only": True}),
    ("/etc/ssl:/etc/ssl:ro,z", {"type": "bind", "source": "/etc/ssl", "target": "/etc/ssl",
                                "read_only": True, "bind": {"selinux": "z"}}),
    ("/etc/ssl:/etc/ssl:roZ", {"type": "bind", "source": "/etc/ssl", "target": "/etc/ssl",
                              "read_only": True, "bind": {"selinux": "Z"}}),
    ("./db:/var/lib/db:Z", {"type": "bind", "source": "/proj/db", "target": "/var/lib/db",
                            "bind": {"selinux": "Z"}}),
    ("data:/data:rw,z", {"type": "volume", "source": "data", "target": "/data"}),
    ("../shared:/shared:rw,rshared", {"type": "bind", "source": "/shared",
                                      "target": "/shared", "bind": {"propagation": "rshared"}}),
    ("{type: tmpfs, target: /run, tmpfs: {size: 64m, mode: 0o1777}}",
     {"type": "tmpfs", "target": "/run", "tmpfs": {"size": 64 * 2**20, "mode": 0o1777}}),
    ("{type: bind, source: ./conf, target: /conf, read_only: true}",
     {"type": "bind", "source": "/proj/conf", "target": "/conf", "read_only": True}),
    ("{type: volume, source: data, target: /data, volume: {subpath: sub}}",
     {"type": "volume", "source": "data", "target": "/data", "volume": {"subpath": "sub"}}),
])
def test_volumes(short: str, long: dict[str, Any]) -> None:
    svc = service(f"volumes:\n  - {short}\n", volumes="data: {}\n")
    assert dumped(svc, "volumes") == [long]


def test_home_in_a_bind_source() -> None:
    svc = load_text("services:\n  s:\n    image: x\n    volumes: ['~/.cache:/cache']\n",
                    environ={"HOME": "/home/ada"}).services["s"]
    assert svc.volumes[0].source == "/home/ada/.cache"


@pytest.mark.parametrize(("spec", "message"), [
    ("a:b:c:d", "has too many ':'"),
    ("data:/data:bogus", "unknown option 'bogus'"),
    (":/data", "needs both a source and a target"),
    ("{type: nfs, target: /x}", "type: Input should be 'bind', 'volume' or 'tmpfs'"),
    ("{type: volume, source: data, target: /d, volume: {subpath: ../other}}",
     "subpath '../other' must be a relative path within the volume"),
    ("{type: volume, source: data, target: /d, volume: {subpath: /etc}}",
     "subpath '/etc' must be a relative path within the volume"),
    ("{type: volume, target: /d, volume: {subpath: a}}",
     "volume.subpath needs a named volume as the source"),
    ("{type: bind, source: /srv, target: /d, volume: {subpath: a}}",
     "volume.subpath needs a named volume as the source"),
])
def test_bad_volumes(spec: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        service(f"volumes:\n  - {spec}\n", volumes="data: {}\n")


def test_tmpfs_short() -> None:
    assert service("tmpfs: /run").tmpfs == ("/run",)
    assert service("tmpfs: [/run, '/tmp:size=64m']").tmpfs == ("/run", "/tmp:size=64m")


# ----------------------------------------------------------------------- depends_on

def test_depends_on_list_is_service_started() -> None:
    text = """\
    services:
      db: {image: x}
      cache: {image: x}
      web:
        image: x
        depends_on: [db, cache]
    """
    web = load_text(textwrap.dedent(text)).services["web"]
    assert {k: v.condition for k, v in web.depends_on.items()} == {
        "db": "service_started", "cache": "service_started"}


def test_depends_on_long() -> None:
    text = """\
    services:
      db: {image: x}
      migrate: {image: x}
      web:
        image: x
        depends_on:
          db: {condition: service_healthy, restart: true}
          migrate: {condition: service_completed_successfully}
          optional: {condition: service_started, required: false}
    """
    web = load_text(textwrap.dedent(text)).services["web"]
    assert web.model_dump(mode="json", exclude_defaults=True)["depends_on"] == {
        "db": {"condition": "service_healthy", "restart": True},
        "migrate": {"condition": "service_completed_successfully"},
    }


def test_depends_on_bad_condition() -> None:
    with pytest.raises(SpecError, match=r"depends_on.db.condition: Input should be"):
        load_text("services:\n  db: {image: x}\n  web:\n    image: x\n"
                  "    depends_on: {db: {condition: healthy}}\n")


# ---------------------------------------------------------------------- healthcheck

@pytest.mark.parametrize(("test", "long"), [
    ("curl -f http://localhost/", ("CMD-SHELL", "curl -f http://localhost/")),
    ("[CMD, curl, -f, 'http://localhost/']", ("CMD", "curl", "-f", "http://localhost/")),
    ("[CMD-SHELL, 'pg_isready -U app']", ("CMD-SHELL", "pg_isready -U app")),
    ("NONE", ("NONE",)),
    ("[NONE]", ("NONE",)),
])
def test_healthcheck_test(test: str, long: tuple[str, ...]) -> None:
    hc = service(f"healthcheck:\n  test: {test}\n").healthcheck
    assert hc is not None
    assert hc.test == long
    assert hc.disabled == (long == ("NONE",))


def test_healthcheck_timings_and_defaults() -> None:
    hc = service("healthcheck:\n  test: [CMD, true]\n  interval: 1m30s\n  timeout: 500ms\n"
                 "  retries: 5\n  start_period: 10s\n  start_interval: 1s\n").healthcheck
    assert hc is not None
    assert (hc.interval, hc.timeout, hc.retries, hc.start_period, hc.start_interval) == (
        timedelta(seconds=90), timedelta(milliseconds=500), 5, timedelta(seconds=10),
        timedelta(seconds=1))
    # Unset: the image's, else Docker's defaults, decided where the image is known.
    default = service("healthcheck:\n  test: [CMD, true]\n").healthcheck
    assert default is not None
    assert (default.interval, default.timeout, default.retries) == (None, None, None)
    assert service("healthcheck: {disable: true}").healthcheck.disabled  # type: ignore[union-attr]


@pytest.mark.parametrize(("body", "message"), [
    ("healthcheck: {test: [curl, x]}", "must start with CMD, CMD-SHELL or NONE"),
    ("healthcheck: {test: [CMD]}", "CMD needs a command"),
    ("healthcheck: {test: [CMD, true], interval: soon}", "'soon' is not a duration"),
])
def test_bad_healthchecks(body: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        service(body)


# ---------------------------------------------------------------------- environment

def test_environment_list_and_map_agree() -> None:
    env = {"FROM_SHELL": "shell"}
    as_list = service("environment:\n  - A=1\n  - B=x=y\n  - C=\n  - FROM_SHELL\n  - UNSET\n",
                      env)
    as_map = service("environment:\n  A: 1\n  B: x=y\n  C: ''\n  FROM_SHELL:\n  UNSET:\n", env)
    expected = {"A": "1", "B": "x=y", "C": "", "FROM_SHELL": "shell", "UNSET": None}
    assert as_list.environment == expected
    assert as_map.environment == expected


def test_environment_scalars_become_strings() -> None:
    svc = service("environment:\n  DEBUG: true\n  WORKERS: 4\n  RATIO: 0.5\n  RESTART: no\n")
    assert svc.environment == {"DEBUG": "true", "WORKERS": "4", "RATIO": "0.5", "RESTART": "no"}


def test_env_file_is_read_and_environment_wins(tmp_path: Any) -> None:
    (tmp_path / "app.env").write_text("A=from-file\nB=from-file\n# comment\nexport C='lit $X'\n")
    text = ("services:\n  s:\n    image: x\n    env_file: app.env\n"
            "    environment: {B: explicit}\n")
    svc = load_text(text, project_directory=tmp_path).services["s"]
    assert svc.environment == {"A": "from-file", "B": "explicit", "C": "lit $X"}
    assert [e.path for e in svc.env_file] == [str(tmp_path / "app.env")]


def test_missing_env_file() -> None:
    with pytest.raises(SpecError, match=r"env_file '/nowhere/x.env' does not exist"):
        load_text("services:\n  s:\n    image: x\n    env_file: /nowhere/x.env\n")
    svc = load_text("services:\n  s:\n    image: x\n    env_file:\n"
                    "      - {path: /nowhere/x.env, required: false}\n").services["s"]
    assert svc.environment == {}


# -------------------------------------------------------------- command, entrypoint

@pytest.mark.parametrize(("text", "words"), [
    ("echo hello world", ("echo", "hello", "world")),
    ("sh -c 'echo \"a b\"; exit 3'", ("sh", "-c", 'echo "a b"; exit 3')),
    ("[httpd, -f, -p, '80']", ("httpd", "-f", "-p", "80")),
    ("[sleep, 10]", ("sleep", "10")),
    ("[]", ()),
])
def test_command_forms(text: str, words: tuple[str, ...]) -> None:
    svc = service(f"command: {text}\nentrypoint: {text}\n")
    assert svc.command == words
    assert svc.entrypoint == words


def test_unbalanced_quote_in_command() -> None:
    with pytest.raises(SpecError, match="cannot be split into words"):
        service("command: echo 'oops\n")


# ------------------------------------------------------------------ everything else

def test_other_short_forms() -> None:
    svc = service("""\
        build: ./app
        labels: [com.example.tier=web, com.example.team=ops]
        networks: [front]
        extra_hosts: ['db.local:10.0.0.2', 'api.local=10.0.0.3']
        ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}
        sysctls: [net.core.somaxconn=1024]
        dns: 8.8.8.8
        cap_add: NET_ADMIN
        secrets: [db_password]
        configs: [{source: nginx, target: /etc/nginx.conf, mode: 0o440}]
        logging: {driver: json-file, options: {max-size: 10m}}
        restart: on-failure:3
        stop_grace_period: 1m
        shm_size: 256m
        mem_limit: 1g
        memswap_limit: -1
        cpus: '1.5'
        """, networks="front: {}\n", secrets="db_password: {file: ./pw.txt}\n",
        configs="nginx: {content: 'x'}\n")
    assert svc.build is not None and svc.build.context == "/proj/app"
    assert svc.labels == {"com.example.tier": "web", "com.example.team": "ops"}
    assert set(svc.networks) == {"front"}
    assert svc.extra_hosts == ("db.local=10.0.0.2", "api.local=10.0.0.3")
    assert {k: (u.soft, u.hard) for k, u in svc.ulimits.items()} == {
        "nofile": (1024, 2048), "nproc": (512, 512)}
    assert svc.sysctls == {"net.core.somaxconn": "1024"}
    assert svc.dns == ("8.8.8.8",)
    assert svc.cap_add == ("NET_ADMIN",)
    assert [s.source for s in svc.secrets] == ["db_password"]
    assert svc.configs[0].mode == 0o440
    assert svc.logging is not None and svc.logging.options == {"max-size": "10m"}
    assert svc.restart_policy() == ("on-failure", 3)
    assert svc.stop_grace_period == timedelta(minutes=1)
    assert (svc.shm_size, svc.mem_limit, svc.memswap_limit) == (256 * 2**20, 2**30, -1)
    assert svc.cpus == 1.5


def test_deploy() -> None:
    svc = service("""\
        deploy:
          replicas: 3
          resources:
            limits: {cpus: '0.50', memory: 512M, pids: 100}
            reservations: {memory: 128m}
          restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 2m}
        """)
    assert svc.replicas == 3
    d = svc.deploy
    assert d is not None and d.resources is not None and d.resources.limits is not None
    assert (d.resources.limits.cpus, d.resources.limits.memory, d.resources.limits.pids) == (
        0.5, 512 * 2**20, 100)
    assert d.restart_policy is not None and d.restart_policy.window == timedelta(minutes=2)


def test_scale_and_restart_values() -> None:
    assert service("scale: 2").replicas == 2
    assert service("restart: no").restart == "no"  # YAML 1.2: `no` is a string
    with pytest.raises(SpecError, match="restart: 'sometimes' must be one of"):
        service("restart: sometimes")


def test_extensions_are_kept_everywhere() -> None:
    stack = load_text("x-top: 1\nservices:\n  s:\n    image: x\n    x-svc: {a: b}\n"
                      "    healthcheck: {test: [CMD, 'true'], x-hc: 2}\n")
    assert stack.extensions == {"x-top": 1}
    s = stack.services["s"]
    assert s.extensions == {"x-svc": {"a": "b"}}
    assert s.healthcheck is not None and s.healthcheck.extensions == {"x-hc": 2}
    assert stack.to_compose()["x-top"] == 1


def test_default_network_is_implied() -> None:
    stack = load_text("services:\n  a: {image: x}\n  b: {image: x, networks: [default, front]}\n"
                      "  c: {image: x, network_mode: host}\nnetworks: {front: {}}\n")
    assert set(stack.services["a"].networks) == {"default"}
    assert set(stack.services["b"].networks) == {"default", "front"}
    assert stack.services["c"].networks == {}
    assert set(stack.networks) == {"default", "front"}


def test_obsolete_version_is_ignored_with_a_warning() -> None:
    stack = load_text("version: '3.8'\nservices:\n  s: {image: x}\n")
    assert stack.warnings == ("the top-level 'version' is obsolete and ignored "
                              "(compose.yaml:1:1)",)


def test_infinite_numbers_are_refused() -> None:
    with pytest.raises(SpecError, match="cpus"):
        service("cpus: .inf")


@pytest.mark.parametrize(("text", "value"), [
    ("0440", 0o440), ("0o440", 0o440), ("440", 440), ("0x1ff", 0o777), ("1_000", 1000),
])
def test_numbers_read_as_compose_reads_them(text: str, value: int) -> None:
    svc = service(f"configs: [{{source: c, mode: {text}}}]\n", configs="c: {content: x}\n")
    assert svc.configs[0].mode == value


def test_yaml_1_2_scalars() -> None:
    svc = service("environment:\n  A: yes\n  B: off\n  C: 09\n  D: true\n  E: ~\n")
    assert svc.environment == {"A": "yes", "B": "off", "C": "09", "D": "true", "E": None}
