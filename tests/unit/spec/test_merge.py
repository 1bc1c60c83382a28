"""The compose merge rules, one by one, on real files given as several -f."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from stackd.errors import SpecError
from stackd.spec import LoadOptions, Stack, load

BASE = """\
services:
  web:
    image: web:1
    command: [serve, --port, "80"]
    entrypoint: [/init]
    environment: {A: base, B: base}
    labels: [tier=web]
    ports: ["8080:80", "9090:90"]
    expose: ["3000"]
    dns: [1.1.1.1]
    cap_add: [NET_ADMIN]
    volumes: ["data:/data", "./conf:/conf:ro"]
    depends_on: [db]
    networks: {front: {aliases: [www]}}
    healthcheck: {test: [CMD, check, one], interval: 10s, retries: 3}
    ulimits: {nofile: 1024}
    sysctls: {net.core.somaxconn: 128}
    extra_hosts: ["a=10.0.0.1"]
    secrets: [s1]
    deploy: {replicas: 2, resources: {limits: {memory: 128m}}}
    logging: {driver: json-file, options: {max-size: 1m}}
  db:
    image: db:1
networks: {front: {}, back: {}}
volumes: {data: {}}
secrets: {s1: {file: ./s1}, s2: {file: ./s2}}
"""


def merged(tmp_path: Path, *overrides: str, base: str = BASE) -> Stack:
    files = []
    for i, text in enumerate((base, *overrides)):
        f = tmp_path / f"c{i}.yaml"
        f.write_text(textwrap.dedent(text))
        files.append(str(f))
    return load(LoadOptions(files=files, environ={}, project_name="p"))


def web(tmp_path: Path, override: str) -> dict[str, Any]:
    svc = merged(tmp_path, override).services["web"]
    out: dict[str, Any] = svc.model_dump(mode="json", exclude_defaults=True)
    return out


def test_scalars_are_replaced(tmp_path: Path) -> None:
    assert web(tmp_path, "services: {web: {image: web:2}}")["image"] == "web:2"


def test_command_and_entrypoint_are_replaced_not_appended(tmp_path: Path) -> None:
    w = web(tmp_path, "services: {web: {command: serve --debug, entrypoint: [/other]}}")
    assert w["command"] == ["serve", "--debug"]
    assert w["entrypoint"] == ["/other"]


def test_healthcheck_test_is_replaced_other_keys_merge(tmp_path: Path) -> None:
    w = web(tmp_path, "services: {web: {healthcheck: {test: [CMD, two], timeout: 2s}}}")
    # retries: 3 is written in the base file: kept, though it is Docker's default.
    assert w["healthcheck"] == {"test": ["CMD", "two"], "interval": "10s", "timeout": "2s",
                                "retries": 3}


def test_mappings_merge_key_by_key(tmp_path: Path) -> None:
    w = web(tmp_path, """\
        services:
          web:
            environment: [B=over, C=new]
            labels: {team: ops}
            sysctls: [net.ipv4.ip_forward=1]
            ulimits: {nproc: 10}
            deploy: {resources: {limits: {cpus: 1}}}
            logging: {options: {max-file: "3"}}
        """)
    assert w["environment"] == {"A": "base", "B": "over", "C": "new"}
    assert w["labels"] == {"tier": "web", "team": "ops"}
    assert w["sysctls"] == {"net.core.somaxconn": "128", "net.ipv4.ip_forward": "1"}
    assert w["ulimits"] == {"nofile": {"soft": 1024, "hard": 1024},
                            "nproc": {"soft": 10, "hard": 10}}
    assert w["deploy"] == {"replicas": 2,
                           "resources": {"limits": {"memory": 128 * 2**20, "cpus": 1.0}}}
    assert w["logging"] == {"driver": "json-file",
                            "options": {"max-size": "1m", "max-file": "3"}}


def test_ports_merge_by_their_identity(tmp_path: Path) -> None:
    w = web(tmp_path, """\
        services:
          web:
            ports: ["8080:80", "127.0.0.1:8443:443", {target: 90, published: "9090",
                    protocol: tcp, mode: host}]
        """)
    assert w["ports"] == [
        {"target": 80, "published": "8080"},
        {"target": 90, "published": "9090", "mode": "host"},
        {"target": 443, "published": "8443", "host_ip": "127.0.0.1"},
    ]


def test_volumes_merge_by_target(tmp_path: Path) -> None:
    w = web(tmp_path, "services: {web: {volumes: ['/srv/data:/data', 'cache:/cache']}}\n"
                      "volumes: {cache: {}}")
    assert [(v["target"], v["type"], v.get("source")) for v in w["volumes"]] == [
        ("/data", "bind", "/srv/data"),
        ("/conf", "bind", str(tmp_path / "conf")),
        ("/cache", "volume", "cache"),
    ]


def test_string_lists_append_without_duplicates(tmp_path: Path) -> None:
    w = web(tmp_path, "services: {web: {dns: [1.1.1.1, 8.8.8.8], cap_add: [SYS_TIME],"
                      " expose: ['3000', '4000'], extra_hosts: ['b:10.0.0.2']}}")
    assert w["dns"] == ["1.1.1.1", "8.8.8.8"]
    assert w["cap_add"] == ["NET_ADMIN", "SYS_TIME"]
    assert w["expose"] == ["3000", "4000"]
    assert w["extra_hosts"] == ["a=10.0.0.1", "b=10.0.0.2"]


def test_secrets_merge_by_target(tmp_path: Path) -> None:
    w = web(tmp_path, "services: {web: {secrets: [s1, s2]}}")
    assert w["secrets"] == [{"source": "s1"}, {"source": "s2"}]


def test_depends_on_and_networks_merge_as_mappings(tmp_path: Path) -> None:
    w = web(tmp_path, """\
        services:
          cache: {image: redis}
          web:
            depends_on: {db: {condition: service_healthy}, cache: {condition: service_started}}
            networks: {front: {aliases: [site]}, back: {}}
        """)
    assert w["depends_on"] == {"db": {"condition": "service_healthy"},
                               "cache": {"condition": "service_started"}}
    assert w["networks"] == {"front": {"aliases": ["www", "site"]}, "back": {}}


def test_reset_removes_what_earlier_files_set(tmp_path: Path) -> None:
    w = web(tmp_path, """\
        services:
          web:
            ports: !reset []
            command: !reset null
            environment:
              B: !reset
            healthcheck: !reset {}
            deploy:
              resources: !reset
        """)
    assert "ports" not in w and "command" not in w and "healthcheck" not in w
    assert w["environment"] == {"A": "base"}
    assert w["deploy"] == {"replicas": 2}


def test_override_replaces_instead_of_merging(tmp_path: Path) -> None:
    w = web(tmp_path, """\
        services:
          web:
            ports: !override ["8000:80"]
            environment: !override {ONLY: this}
            networks: !override [back]
        """)
    assert w["ports"] == [{"target": 80, "published": "8000"}]
    assert w["environment"] == {"ONLY": "this"}
    assert w["networks"] == {"back": {}}


def test_override_tags_in_a_single_file_are_plain_values(tmp_path: Path) -> None:
    stack = merged(tmp_path, base="services:\n  s:\n    image: x\n"
                                  "    ports: !override ['80']\n    dns: !reset [1.1.1.1]\n")
    assert [p.target for p in stack.services["s"].ports] == [80]
    assert stack.services["s"].dns == ()


def test_later_file_adds_services_and_top_level_entries(tmp_path: Path) -> None:
    stack = merged(tmp_path, "services: {worker: {image: w}}\nvolumes: {extra: {}}\n")
    assert sorted(stack.services) == ["db", "web", "worker"]
    assert sorted(stack.volumes) == ["data", "extra"]


def test_a_location_points_at_the_file_that_set_the_value(tmp_path: Path) -> None:
    stack = merged(tmp_path, "services:\n  web:\n    image: web:2\n")
    loc = stack.location_of(("services", "web", "image"))
    assert loc is not None and loc.file.endswith("c1.yaml") and loc.line == 3
    loc = stack.location_of(("services", "web", "command"))
    assert loc is not None and loc.file.endswith("c0.yaml") and loc.line == 4


def test_unknown_tag_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="unknown YAML tag '!merge'"):
        merged(tmp_path, "services: {web: {ports: !merge []}}")


def test_entries_with_the_same_target_merge(tmp_path: Path) -> None:
    base = ("services:\n  s:\n    image: x\n    volumes: ['data:/data:nocopy']\n"
            "volumes: {data: {}}\n")
    over = ("services:\n  s:\n    volumes:\n"
            "      - {type: volume, source: data, target: /data, read_only: true}\n")
    stack = merged(tmp_path, over, base=base)
    assert stack.services["s"].model_dump(mode="json", exclude_defaults=True)["volumes"] == [
        {"type": "volume", "source": "data", "target": "/data", "read_only": True,
         "volume": {"nocopy": True}}]
