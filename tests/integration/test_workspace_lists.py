"""The workspace's cross-sell list and KPI pages over HTTP, on SQLite and PostgreSQL: the RM's own
offers only, filters (a mistyped one a 422 page naming it), an outcome recorded through the
API's feedback code (a row in the database, counted in the KPI page), CSRF, a contradicting
outcome said on the page, another RM's offer a "not found" page, the CSV export with formulas
neutralised, the KPI period and the admin's team view.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from served_bank import ServedBank, form_csrf, served_for, signed_in
from sqlalchemy import create_engine, select, update
from sqlalchemy.engine import Engine

from rmreco.db import schema
from rmreco.db.engine import create_engine_for

pytestmark = pytest.mark.slow


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedBank]:
    # httpx keeps Secure cookies for https only; browsers also for http://127.0.0.1
    with served_for(request.param, tmp_path_factory, web_cookie_secure=False) as bank:
        yield bank


def _engine(served: ServedBank) -> Engine:
    return create_engine(create_engine_for(str(served.settings.database_url)).url)


@dataclass(frozen=True)
class Offer:
    """One row of the cross-sell list as the page shows it."""

    rank: int
    client_id: str
    product_code: str
    segment: str
    recommendation_id: str
    back: str


def _offers(page: str) -> list[Offer]:
    rows = re.findall(
        r'<tr id="offer-(\d+)" data-client="([^"]+)" data-product="([^"]+)" '
        r'data-segment="([^"]*)" data-recommendation="([^"]+)">',
        page,
    )
    back = re.search(r'name="back" value="([^"]*)"', page)
    return [
        Offer(int(r), c, p, s, rec, html.unescape(back.group(1)) if back else "")
        for r, c, p, s, rec in rows
    ]


def _total(page: str) -> int:
    found = re.search(r'<p class="count" role="status">(\d+) offers?', page)
    assert found, page[:2000]
    return int(found.group(1))


def _feedback_on(served: ServedBank, recommendation_id: str) -> list[tuple[str, str | None, int]]:
    engine = _engine(served)
    try:
        with engine.connect() as c:
            rows = c.execute(
                select(schema.Feedback.outcome, schema.Feedback.reason, schema.Feedback.user_id)
                .where(schema.Feedback.recommendation_id == recommendation_id)
                .order_by(schema.Feedback.id)
            ).all()
    finally:
        engine.dispose()
    return [(str(o), r, int(u)) for o, r, u in rows]


def _pairs_with_feedback(served: ServedBank) -> set[tuple[str, str]]:
    engine = _engine(served)
    try:
        with engine.connect() as c:
            rows = c.execute(select(schema.Feedback.client_id, schema.Feedback.product_code)).all()
    finally:
        engine.dispose()
    return {(str(c), str(p)) for c, p in rows}


def _fresh_offer(served: ServedBank, page: str) -> Offer:
    """An offer on the page whose client and product have no feedback yet (so that the KPIs,
    which count each pair once, move when one is recorded)."""
    taken = _pairs_with_feedback(served)
    fresh = [o for o in _offers(page) if (o.client_id, o.product_code) not in taken]
    assert fresh, "the list has an offer with no feedback yet"
    return fresh[0]


def _user_id(served: ServedBank, name: str) -> int:
    engine = _engine(served)
    try:
        with engine.connect() as c:
            return int(
                c.execute(select(schema.User.id).where(schema.User.name == name)).scalar_one()
            )
    finally:
        engine.dispose()


def _kpi(page: str, name: str) -> str:
    found = re.search(rf'<dd id="kpi-{name}">([^<]*)', page)
    assert found, page[:2000]
    return found.group(1).strip()


def _record(
    browser: httpx.Client, page: str, offer: Offer, outcome: str, **fields: str
) -> httpx.Response:
    return browser.post(
        "/cross-sell/feedback",
        data={
            "csrf_token": form_csrf(page),
            "recommendation_id": offer.recommendation_id,
            "back": offer.back,
            "outcome": outcome,
            **fields,
        },
    )


def test_the_list_shows_only_the_rms_own_clients(served: ServedBank) -> None:
    for who, rm in (("crm", served.rm_crm), ("brm_a", served.rm_a)):
        page = signed_in(served, who).get("/cross-sell")
        assert page.status_code == 200, page.text[:2000]
        offers = _offers(page.text)
        assert offers, f"{who}'s list has offers"
        assert {o.client_id for o in offers} <= set(served.clients[rm])
        linked = set(re.findall(r'href="/clients/([^"]+)"', page.text))
        assert linked <= set(served.clients[rm])
        assert [o.rank for o in offers] == list(range(1, len(offers) + 1))
        assert len(offers) <= 25
        assert "%" in page.text  # propensity and PD as percentages


def test_the_list_filters_by_product_and_by_segment(served: ServedBank) -> None:
    browser = signed_in(served, "crm")
    everything = browser.get("/cross-sell")
    product = _offers(everything.text)[0].product_code
    only = browser.get("/cross-sell", params={"product": product})
    assert only.status_code == 200
    assert _offers(only.text)
    assert {o.product_code for o in _offers(only.text)} == {product}
    assert _total(only.text) < _total(everything.text)
    corporate = browser.get("/cross-sell", params={"segment": "corporate"})
    assert {o.segment for o in _offers(corporate.text)} == {"corporate"}
    assert _total(corporate.text) == _total(everything.text)  # the CRM's book is corporate
    sme = browser.get("/cross-sell", params={"segment": "sme"})
    assert sme.status_code == 200
    assert _total(sme.text) == 0
    assert not _offers(sme.text)
    # the filters stay on the next page's link
    if _total(only.text) > 25:
        assert f"product={product}" in re.search(r'href="([^"]+)" rel="next"', only.text).group(1)  # type: ignore[union-attr]


def test_a_mistyped_filter_is_a_422_page_naming_it(served: ServedBank) -> None:
    browser = signed_in(served, "crm")
    product = browser.get("/cross-sell", params={"product": "OVERDRAFTT"})
    assert product.status_code == 422
    assert "text/html" in product.headers["content-type"]
    assert "product must be one of" in product.text
    segment = browser.get("/cross-sell", params={"segment": "corporates"})
    assert segment.status_code == 422
    assert "segment" in segment.text
    csv_file = browser.get("/cross-sell.csv", params={"product": "NOPE"})
    assert csv_file.status_code == 422


def test_recording_an_acceptance_stores_feedback_and_counts_in_the_kpis(
    served: ServedBank,
) -> None:
    browser = signed_in(served, "crm")
    before = int(_kpi(browser.get("/kpis").text, "accepted"))
    page = browser.get("/cross-sell").text
    offer = _fresh_offer(served, page)
    answer = _record(browser, page, offer, "accepted")
    assert answer.status_code == 303, answer.text[:2000]
    location = answer.headers["location"]
    assert location.startswith("/cross-sell?")
    assert f"rec={offer.recommendation_id}" in location
    assert _feedback_on(served, offer.recommendation_id) == [
        ("accepted", None, _user_id(served, "crm"))
    ]
    shown = browser.get(location)
    assert shown.status_code == 200
    message = re.search(r'<p id="list-message"[^>]*role="status">([^<]+)</p>', shown.text)
    assert message, shown.text[:2000]
    assert message.group(1).startswith("Recorded: accepted for ")
    after = browser.get("/kpis").text
    assert int(_kpi(after, "accepted")) == before + 1
    assert f'data-product="{offer.product_code}"' in after  # acceptance by product
    # a double click stores nothing twice
    again = _record(browser, page, offer, "accepted")
    assert again.status_code == 303
    assert "done=repeat" in again.headers["location"]
    assert len(_feedback_on(served, offer.recommendation_id)) == 1


def test_an_acceptance_with_an_amount_counts_as_new_business(served: ServedBank) -> None:
    browser = signed_in(served, "crm")
    page = browser.get("/cross-sell").text
    offer = _fresh_offer(served, page)
    answer = _record(browser, page, offer, "accepted", amount="25,000")
    assert answer.status_code == 303
    engine = _engine(served)
    try:
        with engine.connect() as c:
            amount = c.execute(
                select(schema.Feedback.amount).where(
                    schema.Feedback.recommendation_id == offer.recommendation_id
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert amount == 25_000
    bad = _record(browser, page, _offers(page)[-1], "accepted", amount="lots")
    assert bad.status_code == 422
    assert "amount" in bad.text


def test_a_form_without_its_csrf_token_is_refused(served: ServedBank) -> None:
    browser = signed_in(served, "crm")
    page = browser.get("/cross-sell").text
    offer = _offers(page)[0]
    for token in (None, "forged"):
        data = {"recommendation_id": offer.recommendation_id, "outcome": "accepted"}
        if token:
            data["csrf_token"] = token
        answer = browser.post("/cross-sell/feedback", data=data)
        assert answer.status_code == 403
        assert "text/html" in answer.headers["content-type"]
    assert _feedback_on(served, offer.recommendation_id) == []


def test_a_contradicting_outcome_is_a_message_on_the_page_not_a_crash(
    served: ServedBank,
) -> None:
    browser = signed_in(served, "crm")
    page = browser.get("/cross-sell").text
    offer = _fresh_offer(served, page)
    declined = _record(browser, page, offer, "declined", reason="price or rate")
    assert declined.status_code == 303
    accepted = _record(browser, page, offer, "accepted")
    assert accepted.status_code == 303
    assert "done=refused" in accepted.headers["location"]
    shown = browser.get(accepted.headers["location"])
    assert shown.status_code == 200
    assert 'role="alert"' in shown.text
    assert "Not recorded" in shown.text
    assert "already declined" in shown.text
    assert _feedback_on(served, offer.recommendation_id) == [
        ("declined", "price or rate", _user_id(served, "crm"))
    ]


def test_a_reason_in_words_is_recorded_with_a_decline(served: ServedBank) -> None:
    browser = signed_in(served, "crm")
    page = browser.get("/cross-sell").text
    offer = _fresh_offer(served, page)
    answer = _record(browser, page, offer, "declined", reason="", reason_text="moving abroad")
    assert answer.status_code == 303
    assert _feedback_on(served, offer.recommendation_id)[0][:2] == ("declined", "moving abroad")


def test_another_rms_offer_is_a_not_found_page(served: ServedBank) -> None:
    theirs = _offers(signed_in(served, "brm_b").get("/cross-sell").text)[0]
    browser = signed_in(served, "crm")
    page = browser.get("/cross-sell").text
    answer = _record(browser, page, theirs, "accepted")
    missing = browser.post(
        "/cross-sell/feedback",
        data={
            "csrf_token": form_csrf(page),
            "recommendation_id": "no-such-id",
            "outcome": "accepted",
        },
    )
    assert answer.status_code == missing.status_code == 404
    assert "text/html" in answer.headers["content-type"]
    assert answer.text == missing.text
    assert _feedback_on(served, theirs.recommendation_id) == []
    # another RM's list is not reachable by naming it either: an RM's rm= is ignored
    own = browser.get("/cross-sell", params={"rm": served.rm_b})
    assert {o.client_id for o in _offers(own.text)} <= set(served.clients[served.rm_crm])


def test_the_csv_has_the_rows_and_neutralises_formulas(served: ServedBank) -> None:
    browser = signed_in(served, "crm")
    total = _total(browser.get("/cross-sell").text)
    first = browser.get("/cross-sell.csv")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/csv")
    assert first.headers["content-disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(first.content.decode("utf-8-sig"))))
    assert len(rows) == total
    assert {r["client_id"] for r in rows} <= set(served.clients[served.rm_crm])
    assert [int(r["rank"]) for r in rows] == list(range(1, total + 1))
    assert all(r["currency"] and r["product"] and r["propensity"] for r in rows)
    client = rows[0]["client_id"]
    engine = _engine(served)
    formula = '=HYPERLINK("http://evil","click")'
    try:
        with engine.begin() as c:
            old = c.execute(
                select(schema.Client.name).where(schema.Client.client_id == client)
            ).scalar_one()
            c.execute(
                update(schema.Client).where(schema.Client.client_id == client).values(name=formula)
            )
        try:
            again = browser.get("/cross-sell.csv")
        finally:
            with engine.begin() as c:
                c.execute(
                    update(schema.Client).where(schema.Client.client_id == client).values(name=old)
                )
    finally:
        engine.dispose()
    named = [
        r for r in csv.DictReader(io.StringIO(again.content.decode("utf-8-sig")))
        if r["client_id"] == client
    ]  # fmt: skip
    assert named
    assert {r["client_name"] for r in named} == {"'" + formula}
    product = rows[0]["product_code"]
    only = list(
        csv.DictReader(
            io.StringIO(
                browser.get("/cross-sell.csv", params={"product": product}).content.decode(
                    "utf-8-sig"
                )
            )
        )
    )
    assert only
    assert {r["product_code"] for r in only} == {product}


def test_the_kpi_page_takes_a_period_of_months_and_draws_a_chart_per_month(
    served: ServedBank,
) -> None:
    browser = signed_in(served, "crm")
    page = browser.get("/kpis", params={"from": "2024-01", "to": "2024-06"})
    assert page.status_code == 200, page.text[:2000]
    assert "Jan 2024 to Jun 2024" in page.text
    drawn = set(re.findall(r'<svg class="chart"[^>]*id="(chart-[a-z]+)"', page.text))
    empty = set(re.findall(r'<p class="no-chart" id="(chart-[a-z]+)"', page.text))
    assert drawn | empty == {"chart-pipeline", "chart-conversion", "chart-volume"}
    assert "chart-pipeline" in drawn  # counts are figures even when they are nought
    # nothing was offered then: no conversion to draw, and the page says so
    assert "chart-conversion" in empty
    assert page.text.count('<th scope="row">') >= 6  # a row per month in the figures' table
    default = browser.get("/kpis")
    assert default.status_code == 200
    assert "kpi-team-view" not in default.text  # the team view is the admin's
    for params, field in (
        ({"from": "2024-13"}, "from"),
        ({"to": "last year"}, "to"),
        ({"from": "2024-06", "to": "2024-01"}, "from"),
        ({"from": "1990-01", "to": "2024-01"}, "from"),
    ):
        bad = browser.get("/kpis", params=params)
        assert bad.status_code == 422, params
        assert "text/html" in bad.headers["content-type"]
        assert f"{field}:" in bad.text


def test_the_admin_sees_every_rm_side_by_side_and_picks_one(served: ServedBank) -> None:
    admin = signed_in(served, "admin")
    page = admin.get("/kpis")
    assert page.status_code == 200, page.text[:2000]
    assert 'id="kpi-team-view"' in page.text
    listed = set(re.findall(r'<tr data-rm="([^"]+)">', page.text))
    assert {served.rm_a, served.rm_b, served.rm_crm} <= listed
    assert "<tfoot>" in page.text
    one = admin.get("/kpis", params={"rm": served.rm_crm})
    assert f"KPIs of {served.rm_crm}" in one.text
    crm = signed_in(served, "crm").get("/kpis")
    assert _kpi(one.text, "accepted") == _kpi(crm.text, "accepted")
    if served.teams:
        team = admin.get("/kpis", params={"team": served.teams[0]})
        assert team.status_code == 200
        members = set(re.findall(r'<tr data-rm="([^"]+)">', team.text))
        assert members
        assert members <= listed
    assert admin.get("/kpis", params={"team": "no such team"}).status_code == 422
    # the admin picks whose cross-sell list to see
    theirs = admin.get("/cross-sell", params={"rm": served.rm_b})
    assert theirs.status_code == 200
    assert {o.client_id for o in _offers(theirs.text)} <= set(served.clients[served.rm_b])
    assert admin.get("/cross-sell", params={"rm": "NO-RM"}).status_code == 404


def test_a_data_scientist_has_no_list_and_no_kpis(served: ServedBank) -> None:
    browser = signed_in(served, "ds")
    for address in ("/cross-sell", "/cross-sell.csv", "/kpis"):
        answer = browser.get(address)
        assert answer.status_code == 403, address
        assert "no portfolio" in answer.text.lower()


def test_the_pages_need_a_sign_in(served: ServedBank) -> None:
    browser = httpx.Client(base_url=served.url, timeout=60)
    for address in ("/cross-sell", "/cross-sell.csv", "/kpis"):
        answer = browser.get(address)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/?then=")
