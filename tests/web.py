"""Helpers for driving the panel over HTTP the way a browser does (real forms, real CSRF)."""

from __future__ import annotations

import re
import typing as t

from flask.testing import FlaskClient

CSRF_PATTERN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                          r'type="hidden" name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF_PATTERN.search(html)
    assert match, "page has no CSRF token"
    return match.group(1) or match.group(2)


def submit(
    client: FlaskClient, url: str, data: dict[str, t.Any], *, follow: bool = False,
    page: str | None = None,
) -> t.Any:
    """GET the page holding the form (or `page`), then POST the form with its CSRF token."""
    html = client.get(page or url).get_data(as_text=True)
    return client.post(url, data={**data, "csrf_token": csrf_token(html)}, follow_redirects=follow)


def sign_in(client: FlaskClient, username: str, password: str) -> t.Any:
    return submit(client, "/login", {"username": username, "password": password})
