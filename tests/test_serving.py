"""Per-request costs of serving pages, kept low without changing what a page says.

(Speed itself is measured in bench/serve_concurrency_bench.py; these tests pin the behaviour.)
"""

from __future__ import annotations

import typing as t

import pytest
from flask import render_template_string, url_for

ADDRESSES = [
    "info@shop.example",
    "first.last+tag@xn--bcher-kva.example",
    "o'neil&co@a-b.example",
    "a b/c?d#e%f@x.example",
    "müller@bücher.example",
]


@pytest.mark.parametrize("endpoint", [
    "mail.mailbox_detail", "mail.mailbox_devices", "diagnostics.login_test",
])
def test_url_pattern_builds_what_url_for_builds(app: t.Any, endpoint: str) -> None:
    with app.test_request_context("/mailboxes"):
        build = app.jinja_env.globals["url_pattern"](endpoint, "address")
        for address in ADDRESSES:
            assert build(address) == url_for(endpoint, address=address)
        # and from a template, as the mailbox list uses it
        assert render_template_string(
            "{% set u = url_pattern(e, 'address') %}{{ u(a) }}", e=endpoint, a=ADDRESSES[1]
        ) == url_for(endpoint, address=ADDRESSES[1])


def test_domain_names_are_decoded_once(app: t.Any) -> None:
    from mailadmin.names import domain_to_unicode

    assert domain_to_unicode("xn--bcher-kva.example") == "bücher.example"
    hits = domain_to_unicode.cache_info().hits
    assert domain_to_unicode("xn--bcher-kva.example") == "bücher.example"
    assert domain_to_unicode.cache_info().hits == hits + 1
