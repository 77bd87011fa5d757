"""Rules stated once: "customer suspended" and "server admin only", read by every caller."""

from __future__ import annotations

import typing as t

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import PermissionDenied
from mailadmin.models import PanelUser
from mailadmin.services import resellers, scope
from mailadmin.services import settings as settings_service
from mailadmin.services import stack as stack_service
from mailadmin.services.context import Actor


def test_mail_suspended_agrees_in_python_and_in_sql(
    session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    make_user("rita", role="reseller")
    make_user("carl", reseller="rita")
    make_user("cora", reseller="rita")
    make_user("ada", role="admin")
    with transaction(session_factory) as s:
        for name in ("rita", "carl", "ada"):  # suspend a reseller, a customer and an admin
            s.scalars(select(PanelUser).where(PanelUser.username == name)).one().is_suspended = True
    with session_factory() as s:
        in_python = {u.username for u in s.scalars(select(PanelUser)) if u.mail_suspended}
        in_sql = set(s.scalars(select(PanelUser.username).where(PanelUser.mail_suspended)))
        via_scope = set(s.scalars(select(PanelUser.username).where(
            PanelUser.id.in_(scope.suspended_customer_ids_query().scalar_subquery()))))
    # only a customer's suspension suspends mail; a suspended reseller or admin cannot sign in
    assert in_python == in_sql == via_scope == {"carl"}


@pytest.mark.parametrize("call", [
    lambda s, a: resellers.list_resellers(s, a),
    lambda s, a: settings_service.list_settings(s, a),
    lambda s, a: stack_service.list_revisions(s, a, 1),
])
def test_admin_only_services_refuse_resellers_and_acting_admins(
    session_factory: sessionmaker[Session], make_user: t.Any,
    call: t.Callable[[Session, Actor], object],
) -> None:
    rita = make_user("rita", role="reseller")
    carl = make_user("carl", reseller="rita")
    operator = Actor.operator()
    with session_factory() as s:
        call(s, operator)  # the admin may
        reseller = Actor.for_user(s.get(PanelUser, rita.id), channel="cli")
        with pytest.raises(PermissionDenied, match=r"^Only the server admin "):
            call(s, reseller)
        acting = operator.acting_for(s.get(PanelUser, carl.id))
        with pytest.raises(PermissionDenied, match=r"^Only the server admin "):
            call(s, acting)
