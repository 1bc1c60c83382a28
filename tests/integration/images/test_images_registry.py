"""Push to and pull from a real docker-registry process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.registry import RunningRegistry

from stackd.images import ImageStore
from stackd.images.errors import DigestMismatchError
from stackd.images.models import Image
from stackd.images.oci import parse_manifest


async def pushed(store: ImageStore, registry: RunningRegistry, busybox_tar: Path,
                 path: str) -> tuple[str, Image]:
    """busybox imported as `registry/path` and pushed there: (its reference, the image)."""
    ref = f"{registry.host}/{path}"
    img = store.import_rootfs(busybox_tar, ref)
    await store.push(ref)
    return ref, img


async def test_import_push_pull_into_empty_store_keeps_digests(
        store: ImageStore, empty_store: ImageStore, registry: RunningRegistry,
        busybox_tar: Path) -> None:
    ref = f"{registry.host}/test/busybox:1"
    img = store.import_rootfs(busybox_tar, ref)
    assert await store.push(ref) == img.digest

    pulled = await empty_store.pull(ref)
    assert (pulled.id, pulled.digest) == (img.id, img.digest)
    assert pulled.references == (ref,)
    top = Path(pulled.layer_dirs[0])
    assert (top / "bin/busybox").is_file()
    assert (top / "bin/sh").is_symlink()
    assert (top / "home/app").stat().st_uid == 1000


@pytest.mark.parametrize("policy", ["never"])
async def test_ensure_never_names_the_image_and_the_fix(store: ImageStore, policy: str) -> None:
    from stackd.errors import NotFoundError

    with pytest.raises(NotFoundError) as err:
        await store.ensure("nothere:1", pull_policy=policy)  # type: ignore[arg-type]
    assert "'nothere:1' is not in the store and pull_policy is never" in str(err.value)
    assert "stackd pull nothere:1" in str(err.value)


async def test_tampered_blob_on_the_registry_is_rejected(
        store: ImageStore, empty_store: ImageStore, registry: RunningRegistry,
        busybox_tar: Path) -> None:
    from stackd.images.errors import DigestMismatchError
    from stackd.images.oci import parse_manifest

    ref, img = await pushed(store, registry, busybox_tar, "test/tamper:1")
    layer = parse_manifest(store.blobs.read_bytes(img.digest)).layers[0].digest
    stored = registry.storage_blob(layer)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    with pytest.raises(DigestMismatchError) as err:
        await empty_store.pull(ref)
    assert f"expected {layer}" in str(err.value)
    assert not empty_store.blobs.has(layer)
    assert empty_store.snapshots.all() == []
    assert list(empty_store.snapshots.root.iterdir()) == []  # no half-unpacked .tmp- dir
    assert empty_store.list() == []
    assert list(empty_store.blobs.ingest_dir.iterdir()) == []


async def test_chunked_upload_and_cross_repository_mount(
        store: ImageStore, empty_store: ImageStore, registry: RunningRegistry,
        busybox_tar: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stackd.images import transfer

    events: list[str] = []
    monkeypatch.setattr(transfer, "CHUNKED_UPLOAD_THRESHOLD", 1)
    monkeypatch.setattr(transfer, "UPLOAD_CHUNK", 256 * 1024)
    first = f"{registry.host}/team/one:1"
    img = store.import_rootfs(busybox_tar, first)
    await store.push(first, progress=lambda e: events.append(e.action))
    assert "pushing" in events  # more than one PATCH went out

    events.clear()
    second = f"{registry.host}/team/two:1"
    store.tag(first, second)
    await store.push(second, progress=lambda e: events.append(e.action))
    assert events.count("mounted") == 2  # the layer and the config
    assert (await empty_store.pull(second)).digest == img.digest

    events.clear()
    await store.push(second, progress=lambda e: events.append(e.action))
    assert events == ["exists", "exists"]  # nothing is uploaded twice
    events.clear()
    await empty_store.pull(first, progress=lambda e: events.append(e.action))
    assert events == ["resolving", "exists"]  # nor downloaded twice


async def test_concurrent_pulls_sharing_a_layer_unpack_it_once(
        store: ImageStore, empty_store: ImageStore, registry: RunningRegistry,
        busybox_tar: Path) -> None:
    import trio

    from stackd.images.models import ImageConfig

    a, b = f"{registry.host}/share/a:1", f"{registry.host}/share/b:1"
    store.import_rootfs(busybox_tar, a)
    store.import_rootfs(busybox_tar, b, config=ImageConfig(cmd=("sh",)))
    await store.push(a)
    await store.push(b)
    results = {}

    async def pull(ref: str) -> None:
        results[ref] = await empty_store.pull(ref)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pull, a)
        nursery.start_soon(pull, b)
    assert results[a].id != results[b].id
    assert results[a].layer_dirs == results[b].layer_dirs
    assert len(empty_store.snapshots.all()) == 1


async def test_token_auth_through_the_challenge_flow(
        store: ImageStore, empty_store: ImageStore, token_registry: RunningRegistry,
        busybox_tar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.registry import TOKEN_PASSWORD, TOKEN_USER

    from stackd.images.errors import RegistryAuthError
    from stackd.images.registry import credentials

    monkeypatch.setenv("STACKD_CONFIG", str(tmp_path / "stackd-config.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker"))
    ref = f"{token_registry.host}/secure/busybox:1"
    img = store.import_rootfs(busybox_tar, ref)
    with pytest.raises(RegistryAuthError) as err:
        await store.push(ref)
    assert f"stackd login {token_registry.host}" in str(err.value)

    credentials.save(token_registry.host, credentials.Credential(TOKEN_USER, "wrong"))
    with pytest.raises(RegistryAuthError):
        await store.push(ref)

    credentials.save(token_registry.host, credentials.Credential(TOKEN_USER, TOKEN_PASSWORD))
    await store.push(ref)
    pulled = await empty_store.pull(ref)
    assert pulled.digest == img.digest
    assert token_registry.issuer is not None
    scopes = {s for q in token_registry.issuer.requests for s in q.get("scope", [])}
    assert "repository:secure/busybox:pull,push" in scopes
    assert "repository:secure/busybox:pull" in scopes


async def test_index_pull_picks_linux_amd64(store: ImageStore, empty_store: ImageStore,
                                            registry: RunningRegistry, busybox_tar: Path) -> None:
    import json

    from stackd.images.mediatypes import OCI_INDEX, OCI_MANIFEST
    from stackd.images.reference import parse
    from stackd.images.registry.client import RegistryClient

    _, img = await pushed(store, registry, busybox_tar, "multi/app:amd64")
    size = store.blobs.size(img.digest)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": img.digest, "size": size,
         "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": OCI_MANIFEST, "digest": img.digest, "size": size,
         "platform": {"os": "linux", "architecture": "amd64"}},
    ]}).encode()
    async with RegistryClient() as client:
        await client.put_manifest(parse(f"{registry.host}/multi/app:all"), "all", index,
                                  OCI_INDEX)
    pulled = await empty_store.pull(f"{registry.host}/multi/app:all")
    assert pulled.digest == img.digest
    assert pulled.references == (f"{registry.host}/multi/app:all",)


async def test_basic_auth_with_docker_config_credentials(
        store: ImageStore, empty_store: ImageStore, basic_registry: RunningRegistry,
        busybox_tar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import json

    from support.registry import TOKEN_PASSWORD, TOKEN_USER

    from stackd.images.errors import RegistryAuthError

    monkeypatch.setenv("STACKD_CONFIG", str(tmp_path / "none.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    ref = f"{basic_registry.host}/basic/bb:1"
    img = store.import_rootfs(busybox_tar, ref)
    with pytest.raises(RegistryAuthError, match=f"stackd login {basic_registry.host}"):
        await store.push(ref)
    (tmp_path / "docker").mkdir()
    auth = base64.b64encode(f"{TOKEN_USER}:{TOKEN_PASSWORD}".encode()).decode()
    (tmp_path / "docker/config.json").write_text(
        json.dumps({"auths": {basic_registry.host: {"auth": auth}}}))
    await store.push(ref)
    assert (await empty_store.pull(ref)).digest == img.digest


async def test_tampered_manifest_is_rejected_when_pinned_by_digest(
        store: ImageStore, empty_store: ImageStore, registry: RunningRegistry,
        busybox_tar: Path) -> None:
    from stackd.images.errors import DigestMismatchError

    _, img = await pushed(store, registry, busybox_tar, "test/pinned:1")
    stored = registry.storage_blob(img.digest)
    stored.write_bytes(stored.read_bytes().replace(b'"schemaVersion":2', b'"schemaVersion": 2'))
    pinned = f"{registry.host}/test/pinned@{img.digest}"
    with pytest.raises(DigestMismatchError) as err:
        await empty_store.pull(pinned)
    assert f"expected {img.digest}" in str(err.value)
    assert empty_store.list() == [] and empty_store.blobs.all() == []


async def test_hostile_layer_in_a_pull_is_rejected_while_the_rest_downloads(
        store: ImageStore, empty_store: ImageStore, registry: RunningRegistry,
        busybox_tar: Path, tmp_path: Path) -> None:
    """A layer whose blob checks out but whose content escapes is refused as it streams;
    its download still completes (the blob's digest is checked first), the good layer
    beside it is unaffected, and no snapshot or temp dir of the image is left."""
    import gzip
    import hashlib
    import io
    import tarfile

    from stackd.images.errors import LayerRejectedError
    from stackd.images.mediatypes import OCI_CONFIG, OCI_LAYER_GZIP
    from stackd.images.models import ImageConfig
    from stackd.images.oci import Descriptor, descriptor_of, make_config, make_manifest
    from stackd.images.reference import parse

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        # Enough file data ahead of the escape that the download is still going on.
        big = tarfile.TarInfo("filler")
        big.size = 3 << 20
        tar.addfile(big, io.BytesIO(os.urandom(big.size)))
        tar.addfile(tarfile.TarInfo("../../../escaped"), io.BytesIO(b""))
        tail = tarfile.TarInfo("tail")
        tail.size = 2 << 20
        tar.addfile(tail, io.BytesIO(os.urandom(tail.size)))
    plain = buf.getvalue()
    blob = gzip.compress(plain, compresslevel=1)
    digest = store.blobs.put_bytes(blob)
    good = store.import_rootfs(busybox_tar)
    good_layer = parse_manifest(store.blobs.read_bytes(good.digest)).layers[0]
    good_diff = json.loads(store.blobs.read_bytes(good.id))["rootfs"]["diff_ids"][0]
    ref = f"{registry.host}/test/hostile:1"
    # By hand: the store's own commit would unpack (and refuse) the layer.
    cfg_body = make_config(ImageConfig(), [good_diff,
                                           "sha256:" + hashlib.sha256(plain).hexdigest()],
                           [{}, {}], None)
    cfg = descriptor_of(cfg_body, OCI_CONFIG)
    store.blobs.put_bytes(cfg_body, cfg.digest)
    manifest = store.blobs.put_bytes(make_manifest(
        cfg, [good_layer, Descriptor(OCI_LAYER_GZIP, digest, len(blob))]))
    store.refs.set(str(parse(ref)), manifest)
    await store.push(ref)

    with pytest.raises(LayerRejectedError, match=r"climbs out with '\.\.'"):
        await empty_store.pull(ref)
    assert not (tmp_path.parent / "escaped").exists()
    assert not any(p.name.startswith(".tmp-") for p in empty_store.snapshots.root.iterdir())
    assert list(empty_store.blobs.ingest_dir.iterdir()) == []
    assert empty_store.list() == []


async def test_blob_longer_than_announced_stops_the_download(
        store: ImageStore, empty_store: ImageStore, registry: RunningRegistry,
        busybox_tar: Path) -> None:
    """Bytes past the manifest's size end the download at once (the writer closes the
    pipe the event loop feeds): a DigestMismatchError, nothing kept."""
    ref, img = await pushed(store, registry, busybox_tar, "test/long:1")
    layer = parse_manifest(store.blobs.read_bytes(img.digest)).layers[0].digest
    stored = registry.storage_blob(layer)
    with open(stored, "ab") as f:
        f.write(os.urandom(8 << 20))

    with pytest.raises(DigestMismatchError, match="more than the announced"):
        await empty_store.pull(ref)
    assert empty_store.snapshots.all() == []
    assert list(empty_store.snapshots.root.iterdir()) == []
    assert list(empty_store.blobs.ingest_dir.iterdir()) == []
    assert empty_store.list() == []


async def test_a_config_too_large_to_be_an_images_is_refused(
        store: ImageStore, empty_store: ImageStore, registry: RunningRegistry,
        busybox_tar: Path) -> None:
    """It was read whole into the daemon's memory, however large the registry made it."""
    from stackd.images.errors import RegistryError

    ref, img = await pushed(store, registry, busybox_tar, "test/huge-config:1")
    stored = registry.storage_blob(
        parse_manifest(store.blobs.read_bytes(img.digest)).config.digest)
    body = stored.read_bytes()
    stored.write_bytes(body[:-1] + b" " * (17 << 20) + body[-1:])  # still JSON, only bigger
    with pytest.raises(RegistryError, match=r"the config of .* is larger than 16 MiB"):
        await empty_store.pull(ref)
    assert empty_store.list() == [] and empty_store.snapshots.all() == []


@pytest.mark.parametrize("path", ["manifests", "token"])
async def test_a_hostile_registrys_endless_manifest_or_token_is_cut_off(
        empty_store: ImageStore, path: str) -> None:
    """A registry (docker-registry checks what it serves, so a server of the test's
    own stands in) that answers a manifest, or its token service a token, with bytes
    that never end: read until 4 MiB (1 MiB for a token), then refused."""
    import http.server
    import threading

    from stackd.images.errors import RegistryError

    sent: list[int] = []

    class Hostile(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            host = f"127.0.0.1:{self.server.server_address[1]}"
            if path == "token" and "/token" not in self.path:
                self.send_response(401)
                self.send_header("WWW-Authenticate",
                                 f'Bearer realm="http://{host}/token",service="x"')
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.end_headers()
            try:
                for _ in range(64):  # 64 MiB at most, if never cut off
                    self.wfile.write(b" " * (1 << 20))
                    sent.append(1)
            except OSError:
                pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ref = f"127.0.0.1:{server.server_address[1]}/x/y:1"
        with pytest.raises(RegistryError, match="the token answer is larger than 1 MiB"
                           if path == "token" else "the manifest 1 is larger than 4 MiB"):
            await empty_store.pull(ref)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert len(sent) < 64


@pytest.mark.parametrize(("manifest", "says"), [
    ({"schemaVersion": 2, "layers": []}, "the config is not a JSON object"),
    ({"schemaVersion": 2, "config": {"digest": "sha256:" + "a" * 64, "size": "big"},
      "layers": []}, "size 'big' is not a byte count"),
    ({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
      "manifests": ["x"]}, "an entry of its index is not a JSON object"),
    ([1, 2], "manifest is not a JSON object"),
    (b'{"schemaVersion": 2, "config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "nests too deeply to be an image document"),
], ids=["no-config", "size-string", "index-entry", "list", "nested"])
async def test_a_hostile_registrys_malformed_manifest_is_a_typed_error(
        empty_store: ImageStore, manifest: object, says: str) -> None:
    """A manifest of the wrong shape (a registry of the test's own: docker-registry
    checks what it is pushed) was a KeyError, TypeError or AttributeError out of the
    pull, and one nested past the JSON decoder's recursion a RecursionError; now an
    error naming the field, and nothing stored under a name."""
    import http.server
    import json
    import threading

    from stackd.images.digests import sha256_digest
    from stackd.images.errors import MalformedImageError

    # (json.dumps recurses too: a nesting past its limit is given as bytes)
    body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()

    class Hostile(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Docker-Content-Digest", sha256_digest(body))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(MalformedImageError, match=says):
            await empty_store.pull(f"127.0.0.1:{server.server_address[1]}/x/y:1")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert empty_store.list() == []
