"""Per-request costs of serving pages, kept low without changing what a page says.

(Speed itself is measured in bench/serve_concurrency_bench.py; these tests pin the behaviour.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from flask import render_template_string, url_for

from .test_serve import free_port

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


def test_serve_stops_when_the_database_cannot_be_prepared(tmp_path: Path) -> None:
    """The migration runs in a child process (the server keeps none of its memory); its failure
    still stops `serve` with a message, before any port is opened."""
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o700)
    (instance / "mailadmin.db").write_bytes(b"this is not a SQLite database" * 100)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILADMIN_")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mailadmin"), "--instance", str(instance), "serve",
         "--port", str(free_port())],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert result.returncode == 1, result
    assert "Preparing the database failed" in result.stderr
    assert "not a database" in result.stderr  # the child's own error
    assert "mailadmin panel on" not in result.stdout


def test_serve_keeps_alembic_out_of_the_serving_process() -> None:
    """Alembic is loaded only by the child that migrates, not by the command's own imports."""
    code = ("import sys, mailadmin.cli.serve, mailadmin.workers.apply_watcher; "
            "print('alembic' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "False"


def test_the_gunicorn_master_keeps_no_database_connection(tmp_path: Path) -> None:
    """Workers are forked from the master at any time; a SQLite connection it held would be
    carried into them (see mailadmin/cli/serve.py). The watcher opens one only for a check."""
    from .test_serve_workers import children, serving, sign_in

    port = free_port()
    database = str(tmp_path / "instance" / "mailadmin.db")
    with serving(tmp_path / "instance", "--port", str(port), "--workers", "2") as (process, out):
        import http.cookiejar
        import urllib.request

        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        sign_in(opener, f"http://127.0.0.1:{port}", out)  # checks it lands on the dashboard

        def open_files(pid: int) -> set[str]:
            found = set()
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    found.add(os.readlink(fd))
                except OSError:
                    continue
            return found

        workers = children(process.pid)
        assert len(workers) == 2
        # a worker that served the sign-in keeps its pooled connection
        assert any(database in open_files(pid) for pid in workers)
        # the master: none, except for the instant of a watcher check
        samples = [database in open_files(process.pid) for _ in range(20)]
        assert samples.count(True) <= 2, samples
