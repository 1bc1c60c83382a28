"""Pull and unpack throughput of stackd's image store, beside skopeo and tar in the same run.

    .venv/bin/python bench/bench_pull.py [--mb 100] [--layers 4] [--rounds 3]

Starts Debian's docker-registry on 127.0.0.1 (as the tests do), pushes a generated
image of random-content layers (incompressible, so gzip costs what it costs), then
times, each round into an empty destination:

  * `stackd pull` into an empty store (download + verify + unpack into snapshots)
  * `skopeo copy docker://… oci:DIR` (download + verify, no unpack)
  * unpacking one gzip layer with stackd's safe unpacker vs `tar -xzf`

Prints figures and ratios; asserts nothing about time. `measure` gives bench/run's
rows: the pull beside skopeo's download-only copy (goal <= 1.2x) and podman's pull,
interleaved round by round, each peer's result checked (every layer blob present
under its digest, with its size) before its time counts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from results import Peer, Row
from support.registry import start_registry

from stackd.images import ImageStore
from stackd.images.models import ImageConfig
from stackd.images.snapshots import SnapshotStore
from stackd.roots import Roots


def make_layer_tar(path: Path, size_mb: int, seed: int) -> None:
    src = path.with_suffix(".d")
    (src / f"data{seed}").mkdir(parents=True)
    per_file = 1 << 20
    for i in range(size_mb):
        (src / f"data{seed}" / f"blob{i:04d}").write_bytes(os.urandom(per_file))
    subprocess.run(["tar", "-C", str(src), "--numeric-owner", "-cf", str(path), "."], check=True)
    shutil.rmtree(src)


def store_at(base: Path, name: str) -> ImageStore:
    return ImageStore(Roots(state=base / name / "state", run=base / name / "run").ensure())


def timed(fn, *args, **kw) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn(*args, **kw)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100, help="total image size in MB")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="stackd-bench-") as tmp_name:
        tmp = Path(tmp_name)
        registry = start_registry(tmp / "registry")
        try:
            run(tmp, registry.host, opts)
        finally:
            registry.stop()


def run(tmp: Path, host: str, opts: argparse.Namespace) -> None:
    src = store_at(tmp, "source")
    layers = []
    per_layer = max(1, opts.mb // opts.layers)
    print(f"generating {opts.layers} layers × {per_layer} MB of random data …", flush=True)
    for i in range(opts.layers):
        tar = tmp / f"layer{i}.tar"
        make_layer_tar(tar, per_layer, i)
        layers.append(src.add_layer_from_tar(tar))
        tar.unlink()
    ref = f"{host}/bench/random:1"
    img = src.commit(ImageConfig(), layers, [{"created_by": "bench"}] * len(layers), names=[ref])
    trio.run(src.push, ref)
    total = sum(d.size for d, _ in layers)
    mb = total / 1e6
    print(f"image {img.digest[:19]}: {len(layers)} layers, {mb:.1f} MB compressed\n")

    ours, theirs, podman = [], [], []
    has_podman = shutil.which("podman") is not None
    for r in range(opts.rounds):
        dest = store_at(tmp, f"pull{r}")
        ours.append(timed(trio.run, dest.pull, ref))
        shutil.rmtree(tmp / f"pull{r}")
        oci = tmp / f"oci{r}"
        theirs.append(timed(subprocess.run, ["skopeo", "--insecure-policy", "copy", "-q",
                                             "--src-tls-verify=false", f"docker://{ref}",
                                             f"oci:{oci}:x"]))
        shutil.rmtree(oci)
        if has_podman:
            # podman's own storage under a private root (never /var/lib/containers).
            proot = tmp / f"podman{r}"
            podman.append(timed(subprocess.run, [
                "podman", "--root", str(proot / "root"), "--runroot", str(proot / "run"),
                "--storage-driver", "overlay", "pull", "-q", "--tls-verify=false", ref],
                capture_output=True, check=True))
            subprocess.run(["podman", "--root", str(proot / "root"), "--runroot",
                            str(proot / "run"), "--storage-driver", "overlay", "system",
                            "reset", "-f"], capture_output=True)
            shutil.rmtree(proot, ignore_errors=True)
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"{'pull (median of ' + str(opts.rounds) + ')':<34}{'seconds':>9}{'MB/s':>9}")
    print(f"{'stackd pull (+ unpack)':<34}{o:>9.2f}{mb / o:>9.1f}")
    print(f"{'skopeo copy → oci dir (no unpack)':<34}{t:>9.2f}{mb / t:>9.1f}")
    if podman:
        p = statistics.median(podman)
        print(f"{'podman pull (+ unpack, overlay)':<34}{p:>9.2f}{mb / p:>9.1f}")
    print(f"ratio stackd / skopeo: {o / t:.2f}× (goal ≤ 1.2×; skopeo does not unpack)")
    if podman:
        print(f"ratio stackd / podman pull: {o / p:.2f}× (same work: download + unpack)")
    print()

    blob = src.blobs.path(layers[0][0].digest)
    size_mb = blob.stat().st_size / 1e6
    ours_u, tar_u = [], []
    for r in range(opts.rounds):
        snaps = SnapshotStore(tmp / f"snap{r}", tmp / f"locks{r}")
        ours_u.append(timed(snaps.unpack, blob, layers[0][1]))
        shutil.rmtree(tmp / f"snap{r}")
        out = tmp / f"tar{r}"
        out.mkdir()
        tar_u.append(timed(subprocess.run, ["tar", "-C", str(out), "-xzf", str(blob)]))
        shutil.rmtree(out)
    o, t = statistics.median(ours_u), statistics.median(tar_u)
    print(f"{'unpack one gzip layer':<34}{'seconds':>9}{'MB/s':>9}")
    print(f"{'stackd safe unpack':<34}{o:>9.2f}{size_mb / o:>9.1f}")
    print(f"{'tar -xzf':<34}{t:>9.2f}{size_mb / t:>9.1f}")
    print(f"ratio stackd / tar: {o / t:.2f}×")


def _push_random_image(tmp: Path, host: str, mb: int, nlayers: int) -> tuple[str, list[str]]:
    """A random-data image pushed to the registry: (reference, its layer digests)."""
    src = store_at(tmp, "source")
    layers = []
    for i in range(nlayers):
        tar = tmp / f"layer{i}.tar"
        make_layer_tar(tar, max(1, mb // nlayers), i)
        layers.append(src.add_layer_from_tar(tar))
        tar.unlink()
    ref = f"{host}/bench/random:1"
    src.commit(ImageConfig(), layers, [{"created_by": "bench"}] * len(layers), names=[ref])
    trio.run(src.push, ref)
    shutil.rmtree(tmp / "source")
    return ref, [d.digest for d, _ in layers]


def _oci_holds(oci: Path, digests: list[str], sizes: dict[str, int]) -> str | None:
    """Why the OCI dir skopeo wrote lacks the image, or None if every layer is there."""
    if not (oci / "index.json").is_file():
        return "no index.json"
    for d in digests:
        blob = oci / "blobs" / "sha256" / d[7:]
        if not blob.is_file() or blob.stat().st_size != sizes[d]:
            return f"layer {d[:19]} missing or short"
    return None


def measure(mb: int = 100, nlayers: int = 4, rounds: int = 3) -> list[Row]:
    """stackd pull (download + verify + unpack) beside skopeo copy (download + verify)
    and podman pull (download + unpack), rounds interleaved."""
    with tempfile.TemporaryDirectory(prefix="stackd-bench-pull-") as tmp_name:
        tmp = Path(tmp_name)
        registry = start_registry(tmp / "registry")
        try:
            ref, digests = _push_random_image(tmp, registry.host, mb, nlayers)
            ours: list[float] = []
            skopeo: list[float] = []
            podman: list[float] = []
            skopeo_fail = podman_fail = ""
            total = 0
            for r in range(rounds):
                dest = store_at(tmp, f"pull{r}")
                t = time.perf_counter()
                img = trio.run(dest.pull, ref)
                ours.append(time.perf_counter() - t)
                sizes = {d: dest.blobs.path(d).stat().st_size for d in digests}
                total = sum(sizes.values())
                if len(img.layer_dirs) != len(digests) or not all(
                        Path(d).is_dir() for d in img.layer_dirs):
                    raise RuntimeError("stackd pull: the image's snapshots are missing")
                shutil.rmtree(tmp / f"pull{r}")
                if shutil.which("skopeo") and not skopeo_fail:
                    oci = tmp / f"oci{r}"
                    t = time.perf_counter()
                    proc = subprocess.run(["skopeo", "--insecure-policy", "copy", "-q",
                                           "--src-tls-verify=false", f"docker://{ref}",
                                           f"oci:{oci}:x"], capture_output=True, text=True)
                    took = time.perf_counter() - t
                    why = (proc.stderr.strip()[-200:] if proc.returncode
                           else _oci_holds(oci, digests, sizes))
                    if why:
                        skopeo_fail = why
                    else:
                        skopeo.append(took)
                    shutil.rmtree(oci, ignore_errors=True)
                if shutil.which("podman") and not podman_fail:
                    proot = tmp / f"podman{r}"
                    store = ["podman", "--root", str(proot / "root"), "--runroot",
                             str(proot / "run"), "--storage-driver", "overlay"]
                    t = time.perf_counter()
                    proc = subprocess.run([*store, "pull", "-q", "--tls-verify=false", ref],
                                          capture_output=True, text=True)
                    took = time.perf_counter() - t
                    if proc.returncode:
                        podman_fail = proc.stderr.strip()[-200:]
                    else:
                        info = subprocess.run([*store, "image", "inspect", ref],
                                              capture_output=True, text=True)
                        layers = (json.loads(info.stdout or "[{}]")[0].get("RootFS", {})
                                  .get("Layers", []))
                        if len(layers) != len(digests):
                            podman_fail = f"{len(layers)} of {len(digests)} layers stored"
                        else:
                            podman.append(took)
                    subprocess.run([*store, "system", "reset", "-f"], capture_output=True)
                    shutil.rmtree(proot, ignore_errors=True)
        finally:
            registry.stop()
    what = f"pull {total / 1e6:.0f} MB, {nlayers} layers (+ unpack)"

    def peer(name: str, samples: list[float], fail: str) -> Peer:
        if fail:
            return Peer.failed(name, fail)
        if not samples:
            return Peer.missing(name)
        return Peer.ok(name, samples)

    value = statistics.median(ours)
    sk = peer("skopeo copy (no unpack)", skopeo, skopeo_fail)
    return [
        Row("pull", what, value, peer=sk, goal="<= 1.2x skopeo",
            met=value <= 1.2 * sk.value if sk.value else None, samples=rounds),
        Row("pull", what, value, peer=peer("podman pull", podman, podman_fail),
            samples=rounds),
    ]


if __name__ == "__main__":
    main()
