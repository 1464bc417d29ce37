"""The API's documentation works without internet access and documents what the service does.

- ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) load every script, style and icon from the app
  itself (no URL of another host anywhere in the pages), and each of those answers.
- The OpenAPI document declares the API key as an HTTP bearer scheme (Swagger UI's Authorize
  button) on every ``/v1`` operation and on no probe; a request sent the way Swagger UI sends it
  once authorised is answered 200, and without the key the service's own 401 is unchanged.
- Every model of the document carries realistic examples: none is a placeholder ("string",
  all zeros), each reads back through its own pydantic model unchanged, and every JSON request
  body and success answer shows one.

The real app (``create_app``) runs in a test client, lifespan included, on a migrated SQLite
database with one admin user; no model is served (the documentation needs none).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from rmreco.config import Settings
from rmreco.db import repository
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import upgrade
from rmreco.serving import schemas
from rmreco.serving.app import create_app
from rmreco.serving.security import issue_key

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["/docs", "/redoc"]
PROBES = frozenset({"/healthz", "/readyz"})
#: The content types an asset of a page may have, by what the page loads it as.
ASSET_TYPES = {
    "script": ("text/javascript", "application/javascript"),
    "stylesheet": ("text/css",),
    "icon": ("image/png", "image/x-icon", "image/vnd.microsoft.icon"),
}
#: Texts that say "no real value here": the samples Swagger UI makes up for a schema without
#: an example (string, a date of 2019, a fixed UUID) and the usual fillers.
PLACEHOLDERS = frozenset(
    {
        "string",
        "2019-08-24",
        "2019-08-24t14:15:22z",
        "2019-08-24t14:15:22.123z",
        "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "user@example.com",
        "foo",
        "bar",
        "baz",
        "test",
        "example",
        "sample",
        "value",
        "text",
        "todo",
        "tbd",
        "xxx",
        "n/a",
        "...",
        "lorem ipsum",
    }
)
#: The keys Swagger UI makes up for a map without an example.
PLACEHOLDER_KEYS = frozenset({"additionalprop1", "additionalprop2", "additionalprop3"})


@pytest.fixture(scope="module")
def admin_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    """Settings of a migrated SQLite database with one admin user, and the admin's key."""
    home = tmp_path_factory.mktemp("api_docs")
    url = f"sqlite:///{home / 'rmreco.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    key = issue_key()
    try:
        with transaction(session_factory(engine)) as session:
            repository.add_user(
                session,
                name="docs-admin",
                role="admin",
                rm_id=None,
                key_prefix=key.prefix,
                key_hash=key.hash,
            )
    finally:
        engine.dispose()
    models = home / "models"  # names no model: the documentation needs none
    models.mkdir()
    return Settings(home=home, database_url=url, models_dir=models), key.key


@pytest.fixture(scope="module")
def client(admin_key: tuple[Settings, str]) -> Iterator[TestClient]:
    settings, _ = admin_key
    app = create_app(
        settings,
        tracking_uri="http://127.0.0.1:9",  # never asked: the models folder names no model
        policy_path=ROOT / "models" / "credit_policy.yaml",
        poll_seconds=3600,
    )
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def openapi(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


class _Links(HTMLParser):
    """The URLs a page loads: (what it loads them as, URL)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "script" and values.get("src"):
            self.links.append(("script", values["src"]))
        elif tag == "link" and values.get("href"):
            rel = values.get("rel", "")
            self.links.append(("stylesheet" if "stylesheet" in rel else "icon", values["href"]))
        elif tag == "redoc" and values.get("spec-url"):
            self.links.append(("document", values["spec-url"]))
        for name in ("src", "href", "spec-url"):
            if values.get(name) and tag not in {"script", "link", "redoc"}:
                self.links.append((tag, values[name]))


def _links(html: str) -> list[tuple[str, str]]:
    parser = _Links()
    parser.feed(html)
    # Swagger UI is given the document's URL in its script, not in an attribute
    parser.links += [("document", url) for url in re.findall(r"url: '([^']*)'", html)]
    return parser.links


@pytest.mark.parametrize("page", PAGES)
def test_documentation_pages_load_everything_from_the_app(client: TestClient, page: str) -> None:
    answer = client.get(page)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    # no other host, whatever the syntax (http://, https://, protocol-relative //)
    assert "//" not in html, re.findall(r"\S*//\S*", html)
    links = _links(html)
    kinds = {kind for kind, _ in links}
    assert {"script", "icon", "document"} <= kinds, links
    for kind, url in links:
        assert url.startswith("/"), url
        loaded = client.get(url)
        assert loaded.status_code == 200, (url, loaded.status_code)
        content_type = loaded.headers["content-type"].split(";")[0]
        if kind == "document":
            assert content_type == "application/json", (url, content_type)
        else:
            assert kind in ASSET_TYPES, f"{page} loads {url} as {kind}"
            assert content_type in ASSET_TYPES[kind], (url, content_type)


def test_swagger_ui_gets_its_styles_and_no_outside_validator(client: TestClient) -> None:
    html = client.get("/docs").text
    assert ("stylesheet", "/docs/assets/swagger-ui.css") in _links(html)
    # Swagger UI shows a badge from swagger.io's validator unless told not to
    assert '"validatorUrl": null' in html


@pytest.mark.parametrize(
    ("asset", "defines"),
    [("swagger-ui-bundle.js", "SwaggerUIBundle"), ("redoc.standalone.js", "Redoc")],
)
def test_the_served_scripts_are_the_viewers_the_pages_call(
    client: TestClient, asset: str, defines: str
) -> None:
    script = client.get(f"/docs/assets/{asset}")
    assert script.status_code == 200
    # the whole bundle (over a megabyte each), not an empty or truncated file
    assert len(script.content) > 500_000
    assert defines in script.text


def test_documentation_pages_follow_a_proxy_prefix(admin_key: tuple[Settings, str]) -> None:
    settings, _ = admin_key
    app = create_app(
        settings,
        tracking_uri="http://127.0.0.1:9",
        policy_path=ROOT / "models" / "credit_policy.yaml",
        poll_seconds=3600,
    )
    # behind a proxy serving the app under /rmreco, every URL of the pages carries the prefix
    with TestClient(app, root_path="/rmreco") as prefixed:
        for page in PAGES:
            links = _links(prefixed.get(page).text)
            assert links
            assert all(url.startswith("/rmreco/") for _, url in links), links


def test_every_v1_operation_requires_the_bearer_key_and_no_probe_does(
    openapi: dict[str, Any],
) -> None:
    schemes = openapi["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items() if (s["type"], s["scheme"]) == ("http", "bearer")]
    assert len(bearer) == 1, schemes
    required: dict[str, list[str]] = {bearer[0]: []}
    operations = [
        (path, method, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    ]
    assert {path for path, _, _ in operations} >= PROBES
    keyed = [(path, method) for path, method, _ in operations if path.startswith("/v1/")]
    assert len(keyed) >= 10
    for path, method, operation in operations:
        if path.startswith("/v1/"):
            assert operation.get("security") == [required], (method, path)
        else:
            assert path in PROBES, path
            assert not operation.get("security"), (method, path)
    assert "security" not in openapi, "a key asked of every operation would cover the probes"


def test_a_request_sent_as_swagger_ui_sends_it_once_authorised_is_answered(
    client: TestClient, openapi: dict[str, Any], admin_key: tuple[Settings, str]
) -> None:
    _, key = admin_key
    operation = openapi["paths"]["/v1/models"]["get"]
    (requirement,) = operation["security"]
    (name,) = requirement
    scheme = openapi["components"]["securitySchemes"][name]
    # what Swagger UI sends for an HTTP scheme: Authorization: <Scheme> <the value typed in>
    assert scheme["type"] == "http"
    header = {"Authorization": f"{scheme['scheme'].capitalize()} {key}"}
    answered = client.get("/v1/models", headers=header)
    assert answered.status_code == 200, answered.text
    assert set(answered.json()) == {"models", "registry", "errors"}
    # and the service's own refusal, untouched by the declared scheme
    refused = client.get("/v1/models")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json() == {
        "error": {
            "code": "unauthenticated",
            "message": "an API key is needed: Authorization: Bearer <key>",
            "field": None,
        }
    }
    wrong = client.get("/v1/models", headers={"Authorization": "Bearer rmr_00000000_not-a-key"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def _model(name: str) -> type[BaseModel]:
    model = getattr(schemas, name, None)
    assert isinstance(model, type), f"no model named {name}"
    assert issubclass(model, BaseModel), f"{name} is not a model"
    return model


def test_every_model_of_the_document_has_examples_its_model_reads_back(
    openapi: dict[str, Any],
) -> None:
    components = openapi["components"]["schemas"]
    main = {
        "FinancingRequest",
        "FinancingAnswer",
        "FeedbackRequest",
        "FeedbackAnswer",
        "FeedbackPage",
        "CrossSellPage",
        "KpiAnswer",
        "TeamKpiAnswer",
        "ErrorResponse",
    }
    assert main <= set(components)
    for name, component in components.items():
        examples = component.get("examples")
        assert examples, f"{name} has no example"
        model = _model(name)
        for example in examples:
            # read as a client reads the JSON; strict request models refuse what a caller
            # could not send
            value = model.model_validate_json(json.dumps(example))
            assert value.model_dump(mode="json", exclude_unset=True) == example, name


def _leaves(value: Any) -> Iterator[tuple[str, Any]]:
    """The keys, texts and numbers of a JSON value: ("key" | "text" | "number", it)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield "key", str(key)
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str):
        yield "text", value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield "number", float(value)


def _examples_of(document: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every example of the document, wherever it is (a model, a field, a body): (where, it)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "examples" and isinstance(value, list):
                yield from ((f"{where}/examples", v) for v in value)
            elif key == "example":
                yield f"{where}/example", value
            else:
                yield from _examples_of(value, f"{where}/{key}")
    elif isinstance(document, list):
        for i, item in enumerate(document):
            yield from _examples_of(item, f"{where}/{i}")


def test_no_example_is_a_placeholder(openapi: dict[str, Any]) -> None:
    found = list(_examples_of(openapi))
    assert len(found) >= 40, len(found)
    for where, example in found:
        leaves = list(_leaves(example))
        placeholders = [
            value
            for kind, value in leaves
            if (kind == "text" and value.strip().lower() in PLACEHOLDERS)
            or (kind == "key" and value.lower() in PLACEHOLDER_KEYS)
        ]
        assert not placeholders, (where, placeholders)
        numbers = [value for kind, value in leaves if kind == "number"]
        assert not numbers or any(numbers), f"{where}: every number is 0"


def test_every_json_body_and_success_answer_shows_an_example(openapi: dict[str, Any]) -> None:
    shown = 0
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            bodies = [("request", operation.get("requestBody", {}))]
            bodies += [
                (status, answer)
                for status, answer in operation["responses"].items()
                if status.startswith("2")
            ]
            for what, body in bodies:
                media = body.get("content", {}).get("application/json")
                if media is None or "$ref" not in json.dumps(media["schema"]):
                    continue  # no model: nothing to take an example from (/healthz's map)
                assert "example" in media, (method, path, what)
                shown += 1
    assert shown >= 12, shown
