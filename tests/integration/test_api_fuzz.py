"""The API holds to its published contract under generated requests, on SQLite and PostgreSQL.

Schemathesis draws requests from the service's own OpenAPI schema (valid ones and ones that
break it) for every operation, part of the time with path parameters taken from the loaded
book, so that requests reach the handlers and not only the portfolio check; the service runs
as ``rmreco serve --workers 2`` on a small trained bank (``served_bank``). With an admin's key:
no 5xx, every status declared, every body matching its schema, every request that breaks the
schema refused.
Without a key: 401 from every operation but the probes.

Also here, the two other promises of the contract: request bodies are strict (``"1"`` is not a
number, ``1`` is not a text), and every refusal has the one error body
``{"error": {"code", "message", "field"}}``, whoever gives it (a route, validation, Starlette's
routing, the HTTP edge's limits, the handler of the unexpected).

Figures: 1,128 generated requests per database with a key (125 per operation that takes
parameters) and about 320 without; on the shared 2-core machine 1.3 to 1.8 s per hundred on
SQLite and 1.7 to 2.5 s on PostgreSQL, about 25 s per database in all.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from served_bank import ROOT, ServedBank, served_for

from rmreco.serving.app import create_app
from rmreco.serving.routes import models as models_route

pytestmark = pytest.mark.slow

#: The generated requests each test must make at least: a run that generates nothing fails.
MIN_REQUESTS = 1_000
#: Examples drawn per operation with a key (operations with few possible requests stop sooner).
EXAMPLES_WITH_KEY = 125
#: Examples drawn per operation without a key (each is one cheap 401).
EXAMPLES_WITHOUT_KEY = 40
#: Operations anyone may call.
PUBLIC = frozenset({"/healthz", "/readyz", "/docs", "/openapi.json"})
#: What every answer is checked for: no 5xx, a declared status, a declared content type and
#: headers, a body that matches its schema, and a refusal of every request that breaks the
#: schema. (Positive-data acceptance is left out: a drawn client id that does not exist is a
#: valid request rightly answered 404.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedBank]:
    # two workers on one database: what holds for one process holds for several
    with served_for(request.param, tmp_path_factory, workers=2) as bank:
        yield bank


@dataclass(frozen=True)
class BookIds:
    """Ids that exist in the served book, for path parameters."""

    by_parameter: dict[str, list[str]]
    #: a financing decision record (not an offer: feedback on it is a 409)
    decision_id: str
    #: financing options of brm_a's clients
    options: list[str]


@pytest.fixture(scope="module")
def book(served: ServedBank) -> BookIds:
    """Recommendations made by brm_a (financing answers and a cross-sell page), and the clients
    and RMs they belong to."""
    clients = served.clients[served.rm_a][:4]
    options: list[str] = []
    decisions: list[str] = []
    with httpx.Client(base_url=served.url, headers=served.auth("brm_a"), timeout=60) as http:
        for client in clients[:3]:
            answer = http.post(f"/v1/clients/{client}/financing-options")
            assert answer.status_code == 200, answer.text
            options += [o["recommendation_id"] for o in answer.json()["options"][:2]]
            decisions.append(answer.json()["decision_id"])
        page = http.get(f"/v1/rms/{served.rm_a}/cross-sell", params={"limit": 3})
        assert page.status_code == 200, page.text
    cross_sell = [item["recommendation_id"] for item in page.json()["items"]]
    assert options
    assert cross_sell
    return BookIds(
        by_parameter={
            "client_id": [*clients, served.clients[served.rm_crm][0]],
            "rm_id": [served.rm_a, served.rm_b, served.rm_crm],
            "recommendation_id": [*options, *cross_sell, *decisions],
        },
        decision_id=decisions[0],
        options=options,
    )


def _schema(served: ServedBank) -> Any:
    raw = httpx.get(f"{served.url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(raw)
    # the schema declares the bearer key; the tests send it themselves (an admin's, or none)
    schema.config.generation.update(with_security_parameters=False)
    return schema


def _cases(operation: Any, book: BookIds) -> st.SearchStrategy[Any]:
    """Requests for ``operation``: valid ones, ones that break the schema, and (for an
    operation on one object) valid ones on objects of the book, a third of the time each."""
    strategies = [
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    ]
    for name in re.findall(r"{(\w+)}", operation.path):
        known = book.by_parameter.get(name)
        if known:
            strategies.append(
                st.one_of(
                    [
                        operation.as_strategy(
                            generation_mode=GenerationMode.POSITIVE, path_parameters={name: value}
                        )
                        for value in known
                    ]
                )
            )
    return st.one_of(strategies)


@dataclass
class Run:
    """What a generated run made and what went wrong, by operation."""

    requests: Counter[str] = field(default_factory=Counter)
    #: the answers' statuses, by operation
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def check(
        self,
        name: str,
        operation: Any,
        book: BookIds,
        examples: int,
        call: Callable[[Any], int],
    ) -> None:
        """Send ``examples`` generated requests of ``operation`` through ``call`` (which checks
        the answer and gives its status); keep the first failure."""
        statuses = self.statuses.setdefault(name, Counter())

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            # the same requests on every run, so that a failure in CI is one to replay
            derandomize=True,
            # no shrinking: a failure's request is reported as drawn, in bounded time
            phases=(Phase.explicit, Phase.generate),
            suppress_health_check=list(HealthCheck),
        )
        @given(case=_cases(operation, book))
        def send(case: Any) -> None:
            self.requests[name] += 1
            statuses[call(case)] += 1

        try:
            send()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' failures are a group
            self.failures[name] = str(exc)[:3000]

    def report(self) -> str:
        return "\n\n".join(f"== {name}\n{failure}" for name, failure in self.failures.items())


def test_generated_requests_with_a_key_get_no_5xx_and_answers_that_match_the_schema(
    served: ServedBank, book: BookIds
) -> None:
    schema = _schema(served)
    run = Run()
    session = requests.Session()
    admin = served.auth("admin")

    def call(case: Any) -> int:
        response = case.call_and_validate(
            base_url=served.url, session=session, headers=admin, checks=CHECKS, timeout=60
        )
        return int(response.status_code)

    for result in schema.get_all_operations():
        operation = result.ok()
        run.check(operation.label, operation, book, EXAMPLES_WITH_KEY, call)

    assert not run.failures, run.report()
    assert sum(run.requests.values()) >= MIN_REQUESTS, run.requests
    # every operation was answered by its handler, not only refused (objects of the book)
    unanswered = {
        name: dict(statuses)
        for name, statuses in run.statuses.items()
        if not any(200 <= status < 300 for status in statuses)
    }
    assert not unanswered, unanswered


def test_generated_requests_without_a_key_are_all_refused_401(
    served: ServedBank, book: BookIds
) -> None:
    schema = _schema(served)
    run = Run()
    session = requests.Session()

    def call(case: Any) -> int:
        response = case.call(base_url=served.url, session=session, timeout=60)
        assert response.status_code == 401, (response.status_code, response.text)
        assert response.json()["error"]["code"] == "unauthenticated", response.text
        # schemathesis' headers: lower-case names, a list of values each
        assert response.headers["www-authenticate"][0].startswith("Bearer"), response.headers
        return int(response.status_code)

    operations = [r.ok() for r in schema.get_all_operations()]
    private = [op for op in operations if op.path not in PUBLIC]
    for operation in private:
        run.check(operation.label, operation, book, EXAMPLES_WITHOUT_KEY, call)

    assert not run.failures, run.report()
    assert set(run.requests) == {op.label for op in private}
    assert min(run.requests.values()) >= 1
    assert sum(run.requests.values()) >= len(private) * 5, run.requests


# --- strict request bodies ------------------------------------------------------------------

#: Bodies with a value of another JSON type than its field's, and the field a 422 names.
WRONG_TYPES = [
    ("financing", {"amount": "250000"}, "amount"),
    ("financing", {"amount": True}, "amount"),
    ("financing", {"tenor_months": "36"}, "tenor_months"),
    ("financing", {"purpose": 1}, "purpose"),
    ("feedback", {"outcome": "accepted", "amount": "1"}, "amount"),
    ("feedback", {"outcome": "declined", "reason": 1}, "reason"),
]


def _post(served: ServedBank, kind: str, body: Any) -> httpx.Response:
    """POST ``body`` as brm_a: a financing request, or feedback on a new financing option."""
    financing = f"{served.url}/v1/clients/{served.clients[served.rm_a][0]}/financing-options"
    auth = served.auth("brm_a")
    if kind == "financing":
        return httpx.post(financing, json=body, headers=auth, timeout=60)
    option = httpx.post(financing, headers=auth, timeout=60).json()["options"][0]
    return httpx.post(
        f"{served.url}/v1/recommendations/{option['recommendation_id']}/feedback",
        json=body,
        headers=auth,
        timeout=60,
    )


@pytest.mark.parametrize(("kind", "body", "field_name"), WRONG_TYPES)
def test_request_bodies_refuse_a_value_of_another_json_type(
    served: ServedBank, kind: str, body: dict[str, Any], field_name: str
) -> None:
    answer = _post(served, kind, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field_name, answer.text


def test_request_bodies_take_values_of_their_own_json_type(served: ServedBank) -> None:
    # a whole number is a JSON number: it is taken for an amount
    whole = _post(
        served, "financing", {"amount": 250000, "tenor_months": 36, "purpose": "equipment"}
    )
    assert whole.status_code == 200, whole.text
    assert _post(served, "financing", {"amount": 12500.5}).status_code == 200
    offered = _post(served, "feedback", {"outcome": "offered", "reason": "sent", "amount": 5})
    assert offered.status_code == 201, offered.text
    assert offered.json()["amount"] == 5.0


def test_request_bodies_refuse_unknown_fields(served: ServedBank) -> None:
    answer = _post(served, "financing", {"amount": 1000, "colour": "red"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "colour"


def test_query_parameters_are_read_from_text(served: ServedBank) -> None:
    # a query is text by nature: "3" is the number 3 there
    page = httpx.get(
        f"{served.url}/v1/rms/{served.rm_a}/cross-sell",
        params={"limit": "3", "offset": "1", "min_score": "0"},
        headers=served.auth("brm_a"),
        timeout=60,
    )
    assert page.status_code == 200, page.text
    assert (page.json()["limit"], page.json()["offset"]) == (3, 1)


@pytest.mark.parametrize("day", ["0", "86400", "20240101", "2024-1-1"])
def test_date_parameters_take_only_iso_dates(served: ServedBank, day: str) -> None:
    # pydantic reads a number as seconds since 1970: from=0 was the first of January 1970
    answer = httpx.get(
        f"{served.url}/v1/kpis", params={"from": day}, headers=served.auth("admin"), timeout=60
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "from"
    iso = httpx.get(
        f"{served.url}/v1/kpis",
        params={"from": "2024-01-01"},
        headers=served.auth("admin"),
        timeout=60,
    )
    assert iso.status_code == 200, iso.text
    assert iso.json()["period_start"] == "2024-01-01"


# --- one error body --------------------------------------------------------------------------


@dataclass
class Caller:
    """Sends a request of the error table: to the served bank, or to an app of its own over the
    bank's database with other settings (a low rate limit, no models, a fault)."""

    served: ServedBank
    book: BookIds
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    stack: contextlib.ExitStack

    def send(self, method: str, path: str, who: str | None = "admin", **kw: Any) -> httpx.Response:
        headers = {**self.served.auth(who), **kw.pop("headers", {})}
        return httpx.request(method, f"{self.served.url}{path}", headers=headers, timeout=60, **kw)

    def app(self, **overrides: Any) -> TestClient:
        """A service of its own on the bank's database, serving no model."""
        models = self.tmp_path / f"models-{uuid.uuid4().hex[:6]}"
        models.mkdir()
        settings = self.served.settings.model_copy(
            update={"models_dir": models, "home": self.tmp_path / "home", **overrides}
        )
        app = create_app(
            settings,
            tracking_uri="http://127.0.0.1:9",  # never asked: the models folder names no model
            policy_path=ROOT / "models" / "credit_policy.yaml",
            poll_seconds=3600,
        )
        # the 500 is the answer under test, not an exception for the test client to raise
        return self.stack.enter_context(TestClient(app, raise_server_exceptions=False))


def _rate_limited(c: Caller) -> httpx.Response:
    api = c.app(rate_limit_per_minute=1)
    api.get("/v1/models", headers=c.served.auth("admin"))
    return api.get("/v1/models", headers=c.served.auth("admin"))


def _locked_out(c: Caller) -> httpx.Response:
    api = c.app(auth_failures_before_lockout=1)
    api.get("/v1/models", headers={"Authorization": "Bearer rmr_00000000_nothing"})
    return api.get("/v1/models", headers={"Authorization": "Bearer rmr_00000000_nothing"})


def _unexpected(c: Caller) -> httpx.Response:
    def broken(*_: Any) -> Any:
        raise RuntimeError("a bug")

    c.monkeypatch.setattr(models_route, "_models_answer", broken)
    return c.app().get("/v1/models", headers=c.served.auth("admin"))


def _no_model(c: Caller) -> httpx.Response:
    return c.app().get(f"/v1/rms/{c.served.rm_a}/cross-sell", headers=c.served.auth("admin"))


def _too_large(c: Caller) -> httpx.Response:
    body = b"[" + b"0," * (c.served.settings.max_body_bytes // 2) + b"0]"
    return c.send(
        "POST",
        f"/v1/clients/{c.served.clients[c.served.rm_a][0]}/financing-options",
        content=body,
        headers={"Content-Type": "application/json"},
    )


def _financing(c: Caller) -> str:
    return f"/v1/clients/{c.served.clients[c.served.rm_a][0]}/financing-options"


#: Refusals of every kind: (name, status, code, how to provoke it).
REFUSALS: list[tuple[str, int, str, Callable[[Caller], httpx.Response]]] = [
    ("no key", 401, "unauthenticated", lambda c: c.send("GET", "/v1/models", who=None)),
    (
        "a key that is not valid",
        401,
        "unauthenticated",
        lambda c: c.send(
            "GET", "/v1/models", who=None, headers={"Authorization": "Bearer rmr_1234abcd_x"}
        ),
    ),
    (
        "malformed JSON and no key",
        401,
        "unauthenticated",
        lambda c: c.send(
            "POST",
            _financing(c),
            who=None,
            content=b'{"amount": ',
            headers={"Content-Type": "application/json"},
        ),
    ),
    ("another role", 403, "forbidden", lambda c: c.send("GET", "/v1/kpis", who="ds")),
    ("no such client", 404, "not_found", lambda c: c.send("GET", "/v1/clients/nope/feedback")),
    ("no such route", 404, "not_found", lambda c: c.send("GET", "/v1/nowhere")),
    ("no such method", 405, "method_not_allowed", lambda c: c.send("DELETE", "/v1/models")),
    (
        "feedback on a decision record",
        409,
        "not_an_offer",
        lambda c: c.send(
            "POST",
            f"/v1/recommendations/{c.book.decision_id}/feedback",
            json={"outcome": "offered"},
        ),
    ),
    ("a body over the limit", 413, "too_large", _too_large),
    (
        "a body that is not JSON",
        415,
        "unsupported_media_type",
        lambda c: c.send(
            "POST",
            _financing(c),
            content=b"amount=1000",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
    ),
    (
        "malformed JSON",
        422,
        "invalid",
        lambda c: c.send(
            "POST",
            _financing(c),
            content=b'{"amount": ',
            headers={"Content-Type": "application/json"},
        ),
    ),
    (
        "a body that is not UTF-8",
        422,
        "invalid",
        lambda c: c.send(
            "POST",
            _financing(c),
            content=b"\xff\xfe{",
            headers={"Content-Type": "application/json"},
        ),
    ),
    (
        "a query parameter out of bounds",
        422,
        "invalid",
        lambda c: c.send("GET", f"/v1/rms/{c.served.rm_a}/feedback", params={"limit": "0"}),
    ),
    (
        "a text for a number",
        422,
        "invalid",
        lambda c: c.send("POST", _financing(c), json={"amount": "1"}),
    ),
    ("over the rate limit", 429, "rate_limited", _rate_limited),
    ("an address locked out", 429, "locked_out", _locked_out),
    ("an unexpected error", 500, "internal", _unexpected),
    ("no model loaded", 503, "unavailable", _no_model),
]


@pytest.mark.parametrize(
    ("status", "code", "provoke"),
    [pytest.param(s, code, f, id=f"{s} {name}") for name, s, code, f in REFUSALS],
)
def test_every_refusal_has_the_one_error_body(
    served: ServedBank,
    book: BookIds,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    code: str,
    provoke: Callable[[Caller], httpx.Response],
) -> None:
    with contextlib.ExitStack() as stack:
        answer = provoke(Caller(served, book, tmp_path, monkeypatch, stack))
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message", "field"} <= set(error) <= {"code", "message", "field", "details"}
    assert error["code"] == code, error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    assert error["field"] is None or isinstance(error["field"], str), error
