"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

Nothing here describes a field by hand: request and response schemas are the models'
`model_json_schema`, query parameters are the query models' fields, and path parameters are
read from the Flask rules.
"""

from __future__ import annotations

import re
import typing as t
from collections.abc import Iterable

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .routing import Operation
from .schemas import PATH_PARAMETERS, ErrorOut

REF_TEMPLATE = "#/components/schemas/{model}"
_PATH_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")

#: Error responses an operation may give, with what they mean (413 only where there is a body).
ERROR_RESPONSES: dict[str, tuple[str, str]] = {
    "400": ("BadRequest", "The request could not be read (code bad_request), or the server "
            "cannot carry it out in its present state (a specific code, such as "
            "usage_unavailable when the mail server cannot be asked)."),
    "401": ("Unauthorized", "The bearer token is missing, unknown, revoked or expired "
            "(code authentication_failed)."),
    "403": ("Forbidden", "The token lacks the scope, or its owner may not do this "
            "(code forbidden)."),
    "404": ("NotFound", "No such object among the token owner's (code not_found); other "
            "customers' objects are reported as not found, never as forbidden."),
    "409": ("Conflict", "A duplicate, a forwarding loop, or an object still in use "
            "(code conflict)."),
    "422": ("Unprocessable", "The request is malformed (code invalid, with the field), a name "
            "is refused (invalid_name), a password is too weak (weak_password) or a package "
            "limit is reached (limit_reached)."),
    "413": ("TooLarge", "The request body is larger than the server accepts (code too_large)."),
    "429": ("RateLimited", "Too many failed authentications from this address (code "
            "rate_limited); wait for Retry-After seconds."),
}
#: Of those, the ones only an operation that needs a token gives.
AUTHENTICATED_ONLY = frozenset({"401", "403", "429"})


def _openapi_path(rule: str) -> str:
    return _PATH_PARAMETER.sub(lambda m: "{" + m.group(1) + "}", rule)


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorOut, "serialization"): None}
    for op in operations:
        for model, mode in ((op.body, "validation"), (op.query, "validation"),
                            (op.response, "serialization")):
            if model is not None:
                found[(model, t.cast(JsonSchemaMode, mode))] = None
    return list(found)


def build_document(
    operations: list[Operation], *, url_prefix: str, title: str, version: str
) -> dict[str, t.Any]:
    models = _models(operations)
    refs, top = models_json_schema(models, ref_template=REF_TEMPLATE)
    components: dict[str, t.Any] = dict(top.get("$defs", {}))

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, t.Any]:
        return dict(refs[(model, mode)])

    paths: dict[str, dict[str, t.Any]] = {}
    for op in operations:
        parameters: list[dict[str, t.Any]] = [
            {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
            for name in _PATH_PARAMETER.findall(op.rule)
        ]
        if op.query is not None:
            query_schema = components[ref(op.query, "validation")["$ref"].rsplit("/", 1)[1]]
            required = set(query_schema.get("required", []))
            for name, prop in query_schema.get("properties", {}).items():
                parameters.append({
                    "name": name, "in": "query", "required": name in required,
                    "schema": {k: v for k, v in prop.items() if k != "description"},
                    **({"description": prop["description"]} if "description" in prop else {}),
                })
        responses: dict[str, t.Any] = {}
        if op.status == 204:
            responses["204"] = {"description": "Done; no content."}
        else:
            schema = ref(op.response, "serialization") if op.response else {"type": "object"}
            responses[str(op.status)] = {
                "description": "Created." if op.status == 201 else "OK.",
                "content": {"application/json": {"schema": schema}},
            }
        for status, (name, _) in ERROR_RESPONSES.items():
            if op.public and status in AUTHENTICATED_ONLY:
                continue
            if status == "413" and op.body is None:
                continue
            responses[status] = {"$ref": f"#/components/responses/{name}"}
        entry: dict[str, t.Any] = {
            "operationId": op.endpoint,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": parameters,
            "responses": responses,
        }
        if op.description:
            entry["description"] = op.description
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body, "validation")}},
            }
        if op.public:
            entry["security"] = []
        paths.setdefault(url_prefix + _openapi_path(op.rule), {})[op.method.lower()] = entry

    error_schema = ref(ErrorOut, "serialization")
    responses_components: dict[str, t.Any] = {}
    for status, (name, description) in ERROR_RESPONSES.items():
        response: dict[str, t.Any] = {
            "description": description,
            "content": {"application/json": {"schema": error_schema}},
        }
        if status == "429":
            response["headers"] = {"Retry-After": {
                "description": "Seconds until authentication is accepted again.",
                "schema": {"type": "integer"},
            }}
        if status == "401":
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        responses_components[name] = response

    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Manage domains, mailboxes, forwarders and autoresponders. "
            "Authenticate with 'Authorization: Bearer <token>'; tokens are created in the panel "
            "under Account → API tokens and act with their owner's rights. Tokens with the "
            "'read' scope may use GET; changes need 'write'. Errors are "
            '{"error": {"code", "message", "field"}} with a stable code.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": responses_components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "<prefix>.<secret>",
                    "description": "An API token made in the panel; shown once when created.",
                }
            },
        },
    }
