"""The API's route table: each operation is declared once, with the models it reads and writes.

`operation` registers the Flask view and records an `Operation`; the view wrapper validates
the query string and the JSON body with the declared models and serialises the returned model.
The OpenAPI document is generated from the same table, so it cannot drift from the routes.
"""

from __future__ import annotations

import inspect
import typing as t
from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, Response, g, jsonify, request
from pydantic import BaseModel

from mailadmin.services.context import Actor

Handler = Callable[..., BaseModel | None]


@dataclass(frozen=True)
class Operation:
    rule: str
    method: str
    endpoint: str
    summary: str
    description: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    public: bool
    tag: str


OPERATIONS: list[Operation] = []


def current_api_actor() -> Actor:
    """The Actor of the token that authenticated this request (set by the blueprint)."""
    actor: Actor = g.api_actor
    return actor


def parse_body(model: type[BaseModel]) -> BaseModel:
    # Parsed from the raw bytes by pydantic, so invalid JSON is a located validation error
    # like any other, and JSON types are checked strictly (no "1" for 1).
    data = request.get_data(cache=True)
    return model.model_validate_json(data if data.strip() else b"{}")


def parse_query(model: type[BaseModel]) -> BaseModel:
    return model.model_validate(request.args.to_dict())


def operation(
    bp: Blueprint,
    rule: str,
    method: str,
    *,
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    public: bool = False,
) -> Callable[[Handler], Handler]:
    """Declare an API operation; the handler gets the path values and `body`/`query` models."""

    def decorate(handler: Handler) -> Handler:
        endpoint = handler.__name__

        def view(**path: str) -> Response | tuple[Response, int] | tuple[str, int]:
            kwargs: dict[str, t.Any] = dict(path)
            if query is not None:
                kwargs["query"] = parse_query(query)
            if body is not None:
                kwargs["body"] = parse_body(body)
            result = handler(**kwargs)
            if result is None:
                return "", status
            return jsonify(result.model_dump(mode="json")), status

        view.__name__ = endpoint
        view.__doc__ = handler.__doc__
        bp.add_url_rule(rule, endpoint=endpoint, view_func=view, methods=[method])
        OPERATIONS.append(Operation(
            rule=rule, method=method, endpoint=endpoint, summary=summary,
            description=inspect.cleandoc(handler.__doc__ or ""), body=body, query=query,
            response=response,
            status=status, public=public, tag=tag,
        ))
        return handler

    return decorate
