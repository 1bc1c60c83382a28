"""OCI documents, auth challenges and config files; pure or on a temp dir only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from stackd.images.errors import MalformedImageError, UnsupportedMediaTypeError
from stackd.images.mediatypes import DOCKER_LIST, OCI_LAYER_GZIP
from stackd.images.models import Healthcheck, ImageConfig
from stackd.images.oci import (
    Descriptor,
    choose_platform,
    config_diff_ids,
    make_manifest,
    parse_manifest,
)
from stackd.images.registry import credentials
from stackd.images.registry.auth import parse_challenge


def test_image_config_round_trips_through_oci_json() -> None:
    cfg = ImageConfig(env=("PATH=/bin", "A=1"), cmd=("sh", "-c", "x"), entrypoint=("tini",),
                      working_dir="/app", user="app", labels={"a": "b"},
                      exposed_ports=("80/tcp",), volumes=("/data",), stop_signal="SIGINT",
                      healthcheck=Healthcheck(test=("CMD", "true"), interval=5.0, timeout=1.5,
                                              retries=3, start_period=2.0))
    raw = cfg.to_oci()
    assert raw["Healthcheck"]["Interval"] == 5_000_000_000
    assert ImageConfig.from_oci(json.loads(json.dumps(raw))) == cfg


def test_platform_choice_from_a_manifest_list() -> None:
    lst = json.dumps({"mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "digest": "sha256:" + "1" * 64, "size": 1,
         "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "digest": "sha256:" + "2" * 64, "size": 2,
         "platform": {"os": "linux", "architecture": "amd64"}},
    ]}).encode()
    assert choose_platform(lst, "x").digest == "sha256:" + "2" * 64
    only_arm = json.dumps({"manifests": [json.loads(lst)["manifests"][0]]}).encode()
    with pytest.raises(UnsupportedMediaTypeError) as err:
        choose_platform(only_arm, "redis:7")
    assert "redis:7 has no linux/amd64 image (it has: linux/arm64)" in str(err.value)


def test_manifest_with_foreign_layer_type_is_refused() -> None:
    cfg = Descriptor("application/vnd.oci.image.config.v1+json", "sha256:" + "3" * 64, 3)
    ok = make_manifest(cfg, [Descriptor(OCI_LAYER_GZIP, "sha256:" + "4" * 64, 4)])
    assert parse_manifest(ok).layers[0].size == 4
    bad = make_manifest(cfg, [Descriptor("application/x-weird", "sha256:" + "4" * 64, 4)])
    with pytest.raises(UnsupportedMediaTypeError, match="application/x-weird"):
        parse_manifest(bad)


D = "sha256:" + "a" * 64
GOOD = {"mediaType": OCI_LAYER_GZIP, "digest": D, "size": 3}


@pytest.mark.parametrize(("doc", "says"), [
    (b"not json", "manifest is not JSON"),
    (b"[1, 2]", "manifest is not a JSON object"),
    (json.dumps({"layers": [GOOD]}).encode(), "the config is not a JSON object"),
    (json.dumps({"config": GOOD, "layers": {"a": 1}}).encode(), "layers is not a list"),
    (json.dumps({"config": GOOD, "layers": ["x"]}).encode(), "a layer is not a JSON object"),
    (json.dumps({"config": {**GOOD, "digest": "md5:x"}, "layers": []}).encode(),
     "digest 'md5:x' is not a sha256 digest"),
    (json.dumps({"config": {**GOOD, "size": "3"}, "layers": []}).encode(),
     "size '3' is not a byte count"),
    (json.dumps({"config": {**GOOD, "size": -1}, "layers": []}).encode(),
     "size '-1' is not a byte count"),
    (json.dumps({"config": GOOD, "layers": [], "mediaType": 7}).encode(),
     "its mediaType is not a string"),
])
def test_a_malformed_manifest_is_a_typed_error_naming_what(doc: bytes, says: str) -> None:
    """A hostile registry's or archive's manifest was a KeyError, TypeError or
    AttributeError traceback; now an error a user reads."""
    with pytest.raises(MalformedImageError, match=says):
        parse_manifest(doc)


@pytest.mark.parametrize(("doc", "says"), [
    (b"[]", "is not a JSON object"),
    (b'{"rootfs": "layers"}', "rootfs is not a JSON object"),
    (b'{"rootfs": {"diff_ids": "x"}}', "diff_ids is not a list"),
    (b'{"rootfs": {"diff_ids": [5]}}', "diff_id '5' is not a sha256 digest"),
])
def test_a_malformed_configs_layers_are_a_typed_error(doc: bytes, says: str) -> None:
    with pytest.raises(MalformedImageError, match=says):
        config_diff_ids(doc)
    assert config_diff_ids(json.dumps({"rootfs": {"diff_ids": [D]}}).encode()) == [D]


def test_an_index_with_an_entry_that_is_no_object_is_a_typed_error() -> None:
    with pytest.raises(MalformedImageError, match="an entry of its index is not a JSON object"):
        choose_platform(b'{"manifests": ["x"]}', "img")
    with pytest.raises(MalformedImageError, match="manifests is not a list"):
        choose_platform(b'{"manifests": 3}', "img")


@pytest.mark.parametrize("raw", [
    {"Env": "A=1"}, {"Cmd": 5}, {"Labels": ["a"]}, {"ExposedPorts": 80},
    {"Healthcheck": {"Interval": "5s"}}, {"Healthcheck": "x"}, "config", {"WorkingDir": 1},
])
def test_an_image_config_of_wrong_types_is_refused_by_the_model(raw: object) -> None:
    """Converting them first (tuple(5), dict(["a"]), "5s" / 1e9) raised TypeError and
    ValueError, which reached the user as Python's words."""
    with pytest.raises(ValidationError):
        ImageConfig.from_oci(raw)


def test_bearer_challenge_parsing() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/redis:pull"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/redis:pull"}
    assert parse_challenge('Basic realm="basic-realm"') == ("basic", {"realm": "basic-realm"})


def test_credentials_from_stackd_then_docker_config(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKD_CONFIG", str(tmp_path / "stackd.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker/config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},  # hub:secret
        "ghcr.io": {"username": "me", "password": "pat"}}}))
    assert credentials.lookup("docker.io") == credentials.Credential("hub", "secret")
    assert credentials.lookup("ghcr.io") == credentials.Credential("me", "pat")
    assert credentials.lookup("quay.io") is None
    credentials.save("ghcr.io", credentials.Credential("me", "newer"))
    assert credentials.lookup("ghcr.io") == credentials.Credential("me", "newer")
    assert (tmp_path / "stackd.json").stat().st_mode & 0o777 == 0o600
    assert credentials.remove("ghcr.io")
    assert credentials.lookup("ghcr.io") == credentials.Credential("me", "pat")


def test_plain_http_only_for_local_and_marked_registries(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setenv("STACKD_CONFIG", str(tmp_path / "none.json"))
    monkeypatch.setenv("STACKD_INSECURE_REGISTRIES", "reg.lan:5000, other.lan")
    assert credentials.uses_plain_http("127.0.0.1:5000")
    assert credentials.uses_plain_http("localhost")
    assert credentials.uses_plain_http("reg.lan:5000")
    assert credentials.uses_plain_http("other.lan:443")
    assert not credentials.uses_plain_http("ghcr.io")
    assert not credentials.uses_plain_http("reg.lan:6000")
