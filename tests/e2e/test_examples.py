"""The examples in examples/, each run exactly as its README says (its ```sh blocks),
on a private root; what a user would see is asserted. The Debian base images they
bootstrap are made once per session (support.examples.BaseImages)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import CLI, EXAMPLES, torn_down
from support.busybox import busybox_available
from support.examples import BaseImages, run_readme
from support.freeaddrs import free_port
from support.hostpackages import require

from stackd.roots import Roots

HITCOUNTER_PACKAGES = ("python3-flask", "python3-redis", "redis-server")
WEBSTACK_PACKAGES = ("nginx", "postgresql", "python3-flask", "python3-psycopg2")
MONITORING_PACKAGES = ("prometheus", "python3")
DEVLOOP_PACKAGES = ("python3-flask",)


# test → the base image its README bootstraps
BASES = {
    "test_hitcounter_readme": (HITCOUNTER_PACKAGES, "hitcounter-base:bookworm"),
    "test_webstack_readme": (WEBSTACK_PACKAGES, "webstack-base:bookworm"),
    "test_monitoring_readme": (MONITORING_PACKAGES, "monitoring-base:bookworm"),
    "test_devloop_readme": (DEVLOOP_PACKAGES, "devloop-base:bookworm"),
}


@pytest.fixture(scope="session")
def base_images(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaseImages]:
    workdir = tmp_path_factory.mktemp("base-images")
    images = BaseImages(workdir)
    # Every image a selected test needs, built at once: on 2 cores three bootstraps
    # side by side take about half as long as one after another.
    selected = {item.name for item in request.session.items}
    for test, (packages, tag) in BASES.items():
        if test in selected:
            images.start(packages, tag)
    try:
        yield images
    finally:
        images.close()
        shutil.rmtree(workdir, ignore_errors=True)  # a few hundred MB: not kept for later


def example(name: str, roots: Roots, tmp_path: Path, **environ: str) -> CLI:
    work = tmp_path / name
    shutil.copytree(EXAMPLES / name, work)
    return CLI(roots, work, environ)


def test_hitcounter_readme(no_leaks: Roots, tmp_path: Path, base_images: BaseImages) -> None:
    base_images.load_into(no_leaks, *BASES["test_hitcounter_readme"])
    port = str(free_port())
    with torn_down(example("hitcounter", no_leaks, tmp_path, HITS_PORT=port)) as cli:
        r = run_readme(cli.cwd / "README.md", cli.cwd, no_leaks, HITS_PORT=port)
        # The README's own bootstrap found the session's image by its label.
        assert "Reused hitcounter-base:bookworm" in r.stdout
        counts = [line for line in r.stdout.splitlines() if line.startswith("Hello")]
        assert counts == [f"Hello from stackd! I have been seen {n} times." for n in (1, 2, 3)]
        assert "hitcounter_counts" not in cli("volume", "ls").stdout


def test_devloop_readme(no_leaks: Roots, tmp_path: Path, base_images: BaseImages) -> None:
    base_images.load_into(no_leaks, *BASES["test_devloop_readme"])
    port = str(free_port())
    with torn_down(example("devloop", no_leaks, tmp_path, DEV_PORT=port)) as cli:
        r = run_readme(cli.cwd / "README.md", cli.cwd, no_leaks, DEV_PORT=port)
        answers = [line for line in r.stdout.splitlines() if line.startswith("Hello")]
        assert answers == ["Hello from devloop!", "Hello again, edited!"], r.stdout
        assert "web: synced /app/app.py after 1 change" in r.stdout
        assert "web: restarting" in r.stdout
        assert "watch stopped; devloop keeps running" in r.stdout


def test_rolling_readme(no_leaks: Roots, tmp_path: Path) -> None:
    require(busybox_available(), "busybox-static")
    port = str(free_port())
    with torn_down(example("rolling", no_leaks, tmp_path, ROLL_PORT=port)) as cli:
        r = run_readme(cli.cwd / "README.md", cli.cwd, no_leaks, ROLL_PORT=port)
        before = [line for line in r.stdout.splitlines() if line.startswith("v1 from ")]
        assert len(before) == 6, r.stdout
        assert "web-3: recreate — environment changed: VERSION (rolling update batch 3/3, " \
            "start-first)" in r.stdout
        summary = next(line for line in r.stdout.splitlines() if line.startswith("answers:"))
        counts = dict(zip(summary.replace(",", "").split()[1::2],
                          map(int, summary.replace(",", "").split()[2::2]), strict=True))
        assert counts["failed"] == 0, (cli.cwd / "during.txt").read_text()
        assert counts["v1"] > 0 and counts["v2"] > 0, summary
        assert "rolling-web-1" not in cli("ps").stdout  # down -v at the end


def test_webstack_readme(no_leaks: Roots, tmp_path: Path, base_images: BaseImages) -> None:
    base_images.load_into(no_leaks, *BASES["test_webstack_readme"])
    port = str(free_port())
    with torn_down(example("webstack", no_leaks, tmp_path, WEB_PORT=port)) as cli:
        r = run_readme(cli.cwd / "README.md", cli.cwd, no_leaks, WEB_PORT=port)
        assert "Reused webstack-base:bookworm" in r.stdout  # the session's image
        visits = [line for line in r.stdout.splitlines() if line.startswith("Hello: visit")]
        # 1, 2; after down/up the volume kept them: 3.
        assert visits == [f"Hello: visit number {n}, kept in PostgreSQL." for n in
                          (1, 2, 3)], r.stdout
        after_down_v = r.stdout.split("visit number 3")[1]
        assert "webstack_pgdata" not in after_down_v
        assert "db: no name web here" in r.stdout  # the internal network's isolation
        migrate = next(line for line in r.stdout.splitlines() if "webstack-migrate-1" in line)
        assert "Exited (0)" in migrate, migrate


def test_monitoring_readme(no_leaks: Roots, tmp_path: Path, base_images: BaseImages) -> None:
    base_images.load_into(no_leaks, *BASES["test_monitoring_readme"])
    port = str(free_port())
    with torn_down(example("monitoring", no_leaks, tmp_path, PROM_PORT=port)) as cli:
        # run_readme sets STACKD_RUN, which the stack file mounts the socket from.
        r = run_readme(cli.cwd / "README.md", cli.cwd, no_leaks, PROM_PORT=port)
        assert "Reused monitoring-base:bookworm" in r.stdout  # the session's image
        # Prometheus scraped the daemon and counts this stack's two containers running.
        assert "monitoring running 2" in r.stdout.splitlines(), r.stdout
        assert "200" in r.stdout.splitlines()  # Prometheus' own /-/healthy
        # The forwarder passes /metrics and nothing else of the daemon's API.
        assert "HTTP Error 404: only /metrics is forwarded" in r.stdout, r.stdout


def test_gitops_readme(no_leaks: Roots, tmp_path: Path) -> None:
    require(busybox_available(), "busybox-static")
    with torn_down(example("gitops", no_leaks, tmp_path)) as cli:
        r = run_readme(cli.cwd / "README.md", cli.cwd, no_leaks)
        out = r.stdout
        # the first commit, then the second: two replicas, each saying bonjour
        assert "two replicas, in French as revision 2" in out, out
        assert [ln.split()[0] for ln in out.splitlines() if ln.startswith("site-web-")][:3] \
            == ["site-web-1", "site-web-1", "site-web-2"], out
        # the broken commit: refused with its position, the host left as it was
        failed = out[out.index("site: Failed"):]
        assert "(compose.yaml:12:1)" in failed.splitlines()[4], failed
        assert any(ln.startswith("site-web-2 ") and " web " in ln and " Up " in ln
                   for ln in failed.splitlines()), failed
        # the stop by hand: reported as drift and undone
        assert "drift from commit" in out and "undoing it" in out, out
        assert "source site removed and its stack taken down" in out
        assert "site-web" not in cli("-p", "site", "ps", "-a").stdout
