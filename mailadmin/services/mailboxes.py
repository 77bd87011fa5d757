"""Mailboxes: create, password, quota, protocols, suspensions, delete, list."""

from __future__ import annotations

import datetime as dt
import enum
import typing as t
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, or_, select, union_all
from sqlalchemy.orm import Session

from ..clientsetup import ClientSetup, build_setup
from ..errors import Conflict, InvalidName, MailadminError, NotFound, ValidationError
from ..hashing import hash_mailbox_password, validate_imported_hash
from ..models import Domain, Forwarder, Mailbox, PanelUser, Role
from ..names import (
    MAX_ADDRESS_LENGTH,
    domain_to_unicode,
    normalize_local_part,
    shown_domain,
    split_address,
    split_partial,
)
from ..passwords import check_password_policy
from ..protocols import Protocol
from . import changes, counters
from . import limits as package_limits
from .audit import record_event, record_events
from .context import Actor
from .pagination import Page, capped_count, clamp
from .scope import customer_ids_query, get_domain
from .server import get_server_settings

SORTS = {"address", "quota", "usage", "status", "created"}
#: The page sizes a list offers (any size up to pagination.MAX_PER_PAGE is accepted).
PAGE_SIZES = (25, 50, 100, 200)
#: Most mailboxes one bulk action changes: one page of the list at its largest size.
BULK_MAX = 200


class BulkAction(enum.StrEnum):
    SUSPEND = "suspend"
    RESUME = "resume"
    QUOTA = "quota"
    REMOVE = "remove"

    @property
    def label(self) -> str:
        return {
            "suspend": "Suspend (login, receiving and sending)",
            "resume": "Resume (lift every suspension)",
            "quota": "Set the quota",
            "remove": "Remove",
        }[self.value]



@dataclass(frozen=True)
class MailboxRow:
    id: int
    address: str
    unicode_address: str
    quota: int
    imap: bool
    pop3: bool
    smtp: bool
    suspend_login: bool
    suspend_incoming: bool
    suspend_outgoing: bool
    usage_bytes: int | None
    usage_read_at: dt.datetime | None
    usage_messages: int | None = None

    @property
    def usage_percent(self) -> int | None:
        if self.usage_bytes is None or not self.quota:
            return None
        return min(100, round(100 * self.usage_bytes / self.quota))


def _state(mailbox: Mailbox) -> dict[str, object]:
    return {
        "quota": mailbox.quota,
        Protocol.IMAP: mailbox.imap,
        Protocol.POP3: mailbox.pop3,
        Protocol.SMTP: mailbox.smtp,
        "suspend_login": mailbox.suspend_login,
        "suspend_incoming": mailbox.suspend_incoming,
        "suspend_outgoing": mailbox.suspend_outgoing,
    }


def _owner(session: Session, domain: Domain) -> PanelUser:
    owner = session.get(PanelUser, domain.owner_id)
    assert owner is not None
    return owner


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    mailbox: Mailbox,
    domain: Domain,
    before: dict[str, object] | None,
    after: dict[str, object] | None,
) -> None:
    owner = _owner(session, domain)
    record_event(
        session,
        actor,
        action,
        object_type="mailbox",
        object_id=mailbox.id,
        object_label=f"{mailbox.local_part}@{domain.name}",
        customer_id=owner.id,
        reseller_id=owner.parent_id,
        before=before,
        after=after,
    )


def get_mailbox(session: Session, actor: Actor, address: str, *, field: str = "address") -> Mailbox:
    """A mailbox the actor may manage. Raises InvalidName or NotFound."""
    local, domain_name = split_address(address, hosted=True, field=field)
    domain = get_domain(session, actor, domain_name, field=field)
    mailbox = session.scalars(
        select(Mailbox).where(Mailbox.domain_id == domain.id, Mailbox.local_part == local)
    ).one_or_none()
    if mailbox is None:
        raise NotFound(f"There is no mailbox {address!r} in your account.", field=field)
    return mailbox


def _new_mailbox_settings(
    domain: Domain,
    limits: package_limits.Limits,
    quota: int | None,
    imap: bool | None,
    pop3: bool | None,
    smtp: bool | None,
) -> tuple[dict[Protocol, bool], int]:
    """The protocols and quota of a new mailbox: unset ones from the domain, then the package.

    Raises LimitReached for an explicitly requested protocol the package does not include.
    """
    protocols = {
        Protocol.IMAP: domain.default_imap if imap is None else imap,
        Protocol.POP3: domain.default_pop3 if pop3 is None else pop3,
        Protocol.SMTP: domain.default_smtp if smtp is None else smtp,
    }
    # Defaults never grant what the package does not include; explicit requests are refused.
    for name, explicit in ((Protocol.IMAP, imap), (Protocol.POP3, pop3), (Protocol.SMTP, smtp)):
        if explicit is None and name not in limits.protocols:
            protocols[name] = False
    package_limits.check_protocols(limits, protocols)
    if quota is None:
        quota = domain.default_quota if domain.default_quota is not None else limits.default_quota
        if limits.max_quota_per_mailbox is not None:
            quota = (
                min(quota, limits.max_quota_per_mailbox) if quota else limits.max_quota_per_mailbox
            )
    return protocols, quota


def create_mailbox(
    session: Session,
    actor: Actor,
    address: str,
    password: str,
    *,
    quota: int | None = None,
    imap: bool | None = None,
    pop3: bool | None = None,
    smtp: bool | None = None,
    display_name: str | None = None,
) -> Mailbox:
    """Create a mailbox. Unset quota and protocols come from the domain, then the package.

    Raises InvalidName, WeakPassword, Conflict (address in use), LimitReached, NotFound.
    """
    local, domain_name = split_address(address, hosted=True)
    domain = get_domain(session, actor, domain_name)
    owner = _owner(session, domain)
    limits = package_limits.limits_for(session, owner)
    taken = session.scalars(
        select(Mailbox.id).where(Mailbox.domain_id == domain.id, Mailbox.local_part == local)
    ).first()
    if taken is not None:
        raise Conflict(
            f"The mailbox {local}@{domain_to_unicode(domain.name)} exists already.", field="address"
        )
    if (
        session.scalars(
            select(Forwarder.id).where(
                Forwarder.domain_id == domain.id, Forwarder.local_part == local
            )
        ).first()
        is not None
    ):
        raise Conflict(
            f"{local}@{domain_to_unicode(domain.name)} is a forwarder; remove the forwarder first.",
            field="address",
        )
    settings = get_server_settings(session)
    full_address = f"{local}@{domain.name}"
    check_password_policy(password, min_length=settings.min_password_length, address=full_address)
    package_limits.check_new_mailbox(session, owner, limits)
    protocols, quota = _new_mailbox_settings(domain, limits, quota, imap, pop3, smtp)
    package_limits.check_quota(session, owner, limits, quota)
    now = actor.now()
    mailbox = Mailbox(
        domain_id=domain.id,
        local_part=local,
        password_hash=hash_mailbox_password(password, settings.password_scheme),  # type: ignore[arg-type]
        quota=quota,
        imap=protocols[Protocol.IMAP],
        pop3=protocols[Protocol.POP3],
        smtp=protocols[Protocol.SMTP],
        suspend_login=False,
        suspend_incoming=False,
        suspend_outgoing=False,
        display_name=display_name,
        created_at=now,
        updated_at=now,
        password_changed_at=now,
    )
    counters.mailboxes_added(session, domain.id, [quota])
    session.add(mailbox)
    session.flush()
    _audit(session, actor, "mailbox.create", mailbox, domain, None, _state(mailbox))
    return mailbox


def set_mailbox_password(session: Session, actor: Actor, address: str, password: str) -> Mailbox:
    mailbox = get_mailbox(session, actor, address)
    domain = mailbox.domain
    settings = get_server_settings(session)
    check_password_policy(
        password,
        min_length=settings.min_password_length,
        address=f"{mailbox.local_part}@{domain.name}",
    )
    mailbox.password_hash = hash_mailbox_password(password, settings.password_scheme)  # type: ignore[arg-type]
    mailbox.password_changed_at = actor.now()
    mailbox.updated_at = actor.now()
    session.flush()
    _audit(session, actor, "mailbox.password", mailbox, domain, None, None)
    return mailbox


def update_mailbox(
    session: Session,
    actor: Actor,
    address: str,
    *,
    quota: int | None = None,
    imap: bool | None = None,
    pop3: bool | None = None,
    smtp: bool | None = None,
) -> Mailbox:
    """Change the quota and turn protocols on or off; None leaves a value as it is."""
    mailbox = get_mailbox(session, actor, address)
    domain = mailbox.domain
    owner = _owner(session, domain)
    limits = package_limits.limits_for(session, owner)
    before = _state(mailbox)
    # Only protocols being switched on need the package's permission: switching off is always
    # allowed, even when the package has since dropped the protocol.
    turning_on = {
        name: True
        for name, new, old in (
            (Protocol.IMAP, imap, mailbox.imap),
            (Protocol.POP3, pop3, mailbox.pop3),
            (Protocol.SMTP, smtp, mailbox.smtp),
        )
        if new and not old
    }
    package_limits.check_protocols(limits, turning_on)
    if quota is not None and quota != mailbox.quota:
        package_limits.check_quota(session, owner, limits, quota, mailbox_id=mailbox.id)
        counters.quota_changing(session, mailbox.id, quota)
        mailbox.quota = quota
    if imap is not None:
        mailbox.imap = imap
    if pop3 is not None:
        mailbox.pop3 = pop3
    if smtp is not None:
        mailbox.smtp = smtp
    after = _state(mailbox)
    if after != before:
        mailbox.updated_at = actor.now()
        session.flush()
        _audit(session, actor, "mailbox.update", mailbox, domain, before, after)
    return mailbox


def set_suspensions(
    session: Session,
    actor: Actor,
    address: str,
    *,
    login: bool | None = None,
    incoming: bool | None = None,
    outgoing: bool | None = None,
) -> Mailbox:
    """Suspend (True) or resume (False) login, receiving and sending, each on its own."""
    mailbox = get_mailbox(session, actor, address)
    before = _state(mailbox)
    if login is not None:
        mailbox.suspend_login = login
    if incoming is not None:
        mailbox.suspend_incoming = incoming
    if outgoing is not None:
        mailbox.suspend_outgoing = outgoing
    after = _state(mailbox)
    if after != before:
        mailbox.updated_at = actor.now()
        session.flush()
        _audit(session, actor, "mailbox.suspension", mailbox, mailbox.domain, before, after)
    return mailbox


def delete_mailbox(session: Session, actor: Actor, address: str, *, confirm: str) -> None:
    """Delete a mailbox from the panel. `confirm` must repeat the address.

    The mail on disk is not touched: the server admin archives or removes it.
    """
    mailbox = get_mailbox(session, actor, address)
    domain = mailbox.domain
    stored = f"{mailbox.local_part}@{domain.name}"
    try:
        confirmed = "@".join(split_address(confirm, hosted=True, field="confirm"))
    except ValidationError:
        confirmed = ""
    if confirmed != stored:
        raise ValidationError(
            f"Type the address {mailbox.local_part}@{domain_to_unicode(domain.name)} to confirm.",
            field="confirm",
        )
    _delete(session, actor, mailbox)


def _delete(session: Session, actor: Actor, mailbox: Mailbox) -> None:
    domain = mailbox.domain
    before = _state(mailbox)
    _audit(session, actor, "mailbox.delete", mailbox, domain, before, None)
    # Its forwarding (a forwarder at the same address) goes with it.
    forwarding = session.scalars(
        select(Forwarder).where(
            Forwarder.domain_id == domain.id, Forwarder.local_part == mailbox.local_part
        )
    ).one_or_none()
    if forwarding is not None:
        session.delete(forwarding)
    counters.remove_mailbox(session, mailbox)


def device_setup(session: Session, actor: Actor, address: str) -> ClientSetup:
    """The servers, ports and user name a mailbox's mail programs need (the protocols it may
    use), for the customer managing it. Raises InvalidName or NotFound."""
    mailbox = get_mailbox(session, actor, address)
    return build_setup(
        get_server_settings(session),
        address=mailbox.address,
        domain=mailbox.domain.name,
        imap=mailbox.imap,
        pop3=mailbox.pop3,
        smtp=mailbox.smtp,
    )


SCOPE_ID_LIST_MAX = 1000


def scoped_domain_ids(session: Session, actor: Actor) -> t.Any:
    """The actor's domain ids: a literal list when short (the usual customer), so the database
    can walk the index per domain; otherwise a subquery."""
    ids_query = select(Domain.id).where(_owned(session, actor))
    ids = list(session.scalars(ids_query.limit(SCOPE_ID_LIST_MAX + 1)))
    if len(ids) <= SCOPE_ID_LIST_MAX:
        return ids
    return ids_query.scalar_subquery()


def list_mailboxes(
    session: Session,
    actor: Actor,
    *,
    domain: str | None = None,
    search: str | None = None,
    sort: str = "address",
    descending: bool = False,
    page: int = 1,
    per_page: int = 50,
) -> Page[MailboxRow]:
    """One page of the actor's mailboxes, filtered, searched and sorted in the database.

    `search` matches anywhere in the address. Without an '@' that is the local part or the
    domain name; with one, "a@b" is found in every address whose local part ends with "a" and
    whose domain starts with "b" (the same thing as the whole address containing it). Domain
    names are matched among the actor's few domains first, so the mailbox table is filtered by
    a list of ids and the local part, never joined row by row.
    """
    if sort not in SORTS:
        raise ValidationError(f"Sort by one of: {', '.join(sorted(SORTS))}.", field="sort")
    if domain:
        domain_ids: t.Any = [get_domain(session, actor, domain).id]
    else:
        domain_ids = scoped_domain_ids(session, actor)
    conditions = [Mailbox.domain_id.in_(domain_ids)]
    if search:
        conditions.append(_address_contains(session, domain_ids, search.strip().lower()))
    # Ordering by domain id (not name) lets the (domain, local part) index deliver rows already
    # sorted, so a page at 100,000 mailboxes needs no sort of the whole set. The other orders
    # end with the local part and the domain id, so equal values have one order everywhere.
    orders: dict[str, list[t.Any]] = {
        "address": [Mailbox.domain_id, Mailbox.local_part],
        "quota": [Mailbox.quota, Mailbox.local_part, Mailbox.domain_id],
        "usage": [Mailbox.usage_bytes, Mailbox.local_part, Mailbox.domain_id],
        # Active first; then any suspension, the login one (the strongest) last.
        "status": [Mailbox.suspend_login, Mailbox.suspend_incoming, Mailbox.suspend_outgoing,
                   Mailbox.local_part, Mailbox.domain_id],
        "created": [Mailbox.created_at, Mailbox.id],
    }
    order = orders[sort]
    direction = [c.desc() if descending else c.asc() for c in order]
    page, per_page = clamp(page, per_page)
    exact, more = True, False
    if search:
        # Counting every match of a search would cost more than the page: count up to a cap,
        # and look one row past the page to know whether there is a next one.
        total, exact = capped_count(session, select(Mailbox.id).where(*conditions))
    else:
        # The domains' counters know how many mailboxes there are (see `counters`).
        total = int(session.scalar(
            select(func.coalesce(func.sum(Domain.mailbox_count), 0))
            .where(_domains_in(session, actor, domain_ids))
        ) or 0)
    take = per_page + (0 if exact else 1)
    offset = (page - 1) * per_page
    if sort in _MERGED_SORTS and isinstance(domain_ids, list) and 1 < len(domain_ids) <= \
            _MERGE_DOMAINS_MAX:
        ids = _merged_page(session, domain_ids, conditions[1:], order, descending, offset, take)
    elif sort == "address" and not search and offset:
        ids = _address_page(session, _domains_in(session, actor, domain_ids), domain_ids,
                            descending, offset, take)
    else:
        query = select(Mailbox.id).where(*conditions).order_by(*direction)
        ids = list(session.scalars(query.limit(take).offset(offset)))
    if not exact:
        more = len(ids) > per_page
        ids = ids[:per_page]
    # Just the columns the row shows (no ORM objects to build and track for a list page).
    loaded = {
        r.id: r
        for r in session.execute(
            select(Mailbox.id, Mailbox.local_part, Domain.name, Mailbox.quota, Mailbox.imap,
                   Mailbox.pop3, Mailbox.smtp, Mailbox.suspend_login, Mailbox.suspend_incoming,
                   Mailbox.suspend_outgoing, Mailbox.usage_bytes, Mailbox.usage_read_at,
                   Mailbox.usage_messages)
            .join(Domain, Domain.id == Mailbox.domain_id)
            .where(Mailbox.id.in_(ids))
        ).all()
    }
    rows = [
        MailboxRow(
            id=r.id,
            address=f"{r.local_part}@{r.name}",
            unicode_address=f"{r.local_part}@{shown_domain(r.name)}",
            quota=r.quota,
            imap=r.imap,
            pop3=r.pop3,
            smtp=r.smtp,
            suspend_login=r.suspend_login,
            suspend_incoming=r.suspend_incoming,
            suspend_outgoing=r.suspend_outgoing,
            usage_bytes=r.usage_bytes,
            usage_read_at=r.usage_read_at,
            usage_messages=r.usage_messages,
        )
        for r in (loaded[i] for i in ids if i in loaded)
    ]
    return Page(items=rows, page=page, per_page=per_page, total=total, exact=exact,
                more=more)


#: Sorts that each domain's index delivers in order, merged across a customer's few domains.
_MERGED_SORTS = {"quota", "usage", "status"}
_MERGE_DOMAINS_MAX = 50


def _merged_page(
    session: Session,
    domain_ids: list[int],
    conditions: list[t.Any],
    order: list[t.Any],
    descending: bool,
    offset: int,
    limit: int,
) -> list[int]:
    """The ids of one page, ordered across several domains, without sorting all their rows.

    A database cannot walk one (domain, value) index in value order across a list of domains,
    so it would sort every mailbox of them for each page. Instead each domain gives only its
    first offset + limit rows, in its own index's order, and the page is cut from those.
    """
    def ordered(columns: t.Sequence[t.Any]) -> list[t.Any]:
        return [c.desc() if descending else c.asc() for c in columns]

    keep = offset + limit
    parts = [
        select(Mailbox.id, *order).where(Mailbox.domain_id == domain_id, *conditions)
        .order_by(*ordered(order)).limit(keep).subquery()
        for domain_id in domain_ids
    ]
    merged = union_all(*[select(part) for part in parts]).subquery()
    return list(session.scalars(
        select(merged.c.id)
        .order_by(*ordered([merged.c[c.key] for c in order]))
        .limit(limit).offset(offset)
    ))


def _owned(session: Session, actor: Actor) -> t.Any:
    """The condition on Domain "one of the actor's customers owns it". A customer's is a plain
    owner comparison, a reseller's a literal list of its customers: PostgreSQL can then probe
    it per mailbox row (memoized) while walking a sort index, instead of joining with
    panel_users for every row."""
    if actor.role is Role.CUSTOMER and actor.customer_id is not None:
        return Domain.owner_id == actor.customer_id
    customers = list(session.scalars(customer_ids_query(actor).limit(SCOPE_ID_LIST_MAX + 1)))
    if len(customers) <= SCOPE_ID_LIST_MAX:
        return Domain.owner_id.in_(customers)
    return Domain.owner_id.in_(customer_ids_query(actor).scalar_subquery())


def _domains_in(session: Session, actor: Actor, domain_ids: t.Any) -> t.Any:
    """The condition on Domain for `domain_ids` (from `scoped_domain_ids`, or one domain): the
    list itself, or for a subquery the owners it stands for (no join of domains with itself)."""
    if isinstance(domain_ids, list):
        return Domain.id.in_(domain_ids)
    return _owned(session, actor)


def _address_page(
    session: Session, in_scope: t.Any, domain_ids: t.Any, descending: bool, offset: int,
    limit: int,
) -> list[int]:
    """A deep page in address order (domain id, local part) without skipping `offset` rows.

    The domains' mailbox counters, added up in order, say in which domain the page starts and
    how far into it; only that domain's rows before the page are skipped (its (domain, local
    part) index walked), not every mailbox of the domains before it.
    """
    direction = Domain.id.desc() if descending else Domain.id.asc()
    running = func.sum(Domain.mailbox_count).over(order_by=direction)
    counted = (
        select(Domain.id.label("id"), running.label("upto"),
               Domain.mailbox_count.label("count"))
        .where(in_scope, Domain.mailbox_count > 0)
        .subquery()
    )
    start = session.execute(
        select(counted.c.id, counted.c.upto - counted.c["count"])
        .where(counted.c.upto > offset)
        # in the window's own order, so the scan stops at the page's domain
        .order_by(counted.c.id.desc() if descending else counted.c.id.asc()).limit(1)
    ).first()
    if start is None:
        return []
    first_domain, before = start
    from_there = (Mailbox.domain_id <= first_domain) if descending else \
        (Mailbox.domain_id >= first_domain)
    order = [Mailbox.domain_id, Mailbox.local_part]
    return list(session.scalars(
        select(Mailbox.id).where(Mailbox.domain_id.in_(domain_ids), from_there)
        .order_by(*[c.desc() if descending else c.asc() for c in order])
        .limit(limit).offset(offset - int(before))
    ))


def _address_contains(session: Session, domain_ids: t.Any, text: str) -> t.Any:
    """The condition "the address contains `text`" for mailboxes in `domain_ids`."""
    local_text, domain_text = split_partial(text)
    if "@" not in text:
        named = list(session.scalars(
            select(Domain.id).where(Domain.id.in_(domain_ids),
                                    Domain.name.contains(text, autoescape=True))
        ))
        return or_(Mailbox.local_part.contains(text, autoescape=True),
                   Mailbox.domain_id.in_(named))
    # An IDN typed in Unicode is stored in its ASCII form.
    ascii_domain = domain_text
    if domain_text and not domain_text.isascii():
        try:
            ascii_domain = domain_text.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_domain = domain_text
    named = list(session.scalars(
        select(Domain.id).where(Domain.id.in_(domain_ids),
                                Domain.name.startswith(ascii_domain, autoescape=True))
    ))
    return Mailbox.local_part.endswith(local_text, autoescape=True) & Mailbox.domain_id.in_(named)


@dataclass(frozen=True)
class BulkResult:
    action: BulkAction
    #: The mailboxes the action changed, and those it found already as asked.
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]

    def summary(self) -> str:
        count = len(self.changed)
        noun = "mailbox" if count == 1 else "mailboxes"
        done = {
            BulkAction.SUSPEND: f"{count} {noun} suspended",
            BulkAction.RESUME: f"{count} {noun} resumed",
            BulkAction.QUOTA: f"Quota set on {count} {noun}",
            BulkAction.REMOVE: f"{count} {noun} removed from the panel (the stored mail was not "
                               "touched)",
        }[self.action]
        if self.unchanged:
            done += f"; {len(self.unchanged)} already as asked"
        return done + "."


def bulk_targets(session: Session, actor: Actor, addresses: t.Iterable[str]) -> list[Mailbox]:
    """The actor's mailboxes at `addresses`, each checked as `get_mailbox` does, in list order.

    Raises ValidationError for none or more than BULK_MAX, NotFound for any address that is not
    one of the actor's mailboxes (nothing is changed then).
    """
    unique = list(dict.fromkeys(a.strip() for a in addresses if a.strip()))
    if not unique:
        raise ValidationError("Select at least one mailbox.", field="addresses")
    if len(unique) > BULK_MAX:
        raise ValidationError(f"Select at most {BULK_MAX} mailboxes at a time.",
                              field="addresses")
    return [get_mailbox(session, actor, address, field="addresses") for address in unique]


def bulk_change(
    session: Session,
    actor: Actor,
    addresses: t.Iterable[str],
    action: BulkAction | str,
    *,
    quota: int | None = None,
) -> BulkResult:
    """One action on several of the actor's mailboxes: all of them or, on any refusal, none
    (the caller's transaction rolls back). Each change is audited as its single-mailbox form.

    Suspend sets all three suspensions (login, receiving, sending); resume clears them. Quota
    is checked against the package like a single change. Remove keeps the stored mail, as
    `delete_mailbox` does. Raises ValidationError, NotFound, LimitReached.
    """
    try:
        action = BulkAction(action)
    except ValueError:
        raise ValidationError(
            f"Choose one of: {', '.join(a.value for a in BulkAction)}.", field="action"
        ) from None
    if action is BulkAction.QUOTA and quota is None:
        raise ValidationError("Give the quota to set, e.g. 2G.", field="quota")
    targets = bulk_targets(session, actor, addresses)
    changed: list[str] = []
    unchanged: list[str] = []
    for mailbox in targets:
        address = f"{mailbox.local_part}@{mailbox.domain.name}"
        before = _state(mailbox)
        if action is BulkAction.REMOVE:
            _delete(session, actor, mailbox)
            changed.append(address)
            continue
        if action is BulkAction.QUOTA:
            update_mailbox(session, actor, address, quota=quota)
        else:
            flag = action is BulkAction.SUSPEND
            set_suspensions(session, actor, address, login=flag, incoming=flag, outgoing=flag)
        (changed if _state(mailbox) != before else unchanged).append(address)
    return BulkResult(action, tuple(changed), tuple(unchanged))
# --- many at once: imports ------------------------------------------------------------------

#: Hashes passwords (already past the policy) in a scheme; an importer spreads the work over
#: processes, since hashing is what an import of plaintext passwords spends its time on.
PasswordHasher = t.Callable[[Sequence[str], str], list[str]]


def hash_serially(passwords: Sequence[str], scheme: str) -> list[str]:
    return [hash_mailbox_password(p, scheme) for p in passwords]  # type: ignore[arg-type]


@dataclass(frozen=True)
class NewMailbox:
    """A mailbox to create with `create_mailboxes`: a password to hash, or a hash brought along
    from another server. Unset quota and protocols come from the domain, then the package."""

    local_part: str
    password: str | None = None
    password_hash: str | None = None
    quota: int | None = None
    imap: bool | None = None
    pop3: bool | None = None
    smtp: bool | None = None
    suspend_login: bool = False
    suspend_incoming: bool = False
    suspend_outgoing: bool = False


def create_mailboxes(
    session: Session,
    actor: Actor,
    domain_name: str,
    new: Sequence[NewMailbox],
    *,
    hash_passwords: PasswordHasher = hash_serially,
) -> list[str]:
    """Create many mailboxes of one domain under the rules of `create_mailbox`.

    Names, the password policy (for passwords) or a hash Dovecot verifies (for hashes, see
    `hashing.validate_imported_hash`), protocols and quota from the domain and the package
    apply to each; the package's mailbox count and total quota are counted once for all of
    them. All or nothing: the first refusal is raised with the address in its message.
    Returns the new addresses.
    """
    domain = get_domain(session, actor, domain_name)
    owner = _owner(session, domain)
    limits = package_limits.limits_for(session, owner)
    settings = get_server_settings(session)
    taken = set(session.scalars(select(Mailbox.local_part).where(Mailbox.domain_id == domain.id)))
    forwarders = set(
        session.scalars(select(Forwarder.local_part).where(Forwarder.domain_id == domain.id))
    )
    package_limits.check_new_mailbox(session, owner, limits, adding=len(new))
    others_total = (
        package_limits.total_quota(session, owner.id) if limits.max_total_quota is not None else 0
    )
    shown_domain = domain_to_unicode(domain.name)
    planned: list[tuple[NewMailbox, str, dict[Protocol, bool], int, str | None]] = []
    for spec in new:
        try:
            local = normalize_local_part(spec.local_part, field="address")
            if len(local) + 1 + len(domain.name) > MAX_ADDRESS_LENGTH:
                raise InvalidName(
                    f"The address is longer than {MAX_ADDRESS_LENGTH} characters.",
                    field="address",
                )
            if local in taken:
                raise Conflict("The mailbox exists already.", field="address")
            if local in forwarders:
                raise Conflict(
                    "The address is a forwarder; remove the forwarder first.", field="address"
                )
            stored_hash: str | None = None
            if spec.password_hash is not None:
                stored_hash = validate_imported_hash(spec.password_hash)
            elif spec.password is not None:
                check_password_policy(
                    spec.password,
                    min_length=settings.min_password_length,
                    address=f"{local}@{domain.name}",
                )
            else:
                raise ValidationError("Give a password or a password hash.", field="password")
            protocols, quota = _new_mailbox_settings(
                domain, limits, spec.quota, spec.imap, spec.pop3, spec.smtp
            )
            package_limits.check_quota(session, owner, limits, quota, others_total=others_total)
        except MailadminError as exc:
            raise type(exc)(
                f"{spec.local_part}@{shown_domain}: {exc.message}", field=exc.field
            ) from None
        others_total += quota
        taken.add(local)
        planned.append((spec, local, protocols, quota, stored_hash))
    to_hash = [spec.password for spec, *_, stored in planned if stored is None]
    hashed = iter(
        hash_passwords([p for p in to_hash if p is not None], settings.password_scheme)
    )
    now = actor.now()
    rows = [
        {
            "domain_id": domain.id,
            "local_part": local,
            "password_hash": stored_hash if stored_hash is not None else next(hashed),
            "quota": quota,
            "imap": protocols[Protocol.IMAP],
            "pop3": protocols[Protocol.POP3],
            "smtp": protocols[Protocol.SMTP],
            "suspend_login": spec.suspend_login,
            "suspend_incoming": spec.suspend_incoming,
            "suspend_outgoing": spec.suspend_outgoing,
            "created_at": now,
            "updated_at": now,
            "password_changed_at": now,
        }
        for spec, local, protocols, quota, stored_hash in planned
    ]
    if not rows:
        return []
    # One INSERT for all of them (an ORM object per row costs more than the row itself); the
    # change tracker does not see bulk statements, so it is told.
    session.flush()
    counters.mailboxes_added(session, domain.id, [t.cast(int, row["quota"]) for row in rows])
    ids = session.execute(
        insert(Mailbox).returning(Mailbox.id, sort_by_parameter_order=True), rows
    ).scalars().all()
    changes.mark_changed(session, [domain.id])
    record_events(
        session, actor, "mailbox.create", object_type="mailbox",
        objects=[
            (mailbox_id, f"{row['local_part']}@{domain.name}", {
                "quota": row["quota"], Protocol.IMAP: row["imap"], Protocol.POP3: row["pop3"],
                Protocol.SMTP: row["smtp"], "suspend_login": row["suspend_login"],
                "suspend_incoming": row["suspend_incoming"],
                "suspend_outgoing": row["suspend_outgoing"],
            })
            for mailbox_id, row in zip(ids, rows, strict=True)
        ],
        customer_id=owner.id, reseller_id=owner.parent_id,
    )
    return [f"{row['local_part']}@{domain.name}" for row in rows]


def set_mailbox_password_hash(
    session: Session, actor: Actor, address: str, password_hash: str
) -> Mailbox:
    """Store a hash brought from another server as the mailbox's password (an import).

    Raises ValidationError for a hash Dovecot would not verify (`validate_imported_hash`).
    """
    mailbox = get_mailbox(session, actor, address)
    mailbox.password_hash = validate_imported_hash(password_hash)
    mailbox.password_changed_at = actor.now()
    mailbox.updated_at = actor.now()
    session.flush()
    _audit(session, actor, "mailbox.password", mailbox, mailbox.domain, None, None)
    return mailbox
