"""The web console in a real browser: Debian's chromium, headless, driven by selenium
through Debian's chromedriver, against `stackd ui` in front of a real daemon on the
test's own root. Screenshots of each page go to bench/out/ui/ (ignored by git).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import CLI, DEMO_IMAGE, torn_down
from support.busybox import busybox_available, make_busybox_tar
from support.freeaddrs import free_port
from support.hostpackages import require, require_command
from support.ui import Console

from stackd.roots import Roots

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def demo_image(roots: Roots, tmp_path: Path) -> str:
    require(busybox_available(), "busybox-static")
    from stackd.images import ImageStore

    tar = make_busybox_tar(tmp_path / "busybox.tar", tmp_path)
    ImageStore(roots).import_rootfs(tar, ref=DEMO_IMAGE)
    return DEMO_IMAGE


@pytest.fixture
def cli(no_leaks: Roots, demo_image: str, tmp_path: Path) -> Iterator[CLI]:
    work = tmp_path / "demo"
    work.mkdir()
    with torn_down(CLI(no_leaks, work)) as c:
        yield c


@pytest.fixture
def console(cli: CLI, tmp_path: Path) -> Iterator[Console]:
    """`stackd ui` on a free port; its log (stderr) is printed after the test, so a
    failing test shows what the console said."""
    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stackd", "ui", "--listen", f"127.0.0.1:{port}"],
            cwd=cli.cwd, env=cli.env(), stdout=subprocess.PIPE, stderr=err,
            text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # the URL is printed once it listens
            seen.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=\S+", line)
            if found:
                break
        assert found, f"stackd ui printed no URL: {''.join(seen)!r}"
        yield Console(found.group(0), found.group(1), proc)
    finally:
        proc.send_signal(signal.SIGINT)  # ours, by PID
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(f"stackd ui's log:\n{log.read_text()}")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    require_command("chromium", "chromium")
    require_command("chromedriver", "chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        require(False, "selenium (pip install -e .[test])")
        raise
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", f"--user-data-dir={tmp_path / 'chromium'}",
                "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    service = Service(executable_path=shutil.which("chromedriver") or CHROMEDRIVER,
                      log_output=os.devnull)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)  # a hung page fails in seconds, not selenium's 300
    try:
        yield driver
    finally:
        driver.quit()  # ends the chromedriver and the chromium it started

