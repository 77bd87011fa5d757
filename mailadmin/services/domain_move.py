"""Moving a domain to another mail node: the rules, and the switch-over.

A move (`mailadmin.workers.domain_mover.move_domain` runs it) is three steps, each its own
transaction or none:

1. `plan_move` (read only): the server admin only; the domain must be verified (a pending
   domain has no mail anywhere yet), on a known node, and the target another known node.
   It lists the mailboxes to copy and the doveadm servers of both nodes.
2. The copy, outside any transaction: every mailbox, pass after pass, until a pass copies
   nothing new (`mailadmin.mailstack.doveadm`). A failure ends the move here: nothing is
   switched, and the error names the mailbox.
3. `switch_node`: ``domains.node_id`` to the target in one transaction, with its audit event;
   it is a configuration change, so every node re-renders (logins and LMTP now go to the
   target). Then one last pass per mailbox catches mail that reached the source while the
   nodes switched.

A domain whose ``node_id`` is NULL (a single-server install that has since grown nodes) is on
no node yet as far as the database knows; the caller names its node (`source`).
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import Conflict, MailadminError, NotFound, ValidationError
from ..mailstack.doveadm import Endpoint
from ..models import Domain, Mailbox, MailNode
from .audit import record_event
from .changes import mark_changed
from .context import Actor
from .scope import get_domain, require_admin
from .server import get_server_settings


class MoveFailed(MailadminError):
    """The copy failed: the domain stays where it was (the message says which mailbox)."""

    code = "domain_move_failed"


@dataclasses.dataclass(frozen=True)
class MovePlan:
    domain: str
    domain_id: int
    source: str
    target: str
    source_endpoint: Endpoint
    target_endpoint: Endpoint
    #: Every mailbox of the domain, in address order.
    mailboxes: tuple[str, ...]
    #: The panel's configuration folder: its dovecot.conf gives the local doveadm the
    #: password of the nodes' doveadm servers.
    config_dir: str


def _node(session: Session, name: str, field: str) -> MailNode:
    node = session.scalars(select(MailNode).where(MailNode.name == name)).first()
    if node is None:
        raise NotFound(f"No mail node named {name}.", field=field)
    return node


def plan_move(session: Session, actor: Actor, domain: str, to: str, *,
              source: str | None = None) -> MovePlan:
    """Check that `domain` may move to node `to` and say what the copy needs."""
    require_admin(actor, "moves domains between mail nodes")
    row = get_domain(session, actor, domain, field="domain")
    if row.pending:
        raise ValidationError(f"{row.name} is still pending verification: it has no mail "
                              "on any node yet.", field="domain")
    target = _node(session, to, "to")
    if row.node_id is not None:
        current = session.get(MailNode, row.node_id)
        assert current is not None  # a foreign key
        if source is not None and source != current.name:
            raise ValidationError(f"{row.name} is on {current.name}, not on {source}.",
                                  field="source")
    elif source is None:
        raise ValidationError(f"{row.name} names no mail node yet (a single-server domain): "
                              "say which node holds its mail.", field="source")
    else:
        current = _node(session, source, "source")
    if current.id == target.id:
        raise Conflict(f"{row.name} is already on {target.name}.", field="to")
    from ..mailstack import settings_from_server_settings

    settings = get_server_settings(session)
    port = settings.doveadm_port
    config_dir = settings_from_server_settings(settings).config_dir
    mailboxes = tuple(f"{local}@{row.name}" for local in session.scalars(
        select(Mailbox.local_part).where(Mailbox.domain_id == row.id)
        .order_by(Mailbox.local_part)))
    return MovePlan(
        domain=row.name, domain_id=row.id, source=current.name, target=target.name,
        source_endpoint=Endpoint(current.address, port),
        target_endpoint=Endpoint(target.address, port),
        mailboxes=mailboxes, config_dir=config_dir)


def switch_node(session: Session, actor: Actor, plan: MovePlan, *, passes: int) -> Domain:
    """Put the domain on the plan's target node (after the copy), with its audit event.

    Refuses (Conflict) when the domain was changed meanwhile: moved by someone else, or
    given a mailbox the copy did not include.
    """
    require_admin(actor, "moves domains between mail nodes")
    row = session.scalars(select(Domain).where(Domain.id == plan.domain_id)
                          .with_for_update()).first()
    if row is None:
        raise NotFound(f"{plan.domain} was removed during the move; nothing switched.")
    current = session.get(MailNode, row.node_id) if row.node_id is not None else None
    if (current.name if current else plan.source) != plan.source:
        raise Conflict(f"{plan.domain} moved to {current.name if current else '?'} during "
                       "the copy; nothing switched.")
    now_boxes = tuple(f"{local}@{row.name}" for local in session.scalars(
        select(Mailbox.local_part).where(Mailbox.domain_id == row.id)
        .order_by(Mailbox.local_part)))
    if now_boxes != plan.mailboxes:
        raise Conflict(f"The mailboxes of {plan.domain} changed during the copy; nothing "
                       "switched. Move it again.")
    target = _node(session, plan.target, "to")
    row.node_id = target.id
    mark_changed(session)  # every node re-renders: the domain's mail now lives on the target
    record_event(session, actor, "domain.move", object_type="domain", object_id=row.id,
                 object_label=row.name, customer_id=row.owner_id,
                 before={"node": plan.source},
                 after={"node": plan.target, "mailboxes": len(plan.mailboxes),
                        "passes": passes})
    session.flush()
    return row
