"""Bad input never becomes a 500: page numbers and sizes on every list, and the OpenAPI
document describes every string a request may carry."""

from __future__ import annotations

import re
import typing as t

import pytest

from .web import sign_in

LIST_PAGES = ["/domains/", "/mailboxes", "/forwarders", "/audit/", "/admin/revisions",
              "/resellers/", "/customers/"]
NOT_A_PAGE = ["-1", "0", "abc", "1.5", "1e3", "²", "0x10", " -3 "]
NO_SUCH_PAGE = ["10000001", "2147483648", "9223372036854775808", "1" + "0" * 40, "9" * 5000]
API = "/api/v1"


@pytest.fixture
def admin(app: t.Any, make_user: t.Any) -> t.Any:
    make_user("root", "admin", "correct horse 9")
    client = app.test_client()
    assert sign_in(client, "root", "correct horse 9").status_code == 302
    return client


@pytest.mark.parametrize("path", LIST_PAGES)
def test_list_pages_refuse_page_numbers_that_are_not_pages(admin: t.Any, path: str) -> None:
    assert admin.get(path).status_code == 200
    assert admin.get(path, query_string={"page": ""}).status_code == 200
    assert admin.get(path, query_string={"page": "3"}).status_code == 200
    for value in NOT_A_PAGE:
        response = admin.get(path, query_string={"page": value})
        assert response.status_code == 400, (path, value)
        assert "page must be a whole number" in response.get_data(as_text=True)
    for value in NO_SUCH_PAGE:
        response = admin.get(path, query_string={"page": value})
        assert response.status_code == 404, (path, value[:30])
        assert "There is no page" in response.get_data(as_text=True)


def test_page_size_is_checked(admin: t.Any) -> None:
    assert admin.get("/mailboxes", query_string={"per_page": "200"}).status_code == 200
    for value in ["0", "-5", "201", "abc", "99999999999999999999999"]:
        response = admin.get("/mailboxes", query_string={"per_page": value})
        assert response.status_code == 400, value
        assert "per_page" in response.get_data(as_text=True)


@pytest.fixture
def api_token(app: t.Any, make_user: t.Any, session_factory: t.Any) -> str:
    from mailadmin.db import transaction
    from mailadmin.models import PanelUser
    from mailadmin.services import tokens
    from mailadmin.services.context import Actor
    from panel.api import bp

    if "api" not in app.blueprints:
        app.register_blueprint(bp)
    user = make_user("alice", "customer")
    with transaction(session_factory) as s:
        actor = Actor.for_user(s.get(PanelUser, user.id), channel="panel")  # type: ignore[arg-type]
        _, text = tokens.create_api_token(s, actor, "t", ["read"])
    return text


@pytest.mark.parametrize("path", [f"{API}/domains", f"{API}/mailboxes", f"{API}/forwarders"])
def test_api_lists_refuse_pages_past_the_database_range(
    app: t.Any, api_token: str, path: str
) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token}"}
    for value in NO_SUCH_PAGE[:4]:
        response = client.get(path, query_string={"page": value}, headers=headers)
        assert response.status_code == 404, value
        assert response.get_json()["error"]["code"] == "not_found"
    for query in ({"page": "-1"}, {"page": "abc"}, {"per_page": "0"},
                  {"per_page": "9223372036854775808"}):
        response = client.get(path, query_string=query, headers=headers)
        assert response.status_code == 422, query
        assert response.get_json()["error"]["code"] == "invalid"


# --- the OpenAPI document -----------------------------------------------------------------------


def _document(app: t.Any) -> dict[str, t.Any]:
    from panel.api import bp

    if "api" not in app.blueprints:
        app.register_blueprint(bp)
    document: dict[str, t.Any] = app.test_client().get(f"{API}/openapi.json").get_json()
    return document


def _strings(schema: dict[str, t.Any], components: dict[str, t.Any], where: str,
             seen: set[str]) -> t.Iterator[tuple[str, dict[str, t.Any]]]:
    """Every string schema inside `schema`, with where it is."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name not in seen:
            yield from _strings(components[name], components, name, seen | {name})
        return
    if schema.get("type") == "string" and "enum" not in schema and "const" not in schema \
            and "format" not in schema:
        yield where, schema
    for key in ("anyOf", "oneOf", "allOf"):
        for index, part in enumerate(schema.get(key, [])):
            yield from _strings(part, components, f"{where}[{index}]", seen)
    for name, part in schema.get("properties", {}).items():
        yield from _strings(part, components, f"{where}.{name}", seen)
    if isinstance(schema.get("items"), dict):
        yield from _strings(schema["items"], components, f"{where}[]", seen)


def test_every_path_and_body_string_has_a_pattern(app: t.Any) -> None:
    document = _document(app)
    components = document["components"]["schemas"]
    missing = []
    checked = 0
    for path, methods in document["paths"].items():
        for method, entry in methods.items():
            for parameter in entry.get("parameters", []):
                if parameter["schema"].get("type") == "string" or parameter["in"] == "path":
                    for where, schema in _strings(parameter["schema"], components,
                                                  f"{parameter['in']} {parameter['name']}",
                                                  set()):
                        checked += 1
                        if "pattern" not in schema:
                            missing.append(f"{method.upper()} {path}: {where}")
            body = entry.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                for where, schema in _strings(body["schema"], components, "body", set()):
                    checked += 1
                    if "pattern" not in schema:
                        missing.append(f"{method.upper()} {path}: {where}")
    assert checked > 20
    assert missing == []


def test_every_error_status_is_documented(app: t.Any) -> None:
    document = _document(app)
    for path, methods in document["paths"].items():
        for method, entry in methods.items():
            documented = set(entry["responses"])
            public = entry.get("security") == []
            needed = {"400", "404", "422"} | (set() if public else {"401", "403", "429"})
            if "requestBody" in entry:
                needed.add("413")
            assert needed <= documented, (method, path, needed - documented)


@pytest.mark.parametrize(("name", "accepted", "refused"), [
    ("DOMAIN_PATTERN", ["example.org", "bücher.example", "xn--bcher-kva.example", "a-b.c-d.e"],
     ["example", "-a.example", "a b.example", "a@b.example", "a\x00.example", "a/b.example"]),
    ("ADDRESS_PATTERN", ["info@example.org", "first.last@bücher.example", "_x@a.b"],
     ["a+b@example.org", "a;b@example.org", "a b@example.org", "a@b", "a\r\n@b.example"]),
    ("REMOTE_ADDRESS_PATTERN", ["a+tag@example.org", "info@example.org"],
     ["a@b", "@example.org", "a\x00@example.org"]),
    ("LINE_PATTERN", ["", "Away until Monday", "ünïcode ✓"], ["a\nb", "a\x00", "\x1b[31m"]),
    ("TEXT_PATTERN", ["line one\r\nline two\tend"], ["a\x00b", "a\x0bb", "a\x7fb"]),
    ("SIZE_PATTERN", ["500M", "2G", "1.5G", "1048576", " 2 GiB ", "unlimited", "none", "10kb"],
     ["2X", "-1", "G", "1..2", "1e9"]),
])
def test_patterns_admit_what_the_services_take(
    name: str, accepted: list[str], refused: list[str]
) -> None:
    from panel.api import schemas

    regex = re.compile(getattr(schemas, name))
    assert [v for v in accepted if not regex.fullmatch(v)] == []
    assert [v for v in refused if regex.fullmatch(v)] == []


@pytest.mark.parametrize("path", [
    "/admin/revisions/2147483648/diff", "/admin/revisions/99999999999999999999999/diff",
    "/admin/revisions/0/diff", "/packages/9223372036854775808",
    "/admin/revisions/{id}/diff?against=99999999999999999999999",
    "/admin/revisions/{id}/diff?against=-4",
])
def test_ids_past_the_database_range_are_not_found(
    admin: t.Any, session_factory: t.Any, path: str
) -> None:
    from mailadmin.db import transaction
    from mailadmin.models import ConfigRevision, utcnow

    with transaction(session_factory) as s:
        revision = ConfigRevision(created_at=utcnow(), created_by="t", mode="files",
                                  dovecot_version="2.3", state="applied", checksum="0" * 64,
                                  files="{}")
        s.add(revision)
        s.flush()
        revision_id = revision.id
    assert admin.get(f"/admin/revisions/{revision_id}/diff").status_code == 200
    assert admin.get(path.format(id=revision_id)).status_code == 404


@pytest.mark.parametrize("path", ["/tokens/99999999999999999999/revoke",
                                  "/admin/revisions/99999999999999999999/rollback",
                                  "/packages/99999999999999999999/delete"])
def test_posts_to_ids_past_the_range_are_not_found(admin: t.Any, path: str) -> None:
    # No route matches, so not even the CSRF check (400) is reached.
    assert admin.post(path).status_code == 404
