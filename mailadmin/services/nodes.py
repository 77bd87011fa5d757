"""Mail nodes: check-in, applying the configuration on a node, and every node's status.

`mailadmin node run` (see `mailadmin.workers.node_runner`) is the one process on a mail node
that writes the servers' files and reloads them. Each loop it checks in (`node_checkin`),
and when a change is pending it applies it (`apply_on_node`) while holding the node's row
lock: any number of runners or panel processes sharing the database never apply on one node
at the same time. While a runner has checked in recently, the panel's own watcher leaves
applying to it (`runner_active`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import Conflict, NotFound, ValidationError
from ..lab.sandbox import prepare_dirs
from ..mailstack.apply import Tools
from ..mailstack.snapshot import StackSettings, settings_from_server_settings
from ..models import Domain, Mailbox, MailNode, ServerSettings, utcnow
from ..names import UnsafeName, safe_domain
from .audit import record_event
from .context import Actor
from .scope import require_admin
from .server import get_server_settings
from .stack import (
    ApplyReport,
    Progress,
    apply_config_report,
    changes_pending,
    sandbox_stack_settings,
)

#: A runner that checked in this recently is taking care of applies.
RUNNER_FRESH = dt.timedelta(seconds=30)
_NODE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclasses.dataclass(frozen=True)
class NodeCheck:
    """What a runner needs to decide whether to apply, as of its check-in."""

    changed_at: dt.datetime | None
    applied_through: dt.datetime | None

    @property
    def pending(self) -> bool:
        return changes_pending(self.changed_at, self.applied_through)


@dataclasses.dataclass(frozen=True)
class NodeSandbox:
    """A node whose servers run from a sandbox folder (`mailadmin sandbox start --nodes`)
    instead of the server settings' paths: several nodes on one machine, each listening on
    its own loopback address with the same port base, as production nodes use the same
    ports on different hosts."""

    directory: str
    port_base: int


@dataclasses.dataclass(frozen=True)
class NodeStatus:
    name: str
    address: str
    role: str
    online: bool
    last_seen_at: dt.datetime | None
    applied_at: dt.datetime | None
    applied_revision_id: int | None
    applied_checksum: str | None
    #: Age in seconds of the newest change the node does not have yet (0 when current).
    lag_seconds: float
    current: bool
    last_error: str | None
    #: What lives on the node (new domains go to the one with the fewest mailboxes).
    domains: int = 0
    mailboxes: int = 0


def check_node_name(name: str) -> str:
    if not _NODE_NAME.fullmatch(name):
        raise ValidationError(
            "A node name is 1 to 63 characters of a-z, 0-9 and '-', not starting or ending "
            "with '-'.", field="name")
    return name


def check_node_address(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        pass
    try:
        return safe_domain(address)
    except UnsafeName:
        raise ValidationError("A node address is an IP address or a host name.",
                              field="address") from None


def _node(session: Session, name: str, *, lock: bool = False) -> MailNode:
    query = select(MailNode).where(MailNode.name == name)
    if lock:
        query = query.with_for_update()
    node = session.scalars(query).first()
    if node is None:
        raise NotFound(f"No mail node named {name}.")
    return node


def add_node(session: Session, actor: Actor, name: str, address: str) -> MailNode:
    """Register a node ahead of its runner (`mailadmin node add`), so domains can be placed
    on it; an existing node keeps its row (its address is updated)."""
    require_admin(actor, "adds mail nodes")
    name, address = check_node_name(name), check_node_address(address)
    node = session.scalars(select(MailNode).where(MailNode.name == name)).first()
    if node is None:
        node = MailNode(name=name, address=address, role="mail", created_at=actor.now())
        session.add(node)
        record_event(session, actor, "node.register", object_type="node", object_label=name,
                     after={"address": address})
    elif node.address != address:
        record_event(session, actor, "node.address", object_type="node", object_label=name,
                     before={"address": node.address}, after={"address": address})
        node.address = address
    session.flush()
    return node


def node_checkin(session: Session, actor: Actor, name: str, address: str) -> NodeCheck:
    """Register the node on its first check-in, note that its runner is alive, and say
    whether a change is waiting for it."""
    require_admin(actor, "runs mail nodes")
    name, address = check_node_name(name), check_node_address(address)
    node = session.scalars(select(MailNode).where(MailNode.name == name)).first()
    now = actor.now()
    if node is None:
        node = MailNode(name=name, address=address, role="mail")
        session.add(node)
        record_event(session, actor, "node.register", object_type="node", object_label=name,
                     after={"address": address})
    elif node.address != address:
        record_event(session, actor, "node.address", object_type="node", object_label=name,
                     before={"address": node.address}, after={"address": address})
        node.address = address
    node.last_seen_at = now
    settings = session.get(ServerSettings, 1)
    session.flush()
    return NodeCheck(settings.config_changed_at if settings else None, node.applied_through)


def node_settings(session: Session, node: MailNode,
                  sandbox: NodeSandbox | None = None) -> StackSettings:
    """What `node` renders for: the server settings' paths and ports (or its sandbox's, on
    its own address), and its name, so it proxies what other nodes hold (`render.routing`)."""
    if sandbox is None:
        return settings_from_server_settings(get_server_settings(session), node_name=node.name)
    try:
        listen = str(ipaddress.IPv4Address(node.address))
    except ValueError:
        raise ValidationError(f"A sandboxed node listens on an IPv4 address, not "
                              f"{node.address!r}.", field="address") from None
    settings = sandbox_stack_settings(session, sandbox.directory, sandbox.port_base,
                                      listen_address=listen, node_name=node.name,
                                      instance_name=f"mailadmin-{node.name}"[:31].rstrip("-"))
    prepare_dirs(settings)
    return settings


def apply_on_node(session: Session, actor: Actor, name: str, *,
                  progress: Progress | None = None, tools: Tools | None = None,
                  sandbox: NodeSandbox | None = None) -> ApplyReport:
    """Apply this node's configuration on it and record the outcome on its row.

    The node's row stays locked until the transaction ends, so two runners (or a runner and
    an operator's `mailadmin node run --once`) never apply on one node at the same time.
    """
    require_admin(actor, "runs mail nodes")
    node = _node(session, check_node_name(name), lock=True)
    # several nodes: each one's Dovecot answers the others' doveadm (domain moves, usage)
    several = (session.scalar(select(func.count(MailNode.id))) or 0) > 1
    report = apply_config_report(session, actor, progress=progress, tools=tools,
                                 settings=node_settings(session, node, sandbox),
                                 doveadm_address=node.address if several else None)
    revision = report.revision
    node.last_seen_at = actor.now()
    if revision.state == "applied":
        settings = session.get(ServerSettings, 1)
        node.applied_revision_id = revision.id
        node.applied_checksum = revision.checksum
        node.applied_at = actor.now()
        node.applied_through = settings.config_applied_at if settings else None
        node.last_error = None
    else:
        node.last_error = revision.validation_output or "apply failed"
    session.flush()
    return report


def runner_active(session: Session, now: dt.datetime | None = None) -> bool:
    """Whether some `mailadmin node run` checked in lately (then it applies, not the panel)."""
    cutoff = (now or utcnow()) - RUNNER_FRESH
    return session.scalar(
        select(MailNode.id).where(MailNode.last_seen_at >= cutoff).limit(1)) is not None


def list_nodes(session: Session, actor: Actor) -> list[NodeStatus]:
    require_admin(actor, "sees the mail nodes")
    now = actor.now()
    settings = session.get(ServerSettings, 1)
    changed = settings.config_changed_at if settings else None
    held_domains = dict(session.execute(
        select(Domain.node_id, func.count(Domain.id)).group_by(Domain.node_id)).all())
    held_mailboxes = dict(session.execute(
        select(Domain.node_id, func.count(Mailbox.id))
        .join(Mailbox, Mailbox.domain_id == Domain.id).group_by(Domain.node_id)).all())
    out = []
    for node in session.scalars(select(MailNode).order_by(MailNode.name)):
        current = not changes_pending(changed, node.applied_through)
        lag = 0.0 if current or changed is None else max(0.0, (now - changed).total_seconds())
        out.append(NodeStatus(
            name=node.name, address=node.address, role=node.role,
            online=node.last_seen_at is not None and now - node.last_seen_at <= RUNNER_FRESH,
            last_seen_at=node.last_seen_at, applied_at=node.applied_at,
            applied_revision_id=node.applied_revision_id,
            applied_checksum=node.applied_checksum, lag_seconds=lag, current=current,
            last_error=node.last_error, domains=held_domains.get(node.id, 0),
            mailboxes=held_mailboxes.get(node.id, 0)))
    return out


def apply_from_panel(session: Session, actor: Actor, *,
                     progress: Progress | None = None) -> ApplyReport:
    """The admin's "Apply now": refused while a node runner is online, since the runner then
    applies every change within moments and the panel process never touches the servers."""
    require_admin(actor, "can apply the mail server configuration")
    cutoff = actor.now() - RUNNER_FRESH
    online = list(session.scalars(
        select(MailNode.name).where(MailNode.last_seen_at >= cutoff).order_by(MailNode.name)))
    if online:
        raise Conflict(
            f"Nothing applied from the panel: the node runner on {', '.join(online)} applies "
            "every change within moments (see Mail nodes).")
    return apply_config_report(session, actor, progress=progress)
