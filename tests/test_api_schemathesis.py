"""Schemathesis against the running API: every operation, with a customer's token.

The API is served by the WSGI app of the test (a real database, real tokens); schemathesis reads
`/api/v1/openapi.json` from it and sends a bounded number of generated requests to each
operation, valid ones and invalid ones. A request fails the test when the answer is a server
error, breaks the documented schema (body, content type, headers), or has a status the
document does not list for the operation.
"""

from __future__ import annotations

import time
import typing as t
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.models import PanelUser
from mailadmin.services import domains, forwarders, mailboxes, tokens
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings

from .dnsserver import LocalDns

API = "/api/v1"
#: Generated requests per operation and mode; keeps the whole run well under a minute.
EXAMPLES_PER_OPERATION = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
BOX_PASSWORD = "Gl4cier-lantern-77"
#: Sent to every integer query parameter besides what schemathesis generates: the edges of
#: the documented range and values past the databases' integer types.
INTEGER_EDGES = ("0", "-1", "2147483648", "9223372036854775808", "1" + "0" * 30, "1e3", "x")


def customer_token(session_factory: sessionmaker[Session], make_user: t.Any) -> str:
    """alice, a customer with a domain, mailboxes and a forwarder for the requests to find
    (the document's examples name them), and a read-write token of hers."""
    user: PanelUser = make_user("alice", "customer")
    with transaction(session_factory) as s:
        actor = Actor.for_user(s.get(PanelUser, user.id), channel="panel")  # type: ignore[arg-type]
        domains.add_domain(s, actor, "example.org")
        mailboxes.create_mailbox(s, actor, "anna@example.org", BOX_PASSWORD)
        mailboxes.create_mailbox(s, actor, "info@example.org", BOX_PASSWORD)
        forwarders.set_forwarder(s, actor, "sales@example.org", ["anna@example.org"])
        _, text = tokens.create_api_token(s, actor, "schemathesis", ["read", "write"])
    return text


@pytest.fixture
def dns(tmp_path: Path) -> t.Iterator[LocalDns]:
    server = LocalDns(tmp_path, zones=("org", "example", "test"))
    server.serve()
    yield server
    server.stop()


def test_schemathesis_finds_no_server_error_and_no_schema_break(
    app: t.Any, session_factory: sessionmaker[Session], make_user: t.Any, dns: LocalDns
) -> None:
    from panel.api import bp

    with transaction(session_factory) as s:
        # the DNS check operation asks only the test's own DNS server, on loopback
        get_server_settings(s).dns_resolvers = dns.resolver
    if "api" not in app.blueprints:
        app.register_blueprint(bp)
    headers = {"Authorization": f"Bearer {customer_token(session_factory, make_user)}"}
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    runs = 0
    started = time.monotonic()
    for result in list(schema.get_all_operations()):
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            runs += 1

            @hypothesis.settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @hypothesis.given(case=operation.as_strategy(mode))
            def run(case: t.Any) -> None:
                response = case.call_and_validate(headers=headers, checks=CHECKS)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

            try:
                run()
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
        failures.extend(_integer_edges(schema, operation, headers, statuses))
    elapsed = time.monotonic() - started
    print(f"schemathesis: {runs} operation runs, statuses {sorted(statuses.items())}, "
          f"{elapsed:.1f} s")
    assert runs >= 40, "the OpenAPI document lists too few operations"
    assert sum(statuses.values()) >= runs * 5, "too few requests were sent"
    assert not failures, "\n\n".join(failures)
    assert elapsed < 60, f"schemathesis took {elapsed:.0f} s"


def _integer_edges(
    schema: t.Any, operation: t.Any, headers: dict[str, str], statuses: dict[int, int]
) -> list[str]:
    """Call the operation with each edge value in each of its integer query parameters."""
    failures = []
    entry = schema.raw_schema["paths"][operation.path][operation.method.lower()]
    path_values = {p["name"]: p["schema"]["examples"][0]
                   for p in entry.get("parameters", []) if p["in"] == "path"}
    for parameter in entry.get("parameters", []):
        if parameter["in"] != "query" or parameter["schema"].get("type") != "integer":
            continue
        values = list(INTEGER_EDGES)
        if "maximum" in parameter["schema"]:
            values.append(str(parameter["schema"]["maximum"] + 1))
        for value in values:
            case = operation.Case(path_parameters=path_values, query={parameter["name"]: value})
            try:
                response = case.call_and_validate(headers=headers, checks=CHECKS)
            except Exception as exc:
                failures.append(f"{operation.label} {parameter['name']}={value}: {str(exc)[:800]}")
            else:
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code not in (404, 422):
                    failures.append(f"{operation.label} {parameter['name']}={value}: "
                                    f"{response.status_code}, not refused")
    return failures
