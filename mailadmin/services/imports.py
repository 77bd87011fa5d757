"""Imports and exports: one domain's mailboxes, forwarders, default address and autoresponders
brought in from another panel (a cPanel backup, a CSV file), and the CSV export.

`import_domain` applies one domain's records through the same services the panel uses
(`domains.add_domain`, `mailboxes.create_mailboxes`, `forwarders.set_forwarder`, ...), so
names, package limits, the password policy and tenant boundaries apply exactly as they do for
one mailbox made in the browser. It only flushes; `mailadmin.workers.importer` gives each
domain its own transaction, so a refusal leaves nothing of that domain behind.

Importing is "make it so": what exists already and is the same is left alone, so importing the
same file again changes nothing.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..errors import Conflict, MailadminError, NotFound
from ..imports.records import (
    AutoresponderRecord,
    DomainImport,
    ExportRow,
    ForwarderRecord,
    MailboxRecord,
    Skipped,
)
from ..models import Autoresponder, Domain, Forwarder, Mailbox
from ..names import domain_of, normalize_address, normalize_domain
from . import autoresponders, domains, forwarders, mailboxes
from .context import Actor
from .scope import customer_ids_query, get_domain, resolve_customer

#: Checks passwords against stored hashes, many at once: [(password, hash)] -> [matches].
PasswordVerifier = Callable[[Sequence[tuple[str, str]]], list[bool]]


def verify_serially(pairs: Sequence[tuple[str, str]]) -> list[bool]:
    from ..hashing import verify_mailbox_password

    return [verify_mailbox_password(password, stored) for password, stored in pairs]


@dataclass(frozen=True)
class Change:
    """One thing an import did (or, in a dry run, would do)."""

    action: str  # "create", "update"
    kind: str  # "domain", "mailbox", "forwarder", "default address", "autoresponder"
    target: str
    detail: str = ""


@dataclass
class DomainResult:
    domain: str
    changes: list[Change] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: Why nothing of the domain was imported (None: imported).
    error: str | None = None


def _refusal(exc: MailadminError, where: str) -> MailadminError:
    """The same refusal, its message prefixed with where it came from."""
    return type(exc)(f"{where}: {exc.message}", field=exc.field)


def _domain(
    session: Session, actor: Actor, name: str, customer: str | None, create: bool,
    result: DomainResult,
) -> Domain:
    ascii_name = normalize_domain(name, field="domain")
    owner = resolve_customer(session, actor, customer) if customer or create else None
    try:
        domain = get_domain(session, actor, ascii_name)
    except NotFound:
        if not create:
            raise
        domain = domains.add_domain(session, actor, ascii_name, customer=owner.username
                                    if owner else None)
        result.changes.append(Change("create", "domain", ascii_name))
        return domain
    if owner is not None and domain.owner_id != owner.id:
        raise Conflict(f"The domain {ascii_name} belongs to another customer.", field="domain")
    return domain


def import_domain(
    session: Session,
    actor: Actor,
    plan: DomainImport,
    *,
    customer: str | None = None,
    create_domain: bool = False,
    hash_passwords: mailboxes.PasswordHasher = mailboxes.hash_serially,
    verify_passwords: PasswordVerifier = verify_serially,
) -> DomainResult:
    """Apply one domain's records; return what changed and what was not imported.

    `create_domain` adds the domain (to `customer`, as `domains.add_domain` would) when the
    actor has no domain of that name; otherwise it must be the actor's (and `customer`'s,
    when named). Raises the first refusal, its message naming the address or file line;
    the caller rolls the domain back.
    """
    result = DomainResult(domain=plan.name, skipped=list(plan.skipped))
    if plan.size == 0:
        # Only things that are not imported (a domain forwarder): claiming the domain here
        # would make this server refuse its mail.
        return result
    domain = _domain(session, actor, plan.name, customer, create_domain, result)
    result.domain = domain.name
    existing = {
        m.local_part: m
        for m in session.scalars(select(Mailbox).where(Mailbox.domain_id == domain.id))
    }
    _import_mailboxes(session, actor, domain, plan.mailboxes, existing, result,
                      hash_passwords, verify_passwords)
    _import_forwarders(session, actor, domain, plan.forwarders, result)
    if plan.default_address is not None:
        wanted = plan.default_address
        reason = wanted.reject_reason
        try:
            target = wanted.target
            if target is not None and target.startswith("@"):
                target = "@" + normalize_domain(target[1:], field="target")
            elif target is not None:
                target = normalize_address(target, field="target")
            current = (domain.catchall_action, domain.catchall_reject_reason,
                       domain.catchall_target)
            if wanted.action == "reject" and reason is None:
                reason = domains.DEFAULT_REJECT_REASON
            elif reason is not None and not domains.REJECT_REASON_PATTERN.fullmatch(reason):
                result.skipped.append(Skipped(
                    f"the refusal text {reason[:80]!r} of {domain.name}",
                    "it has characters a refusal here may not carry (letters, digits, spaces "
                    f"and . , ; : ! ? ( ) ' / - only); unknown addresses are refused with "
                    f"'{domains.DEFAULT_REJECT_REASON}' instead",
                    wanted.origin))
                reason = domains.DEFAULT_REJECT_REASON
            if current != (wanted.action, reason, target):
                domains.set_catchall(session, actor, domain.name, wanted.action,
                                     reject_reason=reason, target=target)
                result.changes.append(Change("update", "default address", domain.name,
                                             _default_text(wanted.action, reason, target)))
        except MailadminError as exc:
            raise _refusal(exc, f"{wanted.origin}: default address") from None
    _import_autoresponders(session, actor, domain, plan.autoresponders, result)
    return result


def _default_text(action: str, reason: str | None, target: str | None) -> str:
    if action == "reject":
        return f"refuse: {reason}"
    if action == "discard":
        return "accept and discard"
    if target and target.startswith("@"):
        return f"forward to the same name at {target[1:]}"
    return f"deliver to {target}"


def _import_mailboxes(
    session: Session,
    actor: Actor,
    domain: Domain,
    records: list[MailboxRecord],
    existing: dict[str, Mailbox],
    result: DomainResult,
    hash_passwords: mailboxes.PasswordHasher,
    verify_passwords: PasswordVerifier,
) -> None:
    new = [r for r in records if r.local_part not in existing]
    if new:
        mailboxes.create_mailboxes(
            session, actor, domain.name,
            [mailboxes.NewMailbox(
                local_part=r.local_part, password=r.password, password_hash=r.password_hash,
                quota=r.quota, imap=r.imap, pop3=r.pop3, smtp=r.smtp,
                suspend_login=bool(r.suspend_login),
                suspend_incoming=bool(r.suspend_incoming),
                suspend_outgoing=bool(r.suspend_outgoing),
            ) for r in new],
            hash_passwords=hash_passwords,
        )
        result.changes.extend(
            Change("create", "mailbox", f"{r.local_part}@{domain.name}",
                   "with its old password" if r.password_hash else "")
            for r in new
        )
    old = [r for r in records if r.local_part in existing]
    with_password = [r for r in old if r.password is not None]
    matches = verify_passwords(
        [(r.password or "", existing[r.local_part].password_hash) for r in with_password])
    same_password = {r.local_part for r, ok in zip(with_password, matches, strict=True) if ok}
    for record in old:
        mailbox = existing[record.local_part]
        address = f"{record.local_part}@{domain.name}"
        try:
            _update_mailbox(session, actor, mailbox, address, record,
                            record.local_part in same_password, result)
        except MailadminError as exc:
            raise _refusal(exc, f"{record.origin}: {address}") from None


def _update_mailbox(
    session: Session, actor: Actor, mailbox: Mailbox, address: str, record: MailboxRecord,
    same_password: bool, result: DomainResult,
) -> None:
    if record.password_hash is not None and record.password_hash != mailbox.password_hash:
        mailboxes.set_mailbox_password_hash(session, actor, address, record.password_hash)
        result.changes.append(Change("update", "mailbox", address, "password hash"))
    elif record.password is not None and not same_password:
        mailboxes.set_mailbox_password(session, actor, address, record.password)
        result.changes.append(Change("update", "mailbox", address, "password"))
    settings: dict[str, object] = {"quota": record.quota, "imap": record.imap,
                                   "pop3": record.pop3, "smtp": record.smtp}
    changed = {k: v for k, v in settings.items() if v is not None and getattr(mailbox, k) != v}
    if changed:
        mailboxes.update_mailbox(session, actor, address, **changed)  # type: ignore[arg-type]
        result.changes.append(Change("update", "mailbox", address, _describe(changed)))
    suspensions = {"login": record.suspend_login, "incoming": record.suspend_incoming,
                   "outgoing": record.suspend_outgoing}
    flips: dict[str, bool] = {k: v for k, v in suspensions.items()
                              if v is not None and getattr(mailbox, f"suspend_{k}") != v}
    if flips:
        mailboxes.set_suspensions(session, actor, address, **flips)
        result.changes.append(Change("update", "mailbox", address,
                                     _describe({f"suspend_{k}": v for k, v in flips.items()})))


def _describe(values: t.Mapping[str, object]) -> str:
    def show(value: object) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    return ", ".join(f"{key} {show(value)}" for key, value in values.items())


def _import_forwarders(
    session: Session, actor: Actor, domain: Domain, records: list[ForwarderRecord],
    result: DomainResult,
) -> None:
    current = {
        f.local_part: f
        for f in session.scalars(
            select(Forwarder).where(Forwarder.domain_id == domain.id)
            .options(selectinload(Forwarder.destinations))
        )
    }
    for record in records:
        address = f"{record.local_part}@{domain.name}"
        try:
            wanted = [normalize_address(d, field="destinations") for d in record.destinations]
            forwarder = current.get(record.local_part)
            keep = bool(record.keep_copy)
            if forwarder is not None:
                if record.keep_copy is None:
                    keep = forwarder.keep_copy
                have = [d.address for d in forwarder.destinations]
                if have == list(dict.fromkeys(wanted)) and keep == forwarder.keep_copy:
                    continue
            forwarders.set_forwarder(session, actor, address, wanted, keep_copy=keep)
        except MailadminError as exc:
            raise _refusal(exc, f"{record.origin}: {address}") from None
        result.changes.append(Change("update" if forwarder else "create", "forwarder", address,
                                     "to " + ", ".join(wanted)))


def _import_autoresponders(
    session: Session, actor: Actor, domain: Domain, records: list[AutoresponderRecord],
    result: DomainResult,
) -> None:
    for record in records:
        address = f"{record.local_part}@{domain.name}"
        mailbox_id = session.scalars(select(Mailbox.id).where(
            Mailbox.domain_id == domain.id, Mailbox.local_part == record.local_part)).first()
        if mailbox_id is None:
            result.skipped.append(Skipped(
                f"autoresponder of {address}",
                "autoresponders here belong to mailboxes, and this address has none",
                record.origin))
            continue
        current = session.scalars(
            select(Autoresponder).where(Autoresponder.mailbox_id == mailbox_id)).one_or_none()
        wanted = (record.subject, record.body, record.interval_days, record.starts_at,
                  record.ends_at, True)
        if current is not None and (current.subject, current.body, current.interval_days,
                                    current.starts_at, current.ends_at,
                                    current.enabled) == wanted:
            continue
        try:
            autoresponders.set_autoresponder(
                session, actor, address, subject=record.subject, body=record.body,
                starts_at=record.starts_at, ends_at=record.ends_at,
                interval_days=record.interval_days)
        except MailadminError as exc:
            raise _refusal(exc, f"{record.origin}: autoresponder of {address}") from None
        result.changes.append(Change("update" if current else "create", "autoresponder",
                                     address, record.subject))


# --- export ---------------------------------------------------------------------------------


def export_rows(session: Session, actor: Actor, *, domain: str | None = None
                ) -> Iterator[ExportRow]:
    """Every mailbox and forwarder of the actor's domains (or of `domain`), by address.

    The rows carry the stored password hashes: the export is for moving the accounts, and the
    file is as secret as the database.
    """
    if domain is not None:
        domain_ids: t.Any = [get_domain(session, actor, domain).id]
    else:
        domain_ids = select(Domain.id).where(
            Domain.owner_id.in_(customer_ids_query(actor).scalar_subquery())
        ).scalar_subquery()
    names: dict[int, str] = {
        domain_id: name for domain_id, name in session.execute(
            select(Domain.id, Domain.name).where(Domain.id.in_(domain_ids)))}
    forwarding: dict[tuple[int, str], Forwarder] = {
        (f.domain_id, f.local_part): f
        for f in session.scalars(
            select(Forwarder).where(Forwarder.domain_id.in_(domain_ids))
            .options(selectinload(Forwarder.destinations)))
    }
    rows: list[ExportRow] = []
    for m in session.scalars(select(Mailbox).where(Mailbox.domain_id.in_(domain_ids))):
        f = forwarding.pop((m.domain_id, m.local_part), None)
        rows.append(ExportRow(
            address=f"{m.local_part}@{names[m.domain_id]}", password_hash=m.password_hash,
            quota=m.quota, imap=m.imap, pop3=m.pop3, smtp=m.smtp,
            suspend_login=m.suspend_login, suspend_incoming=m.suspend_incoming,
            suspend_outgoing=m.suspend_outgoing,
            forwarders=tuple(d.address for d in f.destinations) if f else (),
            keep_copy=f.keep_copy if f else None,
        ))
    for (domain_id, local), f in forwarding.items():
        rows.append(ExportRow(
            address=f"{local}@{names[domain_id]}", password_hash=None, quota=None, imap=None,
            pop3=None, smtp=None, suspend_login=None, suspend_incoming=None,
            suspend_outgoing=None, forwarders=tuple(d.address for d in f.destinations),
            keep_copy=None,
        ))
    rows.sort(key=lambda r: (domain_of(r.address), r.address))
    yield from rows
