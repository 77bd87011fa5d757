"""A domain forward (default address ``@other.domain``, what a cPanel domain forwarder becomes
on import) in SQL mode: Postfix reads the target from the ``mailsrv_domains`` view and hands
the mail to the same name at the other domain, without an apply."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from mailadmin.models import Domain, PanelUser
from tests.mailstack.conftest import eventually

from .conftest import SqlStack

pytestmark = pytest.mark.mailstack


def test_mail_for_a_forwarded_domain_reaches_the_same_name_there(stack: SqlStack) -> None:
    with stack.session() as s:
        owner = s.scalars(select(PanelUser.id).where(PanelUser.username == "customer1")).one()
        s.add(Domain(name="fwd-sql.test", owner_id=owner, catchall_action="deliver",
                     catchall_target="@example.test"))
        s.commit()
    try:
        subject = stack.send("someone@elsewhere.test", ["alice@fwd-sql.test"],
                             subject=f"domain forward {stack.backend}")
        assert eventually(lambda: subject in stack.inbox_subjects("alice@example.test"))
    finally:
        with stack.session() as s:
            s.execute(delete(Domain).where(Domain.name == "fwd-sql.test"))
            s.commit()
