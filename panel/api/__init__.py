"""The JSON API under /api/v1 (see `panel.api.blueprint` for authentication, errors and audit).

The blueprint and its request hooks are in `blueprint`; the operations are registered on it by
`diagnose`, `help`, `resolve` and `views`, imported here, and the OpenAPI document describes
them all.
"""

from __future__ import annotations

from flask import Response, jsonify

from . import app_passwords, diagnose, help, resolve, views  # noqa: F401  (register operations)
from .blueprint import URL_PREFIX, bp
from .openapi import build_document
from .routing import OPERATIONS, Operation

OPENAPI_ENDPOINT = "openapi"
OPERATIONS.append(Operation(
    rule="/openapi.json", method="GET", endpoint=OPENAPI_ENDPOINT,
    summary="This document", description="The OpenAPI 3.1 description of this API; public.",
    body=None, query=None, response=None, status=200, public=True, tag="meta",
))


@bp.get("/openapi.json", endpoint=OPENAPI_ENDPOINT)
def openapi() -> Response:
    return jsonify(build_document(
        OPERATIONS, url_prefix=URL_PREFIX, title="mailadmin API", version="1.0.0"
    ))


__all__ = ["bp", "views"]
