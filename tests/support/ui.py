"""Helpers of the web console's browser tests (tests/browser): the running console,
and screenshots saved under bench/out/ui/ (ignored by git) for people to look at."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHOTS = Path(__file__).resolve().parents[2] / "bench" / "out" / "ui"


@dataclass
class Console:
    """A running `stackd ui`: the URL it printed (token included) and its process."""

    url: str
    base: str
    proc: subprocess.Popen[str]


def shot(driver: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0,
             driver: Any = None) -> Any:
    """Poll `check` (the test's, not the page's) until it is true; on a timeout the
    page's HTML goes beside the screenshots, to see what the browser saw."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:  # a page mid-swap: look again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            if driver is not None:
                SHOTS.mkdir(parents=True, exist_ok=True)
                (SHOTS / "failed.html").write_text(
                    f"<!-- {driver.current_url} -->\n{driver.page_source}")
                shot(driver, "failed")
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


def click(driver: Any, css: str) -> None:
    """Click the element, found afresh until the click lands: a live region may swap
    it out between finding and clicking."""
    from selenium.webdriver.common.by import By

    def attempt() -> bool:
        driver.find_element(By.CSS_SELECTOR, css).click()
        return True

    wait_for(f"a click on {css}", attempt, driver=driver)


def text_of(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)
