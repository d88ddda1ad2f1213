"""The OpenAPI document shows the controls that are on: the API keys and their 401s, the rate
limit's 429s. The routes describe themselves; these amend what middleware adds to every
operation."""

from typing import Any

from fastapi import FastAPI

from service.api.middleware.api_keys import METRICS_PATH, OPEN_PATHS
from service.api.middleware.rate_limit import UNLIMITED_PATHS
from service.settings import Settings


def document_security(app: FastAPI, settings: Settings) -> None:
    """The OpenAPI document shows the controls that are on: the keys and their 401s, the
    rate limit's 429s."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = app.openapi_schema
        if schema is None:
            schema = build()  # cached by FastAPI in app.openapi_schema, amended here once
            if settings.api_key_list:
                document_auth(schema)
            if settings.rate_limit_per_s is not None:
                document_rate_limit(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_auth(schema: dict[str, Any]) -> None:
    """The OpenAPI document of an app with API keys on: both ways to send one, and the 401 on
    every operation that needs it."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(
        {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
    )
    for path, operations in schema["paths"].items():
        if path in OPEN_PATHS or path == METRICS_PATH:
            continue
        for operation in operations.values():
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            operation["responses"]["401"] = {
                "description": "No valid API key.",
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                },
            }


def document_rate_limit(schema: dict[str, Any]) -> None:
    """The 429 on every limited operation of an app with rate limiting on."""
    for path, operations in schema["paths"].items():
        if path in UNLIMITED_PATHS:
            continue
        for operation in operations.values():
            operation["responses"].setdefault(
                "429",
                {
                    "description": "Too many requests; retry after Retry-After seconds.",
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                    },
                },
            )
