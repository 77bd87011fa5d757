"""Which mail node a new domain lives on (issue 19): the least-loaded one, or the admin's pick.

With no `MailNode` rows the install is a single server and a domain's ``node_id`` stays NULL.
Otherwise a new domain goes to the node with the fewest mailboxes, then the fewest domains,
then the first name: a new node fills up first. Customers never choose (nor see) a node.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import NotFound
from ..models import Domain, MailNode
from .context import Actor
from .scope import require_admin


def least_loaded_node(session: Session) -> MailNode | None:
    """The node a new domain goes to, or None when there are no nodes (a single server)."""
    # the per-domain counters (services.counters), not a count over every mailbox row
    load = (select(Domain.node_id, func.sum(Domain.mailbox_count).label("mailboxes"),
                   func.count(Domain.id).label("domains"))
            .where(Domain.node_id.is_not(None))
            .group_by(Domain.node_id).subquery())
    query = (
        select(MailNode)
        .outerjoin(load, load.c.node_id == MailNode.id)
        .where(MailNode.role == "mail")
        .order_by(func.coalesce(load.c.mailboxes, 0), func.coalesce(load.c.domains, 0),
                  MailNode.name)
        .limit(1)
    )
    return session.scalars(query).first()


def place_domain(session: Session, actor: Actor, node: str | None = None) -> MailNode | None:
    """The node for a new domain: `node` when the admin names one (nobody else may), else
    the least-loaded node; None on a single server."""
    if node is None:
        return least_loaded_node(session)
    require_admin(actor, "chooses the mail node of a domain")
    found = session.scalars(select(MailNode).where(MailNode.name == node)).first()
    if found is None:
        raise NotFound(f"No mail node named {node}.")
    return found


def domains_on_nodes(session: Session) -> bool:
    """Whether some domain lives on a mail node: then each node renders its own files (it
    proxies what the others hold), and only the node runners apply (`services.stack`)."""
    return session.scalar(select(Domain.id).where(Domain.node_id.is_not(None)).limit(1)) \
        is not None
