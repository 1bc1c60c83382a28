"""Newer Compose keys real files use: what the Stack holds, or the refusal by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackd.errors import SpecError
from stackd.reconciler.platforms import check_platforms
from stackd.scheduler import Node
from stackd.scheduler.platform import Platform
from stackd.spec import LoadOptions, load_text
from stackd.spec import load as load_files
from stackd.spec.model import Stack


def load(text: str) -> Stack:
    return load_text(text, environ={})


def node(machine: str) -> tuple[Node, ...]:
    return (Node(name="host", cpus=2, memory=2**30, pids=1000, arch=machine),)


def test_platform_is_kept_and_checked_against_the_host() -> None:
    stack = load("services:\n  web:\n    image: x\n    platform: linux/arm64\n"
                 "  db:\n    image: y\n    platform: linux/amd64\n  cache: {image: z}\n")
    assert stack.services["web"].platform == "linux/arm64"
    arm = check_platforms(stack.model_copy(update={"services": {
        "web": stack.services["web"], "cache": stack.services["cache"]}}),
        node("aarch64"))
    assert arm == {"cache": None, "web": Platform("linux", "arm64")}
    with pytest.raises(SpecError) as err:
        check_platforms(stack, node("x86_64"))
    assert str(err.value) == (
        "service 'web' asks for platform linux/arm64, which this host (linux/amd64) cannot "
        "run (compose.yaml:4:5)\n"
        "  hint: use an image built for linux/amd64, or remove the platform")


def test_build_platforms_must_include_only_what_the_host_runs() -> None:
    stack = load("services:\n  web:\n    build:\n      context: .\n"
                 "      platforms: [linux/amd64, linux/arm64]\n")
    assert stack.services["web"].build.platforms == ("linux/amd64", "linux/arm64")
    with pytest.raises(SpecError) as err:
        check_platforms(stack, node("x86_64"))
    assert str(err.value).startswith(
        "service 'web' asks for build platform linux/arm64, which this host (linux/amd64) "
        "cannot run (compose.yaml:5:")
    ok = load("services:\n  web:\n    build: {context: ., platforms: [linux/amd64]}\n")
    assert check_platforms(ok, node("x86_64")) == {"web": None}


def test_no_node_checks_nothing() -> None:
    stack = load("services:\n  web:\n    image: x\n    platform: linux/s390x\n")
    assert check_platforms(stack, ()) == {"web": Platform("linux", "s390x")}


def test_platform_form() -> None:
    with pytest.raises(SpecError) as err:
        load("services:\n  web:\n    image: x\n    platform: amd64\n")
    assert str(err.value) == (
        "service 'web': platform: platform 'amd64' must look like os/arch[/variant], "
        "e.g. linux/amd64 or linux/arm64 (compose.yaml:4:5)")


def test_cheap_keys_are_accepted() -> None:
    stack = load("""\
services:
  web:
    image: x
    attach: false
    cgroup: private
    mac_address: 02:42:ac:11:00:09
    networks:
      back: {interface_name: back0, mac_address: 02:42:ac:11:00:0a}
    build:
      context: .
      cache_from: ["type=local,src=/tmp/cache", "registry.example/app:cache"]
      cache_to: type=inline
networks:
  back: {}
""")
    web = stack.services["web"]
    assert (web.attach, web.cgroup, web.mac_address) == (False, "private", "02:42:ac:11:00:09")
    assert web.networks["back"].interface_name == "back0"
    assert web.build.cache_from == ("type=local,src=/tmp/cache", "registry.example/app:cache")
    assert web.build.cache_to == ("type=inline",)
    assert load("services:\n  web: {image: x}\n").services["web"].attach is True


def test_build_network_default_or_none() -> None:
    stack = load("services:\n  a:\n    build: {context: ., network: none}\n"
                 "  b:\n    build: {context: ., network: default}\n  c:\n    build: .\n")
    assert [stack.services[n].build.network for n in "abc"] == ["none", "default", None]


def test_additional_contexts_are_read_in_both_forms_with_paths_made_absolute(
        tmp_path: Path) -> None:
    text = ("services:\n  web:\n    build:\n      context: app\n"
            "      additional_contexts:\n        shared: ../shared\n"
            "        base: docker-image://busybox:1.36\n"
            "  job:\n    build:\n      context: .\n"
            "      additional_contexts: ['shared=./lib']\n")
    stack = load_text(text, environ={}, project_directory=tmp_path)
    web, job = (stack.services[n].build for n in ("web", "job"))
    assert web is not None and job is not None
    assert web.additional_contexts == {"shared": str(tmp_path.parent / "shared"),
                                       "base": "docker-image://busybox:1.36"}
    assert job.additional_contexts == {"shared": str(tmp_path / "lib")}


def test_update_and_rollback_config_are_carried() -> None:
    deploy = load("services:\n  web:\n    image: x\n    deploy:\n"
                  "      update_config: {parallelism: 2, order: start-first}\n"
                  "      rollback_config: {failure_action: continue}\n").services["web"].deploy
    assert deploy is not None and deploy.update_config is not None
    assert (deploy.update_config.parallelism, deploy.update_config.order) == (2, "start-first")
    assert deploy.rollback_config is not None
    assert deploy.rollback_config.failure_action == "continue"


REFUSED = [
    ("additional_contexts service",
     "services:\n  web:\n    build:\n      context: .\n"
     "      additional_contexts: {a: 'service:db'}\n",
     "service 'web': build.additional_contexts: a: another service's image (service:db) is "
     "not supported yet: build that service first and name its image, "
     "docker-image://IMAGE (compose.yaml:5:7)"),
    ("additional_contexts git",
     "services:\n  web:\n    build:\n      context: .\n"
     "      additional_contexts: ['a=https://example.com/x.git']\n",
     "service 'web': build.additional_contexts: a: https:// is not supported yet: give a "
     "directory, or docker-image://IMAGE (compose.yaml:5:7)"),
    ("build ssh",
     "services:\n  web:\n    build:\n      context: .\n      ssh: [default]\n",
     "service 'web': 'ssh' is not supported yet (compose.yaml:5:7)\n"
     "  hint: the builder forwards no SSH agent: fetch private sources before the build"),
    ("build network host",
     "services:\n  web:\n    build:\n      context: .\n      network: host\n",
     "service 'web': build.network: host is not supported: a build step would share the "
     "host's network; RUN steps reach the host at their network's gateway (use default, "
     "or none) (compose.yaml:5:7)"),
    ("build network named",
     "services:\n  web:\n    build:\n      context: .\n      network: backend\n",
     "service 'web': build.network: 'backend': build steps are on the root's default "
     "network or on none; use default or none (compose.yaml:5:7)"),
    ("volume type image",
     "services:\n  web:\n    image: x\n    volumes:\n"
     "      - {type: image, source: 'app:1', target: /app}\n",
     "service 'web': volume type 'image' is not supported yet (compose.yaml:5:10)\n"
     "  hint: image volumes are not mounted: copy the files in a build stage, or use a "
     "named volume"),
    ("cgroup other",
     "services:\n  web:\n    image: x\n    cgroup: shared\n",
     "service 'web': cgroup: cgroup 'shared' must be host or private (compose.yaml:4:5)"),
    ("interface_name",
     "services:\n  web:\n    image: x\n    networks:\n      default:\n"
     "        interface_name: a-very-long-interface\n",
     "service 'web': networks.default.interface_name: interface_name "
     "'a-very-long-interface' must be 1-15 letters, digits, '_', '.' or '-', and not lo "
     "(compose.yaml:6:9)"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in REFUSED],
                         ids=[c[0] for c in REFUSED])
def test_refused_by_name_with_the_reason(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        load(text)
    assert str(info.value) == expected


def test_devices_short_and_long_forms() -> None:
    stack = load("""\
services:
  web:
    image: x
    devices:
      - /dev/fuse
      - /dev/sda:/dev/xvda:r
      - /dev/sdb:rw
      - /dev/snd:/dev/sound
      - {source: /dev/kvm, permissions: rw}
""")
    got = [(d.source, d.target, d.permissions) for d in stack.services["web"].devices]
    assert got == [("/dev/fuse", "/dev/fuse", "rwm"), ("/dev/sda", "/dev/xvda", "r"),
                   ("/dev/sdb", "/dev/sdb", "rw"), ("/dev/snd", "/dev/sound", "rwm"),
                   ("/dev/kvm", "/dev/kvm", "rw")]


def test_devices_merge_by_target(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: x\n    devices: [/dev/fuse, '/dev/sda:/dev/xvda']\n")
    (tmp_path / "override.yaml").write_text(
        "services:\n  web:\n    devices: ['/dev/sdb:/dev/xvda:r']\n")
    stack = load_files(LoadOptions(files=[str(tmp_path / "compose.yaml"),
                                          str(tmp_path / "override.yaml")],
                                   project_name="p", environ={}))
    got = [(d.source, d.target, d.permissions) for d in stack.services["web"].devices]
    assert got == [("/dev/fuse", "/dev/fuse", "rwm"), ("/dev/sdb", "/dev/xvda", "r")]


@pytest.mark.parametrize(("entry", "message"), [
    ("nvidia.com/gpu=all", "device 'nvidia.com/gpu=all': the host path must be absolute "
     "(CDI device names are not supported yet)"),
    ("/dev/fuse:/etc/fuse", "device target '/etc/fuse' must be a path under /dev/"),
    ("/dev/fuse:/dev/../etc", "device target '/dev/../etc' must be a path under /dev/"),
    ("/dev/fuse:/dev/fuse:rx", "device permissions 'rx' must be made of r, w and m"),
])
def test_bad_devices_are_refused(entry: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        load(f"services:\n  web:\n    image: x\n    devices: ['{entry}']\n")
    assert str(err.value) == f"service 'web': devices.0: {message} (compose.yaml:4:15)"


def test_docker_desktop_consistency_options_are_kept_and_ignored() -> None:
    stack = load("services:\n  web:\n    image: x\n    volumes: ['.:/app:cached', "
                 "'./b:/b:ro,delegated']\n")
    vols = stack.services["web"].volumes
    assert [(v.consistency, v.read_only) for v in vols] == [("cached", False),
                                                           ("delegated", True)]


def test_build_secrets_name_top_level_secret_files(tmp_path: Path) -> None:
    from stackd.spec.buildsecrets import build_secrets

    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    build:\n      context: .\n"
        "      secrets: [npmrc, {source: token, target: api}]\n"
        "  env:\n    build: {context: ., secrets: [fromenv]}\n"
        "  nosuch:\n    build: {context: ., secrets: [missing]}\n"
        "secrets:\n  npmrc: {file: ./npmrc.txt}\n  token: {file: /etc/token}\n"
        "  fromenv: {environment: TOKEN}\n")
    stack = load_files(LoadOptions(files=[str(tmp_path / "compose.yaml")], environ={}))
    assert build_secrets(stack, "web") == {"npmrc": tmp_path / "npmrc.txt",
                                           "api": Path("/etc/token")}
    with pytest.raises(SpecError, match="build secret 'fromenv' must come from a file"):
        build_secrets(stack, "env")
    with pytest.raises(SpecError, match="build secret 'missing' is not defined"):
        build_secrets(stack, "nosuch")


@pytest.mark.parametrize(("service", "said"), [
    ("{image: x, deploy: {mode: global, replicas: 2}}",
     "service 'g': deploy: replicas can only be used with replicated mode: a global service "
     "runs one container on each node (remove replicas, or mode: global)"),
    ("{image: x, scale: 2, deploy: {mode: global}}",
     "service 'g': scale can only be used with replicated mode"),
])
def test_a_count_given_to_a_global_service_is_refused(service: str, said: str) -> None:
    """Swarm refuses it; stackd ran the count on one host and ignored it on a cluster."""
    with pytest.raises(SpecError) as caught:
        load(f"services:\n  g: {service}\n")
    assert str(caught.value).startswith(said)
    assert caught.value.location is not None and caught.value.location.line == 2
    assert load("services:\n  g: {image: x, deploy: {mode: global}}\n").services[
        "g"].replicas == 1
