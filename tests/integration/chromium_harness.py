"""This module owns how the browser tests start a browser: Debian's Chromium (``apt-get install
chromium``; ``.ci/run`` installs it), headless, driven by Playwright with its executable path,
since Playwright's own browser download is not reachable here. Without it a test skips, and in
CI (``CI=true``) it fails. It is a helper, not a test module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from served_bank import ROOT

#: Where the browser tests write their screenshots (ignored by git).
SCREENSHOTS = ROOT / "tests" / "screenshots"
#: Headless, and quiet on a closed network: without the background-networking flags Chromium
#: keeps trying to reach Google's hosts.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    """Debian's chromium; skips the test without it (fails it in CI)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@contextlib.contextmanager
def headless_chromium() -> Iterator[Any]:
    """A launched headless Chromium (a Playwright ``Browser``) until the block ends."""
    playwright_sync = pytest.importorskip("playwright.sync_api")
    executable = chromium_path()
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield launched
        finally:
            launched.close()
