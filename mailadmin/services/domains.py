"""Mail domains: add, remove, defaults for new mailboxes, and the default (catch-all) address."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import Conflict, ValidationError
from ..models import CatchAllAction, Domain, Forwarder, Mailbox, PanelUser
from ..names import (
    domain_to_unicode,
    normalize_address,
    normalize_domain,
    refuse_reserved_domain,
    split_loosely,
)
from ..protocols import Protocol
from . import dkim_keys, domain_ownership, placement
from . import limits as package_limits
from .audit import record_event
from .context import Actor
from .pagination import Page, clamp, paginate
from .scope import customer_ids_query, get_domain, resolve_customer

# What Postfix sends back to the sender: one printable line, nothing a map or a reply parser
# would read as structure.
REJECT_REASON_PATTERN = re.compile(r"^[A-Za-z0-9 .,;:!?()'/-]{1,200}$")
DEFAULT_REJECT_REASON = "No such user here"


@dataclass(frozen=True)
class DomainRow:
    id: int
    name: str
    unicode_name: str
    owner: str
    mailboxes: int
    forwarders: int
    catchall_action: str
    catchall_target: str | None
    #: Not verified yet: the mail servers do not know the domain (services.domain_ownership).
    pending: bool = False


def _state(domain: Domain) -> dict[str, object]:
    return {
        "name": domain.name,
        "default_quota": domain.default_quota,
        "default_imap": domain.default_imap,
        "default_pop3": domain.default_pop3,
        "default_smtp": domain.default_smtp,
        "catchall_action": domain.catchall_action,
        "catchall_reject_reason": domain.catchall_reject_reason,
        "catchall_target": domain.catchall_target,
        "allow_self_forwarding": domain.allow_self_forwarding,
        "allow_self_autoresponder": domain.allow_self_autoresponder,
    }


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    domain: Domain,
    before: dict[str, object] | None,
    after: dict[str, object] | None,
) -> None:
    owner = session.get(PanelUser, domain.owner_id)
    record_event(
        session,
        actor,
        action,
        object_type="domain",
        object_id=domain.id,
        object_label=domain.name,
        customer_id=domain.owner_id,
        reseller_id=owner.parent_id if owner else None,
        before=before,
        after=after,
    )


def add_domain(session: Session, actor: Actor, name: str, *, customer: str | None = None,
               node: str | None = None) -> Domain:
    """Add a domain to a customer (the actor itself when it is a customer).

    With mail nodes, the domain lives on the least-loaded one (`placement.place_domain`);
    only the server admin may name the `node`.

    Raises InvalidName, Conflict (hosted already, by anyone; or a subdomain or parent of
    another customer's domain), ValidationError (deny list), LimitReached, NotFound. With
    domain verification on, the domain starts pending (see services.domain_ownership).
    """
    ascii_name = refuse_reserved_domain(normalize_domain(name), field="name")
    if node is not None:
        placement.place_domain(session, actor, node)  # refuses anyone but the admin first
    owner = resolve_customer(session, actor, customer)
    limits = package_limits.limits_for(session, owner)
    if session.scalars(select(Domain.id).where(Domain.name == ascii_name)).first() is not None:
        raise Conflict(
            f"The domain {domain_to_unicode(ascii_name)} is already hosted on this server.",
            field="name",
        )
    domain_ownership.check_claim(session, actor, ascii_name, owner)
    package_limits.check_new_domain(session, owner, limits)
    placed = placement.place_domain(session, actor, node)
    domain = Domain(
        name=ascii_name,
        owner_id=owner.id,
        default_quota=None,
        default_imap=Protocol.IMAP in limits.default_protocols,
        default_pop3=Protocol.POP3 in limits.default_protocols,
        default_smtp=Protocol.SMTP in limits.default_protocols,
        catchall_action=CatchAllAction.REJECT.value,
        allow_self_forwarding=True,
        allow_self_autoresponder=True,
        created_at=actor.now(),
        node_id=placed.id if placed is not None else None,
    )
    domain_ownership.start_verification(session, actor, domain)
    session.add(domain)
    session.flush()
    _audit(session, actor, "domain.create", domain, None, _state(domain))
    return domain


def show_domain(session: Session, actor: Actor, name: str) -> Domain:
    """A domain the actor manages (Unicode or ASCII name); NotFound otherwise."""
    return get_domain(session, actor, name, field="name")


def remove_domain(session: Session, actor: Actor, name: str, *, confirm: str | None = None) -> None:
    """Remove a domain that has no mailboxes and no forwarders left.

    `confirm`, when given (the panel's form asks for it), must repeat the domain's name, in
    ASCII or Unicode. Raises ValidationError, Conflict, NotFound.
    """
    domain = get_domain(session, actor, name, field="name")
    if confirm is not None:
        typed = confirm.strip().lower().rstrip(".")
        if typed not in {domain.name, domain_to_unicode(domain.name)}:
            raise ValidationError(
                f"Type {domain_to_unicode(domain.name)} to confirm.", field="confirm"
            )
    mailboxes = (
        session.scalar(
            select(func.count()).select_from(Mailbox).where(Mailbox.domain_id == domain.id)
        )
        or 0
    )
    forwarders = (
        session.scalar(
            select(func.count()).select_from(Forwarder).where(Forwarder.domain_id == domain.id)
        )
        or 0
    )
    if mailboxes or forwarders:
        raise Conflict(
            f"{domain_to_unicode(domain.name)} still has {mailboxes} mailbox(es) and "
            f"{forwarders} forwarder(s); remove them first."
        )
    before = _state(domain)
    dkim_keys.forget_keys(session, actor, domain)
    _audit(session, actor, "domain.delete", domain, before, None)
    session.delete(domain)
    session.flush()


def set_domain_defaults(
    session: Session,
    actor: Actor,
    name: str,
    *,
    quota: int | None,
    imap: bool,
    pop3: bool,
    smtp: bool,
) -> Domain:
    """Defaults for new mailboxes of the domain; they must fit the package."""
    domain = get_domain(session, actor, name, field="name")
    owner = session.get(PanelUser, domain.owner_id)
    assert owner is not None
    limits = package_limits.limits_for(session, owner)
    package_limits.check_protocols(
        limits, {Protocol.IMAP: imap, Protocol.POP3: pop3, Protocol.SMTP: smtp}
    )
    if quota is not None:
        if quota == 0 and (not limits.allow_unlimited_quota or limits.max_total_quota is not None):
            raise ValidationError("Your package does not allow unlimited mailboxes.", field="quota")
        if limits.max_quota_per_mailbox is not None and quota > limits.max_quota_per_mailbox:
            raise ValidationError(
                "The default quota is larger than your package allows per mailbox.", field="quota"
            )
    before = _state(domain)
    domain.default_quota = quota
    domain.default_imap, domain.default_pop3, domain.default_smtp = imap, pop3, smtp
    session.flush()
    _audit(session, actor, "domain.defaults", domain, before, _state(domain))
    return domain


def set_self_service(
    session: Session,
    actor: Actor,
    name: str,
    *,
    allow_forwarding: bool,
    allow_autoresponder: bool,
) -> Domain:
    """Whether the domain's mailbox users may set their own forwarding and autoresponder."""
    domain = get_domain(session, actor, name, field="name")
    before = _state(domain)
    domain.allow_self_forwarding = allow_forwarding
    domain.allow_self_autoresponder = allow_autoresponder
    session.flush()
    _audit(session, actor, "domain.self_service", domain, before, _state(domain))
    return domain


def set_catchall(
    session: Session,
    actor: Actor,
    name: str,
    action: str,
    *,
    reject_reason: str | None = None,
    target: str | None = None,
) -> Domain:
    """What happens to mail for addresses of the domain that do not exist.

    reject: refused at RCPT with `reject_reason`; discard: accepted and dropped;
    deliver: handed to `target`, an address, or ``@other.example`` for the same name at
    another domain (cPanel's "domain forwarder"; Postfix rewrites ``@domain`` results so).
    """
    domain = get_domain(session, actor, name, field="name")
    try:
        chosen = CatchAllAction(action)
    except ValueError:
        raise ValidationError("Choose reject, discard or deliver.", field="action") from None
    before = _state(domain)
    domain.catchall_reject_reason = None
    domain.catchall_target = None
    if chosen is CatchAllAction.REJECT:
        reason = (reject_reason or DEFAULT_REJECT_REASON).strip()
        if not REJECT_REASON_PATTERN.fullmatch(reason):
            raise ValidationError(
                "The reason is one line of up to 200 letters, digits, spaces and "
                ". , ; : ! ? ( ) ' / -",
                field="reject_reason",
            )
        domain.catchall_reject_reason = reason
    elif chosen is CatchAllAction.DELIVER:
        if not target:
            raise ValidationError("Give the address that receives the mail.", field="target")
        if target.strip().startswith("@"):
            domain.catchall_target = _domain_forward(session, domain, target.strip()[1:])
        else:
            address = normalize_address(target, field="target")
            if split_loosely(address) == ("", domain.name):
                raise ValidationError("Give a whole address.", field="target")
            domain.catchall_target = address
    domain.catchall_action = chosen.value
    session.flush()
    _audit(session, actor, "domain.catchall", domain, before, _state(domain))
    return domain


def _domain_forward(session: Session, domain: Domain, other: str) -> str:
    """The target ``@other`` of a domain forward, refusing itself and a forward back."""
    other = normalize_domain(other, field="target")
    if other == domain.name:
        raise ValidationError("A domain cannot forward to itself.", field="target")
    back = session.scalars(select(Domain.id).where(
        Domain.name == other, Domain.catchall_action == CatchAllAction.DELIVER.value,
        Domain.catchall_target == f"@{domain.name}")).first()
    if back is not None:
        raise Conflict(f"{domain_to_unicode(other)} forwards to "
                       f"{domain_to_unicode(domain.name)} already: that would be a loop.",
                       field="target")
    return f"@{other}"


def list_domains(
    session: Session, actor: Actor, *, search: str | None = None, page: int = 1, per_page: int = 50
) -> Page[DomainRow]:
    mailbox_count = Domain.mailbox_count  # kept by services.counters
    forwarder_count = (
        select(func.count())
        .select_from(Forwarder)
        .where(Forwarder.domain_id == Domain.id)
        .correlate(Domain)
        .scalar_subquery()
    )
    query = (
        select(Domain, PanelUser.username, mailbox_count, forwarder_count)
        .join(PanelUser, PanelUser.id == Domain.owner_id)
        .where(Domain.owner_id.in_(customer_ids_query(actor).scalar_subquery()))
        .order_by(Domain.name)
    )
    if search:
        try:
            prefix = normalize_domain(search) if "." in search else search.strip().lower()
        except Exception:
            prefix = search.strip().lower()
        query = query.where(Domain.name.startswith(prefix, autoescape=True))
    page_ = paginate(session, query, *clamp(page, per_page))
    rows = [
        DomainRow(
            id=domain.id,
            name=domain.name,
            unicode_name=domain_to_unicode(domain.name),
            owner=owner,
            mailboxes=mailboxes,
            forwarders=forwarders,
            catchall_action=domain.catchall_action,
            catchall_target=domain.catchall_target,
            pending=domain.pending,
        )
        for domain, owner, mailboxes, forwarders in page_.items
    ]
    return Page(items=rows, page=page_.page, per_page=page_.per_page, total=page_.total)


def domain_names_for(session: Session, actor: Actor, *, limit: int = 1000) -> list[str]:
    """The domain names the actor manages (for selectors; the first `limit` by name)."""
    return list(
        session.scalars(
            select(Domain.name)
            .where(Domain.owner_id.in_(customer_ids_query(actor).scalar_subquery()))
            .order_by(Domain.name)
            .limit(limit)
        )
    )


def is_hosted(session: Session, name: str) -> bool:
    """Whether a domain of this name is set up on this server, whoever owns it (a fact its MX
    record tells anyone); for diagnosis wording only, never for access."""
    try:
        normal = normalize_domain(name)
    except ValidationError:
        return False
    return session.scalars(select(Domain.id).where(Domain.name == normal)).first() is not None
