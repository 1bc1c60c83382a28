"""The host platform derived in one place, and the index entry chosen for a platform."""

from __future__ import annotations

import json

import pytest

from stackd.images.errors import UnsupportedMediaTypeError
from stackd.images.oci import choose_platform
from stackd.images.platform import Platform, parse_platform, platform_of_machine

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
ARMV7 = Platform("linux", "arm", "v7")


@pytest.mark.parametrize(("machine", "expected"), [
    ("x86_64", "linux/amd64"), ("aarch64", "linux/arm64"), ("armv7l", "linux/arm/v7"),
    ("i686", "linux/386"), ("ppc64le", "linux/ppc64le"), ("s390x", "linux/s390x"),
])
def test_machine_names_map_to_oci_platforms(machine: str, expected: str) -> None:
    assert str(platform_of_machine(machine)) == expected


def test_which_platforms_a_host_runs() -> None:
    assert AMD64.runs(parse_platform("linux/amd64"))
    assert AMD64.runs(parse_platform("linux/amd64/v2"))
    assert not AMD64.runs(parse_platform("linux/arm64"))
    assert ARM64.runs(parse_platform("linux/arm64/v8"))
    assert not ARM64.runs(parse_platform("linux/amd64"))
    assert ARMV7.runs(parse_platform("linux/arm"))
    assert not ARMV7.runs(parse_platform("linux/arm/v8"))
    assert not AMD64.runs(parse_platform("windows/amd64"))


def _index(*platforms: dict[str, str]) -> bytes:
    return json.dumps({"manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": "sha256:" + str(i) * 64, "size": 1, "platform": p}
        for i, p in enumerate(platforms, start=1)]}).encode()


def test_index_entry_is_the_hosts_platform() -> None:
    index = _index({"os": "linux", "architecture": "amd64"},
                   {"os": "linux", "architecture": "arm64", "variant": "v8"})
    assert choose_platform(index, "x", host=AMD64).digest == "sha256:" + "1" * 64
    assert choose_platform(index, "x", host=ARM64).digest == "sha256:" + "2" * 64


def test_index_entry_for_a_requested_variant() -> None:
    index = _index({"os": "linux", "architecture": "arm", "variant": "v6"},
                   {"os": "linux", "architecture": "arm", "variant": "v7"})
    assert choose_platform(index, "x", host=ARMV7).digest == "sha256:" + "2" * 64
    assert choose_platform(index, "x", Platform("linux", "arm", "v6"),
                           host=ARMV7).digest == "sha256:" + "1" * 64


def test_index_without_the_platform_names_what_it_has() -> None:
    index = _index({"os": "linux", "architecture": "amd64"},
                   {"os": "unknown", "architecture": "unknown"})
    with pytest.raises(UnsupportedMediaTypeError) as err:
        choose_platform(index, "redis:7", host=ARM64)
    assert str(err.value) == ("redis:7 has no linux/arm64 image (it has: linux/amd64, "
                              "unknown/unknown)\n  hint: use an image built for linux/arm64")
