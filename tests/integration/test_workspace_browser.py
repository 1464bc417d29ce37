"""The RM workspace in a real browser: Debian's Chromium, headless, driven by Playwright against
the real server (a uvicorn thread on a trained, loaded bank), with the default Secure cookies.

A BRM signs in, finds a client by name, opens the client view with its charts drawn, asks for
financing and reads the ranked options, fails to open another RM's client (a proper page, not a
stack trace) and signs out. Every page passes an automated accessibility check (axe-core,
injected from the local package: nothing is fetched) with no serious or critical violation, at
laptop and tablet widths; a screenshot of each page is written under ``tests/screenshots/``
(ignored by git).

Chromium is Debian's package (``apt-get install chromium``; ``.ci/run`` installs it):
Playwright's own browser download is not reachable here. Without it the test skips, and in CI it
fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from chromium_harness import SCREENSHOTS, headless_chromium
from served_bank import ServedBank, served_for
from sqlalchemy import create_engine, select

from rmreco.db import schema
from rmreco.db.engine import create_engine_for

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright")

pytestmark = pytest.mark.slow

#: What a browser opens at, in CSS pixels: a laptop and a tablet (portrait).
WIDTHS = {"laptop": (1366, 800), "tablet": (820, 1180)}
#: axe-core impacts that fail the check.
BLOCKING = {"serious", "critical"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedBank]:
    with served_for("sqlite", tmp_path_factory) as bank:
        yield bank


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium() as launched:
        yield launched


@pytest.fixture(params=list(WIDTHS))
def screen(request: pytest.FixtureRequest) -> str:
    """The width the browser opens at (a key of WIDTHS): the flows run at every width."""
    return str(request.param)


def _tab(browser: Any, served: ServedBank, screen: str) -> Iterator[Any]:
    width, height = WIDTHS[screen]
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=served.url)
    context.set_default_timeout(60_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(screen: str, browser: Any, served: ServedBank) -> Iterator[Any]:
    """A page at each width of WIDTHS."""
    yield from _tab(browser, served, screen)


@pytest.fixture
def laptop_page(browser: Any, served: ServedBank) -> Iterator[Any]:
    """A page at the laptop width only (checks that the width does not change)."""
    yield from _tab(browser, served, "laptop")


def _shot(page: Any, name: str, screen: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{screen}.png"), full_page=True)


def _accessible(page: Any, name: str) -> None:
    """No serious or critical axe-core violation on the page as it stands."""
    results = axe_sync.Axe().run(page)
    violations = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:3])
        for v in results.response["violations"]
        if v.get("impact") in BLOCKING
    ]
    assert not violations, f"{name}: " + "; ".join(violations)


def _sign_in(page: Any, key: str) -> None:
    page.goto("/")
    page.get_by_label("Your API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/portfolio"))


def test_a_brm_signs_in_finds_a_client_by_name_sees_its_charts_and_signs_out(
    page: Any, served: ServedBank, screen: str
) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in to the RM workspace")).to_be_visible()
    _accessible(page, "sign-in")
    _shot(page, "sign-in", screen)

    _sign_in(page, served.keys["brm_a"])
    expect(page.locator("table.portfolio tbody tr").first).to_be_visible()
    _accessible(page, "portfolio")
    _shot(page, "portfolio", screen)

    # find a client by a word of its name
    first = page.locator("table.portfolio tbody th a").first
    name = first.inner_text()
    word = name.split()[0]
    page.get_by_label("Name or id").fill(word)
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*q="))
    link = page.get_by_role("link", name=name).first
    expect(link).to_be_visible()
    link.click()
    page.wait_for_url(re.compile(r".*/clients/"))
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()
    # the charts are drawn: lines with a size on the screen
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(5)
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None
        assert box["width"] > 200
    assert page.locator("svg.chart polyline").count() >= 5
    assert "%" in page.locator("#client-pd").inner_text()
    _accessible(page, "client")
    _shot(page, "client", screen)

    # a financing request: the decision and the ranked options
    page.get_by_label("Amount").fill("150,000")
    page.get_by_label("Tenor (months)").fill("36")
    page.get_by_role("button", name="Show financing options").click()
    page.wait_for_url(re.compile(r".*/financing"))
    expect(page.locator("#financing-decision")).to_have_text(re.compile("approve|refer|decline"))
    expect(page.get_by_role("heading", name="Financing options, best first")).to_be_visible()
    if page.locator("#financing-decision").inner_text() != "decline":
        expect(page.locator("table.options tbody tr").first).to_be_visible()
    _accessible(page, "financing")
    _shot(page, "financing", screen)

    # another RM's client: a proper page, not a stack trace
    other = served.clients[served.rm_b][0]
    answer = page.goto(f"/clients/{other}")
    assert answer is not None
    assert answer.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    assert "Traceback" not in page.content()
    _accessible(page, "not-found")
    _shot(page, "not-found", screen)

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/\?signed_out=1"))
    expect(page.get_by_label("Your API key")).to_be_visible()
    # signed out for real: the portfolio asks to sign in again
    page.goto("/portfolio")
    expect(page.get_by_label("Your API key")).to_be_visible()


def test_the_workspace_loads_nothing_from_outside_the_app(
    laptop_page: Any, served: ServedBank
) -> None:
    page = laptop_page
    outside: list[str] = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(served.url) else None,
    )
    _sign_in(page, served.keys["brm_a"])
    page.goto(f"/clients/{served.clients[served.rm_a][0]}")
    assert outside == []


def _feedback_outcomes(served: ServedBank, client: str | None, product: str | None) -> list[str]:
    """What was reported of offers of ``product`` to ``client``, on any recommendation."""
    engine = create_engine(create_engine_for(str(served.settings.database_url)).url)
    try:
        with engine.connect() as c:
            return list(
                c.execute(
                    select(schema.Feedback.outcome).where(
                        schema.Feedback.client_id == client,
                        schema.Feedback.product_code == product,
                    )
                ).scalars()
            )
    finally:
        engine.dispose()


def test_a_corporate_rm_filters_the_list_records_an_acceptance_and_sees_it_in_the_kpis(
    page: Any, served: ServedBank, screen: str
) -> None:
    _sign_in(page, served.keys["crm"])
    page.get_by_role("link", name="KPIs").click()
    page.wait_for_url(re.compile(r".*/kpis"))
    accepted_before = int(page.locator("#kpi-accepted").inner_text())
    page.get_by_role("link", name="Cross-sell").click()
    page.wait_for_url(re.compile(r".*/cross-sell"))
    expect(page.locator("tr[id^=offer-]").first).to_be_visible()
    _accessible(page, "cross-sell")
    _shot(page, "cross-sell", screen)

    # filter by the first row's product: every row left offers it
    product = page.locator("tr[id^=offer-]").first.get_attribute("data-product")
    page.locator("#product").select_option(product)
    page.locator("#filter-list").click()
    page.wait_for_url(re.compile(r".*product="))
    rows = page.locator("tr[id^=offer-]")
    expect(rows.first).to_be_visible()
    assert {rows.nth(i).get_attribute("data-product") for i in range(rows.count())} == {product}

    # one click records an acceptance (of an offer to a client nobody reported on yet: the
    # KPIs count a client's product once)
    row = next(
        rows.nth(i)
        for i in range(rows.count())
        if not _feedback_outcomes(served, rows.nth(i).get_attribute("data-client"), product)
    )
    client = row.get_attribute("data-client")
    rank = (row.get_attribute("id") or "").removeprefix("offer-")
    page.locator(f"#accepted-{rank}").click()
    page.wait_for_url(re.compile(r".*done=recorded"))
    expect(page.locator("#list-message")).to_contain_text("Recorded: accepted")
    assert _feedback_outcomes(served, client, product) == ["accepted"]

    page.get_by_role("link", name="KPIs").click()
    page.wait_for_url(re.compile(r".*/kpis"))
    assert int(page.locator("#kpi-accepted").inner_text()) == accepted_before + 1
    _accessible(page, "kpis")
    _shot(page, "kpis", screen)


def test_the_workspace_works_from_the_keyboard_alone(laptop_page: Any, served: ServedBank) -> None:
    page = laptop_page
    page.goto("/")
    # the first Tab reaches the skip link; the key field takes focus by Tab too
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
    page.get_by_label("Your API key").focus()
    page.keyboard.type(served.keys["brm_a"])
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/portfolio"))
    # search by keyboard: the field, a word, Enter
    name = page.locator("table.portfolio tbody th a").first.inner_text()
    page.get_by_label("Name or id").focus()
    page.keyboard.type(name.split()[0])
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*q="))
    # Tab from the filters' button reaches the first client's link; Enter opens it
    page.get_by_role("button", name="Show").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href') || ''").startswith(
            "/clients/"
        ):
            break
    else:
        raise AssertionError("no client link is reachable with Tab from the filters")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/clients/"))
    expect(page.get_by_role("heading", level=1)).to_be_visible()
