"""The API's documentation pages in a real browser with the network cut: Debian's Chromium,
headless, driven by Playwright against the real server (a uvicorn thread on a trained, loaded
bank), every request that is not to the app's own origin aborted and recorded.

Swagger UI at ``/docs`` renders its operations from the app's own files; Authorize takes a BRM's
API key, and "Try it out" on an RM-scoped operation (the BRM's own KPIs) then answers 200 in the
page, where the same call before Authorize answered 401; nothing leaves the origin. ReDoc at
``/redoc`` renders the API's title and menu and asks for nothing outside the app (its menu's
logo from a CDN is stopped by the page's Content-Security-Policy). A screenshot of each page is
written under ``tests/screenshots/`` (ignored by git) as ``docs-*.png``.

Chromium is Debian's package (``apt-get install chromium``; ``.ci/run`` installs it): without it
the test skips, and in CI it fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from chromium_harness import SCREENSHOTS, headless_chromium
from served_bank import ServedBank, served_for

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

pytestmark = pytest.mark.slow

#: The RM-scoped operation the test calls from Swagger UI, as the page names its path.
KPIS_PATH = "/v1/rms/{rm_id}/kpis"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedBank]:
    with served_for("sqlite", tmp_path_factory) as bank:
        yield bank


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium() as launched:
        yield launched


@pytest.fixture
def cut_off(browser: Any, served: ServedBank) -> Iterator[tuple[Any, list[str]]]:
    """A page whose every request outside the app's origin is aborted (the network cut), and
    the list those requests are recorded in."""
    context = browser.new_context(viewport={"width": 1366, "height": 900}, base_url=served.url)
    context.set_default_timeout(60_000)
    outside: list[str] = []
    origin = served.url.rstrip("/") + "/"

    def only_the_app(route: Any) -> None:
        url = route.request.url
        if url == served.url or url.startswith(origin):
            route.continue_()
        else:
            outside.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", only_the_app)
    try:
        yield context.new_page(), outside
    finally:
        context.close()


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"docs-{name}.png"), full_page=True)


def _execute(operation: Any, status: int) -> None:
    """Press Execute in an expanded, tried-out operation and wait until Swagger UI shows the
    answer's ``status`` (an assertion error showing the status it shows instead)."""
    operation.get_by_role("button", name="Execute").click()
    shown = operation.locator(".live-responses-table .response .response-col_status").first
    expect(shown).to_have_text(re.compile(rf"^\s*{status}\b"), timeout=30_000)


def test_swagger_ui_works_offline_and_try_it_out_answers_200_after_authorize(
    cut_off: tuple[Any, list[str]], served: ServedBank
) -> None:
    page, outside = cut_off
    page.goto("/docs")
    # rendered: the operations list, from the app's own scripts and document
    expect(page.locator(".swagger-ui .information-container .title")).to_contain_text("rmreco")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() >= 10

    operation = page.locator(".opblock.opblock-get").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{KPIS_PATH}"]')
    )
    expect(operation).to_have_count(1)
    operation.locator(".opblock-summary-control").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator('input[placeholder="rm_id"]').fill(served.rm_a)
    # before Authorize the key is not sent: the service refuses the call
    _execute(operation, 401)

    page.locator(".scheme-container .btn.authorize").click()
    dialog = page.locator(".modal-ux")
    expect(dialog).to_be_visible()
    # the bearer scheme's one field (Swagger UI labels it so), then its buttons by their labels
    dialog.get_by_role("textbox", name="auth-bearer-value").fill(served.keys["brm_a"])
    dialog.get_by_role("button", name="Apply credentials").click()
    expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
    _shot(page, "authorize")
    dialog.get_by_role("button", name="Close", exact=True).click()
    expect(dialog).to_have_count(0)

    _execute(operation, 200)
    body = operation.locator(".live-responses-table .response-col_description pre").first
    expect(body).to_contain_text(served.rm_a)
    _shot(page, "swagger")
    assert outside == []


def _open_redoc(page: Any) -> None:
    page.goto("/redoc")
    expect(page.get_by_role("heading", level=1)).to_contain_text("rmreco")
    # rendered from the document: the operations are listed in its menu
    expect(page.locator("[role=menuitem]").first).to_be_visible()


def test_redoc_renders_its_title_offline(cut_off: tuple[Any, list[str]]) -> None:
    page, _ = cut_off
    _open_redoc(page)
    _shot(page, "redoc")


def test_redoc_requests_nothing_outside_the_app(cut_off: tuple[Any, list[str]]) -> None:
    page, outside = cut_off
    _open_redoc(page)
    assert outside == []
