"""The image verbs as a user runs them: the `stackd` command against a real registry."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support.registry import TOKEN_PASSWORD, TOKEN_USER, RunningRegistry

from stackd.images import ImageStore
from stackd.roots import Roots


def stackd(roots: Roots, *args: str, stdin: str | None = None, ok: bool = True
           ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, STACKD_ROOT=str(roots.state), STACKD_RUN=str(roots.run))
    done = subprocess.run([sys.executable, "-m", "stackd", *args], capture_output=True, text=True,
                          env=env, input=stdin, timeout=60)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def test_import_tag_push_rmi_prune_pull(roots: Roots, registry: RunningRegistry,
                                        busybox_tar: Path, tmp_path: Path) -> None:
    image_id = stackd(roots, "image", "import", str(busybox_tar), "bb:1").stdout.strip()
    assert image_id.startswith("sha256:")
    listing = stackd(roots, "images").stdout
    assert listing.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED",
                                               "SIZE"]
    assert f"bb 1 {image_id[7:19]}" in " ".join(listing.split())

    remote = f"{registry.host}/cli/bb:1"
    stackd(roots, "tag", "bb:1", remote)
    pushed = stackd(roots, "push", "-q", remote).stdout.strip()
    stackd(roots, "rmi", "bb:1", remote)
    assert stackd(roots, "images", "-q").stdout == ""
    assert stackd(roots, "image", "prune").stdout.startswith("Deleted 0 blobs")  # rmi pruned

    assert stackd(roots, "pull", "-q", remote).stdout.strip() == pushed
    (info,) = json.loads(stackd(roots, "image", "inspect", remote).stdout)
    assert info["id"] == image_id and info["digest"] == pushed

    stackd(roots, "image", "save", remote, "-o", str(tmp_path / "saved.tar"))
    stackd(roots, "image", "rm", image_id[7:19])
    loaded = stackd(roots, "image", "load", "-i", str(tmp_path / "saved.tar")).stdout
    assert loaded.strip() == f"Loaded image: {remote} {image_id}"


def test_errors_are_one_line_with_a_hint_and_exit_codes(roots: Roots) -> None:
    missing = stackd(roots, "image", "inspect", "nothere:1", ok=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("stackd: image 'nothere:1' is not in the store")
    assert "hint: run `stackd pull nothere:1`" in missing.stderr
    bad = stackd(roots, "pull", "Upper/Case", ok=False)
    assert bad.returncode == 2
    assert "repository names must be lower case" in bad.stderr
    assert "Traceback" not in bad.stderr + missing.stderr


def test_import_of_a_gzip_cut_short_fails_and_adds_nothing(roots: Roots, tmp_path: Path
                                                            ) -> None:
    """A rootfs tar.gz that was not fully copied: cut inside its second gzip member,
    what comes before is a complete tar of /etc/first, and it used to be imported as
    the whole image with the rest missing."""
    def tar_of(name: str, data: bytes, end: bool) -> bytes:
        buf = io.BytesIO()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(info, io.BytesIO(data))
        raw = buf.getvalue()
        # tarfile ends an archive with two zero blocks (and pads to 10 KiB): keep them
        # only for the last part, so the parts join into one archive.
        body = raw[:512 * (1 + (len(data) + 511) // 512)]
        return raw if end else body

    first = gzip.compress(tar_of("etc/first", b"1" * 1000, end=False))
    second = gzip.compress(tar_of("etc/second", os.urandom(100_000), end=True))
    whole, cut = tmp_path / "whole.tar.gz", tmp_path / "cut.tar.gz"
    whole.write_bytes(first + second)
    # Just past the second member's gzip header (nothing of it decompresses yet), and
    # inside its data.
    for at in (20, len(second) // 2):
        cut.write_bytes(first + second[:at])
        failed = stackd(roots, "image", "import", str(cut), "cut:1", ok=False)
        assert failed.returncode == 1, at
        assert failed.stderr.startswith(f"stackd: {cut}: the gzip stream is cut short"), at
        assert "Traceback" not in failed.stderr
        assert stackd(roots, "images", "-q").stdout == ""
        assert list((roots.state / "images" / "ingest").iterdir()) == []
    # The same file whole imports: the error is the cut, not the two members.
    stackd(roots, "image", "import", str(whole), "whole:1")
    assert len(stackd(roots, "images", "-q").stdout.split()) == 1


@pytest.mark.parametrize(("manifest", "config", "says"), [
    ("[{}]", "{}", "manifest.json is not what `docker save` writes"),
    ('["x"]', "{}", "manifest.json is not what `docker save` writes"),
    ('[{"Config": 5}]', "{}", "manifest.json is not what `docker save` writes"),
    ('[{"Config": "c.json", "Layers": "l.tar"}]', "{}",
     "manifest.json is not what `docker save` writes"),
    (None, "[1]", "c.json is not a JSON object"),
    (None, '{"rootfs": {"diff_ids": ["x"]}}', "diff_id 'x' is not a sha256 digest"),
    (None, '{"config": {"Env": "A=1"}}', "env: Input should be a valid tuple"),
    (None, '{"config": {"Healthcheck": {"Interval": "5s"}}}', "healthcheck.interval"),
    ("[" * 100_000 + "]" * 100_000, "{}", "manifest.json is not what `docker save` writes"),
    (None, '{"config": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "c.json nests too deeply to be an image document"),
], ids=["empty-entry", "string-entry", "config-number", "layers-string", "config-list",
        "bad-diff-id", "env-string", "interval-string", "manifest-nested", "config-nested"])
def test_load_of_a_malformed_archive_is_one_error_and_names_nothing(
        roots: Roots, tmp_path: Path, manifest: str | None, config: str, says: str) -> None:
    """A `docker save` archive whose manifest.json or image config has the wrong shape
    ended in a KeyError, TypeError or pydantic traceback; and an image whose config no
    image can be made of was tagged before the error."""
    d = tmp_path / "archive"
    d.mkdir()
    (d / "manifest.json").write_text(
        manifest or '[{"Config": "c.json", "Layers": [], "RepoTags": ["bad:1"]}]')
    (d / "c.json").write_text(config)
    subprocess.run(["tar", "-C", str(d), "-cf", str(tmp_path / "a.tar"), "."], check=True)
    failed = stackd(roots, "image", "load", "-i", str(tmp_path / "a.tar"), ok=False)
    assert failed.returncode == 1
    assert failed.stderr.startswith("stackd: ") and says in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr and "Error:" not in failed.stderr
    assert stackd(roots, "images", "-q").stdout == ""


def test_load_save_and_import_use_stdin_and_stdout_as_docker_does(
        roots: Roots, busybox_tar: Path, tmp_path: Path) -> None:
    """`docker load < x.tar`, `docker save IMG > x.tar` (or `| gzip`) and `cat rootfs.tar
    | docker import - NAME` are how most people move images; stackd required -i and
    -o, and took `-` for a file name."""
    env = dict(os.environ, STACKD_ROOT=str(roots.state), STACKD_RUN=str(roots.run))

    def raw(*args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "stackd", *args], input=data,
                              capture_output=True, env=env, timeout=60)

    imported = raw("image", "import", "-", "piped:1", data=busybox_tar.read_bytes())
    assert imported.returncode == 0, imported.stderr
    image_id = imported.stdout.decode().strip()
    # docker image inspect -f, as scripts ask for an image's id or env
    assert stackd(roots, "image", "inspect", "-f", "{{.Id}} {{.RepoTags}}",
                  "piped:1").stdout == f"{image_id} [piped:1]\n"
    saved = raw("image", "save", "piped:1")
    assert saved.returncode == 0, saved.stderr
    with tarfile.open(fileobj=io.BytesIO(saved.stdout)) as tar:
        assert "manifest.json" in tar.getnames()
    stackd(roots, "rmi", "piped:1")
    loaded = raw("image", "load", data=gzip.compress(saved.stdout))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.decode() == f"Loaded image: docker.io/library/piped:1 {image_id}\n"

    empty = raw("image", "load")
    assert empty.returncode == 1
    assert empty.stderr.decode().startswith("stackd: stdin: not a readable image archive")
    cut = raw("image", "import", "-", "cut:1", data=gzip.compress(busybox_tar.read_bytes())[:5000])
    assert cut.returncode == 1 and b"stdin: the gzip stream is cut short" in cut.stderr
    assert list((roots.state / "images" / "ingest").iterdir()) == []


def test_save_to_stdout_streams_and_checks_every_name_first(
        roots: Roots, busybox_tar: Path) -> None:
    """`docker save IMG | gzip` / `| ssh host docker load`: stackd wrote the whole
    archive to a spool file under the state root first, then copied it out."""
    env = dict(os.environ, STACKD_ROOT=str(roots.state), STACKD_RUN=str(roots.run))
    stackd(roots, "image", "import", str(busybox_tar), "piped:1")
    ingest = roots.state / "images" / "ingest"
    with subprocess.Popen([sys.executable, "-m", "stackd", "image", "save", "piped:1"],
                          stdout=subprocess.PIPE, env=env) as save:
        assert save.stdout is not None
        head = save.stdout.read(4096)  # the archive has begun: what lies under ingest?
        spooled = [e.name for e in ingest.iterdir() if e.is_file()]
        rest = save.stdout.read()
    assert save.returncode == 0 and spooled == []
    with tarfile.open(fileobj=io.BytesIO(head + rest)) as tar:
        assert "manifest.json" in tar.getnames()
    missing = subprocess.run([sys.executable, "-m", "stackd", "image", "save", "piped:1",
                              "nosuch:1"], capture_output=True, env=env, timeout=60)
    assert missing.returncode == 1 and missing.stdout == b""
    assert b"nosuch:1" in missing.stderr and b"Traceback" not in missing.stderr
    assert list(ingest.iterdir()) == []


def test_prune_takes_dockers_force_flag(roots: Roots) -> None:
    """`docker image prune -f` / `docker network prune -f` in scripts: stackd's prune
    asks nothing, and refused the flag (rc 2, "unrecognized arguments: -f")."""
    assert stackd(roots, "image", "prune", "-f").stdout.startswith("Deleted 0 blobs")
    assert stackd(roots, "network", "prune", "--force").returncode == 0


def test_login_verifies_then_saves(roots: Roots, token_registry: RunningRegistry,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKD_CONFIG", str(tmp_path / "cfg.json"))
    wrong = stackd(roots, "login", token_registry.host, "-u", TOKEN_USER,
                   "--password-stdin", stdin="nope\n", ok=False)
    assert wrong.returncode == 1 and "refused the credentials" in wrong.stderr
    assert not (tmp_path / "cfg.json").exists()
    good = stackd(roots, "login", token_registry.host, "-u", TOKEN_USER,
                  "--password-stdin", stdin=TOKEN_PASSWORD + "\n")
    assert good.stdout.startswith("Login Succeeded")
    saved = json.loads((tmp_path / "cfg.json").read_text())
    assert token_registry.host in saved["auths"]


def _random_image(store: ImageStore, tmp_path: Path, ref: str, layers: int, mb: int) -> str:
    import subprocess as sp

    from stackd.images.models import ImageConfig

    made = []
    for i in range(layers):
        src = tmp_path / f"rand{i}"
        src.mkdir()
        (src / f"blob{i}").write_bytes(os.urandom(mb << 20))
        sp.run(["tar", "-C", str(src), "-cf", str(tmp_path / f"rand{i}.tar"), "."], check=True)
        made.append(store.add_layer_from_tar(tmp_path / f"rand{i}.tar"))
    return store.commit(ImageConfig(), made, [{"created_by": "test"}] * layers,
                        names=[ref]).digest


async def test_two_processes_pull_the_same_image_into_one_store(
        roots: Roots, store: ImageStore, registry: RunningRegistry, tmp_path: Path) -> None:
    ref = f"{registry.host}/cli/shared:1"
    source = ImageStore(Roots(tmp_path / "src/state", tmp_path / "src/run").ensure())
    digest = _random_image(source, tmp_path, ref, layers=3, mb=4)
    await source.push(ref)
    env = dict(os.environ, STACKD_ROOT=str(roots.state), STACKD_RUN=str(roots.run))
    procs = [subprocess.Popen([sys.executable, "-m", "stackd", "pull", "-q", ref], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o.strip() for o, _ in outs] == [digest, digest]
    assert len(store.snapshots.all()) == 3
    assert [p.name for p in store.snapshots.root.iterdir() if p.name.startswith(".tmp")] == []


def _partial_download(store: ImageStore) -> bool:
    for part in store.blobs.ingest_dir.glob("*.part"):
        try:
            if part.stat().st_size > 1 << 20:
                return True
        except FileNotFoundError:
            pass  # committed between listing and looking
    return False


async def test_pull_killed_midway_leaves_nothing_that_is_used(
        roots: Roots, store: ImageStore, registry: RunningRegistry, tmp_path: Path) -> None:
    import signal
    import time

    ref = f"{registry.host}/cli/killed:1"
    source = ImageStore(Roots(tmp_path / "src/state", tmp_path / "src/run").ensure())
    digest = _random_image(source, tmp_path, ref, layers=3, mb=16)
    await source.push(ref)
    env = dict(os.environ, STACKD_ROOT=str(roots.state), STACKD_RUN=str(roots.run))
    proc = subprocess.Popen([sys.executable, "-m", "stackd", "pull", ref], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Kill it while a layer is half downloaded: what a crash or power cut leaves.
        deadline = time.monotonic() + 30
        while not _partial_download(store):
            assert time.monotonic() < deadline and proc.poll() is None, "pull never started"
            time.sleep(0.005)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert list(store.blobs.ingest_dir.glob("*.part"))  # the crash left partial blobs…
    assert store.list() == []  # …and no reference to anything half-made
    assert store.snapshots.all() == []
    pulled = await store.pull(ref)
    assert pulled.digest == digest
    for layer in pulled.layer_dirs:
        assert len(list(Path(layer).iterdir())) == 1
    store.prune()
    assert [p.name for p in store.snapshots.root.iterdir() if p.name.startswith(".tmp")] == []
    assert list(store.blobs.ingest_dir.iterdir()) == []


def test_build_from_a_stack_file_tags_as_up_expects(roots: Roots, tmp_path: Path) -> None:
    proj = tmp_path / "shop"
    (proj / "web").mkdir(parents=True)
    (proj / "compose.yaml").write_text(
        "services:\n  web:\n    build:\n      context: ./web\n      args:\n        MSG: hi\n"
        "      labels:\n        team: shop\n"
        "  db:\n    image: busybox:test\n")
    (proj / "web/Dockerfile").write_text("FROM scratch\nARG MSG\nCOPY index.html /\n"
                                         "LABEL msg=$MSG\n")
    (proj / "web/index.html").write_text("<p>shop</p>")
    env = dict(os.environ, STACKD_ROOT=str(roots.state), STACKD_RUN=str(roots.run))
    done = subprocess.run([sys.executable, "-m", "stackd", "build"], cwd=proj, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("as docker.io/library/shop-web:latest")
    (info,) = json.loads(stackd(roots, "image", "inspect", "shop-web").stdout)
    assert info["config"]["labels"] == {"msg": "hi", "team": "shop"}
    # No RUN step, so no daemon was asked for a build network (none was started).
    from stackd.daemon.paths import pid_path
    from stackd.daemon.pidfile import locked

    assert not locked(pid_path(roots))


def test_images_format_takes_dockers_templates(roots: Roots, busybox_tar: Path) -> None:
    stackd(roots, "image", "import", str(busybox_tar), "bb:1")
    stackd(roots, "tag", "bb:1", "example.com/team/bb:2")
    out = stackd(roots, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert sorted(out.split()) == ["bb:1", "example.com/team/bb:2"]
    table = stackd(roots, "images", "--format", "table {{.Repository}}\\t{{.Tag}}").stdout
    assert table.splitlines()[0].split() == ["REPOSITORY", "TAG"]
    bad = stackd(roots, "images", "--format", "{{.Nope}}", ok=False)
    assert bad.returncode == 2 and "there is no field 'Nope'" in bad.stderr


def test_files_named_that_cannot_be_used_and_a_login_with_nothing_to_read_are_said(
        roots: Roots, busybox_tar: Path, tmp_path: Path) -> None:
    """`image save -o ..`, `-o nosuchdir/x.tar`, `config -o DIR` likewise, and a
    `login` with no terminal and nothing on stdin were tracebacks (FileNotFoundError,
    EOFError)."""
    stackd(roots, "image", "import", str(busybox_tar), "out:1")
    for bad, said in (("..", "not a file name"),
                      (str(tmp_path / "nosuchdir" / "x.tar"), "No such file or directory")):
        r = stackd(roots, "image", "save", "-o", bad, "out:1", ok=False)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert f"image save -o {bad!r}" in r.stderr and said in r.stderr, r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # none left
    saved = tmp_path / "out.tar"
    stackd(roots, "image", "save", "-o", str(saved), "out:1")
    assert tarfile.is_tarfile(saved)
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: out:1\n")
    r = stackd(roots, "-f", str(tmp_path / "compose.yaml"), "config", "-o", str(tmp_path),
               ok=False)
    assert r.returncode == 2 and "config -o" in r.stderr and "Is a directory" in r.stderr, r
    # Input files too: a name too long, a directory for a Dockerfile, binary bytes.
    long = "a" * 300
    for args in (("image", "load", "-i", long), ("image", "import", long, "x:1")):
        r = stackd(roots, *args, ok=False)
        assert r.returncode == 1 and "is not a file" in r.stderr, r.stderr
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Binary").write_bytes(b"FROM out:1\n\xff\xfe\n")
    for dockerfile, said in (("/", "Is a directory"), (long, "File name too long"),
                             ("Binary", "it is not text")):
        r = stackd(roots, "build", "-f", dockerfile, str(tmp_path / "ctx"), ok=False)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert "cannot read the Dockerfile" in r.stderr and said in r.stderr, r.stderr
    r = stackd(roots, "login", "localhost:1", stdin="", ok=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "pass -u USER and --password-stdin" in r.stderr, r.stderr
