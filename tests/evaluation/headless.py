"""A headless Chromium for the report's browser tests: the DOM after the scripts ran, the console messages,
and screenshots. Debian's package: `apt-get install chromium chromium-driver` (.ci/run installs it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

#: The names Chromium goes by on PATH.
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: The page's console messages in Chromium's log (--enable-logging=stderr).
CONSOLE = re.compile(r":CONSOLE(?:\(\d+\))?[:\]].*")


def find_chromium() -> str | None:
    """The path of a Chromium on PATH (or $CHROMIUM), or None."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named)
    return next((path for path in map(shutil.which, NAMES) if path), None)


def _run(browser: str, url: str, *flags: str, budget_ms: int = 5000) -> tuple[str, str, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget_ms}", *flags, url],
        capture_output=True, text=True, timeout=120)
    return done.stdout, done.stderr, time.perf_counter() - start


def dump_dom(browser: str, url: str, budget_ms: int = 5000) -> tuple[str, list[str], float]:
    """`(DOM after the scripts ran, console messages, seconds)` of `url`."""
    dom, log, seconds = _run(browser, url, "--dump-dom", budget_ms=budget_ms)
    return dom, CONSOLE.findall(log), seconds


def screenshot(browser: str, url: str, path: str, size: tuple[int, int] = (1280, 1400)) -> list[str]:
    """Save a PNG of `url` (window `size`); returns the console messages."""
    _, log, _ = _run(browser, url, f"--screenshot={path}", f"--window-size={size[0]},{size[1]}")
    return CONSOLE.findall(log)
