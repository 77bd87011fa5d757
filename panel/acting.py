"""Acting as a customer: a reseller or the server admin works in one customer's account.

The session holds the customer's id under `ACTING_AS_KEY`; `auth.current_actor()` hands every
request's actor to `acting_actor`, which turns it into `resellers.acting_actor(...)` (checked
again on each request). While acting, the seller pages send the user to the acting page, which
says whom it is acting as and has the button back (the routes are in `panel.customers`).
"""

from __future__ import annotations

from flask import session

from mailadmin.errors import MailadminError
from mailadmin.services import resellers
from mailadmin.services.context import Actor

from . import db

#: Session keys: the id and the name of the customer being acted as.
ACTING_AS_KEY = "acting_as_customer"
ACTING_AS_NAME_KEY = "acting_as_name"


def is_acting() -> bool:
    return session.get(ACTING_AS_KEY) is not None


def acting_name() -> str | None:
    name = session.get(ACTING_AS_NAME_KEY)
    return name if isinstance(name, str) else None


def acting_actor(actor: Actor) -> Actor:
    """`actor` acting as the customer in the session; back to itself if that is no longer
    allowed (the customer was deleted or moved)."""
    customer_id = session.get(ACTING_AS_KEY)
    if not isinstance(customer_id, int):
        return actor
    try:
        return resellers.acting_actor(db.session(), actor, customer_id)
    except MailadminError:
        session.pop(ACTING_AS_KEY, None)
        session.pop(ACTING_AS_NAME_KEY, None)
        return actor


def begin(acting: Actor) -> None:
    """Remember in the session that the user now acts as `acting.acting_as`."""
    session[ACTING_AS_KEY] = acting.customer_id
    session[ACTING_AS_NAME_KEY] = acting.acting_as


def end() -> None:
    session.pop(ACTING_AS_KEY, None)
    session.pop(ACTING_AS_NAME_KEY, None)
