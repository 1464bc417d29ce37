"""The RM workspace's pages over HTTP, on SQLite and PostgreSQL: sign-in with an API key into an
http-only session cookie, CSRF on every form, the portfolio (names, search, filters, sort,
pages), the client view (charts, PD history), another RM's client a "not found" page, sign-out
ending the session in the database. The browser tests (test_workspace_browser) drive the same
pages in Chromium; these check what a browser does not show: headers, statuses, the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from served_bank import ServedBank, form_csrf, served_for, signed_in
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.orm import Session

from rmreco.db import schema
from rmreco.db.engine import create_engine_for
from rmreco.db.web_sessions import forget_ended_sessions, token_sha256

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


def _sessions(served: ServedBank) -> int:
    engine = create_engine(create_engine_for(str(served.settings.database_url)).url)
    try:
        with engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(schema.WebSession)).scalar_one())
    finally:
        engine.dispose()


def test_signing_in_sets_an_http_only_strict_cookie_and_stores_only_its_hash(
    served: ServedBank,
) -> None:
    browser = httpx.Client(base_url=served.url, timeout=60)
    form = browser.get("/")
    assert form.status_code == 200
    assert 'type="password"' in form.text
    before = _sessions(served)
    answer = browser.post(
        "/signin", data={"csrf_token": form_csrf(form.text), "api_key": served.keys["brm_a"]}
    )
    assert answer.status_code == 303
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "rmreco_session=" in v
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    token = re.search(r"rmreco_session=([^;]+)", cookie).group(1)  # type: ignore[union-attr]
    assert _sessions(served) == before + 1
    engine = create_engine(create_engine_for(str(served.settings.database_url)).url)
    try:
        with engine.connect() as c:
            stored = set(c.execute(select(schema.WebSession.token_sha256)).scalars())
    finally:
        engine.dispose()
    assert token not in stored
    page = browser.get("/portfolio")
    assert page.status_code == 200
    assert "Content-Security-Policy" in page.headers
    assert page.headers["cache-control"] == "no-store"


def test_a_key_that_is_not_valid_is_a_401_page_and_no_session(served: ServedBank) -> None:
    browser = httpx.Client(base_url=served.url, timeout=60)
    form = browser.get("/")
    before = _sessions(served)
    for key in (served.keys["revoked"], "rk_nothing.real"):
        answer = browser.post("/signin", data={"csrf_token": form_csrf(form.text), "api_key": key})
        assert answer.status_code == 401
        assert "text/html" in answer.headers["content-type"]
        assert "not valid" in answer.text
    assert _sessions(served) == before


def test_a_form_without_its_csrf_token_is_refused(served: ServedBank) -> None:
    browser = httpx.Client(base_url=served.url, timeout=60)
    browser.get("/")
    answer = browser.post("/signin", data={"csrf_token": "forged", "api_key": served.keys["brm_a"]})
    assert answer.status_code == 403
    signed = signed_in(served, "brm_a")
    out = signed.post("/signout", data={"csrf_token": "forged"})
    assert out.status_code == 403
    assert signed.get("/portfolio").status_code == 200  # still signed in


def test_a_page_without_a_sign_in_goes_to_the_sign_in_page_and_back(served: ServedBank) -> None:
    client = served.clients[served.rm_a][0]
    browser = httpx.Client(base_url=served.url, timeout=60)
    answer = browser.get(f"/clients/{client}")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/?then=/clients/{client}"
    form = browser.get(answer.headers["location"])
    signed = browser.post(
        "/signin",
        data={
            "csrf_token": form_csrf(form.text),
            "api_key": served.keys["brm_a"],
            "then": f"/clients/{client}",
        },
    )
    assert signed.headers["location"] == f"/clients/{client}"
    # never to another site
    browser = httpx.Client(base_url=served.url, timeout=60)
    form = browser.get("/")
    elsewhere = browser.post(
        "/signin",
        data={
            "csrf_token": form_csrf(form.text),
            "api_key": served.keys["brm_a"],
            "then": "//evil",
        },
    )
    assert elsewhere.headers["location"] == "/portfolio"


def test_the_portfolio_lists_the_rms_own_clients_by_name_and_finds_one(served: ServedBank) -> None:
    browser = signed_in(served, "brm_a")
    page = browser.get("/portfolio")
    assert page.status_code == 200
    own = served.clients[served.rm_a]
    assert f"{len(own)} of {len(own)} clients" in page.text
    listed = set(re.findall(r'href="/clients/([^"]+)"', page.text))
    assert listed
    assert listed <= set(own)
    assert not listed & set(served.clients[served.rm_b])
    assert "%" in page.text  # PD as a percentage
    # find one client by (part of) its name, another by id
    names = re.findall(r'href="/clients/([^"]+)">([^<]+)</a><span class="id">', page.text)
    assert names, "the synthetic bank's clients have names"
    client_id, name = names[0]
    word = name.split()[0]
    found = browser.get("/portfolio", params={"q": word.lower()})
    assert client_id in found.text
    assert all(
        word.lower() in n.lower()
        for n in re.findall(r'href="/clients/[^"]+">([^<]+)</a>', found.text)
    )
    by_id = browser.get("/portfolio", params={"q": own[-1]})
    assert set(re.findall(r'href="/clients/([^"]+)"', by_id.text)) == {own[-1]}


def test_a_mistyped_filter_is_an_error_naming_it_not_an_empty_list(served: ServedBank) -> None:
    browser = signed_in(served, "brm_a")
    for params, field in (({"segment": "smes"}, "segment"), ({"sort": "size"}, "sort")):
        answer = browser.get("/portfolio", params=params)
        assert answer.status_code == 422
        assert field in answer.text
        assert "text/html" in answer.headers["content-type"]
    grade = browser.get("/portfolio", params={"grade": "Z9"})
    assert grade.status_code == 422
    assert "grade must be one of" in grade.text


def test_the_portfolio_sorts_and_pages(served: ServedBank) -> None:
    browser = signed_in(served, "brm_a")
    first = browser.get("/portfolio", params={"sort": "pd"})
    pds = [float(v) for v in re.findall(r'<td class="num">([0-9.]+) %</td>', first.text)]
    assert pds == sorted(pds, reverse=True)
    assert "Page 1 of" in first.text
    own = served.clients[served.rm_a]
    if len(own) > 25:
        second = browser.get("/portfolio", params={"sort": "pd", "page": 2})
        one = set(re.findall(r'href="/clients/([^"]+)"', first.text))
        two = set(re.findall(r'href="/clients/([^"]+)"', second.text))
        assert one
        assert two
        assert not one & two


def test_the_client_view_draws_its_history_and_pd_over_time(served: ServedBank) -> None:
    browser = signed_in(served, "brm_a")
    client = served.clients[served.rm_a][0]
    page = browser.get(f"/clients/{client}")
    assert page.status_code == 200, page.text[:2000]
    charts = re.findall(r'<svg class="chart"[^>]*id="(chart-[a-z]+)"', page.text)
    assert set(charts) == {"chart-balances", "chart-flows", "chart-overdraft", "chart-arrears",
                           "chart-pd"}  # fmt: skip
    assert page.text.count("<polyline") >= 5
    assert 'id="client-pd"' in page.text
    assert "Next best products" in page.text


def test_another_rms_client_is_a_not_found_page_like_one_that_does_not_exist(
    served: ServedBank,
) -> None:
    browser = signed_in(served, "brm_a")
    theirs = browser.get(f"/clients/{served.clients[served.rm_b][0]}")
    missing = browser.get("/clients/NO-SUCH-CLIENT")
    assert theirs.status_code == missing.status_code == 404
    assert "text/html" in theirs.headers["content-type"]
    assert "no such client in your portfolio" in theirs.text.lower()
    assert theirs.text == missing.text
    # the admin sees any portfolio
    admin = signed_in(served, "admin")
    assert admin.get(f"/clients/{served.clients[served.rm_b][0]}").status_code == 200


def test_signing_out_ends_the_session_in_the_database(served: ServedBank) -> None:
    browser = signed_in(served, "brm_a")
    page = browser.get("/portfolio")
    token = browser.cookies["rmreco_session"]
    before = _sessions(served)
    out = browser.post("/signout", data={"csrf_token": form_csrf(page.text)})
    assert out.status_code == 303
    assert _sessions(served) == before - 1
    # the old cookie signs no one in
    stale = httpx.Client(base_url=served.url, timeout=60, cookies={"rmreco_session": token})
    assert stale.get("/portfolio").status_code == 303


def test_a_data_scientist_has_no_portfolio_page(served: ServedBank) -> None:
    browser = signed_in(served, "ds")
    answer = browser.get("/portfolio")
    assert answer.status_code == 403
    assert "no portfolio" in answer.text.lower()


def _financing_rows(served: ServedBank) -> int:
    engine = create_engine(create_engine_for(str(served.settings.database_url)).url)
    try:
        with engine.connect() as c:
            return int(
                c.execute(
                    select(func.count())
                    .select_from(schema.Recommendation)
                    .where(schema.Recommendation.kind == "financing")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_financing_request_from_the_form_answers_and_is_audited_like_the_api(
    served: ServedBank,
) -> None:
    browser = signed_in(served, "brm_a")
    client = served.clients[served.rm_a][1]
    view = browser.get(f"/clients/{client}")
    assert 'action="/clients/' in view.text
    before = _financing_rows(served)
    answer = browser.post(
        f"/clients/{client}/financing",
        data={
            "csrf_token": form_csrf(view.text),
            "amount": "150,000",
            "tenor_months": "36",
            "purpose": "",
        },
    )
    assert answer.status_code == 200, answer.text[:2000]
    assert 'id="financing-decision"' in answer.text
    assert "Financing options, best first" in answer.text
    decision = re.search(r'<dd class="mono">([0-9a-f-]{36})</dd>', answer.text)
    assert decision, "the answer names its decision id"
    # the decision row and one row per option, as the API writes them
    assert _financing_rows(served) > before
    ranked = re.findall(r'<td class="num">(\d+)</td>\s*<th scope="row">', answer.text)
    assert ranked == [str(i) for i in range(1, len(ranked) + 1)]


def test_a_financing_form_with_a_bad_amount_names_the_field(served: ServedBank) -> None:
    browser = signed_in(served, "brm_a")
    client = served.clients[served.rm_a][1]
    view = browser.get(f"/clients/{client}")
    for field, data in (
        ("amount", {"amount": "lots"}),
        ("amount", {"amount": "-5"}),
        ("tenor_months", {"tenor_months": "3.5"}),
        ("purpose", {"purpose": "yacht"}),
    ):
        answer = browser.post(
            f"/clients/{client}/financing", data={"csrf_token": form_csrf(view.text), **data}
        )
        assert answer.status_code == 422, (data, answer.status_code)
        assert field in answer.text
    forged = browser.post(f"/clients/{client}/financing", data={"csrf_token": "x"})
    assert forged.status_code == 403


def test_an_expired_sign_in_signs_no_one_in_and_is_forgotten(served: ServedBank) -> None:
    browser = signed_in(served, "brm_b")
    token = browser.cookies["rmreco_session"]
    engine = create_engine(create_engine_for(str(served.settings.database_url)).url)
    try:
        with engine.begin() as c:
            c.execute(
                update(schema.WebSession)
                .where(schema.WebSession.token_sha256 == token_sha256(token))
                .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
            )
        assert browser.get("/portfolio").status_code == 303
        with Session(engine) as session, session.begin():
            assert forget_ended_sessions(session) >= 1
        with engine.connect() as c:
            left = c.execute(
                select(func.count())
                .select_from(schema.WebSession)
                .where(schema.WebSession.token_sha256 == token_sha256(token))
            ).scalar_one()
        assert left == 0
    finally:
        engine.dispose()
