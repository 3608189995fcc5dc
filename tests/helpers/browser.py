"""Headless Chromium (Debian's chromium + chromium-driver) driven by selenium, optionally inside a
network namespace: every call runs in one worker thread that entered it (setns, lab/nshttp.py),
so chromedriver, Chromium and selenium's connection to the driver all live there.

    with browser(workdir, netns="sb1234-srv2") as b:
        b.call(lambda d: d.get("http://10.77.0.2:8080/status/login#token=…"))
        b.call(lambda d: d.save_screenshot(str(path)))
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lab.nshttp import _enter

T = TypeVar("T")
# as /work/.library/env/machines/python.md says: no background traffic out of this machine
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
    "--hide-scrollbars",
)


class Browser:
    def __init__(self, pool: concurrent.futures.ThreadPoolExecutor, driver: Any) -> None:
        self.pool = pool
        self.driver = driver

    def call(self, fn: Callable[[Any], T], timeout: float = 60.0) -> T:
        return self.pool.submit(fn, self.driver).result(timeout=timeout)


def _start(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))


@contextlib.contextmanager
def browser(workdir: Path, netns: str | None = None) -> Iterator[Browser]:
    for tool in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not Path(tool).exists():
            pytest.fail(f"{tool} is missing: run `make setup` (chromium, chromium-driver)")
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=1, initializer=_enter if netns else None, initargs=(netns,) if netns else ()
    )
    driver = pool.submit(_start, profile).result(timeout=120)
    try:
        yield Browser(pool, driver)
    finally:
        with contextlib.suppress(Exception):
            pool.submit(driver.quit).result(timeout=30)
        pool.shutdown(wait=True)
        shutil.rmtree(profile, ignore_errors=True)


def artifact(name: str) -> Path:
    """Where a test keeps a file for people to look at: test-artifacts/ in the work tree."""
    path = Path(__file__).resolve().parents[2] / "test-artifacts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
