"""Who may call what, in one table, on SQLite and PostgreSQL: every route under /v1 against
every kind of caller, with the status each must get, from ``rmreco serve --workers 2``.

The callers: the RM whose portfolio the object is in (``own``), another business RM (``other``),
a corporate RM, whose role is another (``role``), a data scientist (``ds``), an admin
(``admin``), the own RM's key once revoked (``revoked``) and no key at all (``none``). The
objects: a client of the own RM, the own RM, and a financing option the own RM was given.

A caller who may not see an object gets the 404 of an object that does not exist, word for
word, so that an answer never tells whether another RM's client exists. The table must name
every route under /v1 (the test enumerates the app's routes): a new route fails here until
its row says who may call it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from served_bank import ServedBank, served_for
from starlette.routing import BaseRoute

pytestmark = pytest.mark.slow

#: the callers, in the order of the table's columns, and the user each one is
CALLERS: dict[str, str | None] = {
    "own": "brm_a",
    "other": "brm_b",
    "role": "crm",
    "ds": "ds",
    "admin": "admin",
    "revoked": "revoked",
    "none": None,
}

# fmt: off
#: method, path, then the status each caller gets, in the order of CALLERS
MATRIX: list[tuple[str, str, int, int, int, int, int, int, int]] = [
    # method path                                               own  oth  role ds   adm  rev  none
    ("POST", "/v1/clients/{client_id}/financing-options",        200, 404, 404, 403, 200, 401, 401),
    ("GET",  "/v1/clients/{client_id}/recommendations",          200, 404, 404, 403, 200, 401, 401),
    ("GET",  "/v1/clients/{client_id}/feedback",                 200, 404, 404, 403, 200, 401, 401),
    ("POST", "/v1/recommendations/{recommendation_id}/feedback", 201, 404, 404, 403, 201, 401, 401),
    ("GET",  "/v1/rms/{rm_id}/cross-sell",                       200, 404, 404, 403, 200, 401, 401),
    ("GET",  "/v1/rms/{rm_id}/feedback",                         200, 404, 404, 403, 200, 401, 401),
    ("GET",  "/v1/rms/{rm_id}/kpis",                             200, 404, 404, 403, 200, 401, 401),
    ("GET",  "/v1/kpis",                                         403, 403, 403, 403, 200, 401, 401),
    ("GET",  "/v1/models",                                       200, 200, 200, 200, 200, 401, 401),
    ("POST", "/v1/admin/models/reload",                          403, 403, 403, 403, 200, 401, 401),
]
# fmt: on

#: the body each POST sends ("offered" is not a final outcome: it may be reported again)
BODIES: dict[str, dict[str, Any]] = {
    "/v1/recommendations/{recommendation_id}/feedback": {"outcome": "offered"},
    "/v1/clients/{client_id}/financing-options": {"amount": 50000},
}


@dataclass(frozen=True)
class Objects:
    """The path parameters of the table: objects of the own RM's portfolio."""

    client_id: str
    rm_id: str
    recommendation_id: str

    def path(self, template: str, **missing: str) -> str:
        """``template`` with these objects (or those of ``missing``) filled in."""
        values = {
            "client_id": self.client_id,
            "rm_id": self.rm_id,
            "recommendation_id": self.recommendation_id,
            **missing,
        }
        return template.format(**values)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedBank]:
    # the limits are lifted (served_bank.NO_LIMITS): the table's revoked and missing keys are a
    # run of 401s from one address, which the lockout would answer; two workers on one database
    with served_for(request.param, tmp_path_factory, workers=2) as bank:
        yield bank


@pytest.fixture(scope="module")
def objects(served: ServedBank) -> Objects:
    client = served.clients[served.rm_a][0]
    answer = httpx.post(
        f"{served.url}/v1/clients/{client}/financing-options",
        headers=served.auth("brm_a"),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    option = answer.json()["options"][0]["recommendation_id"]
    return Objects(client_id=client, rm_id=served.rm_a, recommendation_id=option)


def _call(served: ServedBank, method: str, path: str, who: str | None, body: Any) -> httpx.Response:
    return httpx.request(
        method, f"{served.url}{path}", headers=served.auth(who), json=body, timeout=120
    )


@pytest.mark.parametrize(
    ("method", "template", "expected"),
    [
        pytest.param(m, p, dict(zip(CALLERS, row, strict=True)), id=f"{m} {p}")
        for m, p, *row in MATRIX
    ],
)
def test_each_caller_gets_the_status_of_the_table(
    served: ServedBank, objects: Objects, method: str, template: str, expected: dict[str, int]
) -> None:
    body = BODIES.get(template)
    path = objects.path(template)
    got = {who: _call(served, method, path, user, body) for who, user in CALLERS.items()}
    wrong = {
        who: (answer.status_code, expected[who], answer.text[:200])
        for who, answer in got.items()
        if answer.status_code != expected[who]
    }
    assert not wrong, f"{method} {path}: (got, expected, body) by caller: {wrong}"
    # a 404 says no more than the 404 of an object that does not exist
    names = [
        name for name in ("client_id", "rm_id", "recommendation_id") if f"{{{name}}}" in template
    ]
    if names:
        nowhere = objects.path(template, **dict.fromkeys(names, "no-such-object"))
        missing = _call(served, method, nowhere, "admin", body)
        assert missing.status_code == 404, missing.text
        for who, answer in got.items():
            if answer.status_code == 404:
                assert answer.json() == missing.json(), (who, answer.text, missing.text)


def _routes(routes: list[BaseRoute]) -> Iterator[APIRoute]:
    """Every route of the app, also those of routers FastAPI includes by reference."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included.routes)


def test_the_table_names_every_route_under_v1(served: ServedBank) -> None:
    in_app = {
        (method, route.path)
        for route in _routes(served.app.router.routes)
        if route.path.startswith("/v1/")
        for method in route.methods - {"HEAD"}
    }
    in_schema = {
        (method.upper(), path)
        for path, operations in served.app.openapi()["paths"].items()
        if path.startswith("/v1/")
        for method in operations
    }
    in_table = {(method, path) for method, path, *_ in MATRIX}
    assert in_schema <= in_app, (
        f"routes FastAPI includes in a way this test does not walk: {in_schema - in_app}"
    )
    assert in_app - in_table == set(), (
        f"routes under /v1 the table does not name: {in_app - in_table}"
    )
    assert in_table - in_app == set(), f"rows of the table for no route: {in_table - in_app}"
