"""The CSV import and export on the customer's mailboxes page: CSRF, size limit, progress
status, tenant boundaries."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import typing as t
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.hashing import verify_mailbox_password
from mailadmin.models import Domain, Mailbox
from mailadmin.services import domains, mailboxes
from mailadmin.services.context import Actor

from .web import csrf_token, sign_in

PANEL_PASSWORD = "correct horse 9"
BOX_PASSWORD = "Tr0ub4dor&3-horse"


def _world(factory: sessionmaker[Session], make_user: t.Any) -> None:
    make_user("alice")
    make_user("bert")
    op = Actor.operator()
    with transaction(factory) as s:
        domains.add_domain(s, op, "alice.example", customer="alice")
        domains.add_domain(s, op, "bert.example", customer="bert")
        mailboxes.create_mailbox(s, op, "info@alice.example", BOX_PASSWORD)
        mailboxes.create_mailbox(s, op, "boss@bert.example", BOX_PASSWORD)


def _upload(client: t.Any, text: str | bytes, *, dry_run: bool = False,
            name: str = "boxes.csv") -> t.Any:
    token = csrf_token(client.get("/mailboxes/import").get_data(as_text=True))
    raw = text.encode() if isinstance(text, str) else text
    data: dict[str, t.Any] = {"csrf_token": token, "csv_file": (io.BytesIO(raw), name)}
    if dry_run:
        data["dry_run"] = "y"
    return client.post("/mailboxes/import", data=data, content_type="multipart/form-data")


def _finished(client: t.Any, url: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        html = client.get(url).get_data(as_text=True)
        if 'http-equiv="refresh"' not in html or time.monotonic() > deadline:
            return html
        assert "<progress" in html and "done" in html  # the status while it runs
        time.sleep(0.05)


def test_customer_imports_a_csv_and_sees_the_result(
    client: t.Any, session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    _world(session_factory, make_user)
    sign_in(client, "alice", PANEL_PASSWORD)
    assert "Import CSV" in client.get("/mailboxes").get_data(as_text=True)
    csv_text = (f"address,password,quota,forwarders\n"
                f"new@alice.example,{BOX_PASSWORD},300M,\n"
                "team@alice.example,,,info@alice.example new@alice.example\n")
    checked = _upload(client, csv_text, dry_run=True)
    assert checked.status_code == 302
    html = _finished(client, checked.headers["Location"])
    assert "Nothing was changed" in html and "would create" in html
    with session_factory() as s:
        assert s.scalars(select(Mailbox).where(Mailbox.local_part == "new")).first() is None

    started = _upload(client, csv_text)
    assert started.status_code == 302
    html = _finished(client, started.headers["Location"])
    assert "1 domain(s) imported, 0 refused" in html, html
    with session_factory() as s:
        box = s.scalars(select(Mailbox).where(Mailbox.local_part == "new")).one()
        assert verify_mailbox_password(BOX_PASSWORD, box.password_hash)
        assert box.quota == 300 * 1024**2
    again = _finished(client, _upload(client, csv_text).headers["Location"])
    assert "Nothing to change." in again


def test_the_import_refuses_another_customers_domain_and_hides_jobs(
    app: t.Any, session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    _world(session_factory, make_user)
    alice, bert = app.test_client(), app.test_client()
    sign_in(alice, "alice", PANEL_PASSWORD)
    sign_in(bert, "bert", PANEL_PASSWORD)
    started = _upload(alice, f"address,password\nboss@bert.example,{BOX_PASSWORD}-new\n"
                             f"intruder@bert.example,{BOX_PASSWORD}\n")
    url = started.headers["Location"]
    html = _finished(alice, url)
    assert "There is no domain &#39;bert.example&#39; in your account." in html, html
    with session_factory() as s:
        boss = s.scalars(select(Mailbox).join(Domain).where(
            Mailbox.local_part == "boss", Domain.name == "bert.example")).one()
        assert verify_mailbox_password(BOX_PASSWORD, boss.password_hash)
        assert s.scalars(select(Mailbox).where(Mailbox.local_part == "intruder")).first() is None
    # bert cannot watch alice's job: not found, not forbidden
    assert bert.get(url).status_code == 404
    # the export holds alice's mailboxes and nobody else's, and is not cached
    exported = alice.get("/mailboxes/export.csv")
    body = exported.get_data(as_text=True)
    assert exported.headers["Cache-Control"] == "no-store"
    assert "info@alice.example,{SHA512-CRYPT}" in body and "bert.example" not in body


def test_upload_needs_csrf_and_has_a_size_limit(
    client: t.Any, session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    _world(session_factory, make_user)
    sign_in(client, "alice", PANEL_PASSWORD)
    no_token = client.post("/mailboxes/import", content_type="multipart/form-data",
                           data={"csv_file": (io.BytesIO(b"address\n"), "a.csv")})
    assert no_token.status_code == 400
    big = "address,password\n" + "x" * (8 * 1024 * 1024)
    refused = _upload(client, big)
    assert refused.status_code == 422
    assert "larger than 8 MiB" in refused.get_data(as_text=True)
    not_text = _upload(client, b"address\n\xff\xfe\n")
    assert not_text.status_code == 422
    assert "not UTF-8 text" in not_text.get_data(as_text=True)


def test_the_status_page_works_from_another_panel_process(tmp_path: t.Any) -> None:
    """With `serve --workers N` the page polling an import may be answered by another process
    than the one running it: the job's progress and outcome are in the database."""
    from mailadmin import migrate
    from mailadmin.db import make_engine, make_session_factory
    from mailadmin.models import Role
    from mailadmin.services import accounts
    from panel import create_app

    url = f"sqlite:///{tmp_path / 'panel.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    with transaction(make_session_factory(engine)) as s:
        accounts.create_panel_user(s, Actor.operator(), "alice", PANEL_PASSWORD, Role.CUSTOMER)
        domains.add_domain(s, Actor.operator(), "alice.example", customer="alice")
    engine.dispose()
    config = {"INSTANCE_PATH": str(tmp_path / "instance"), "DATABASE_URL": url,
              "SECRET_KEY": "one key for both processes"}
    first = create_app(config).test_client()
    sign_in(first, "alice", PANEL_PASSWORD)
    started = _upload(first, f"address,password\nnew@alice.example,{BOX_PASSWORD}\n")
    html = _finished(first, started.headers["Location"])
    assert "Finished: 1 domain(s) imported, 0 refused." in html, html
    # another process knows nothing of the job but what the database holds
    cookies = {cookie.key: cookie.value for cookie in first._cookies.values()}
    script = (
        "import json, sys\n"
        "from panel import create_app\n"
        "config, cookies, url = json.loads(sys.argv[1])\n"
        "client = create_app(config).test_client()\n"
        "for key, value in cookies.items():\n"
        "    client.set_cookie(key, value)\n"
        "response = client.get(url)\n"
        "print(response.status_code)\n"
        "print(response.get_data(as_text=True))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script,
         json.dumps([config, cookies, started.headers["Location"]])],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    status, _, page = result.stdout.partition("\n")
    assert status == "200", result.stdout + result.stderr
    assert "Finished: 1 domain(s) imported, 0 refused." in page
    assert "new@alice.example" in page
