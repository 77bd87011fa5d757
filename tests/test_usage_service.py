"""Usage service without mail servers: doveadm's output parsed, refreshes scoped to the actor,
sums per domain and customer, the warning levels."""

from __future__ import annotations

import typing as t
from collections.abc import Mapping

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import NotFound
from mailadmin.mailstack.usage import Usage, UsageUnavailable, parse_quota_get
from mailadmin.models import Mailbox
from mailadmin.services import domains, mailboxes
from mailadmin.services import usage as usage_service
from mailadmin.services.context import Actor

from . import factories

OP = Actor.operator()


def actor(factory: sessionmaker[Session], name: str) -> Actor:
    return factories.actor(factory, name, channel="cli", source=None)

PASSWORD = "Tr0ub4dor&3-horse"

ALL = (
    "Username\tQuota name\tType\tValue\tLimit\t%\n"
    "a1@anne.test\tUser quota\tSTORAGE\t16\t-\t0\n"
    "a1@anne.test\tUser quota\tMESSAGE\t3\t-\t0\n"
    "b1@bert.test\tUser quota\tSTORAGE\t90\t100\t90\n"
    "b1@bert.test\tUser quota\tMESSAGE\t7\t-\t0\n"
    "b1@bert.test\tOther root\tSTORAGE\t999\t-\t0\n"
)


def test_parse_quota_get() -> None:
    parsed = parse_quota_get(ALL)
    assert parsed["a1@anne.test"] == Usage("a1@anne.test", 16 * 1024, 3, None, None)
    assert parsed["b1@bert.test"] == Usage("b1@bert.test", 90 * 1024, 7, 100 * 1024, None)
    one = parse_quota_get("Quota name\tType\tValue\tLimit\t%\n"
                          "User quota\tSTORAGE\t0\t-\t0\nUser quota\tMESSAGE\t0\t-\t0\n",
                          "x@y.test")
    assert one == {"x@y.test": Usage("x@y.test", 0, 0, None, None)}
    assert parse_quota_get("") == {}
    with pytest.raises(UsageUnavailable):
        parse_quota_get("something else entirely\n")


def test_levels() -> None:
    assert [usage_service.usage_level(p) for p in (None, 0, 79, 80, 94, 95, 100)] == [
        None, None, None, "warning", "warning", "critical", "critical"]


@pytest.fixture
def world(session_factory: sessionmaker[Session], make_user: t.Any) -> sessionmaker[Session]:
    make_user("anne", "customer")
    make_user("bert", "customer")
    with transaction(session_factory) as s:
        domains.add_domain(s, OP, "anne.test", customer="anne")
        domains.add_domain(s, OP, "bert.test", customer="bert")
        for address in ("a1@anne.test", "a2@anne.test", "b1@bert.test"):
            mailboxes.create_mailbox(s, OP, address, PASSWORD, quota=100 * 1024)
    return session_factory


class FakeDovecot:
    def __init__(self) -> None:
        self.asked: list[list[str] | None] = []

    def __call__(self, config_dir: str, addresses: list[str] | None) -> Mapping[str, Usage]:
        self.asked.append(addresses)
        everything = parse_quota_get(ALL)
        if addresses is None:
            return everything
        return {a: everything[a] for a in addresses if a in everything}


def usage_of(factory: sessionmaker[Session]) -> dict[str, tuple[int | None, int | None]]:
    with factory() as s:
        return {m.address: (m.usage_bytes, m.usage_messages) for m in s.scalars(select(Mailbox))}


def test_customer_refresh_is_scoped(world: sessionmaker[Session]) -> None:
    dovecot = FakeDovecot()
    with transaction(world) as s:
        report = usage_service.refresh_usage(s, actor(world, "anne"), reader=dovecot)
    assert dovecot.asked == [["a1@anne.test", "a2@anne.test"]]
    assert report.updated == 1 and report.not_known == ("a2@anne.test",)
    assert usage_of(world) == {"a1@anne.test": (16384, 3), "a2@anne.test": (None, None),
                               "b1@bert.test": (None, None)}
    with transaction(world) as s, pytest.raises(NotFound):
        usage_service.refresh_usage(s, actor(world, "anne"), address="b1@bert.test",
                                    reader=dovecot)


def test_admin_refresh_reads_all_at_once_with_progress(world: sessionmaker[Session]) -> None:
    dovecot = FakeDovecot()
    steps: list[tuple[int, int]] = []
    with transaction(world) as s:
        report = usage_service.refresh_usage(
            s, OP, reader=dovecot, progress=lambda done, total: steps.append((done, total)))
    assert dovecot.asked == [None] and report.updated == 2
    assert steps[0] == (0, 2) and steps[-1] == (2, 2)
    with world() as s:
        summary = usage_service.usage_summary(s, OP)
        anne_only = usage_service.usage_summary(s, actor(world, "anne"))
        bert_domain = usage_service.usage_summary(s, OP, domain="bert.test")
    sums = {d.name: (d.mailboxes, d.read, d.usage_bytes, d.usage_messages, d.quota)
            for d in summary.domains}
    assert sums == {"anne.test": (2, 1, 16384, 3, 200 * 1024),
                    "bert.test": (1, 1, 90 * 1024, 7, 100 * 1024)}
    assert [(c.name, c.usage_messages) for c in summary.customers] == [("anne", 3), ("bert", 7)]
    assert [d.name for d in anne_only.domains] == ["anne.test"] and not anne_only.mailboxes
    (box,) = bert_domain.mailboxes
    assert box.usage_percent == 90 and box.level == "warning"


def test_recalculate_is_scoped_and_recounts(world: sessionmaker[Session]) -> None:
    recounted: list[str] = []
    with transaction(world) as s:
        box = usage_service.recalculate(s, actor(world, "bert"), "b1@bert.test",
                                        reader=FakeDovecot(),
                                        recalc=lambda _dir, a: recounted.append(a))
        assert (box.usage_bytes, box.usage_messages) == (90 * 1024, 7)
    assert recounted == ["b1@bert.test"]
    with transaction(world) as s, pytest.raises(NotFound):
        usage_service.recalculate(s, actor(world, "anne"), "b1@bert.test",
                                  reader=FakeDovecot(), recalc=lambda _dir, a: None)


def test_dashboard_shows_usage_sums(app: t.Any, session_factory: t.Any, make_user: t.Any) -> None:
    from mailadmin.db import transaction
    from mailadmin.services import counters, domains, mailboxes
    from mailadmin.services.context import Actor

    from .web import sign_in

    make_user("dash", "customer")
    with transaction(session_factory) as s:
        domains.add_domain(s, Actor.operator(), "dash.example", customer="dash")
        box = mailboxes.create_mailbox(s, Actor.operator(), "a@dash.example", "Tr0ub4dor&3-horse",
                                       quota=1024**3)
        box.usage_bytes, box.usage_messages = 300 * 1024**2, 12
        # a hand edit of the rows: the per-domain counters are rebuilt from them
        s.flush()
        counters.recount(s, Actor.operator())
    client = app.test_client()
    sign_in(client, "dash", "correct horse 9")
    html = client.get("/dashboard").get_data(as_text=True)
    assert 'data-testid="usage-sums"' in html
    assert "dash.example" in html and "300 MiB" in html
