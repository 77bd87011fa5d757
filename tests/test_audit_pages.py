"""The audit log pages: filters, each role's view, before/after, and the CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import typing as t

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import ValidationError
from mailadmin.models import AuditEvent
from mailadmin.services import audit, domains, mailboxes
from mailadmin.services.audit import AuditFilter
from mailadmin.services.context import Actor

from .factories import actor
from .web import sign_in

PASSWORD = "correct horse 9"
BOX_PASSWORD = "Tr0ub4dor&3-horse"
DAY1 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)
DAY2 = dt.datetime(2024, 3, 2, 9, 0, tzinfo=dt.UTC)
DAY3 = dt.datetime(2024, 3, 3, 9, 0, tzinfo=dt.UTC)
HOSTILE = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1)",
           "\tTAB", "\rCR"]


@pytest.fixture
def trail(make_user: t.Any, session_factory: sessionmaker[Session]) -> dict[str, Actor]:
    """root; rita sells to alice, rob to carl. Day 1 alice adds a domain, day 2 a mailbox and
    carl a domain, day 3 alice changes the mailbox; plus hostile labels in alice's trail."""
    make_user("root", "admin")
    make_user("rita", "reseller")
    make_user("rob", "reseller")
    make_user("alice", "customer", reseller="rita")
    make_user("carl", "customer", reseller="rob")
    f = session_factory
    with transaction(f) as s:
        domains.add_domain(s, actor(f, "alice", when=DAY1), "alice.example")
    with transaction(f) as s:
        mailboxes.create_mailbox(s, actor(f, "alice", when=DAY2), "info@alice.example", BOX_PASSWORD)
        domains.add_domain(s, actor(f, "carl", when=DAY2), "secret-carl.example")
    with transaction(f) as s:
        mailboxes.set_suspensions(s, actor(f, "alice", when=DAY3), "info@alice.example",
                                   login=True)
    alice = actor(f, "alice", when=DAY3)
    with transaction(f) as s:
        for label in HOSTILE:
            audit.record_event(s, alice, "note.test", object_type="note", object_label=label,
                               customer_id=alice.customer_id, after={"text": label})
        audit.record_event(s, actor(f, "rita", when=DAY3), "package.create", object_type="package",
                           object_label="Rita Plan", reseller_id=actor(f, "rita").user_id)
        audit.record_event(s, actor(f, "rob", when=DAY3), "package.create", object_type="package",
                           object_label="Rob Plan", reseller_id=actor(f, "rob").user_id)
    return {name: actor(f, name) for name in ("root", "rita", "rob", "alice", "carl")}


def labels(factory: sessionmaker[Session], who: Actor, **filters: str) -> list[str]:
    """The labels `who` sees with these filters, within 2024 (the accounts were made today)."""
    filters.setdefault("until", "2024-12-31")
    with factory() as s:
        page = audit.list_audit_events(s, who, per_page=200,
                                       filters=AuditFilter.from_text(**filters))
        return sorted({e.object_label for e in page.items} - set(HOSTILE))


# --- service --------------------------------------------------------------------------------


def test_each_role_reads_its_own_part(trail: dict[str, Actor], session_factory: t.Any) -> None:
    f = session_factory
    assert labels(f, trail["alice"]) == ["alice.example", "info@alice.example"]
    assert labels(f, trail["carl"]) == ["secret-carl.example"]
    assert labels(f, trail["rita"]) == ["Rita Plan", "alice.example", "info@alice.example"]
    assert labels(f, trail["rob"]) == ["Rob Plan", "secret-carl.example"]
    assert labels(f, trail["root"]) == ["Rita Plan", "Rob Plan", "alice.example",
                                        "info@alice.example", "secret-carl.example"]


def test_filters_combine(trail: dict[str, Actor], session_factory: t.Any) -> None:
    f, root = session_factory, trail["root"]
    assert labels(f, root, actor="CARL") == ["secret-carl.example"]
    assert labels(f, root, object="mailbox") == ["info@alice.example"]  # by type
    assert labels(f, root, object="plan") == ["Rita Plan", "Rob Plan"]  # by label
    assert labels(f, root, action="domain.create") == ["alice.example", "secret-carl.example"]
    assert labels(f, root, since="2024-03-02", until="2024-03-02") == [
        "info@alice.example", "secret-carl.example"]
    assert labels(f, root, since="2024-03-03T00:00") == [
        "Rita Plan", "Rob Plan", "info@alice.example"]
    assert labels(f, root, until="2024-03-01") == ["alice.example"]
    assert labels(f, root, actor="alice", action="mailbox", since="2024-03-03") == [
        "info@alice.example"]
    # LIKE wildcards are taken literally.
    assert labels(f, root, object="%") == []
    assert labels(f, root, action="_") == []
    # A filter cannot widen what a role sees.
    assert labels(f, trail["alice"], actor="carl") == []
    assert labels(f, trail["rita"], object="carl") == []
    with pytest.raises(ValidationError) as refused:
        AuditFilter.from_text(since="yesterday")
    assert refused.value.field == "since"


def test_csv_cells_cannot_become_formulas() -> None:
    for text in HOSTILE:
        assert audit.csv_safe(text) == "'" + text
    assert audit.csv_safe("alice.example") == "alice.example"
    assert audit.csv_safe(None) == "" and audit.csv_safe(3) == "3"
    assert audit.csv_safe(DAY1) == "2024-03-01T09:00"


# --- pages ----------------------------------------------------------------------------------


def signed_in(app: t.Any, name: str) -> t.Any:
    client = app.test_client()
    assert sign_in(client, name, PASSWORD).status_code == 302
    return client


def test_page_filters_and_shows_before_and_after(
    app: t.Any, trail: dict[str, Actor]
) -> None:
    alice = signed_in(app, "alice")
    page = alice.get("/audit/?action=mailbox.suspension").get_data(as_text=True)
    assert "info@alice.example" in page and "domain.create" not in page
    # Before and after of the change: login suspension went from off to on.
    assert "suspend_login:" in page
    assert 'text-decoration-line-through text-body-secondary">no</span> → yes' in page
    assert 'value="mailbox.suspension"' in page  # the filter stays in the form
    everything = alice.get("/audit/").get_data(as_text=True)
    assert "alice.example" in everything and "secret-carl" not in everything
    assert "Rita Plan" not in everything
    refused = alice.get("/audit/?since=31.12.2024")
    assert refused.status_code == 422
    assert "YYYY-MM-DD" in refused.get_data(as_text=True)
    empty = alice.get("/audit/?object=nothing-like-this").get_data(as_text=True)
    assert "Nothing matches this filter." in empty


def test_reseller_and_admin_pages(app: t.Any, trail: dict[str, Actor]) -> None:
    rita = signed_in(app, "rita").get("/audit/?since=2024-03-01").get_data(as_text=True)
    assert "alice.example" in rita and "Rita Plan" in rita
    assert "secret-carl" not in rita and "Rob Plan" not in rita
    root = signed_in(app, "root").get("/audit/?actor=carl").get_data(as_text=True)
    assert "secret-carl.example" in root and "alice.example" not in root


def test_pages_carry_the_filter(app: t.Any, trail: dict[str, Actor],
                                session_factory: t.Any) -> None:
    with transaction(session_factory) as s:
        for n in range(60):
            audit.record_event(s, trail["alice"], "note.many", object_type="note",
                               object_label=f"n{n}", customer_id=trail["alice"].customer_id)
    page = signed_in(app, "alice").get("/audit/?action=note.many").get_data(as_text=True)
    assert "60 events" in page
    assert "/audit/?page=2&amp;action=note.many" in page
    assert "/audit/export.csv?action=note.many" in page


def read_csv(response: t.Any) -> list[list[str]]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_export_streams_the_filtered_rows_safely(app: t.Any, trail: dict[str, Actor]) -> None:
    alice = signed_in(app, "alice")
    response = alice.get("/audit/export.csv")
    assert response.is_streamed
    rows = read_csv(response)
    assert rows[0] == list(audit.CSV_COLUMNS)
    label = rows[0].index("object_label")
    exported = [row[label] for row in rows[1:]]
    # Every hostile label comes out defused; nothing else is touched.
    for text in HOSTILE:
        assert "'" + text in exported
    assert not [cell for row in rows[1:] for cell in row if cell and cell[0] in "=+-@\t\r"]
    assert "alice.example" in exported and "info@alice.example" in exported
    filtered = read_csv(alice.get("/audit/export.csv?action=domain&until=2024-03-01"))
    assert [row[label] for row in filtered[1:]] == ["alice.example"]
    assert signed_in(app, "alice").get("/audit/export.csv?until=soon").status_code == 422


def test_a_customers_export_never_holds_another_tenants_events(
    app: t.Any, trail: dict[str, Actor], session_factory: t.Any
) -> None:
    with session_factory() as s:
        others = {e.id for e in s.scalars(select(AuditEvent)).all()
                  if e.customer_id != trail["alice"].customer_id}
        mine = len(s.scalars(select(AuditEvent).where(
            AuditEvent.customer_id == trail["alice"].customer_id)).all())
    assert others  # carl's, rob's and rita's own events exist
    alice = signed_in(app, "alice")
    for query in ("", "?actor=carl", "?object=carl", "?actor=rob", "?object=plan",
                  "?action=package", "?since=2000-01-01&until=2100-01-01"):
        text = alice.get("/audit/export.csv" + query).get_data(as_text=True)
        for secret in ("secret-carl", "carl", "rob", "Rob Plan", "Rita Plan"):
            assert secret not in text, (query, secret)
    rows = read_csv(alice.get("/audit/export.csv"))
    assert len(rows) - 1 == mine
    rita_rows = read_csv(signed_in(app, "rita").get("/audit/export.csv"))
    assert "secret-carl" not in str(rita_rows) and "Rob Plan" not in str(rita_rows)


def test_anonymous_is_sent_to_sign_in(client: t.Any, trail: dict[str, Actor]) -> None:
    for url in ("/audit/", "/audit/export.csv"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.location
