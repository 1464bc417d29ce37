"""This module owns the API's documentation pages and what they need from the OpenAPI document:
Swagger UI at ``/docs`` and ReDoc at ``/redoc``, their scripts and styles served by the app
itself, the API key declared on every operation that reads it, and the models' examples shown
on the operations that take or answer them.

Why served by the app: FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on a bank's
network without internet access they are blank. The files come from the ``fastapi-offline``
package (Swagger UI 5 and ReDoc 2 as released, nothing fetched at run time); FastAPI's page
builders then point at them. Every URL of the pages is on the app, below the proxy prefix the
request arrived with (``root_path``).

Why the key is declared here: the key is read by one dependency (``PrincipalDep``) that answers
the service's own 401 bodies, so the OpenAPI document learns of it from the routes that depend
on it. Each such operation is given :data:`rmreco.serving.security.API_KEY_SCHEME`, which gives
Swagger UI its Authorize button and makes "Try it out" send ``Authorization: Bearer <key>``.

Why examples are copied onto operations: the models carry their examples in their JSON schemas
(:mod:`rmreco.serving.examples`), which not every viewer reads for a body whose schema is a
reference or a choice (the optional financing request is "the request or null"). The first
example of the model becomes the ``example`` of each request body and success answer in JSON.
FastAPI drops every null from the document, those of examples too, which would leave examples
without the fields whose value is null: the models' examples are put back as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, get_args

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.params import Depends
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.routing import BaseRoute

from rmreco.serving.deps import PrincipalDep
from rmreco.serving.security import API_KEY_SCHEME

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
#: Where the pages' scripts, styles and icon are served.
ASSETS_URL = "/docs/assets"
#: The files of Swagger UI and ReDoc, as the ``fastapi-offline`` package ships them.
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
#: The files the pages load from :data:`ASSETS_URL`.
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")

#: Swagger UI settings over FastAPI's defaults. No validator: Swagger UI would otherwise show a
#: badge image from swagger.io for every document not served from localhost.
SWAGGER_UI_PARAMETERS: dict[str, Any] = {"validatorUrl": None, "displayRequestDuration": True}


def add_api_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` and ReDoc at ``/redoc`` from the app's own files, and
    declare the API key in the OpenAPI document of every operation that needs one.

    ``app`` must be built with ``docs_url=None, redoc_url=None`` (FastAPI's own pages load their
    files from a CDN) and keep its ``openapi_url``. The request bodies and success answers of
    the document are given the examples of their models.

    Raises:
        ValueError: when ``app`` still has FastAPI's own pages or has no OpenAPI document.
        FileNotFoundError: when the ``fastapi-offline`` package lacks one of its files.
    """
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError(
            f"the app serves FastAPI's own documentation pages (docs_url={app.docs_url!r}, "
            f"redoc_url={app.redoc_url!r}), which load from a CDN: build it with "
            "docs_url=None, redoc_url=None"
        )
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("the app publishes no OpenAPI document (openapi_url=None)")
    missing = [name for name in ASSET_FILES if not (ASSETS_DIR / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"the fastapi-offline package at {ASSETS_DIR} lacks {', '.join(missing)}: "
            "reinstall the environment (make env)"
        )

    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={**SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # the fonts would come from Google: ReDoc falls back to the browser's own
            with_google_fonts=False,
        )
        # ReDoc's menu footer always asks cdn.redoc.ly for its logo: images come from the app
        # only, so nothing leaves for another host (the logo is not shown)
        page.headers["Content-Security-Policy"] = "img-src 'self' data:"
        return page

    _complete_openapi(app)


def _root(request: Request) -> str:
    """The prefix a proxy serves the app under (empty when none)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _complete_openapi(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document declare the API key (:func:`_require_key`), carry the
    models' examples whole (:func:`_restore_examples`) and show them on the operations
    (:func:`_show_examples`). FastAPI builds the document on first request and again when
    routes change; each new document is completed once."""
    build = app.openapi
    completed: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = build()
        if not completed or completed[0] is not schema:
            _require_key(schema, app.routes)
            _restore_examples(schema, app.routes)
            _show_examples(schema)
            completed[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _require_key(schema: dict[str, Any], routes: Sequence[BaseRoute | RouteContext]) -> None:
    """Add the API key scheme to ``schema``'s components and to the operations of ``routes``
    that read the key."""
    name = API_KEY_SCHEME.scheme_name
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[name] = API_KEY_SCHEME.model.model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    reads_key = _key_dependency()
    # included routers are nodes of a tree: FastAPI's contexts give each operation as served
    # (prefix, dependencies of the routers that include it)
    for route in iter_route_contexts(routes):
        if not (isinstance(route.original_route, APIRoute) and route.include_in_schema):
            continue
        if not _depends_on(route.dependant, reads_key):
            continue
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            requirements = operation.setdefault("security", [])
            if {name: []} not in requirements:
                requirements.append({name: []})


def _key_dependency() -> Callable[..., Any]:
    """The dependency that reads the API key: the one behind ``PrincipalDep``."""
    for meta in get_args(PrincipalDep)[1:]:
        if isinstance(meta, Depends) and meta.dependency is not None:
            return meta.dependency
    raise TypeError("PrincipalDep names no dependency: the API key cannot be declared")


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    """Whether ``call`` is ``dependant`` or one of its dependencies, at any depth."""
    return dependant.call is call or any(_depends_on(d, call) for d in dependant.dependencies)


def _restore_examples(schema: dict[str, Any], routes: Sequence[BaseRoute | RouteContext]) -> None:
    """Put the examples of the models that ``routes`` take and answer (and of the models those
    hold) back into ``schema``'s components as the models give them, nulls included."""
    components = schema.get("components", {}).get("schemas", {})
    for name, model in _models(routes).items():
        examples = model.model_json_schema().get("examples")
        if name in components and examples:
            components[name]["examples"] = copy.deepcopy(examples)


def _models(routes: Sequence[BaseRoute | RouteContext]) -> dict[str, type[BaseModel]]:
    """The models of the bodies and answers of the documented operations of ``routes`` and the
    models they hold, by name (the name of their schema in the document)."""
    found: dict[str, type[BaseModel]] = {}

    def add(annotation: Any) -> None:
        for model in _models_in(annotation):
            if model.__name__ not in found:
                found[model.__name__] = model
                for field in model.model_fields.values():
                    add(field.annotation)

    for route in iter_route_contexts(routes):
        if not (isinstance(route.original_route, APIRoute) and route.include_in_schema):
            continue
        answers = (route.response_fields or {}).values()
        for field in (route.body_field, route.response_field, *answers):
            if field is not None:
                add(field.field_info.annotation)
    return found


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models an annotation names: itself, or those of its arguments (``list[Reason]``,
    ``Reason | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for argument in get_args(annotation):
        yield from _models_in(argument)


def _show_examples(schema: dict[str, Any]) -> None:
    """Give each JSON request body and success answer of ``schema`` that has no example of its
    own the first example of its model."""
    models = schema.get("components", {}).get("schemas", {})
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            bodies = [operation.get("requestBody", {})]
            bodies += [
                answer
                for status, answer in operation.get("responses", {}).items()
                if str(status).startswith("2")
            ]
            for body in bodies:
                media = body.get("content", {}).get("application/json")
                if media is None or "example" in media or "examples" in media:
                    continue
                example = _model_example(media.get("schema", {}), models)
                if example is not None:
                    media["example"] = example


#: The prefix of a reference to a model of the document.
_MODEL_REF = "#/components/schemas/"


def _model_example(schema: dict[str, Any], models: dict[str, Any]) -> Any:
    """The first example of the model ``schema`` names (directly, or as the first model of a
    choice such as "the model or null"); None when it names none that has one."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_MODEL_REF):
        examples = models.get(ref.removeprefix(_MODEL_REF), {}).get("examples")
        return copy.deepcopy(examples[0]) if examples else None
    for choice in schema.get("anyOf", []) + schema.get("oneOf", []):
        example = _model_example(choice, models)
        if example is not None:
            return example
    return None
