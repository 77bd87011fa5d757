"""A domain belongs to whoever proves it: what may be claimed, and when a claim counts.

* `check_claim`: refuses, for everyone but the server admin, a name on the server's deny list
  (`mailadmin.domain_policy`), a registry name like ``co.uk``, the server's own names (its
  host names and its postmaster's domain, and the names above and below them), and a
  subdomain or a parent domain of a domain another customer hosts. The renderer's own names
  are refused for everyone.
* verification (server setting ``domain_verification``): ``none`` (every domain counts at
  once), ``dns`` (pending until the TXT record ``_mailadmin-challenge.<domain>`` holds the
  domain's token, or its MX points at ``mail_hostname``) or ``admin`` (pending until the server
  admin or the customer's reseller approves). A pending domain's mailboxes and forwarders can
  be prepared, but the snapshot and the SQL views leave the domain out, so the mail servers
  neither accept mail for it nor deliver local mail to it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..dnscheck import (
    CHALLENGE_LABEL,
    DEFAULT_TIMEOUT,
    DnsProof,
    Resolver,
    check_dns,
    parse_resolvers,
)
from ..domain_policy import denied_by, deny_entries, is_registry_name, reserved_by_renderer
from ..errors import Conflict, PermissionDenied, ValidationError
from ..models import Domain, PanelUser, Role, ServerSettings
from ..names import domain_of, domain_to_unicode
from .audit import record_event
from .context import Actor
from .scope import get_domain
from .server import get_server_settings

log = logging.getLogger(__name__)

MODES = ("none", "dns", "admin")
#: How often the background loop looks at one pending domain again.
RECHECK_SECONDS = 300
#: At most this many pending domains per background round (each costs up to two lookups).
RECHECK_BATCH = 50
SYSTEM = Actor(name="domain-verification", role=Role.ADMIN, channel="system", source="recheck")


def is_server_admin(session: Session, actor: Actor) -> bool:
    """The server admin, also while acting as one of the customers (or the machine operator)."""
    if actor.role is Role.ADMIN:
        return True
    if actor.acting_as is None or actor.user_id is None:
        return False
    user = session.get(PanelUser, actor.user_id)
    return user is not None and user.role == Role.ADMIN.value


def _show(name: str) -> str:
    return domain_to_unicode(name)


def check_claim(session: Session, actor: Actor, name: str, owner: PanelUser) -> None:
    """Refuse a claim on `name` (stored ASCII form) for `owner` that nobody should get.

    Raises ValidationError (deny list, reserved or registry name) or Conflict (a subdomain or
    parent of another customer's domain). Changes nothing.
    """
    shown = _show(name)
    if reserved_by_renderer(name):
        raise ValidationError(
            f"{shown} is reserved for the mail servers' own use and cannot be hosted.",
            field="name")
    if is_server_admin(session, actor):
        return
    if is_registry_name(name):
        raise ValidationError(
            f"{shown} is a registry's name, under which others register their domains; "
            "add your own domain instead.", field="name")
    settings = get_server_settings(session)
    entry = denied_by(name, deny_entries(settings.domain_deny_list))
    if entry is not None:
        what = ("a name that can never receive mail on the internet" if len(entry.labels) == 1
                else "a public mailbox provider's or otherwise protected domain")
        below = "" if entry.text.lstrip(".") == name else f" (below {entry.text})"
        raise ValidationError(
            f"{shown} is {what}{below} and cannot be added here; ask the server admin if it "
            "really is yours.", field="name")
    own = _server_names(settings)
    for server_name in own:
        if _related(name, server_name):
            raise ValidationError(
                f"{shown} is, or is part of, this server's own name {_show(server_name)}; only "
                "the server admin can add it.", field="name")
    labels = name.split(".")
    parents = [".".join(labels[i:]) for i in range(1, len(labels) - 1)]
    related = session.scalars(
        select(Domain.name)
        .where(Domain.owner_id != owner.id)
        .where(or_(Domain.name.in_(parents),
                   Domain.name.endswith("." + name, autoescape=True)))
        .order_by(Domain.name)
        .limit(1)
    ).first()
    if related is not None:
        relation = "below" if related in parents else "above"
        raise Conflict(
            f"{shown} is {relation} {_show(related)}, which another customer hosts on this "
            "server; only the server admin can add it.", field="name")


def _server_names(settings: ServerSettings) -> list[str]:
    """The host names the server calls itself and tells clients, and its postmaster's domain:
    whoever hosted one of these (or a name above or below it) would read the server's own
    reports and could pose as the server."""
    names = [settings.mail_hostname, settings.imap_host, settings.pop3_host, settings.smtp_host,
             domain_of(settings.postmaster_address or "")]
    return sorted({n.lower() for n in names if n and "." in n and not n[-1].isdigit()})


def _related(name: str, other: str) -> bool:
    return name == other or name.endswith("." + other) or other.endswith("." + name)


def new_token() -> str:
    return "mailadmin-" + secrets.token_hex(16)


def may_approve(session: Session, actor: Actor, domain: Domain) -> bool:
    """The server admin always; the customer's reseller when the mode is "admin"."""
    if is_server_admin(session, actor):
        return True
    return (get_server_settings(session).domain_verification == "admin"
            and _reseller_of(session, actor, domain.owner_id))


def start_verification(session: Session, actor: Actor, domain: Domain) -> None:
    """Set a new domain's token and decide whether it counts at once (before its first flush)."""
    domain.verification_token = new_token()
    mode = get_server_settings(session).domain_verification
    vouched = mode == "none" or is_server_admin(session, actor) or (
        mode == "admin" and _reseller_of(session, actor, domain.owner_id))
    domain.pending = not vouched
    domain.verified_at = actor.now() if vouched else None


def _reseller_of(session: Session, actor: Actor, owner_id: int) -> bool:
    """The owner's reseller, acting for itself or as the customer."""
    if actor.user_id is None or actor.role is Role.ADMIN:
        return False
    if actor.role is Role.CUSTOMER and actor.acting_as is None:
        return False
    owner = session.get(PanelUser, owner_id)
    return owner is not None and owner.parent_id == actor.user_id


@dataclasses.dataclass(frozen=True)
class Verification:
    """What the owner sees about a domain's proof."""

    name: str
    pending: bool
    mode: str
    record_name: str
    token: str | None
    mail_hostname: str
    checked_at: dt.datetime | None
    note: str | None
    #: What to do, in a sentence or two (empty when verified).
    instructions: str

    def as_dict(self) -> dict[str, object]:
        return {
            "pending": self.pending,
            "mode": self.mode,
            "record_name": self.record_name if self.pending else None,
            "token": self.token if self.pending else None,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "note": self.note,
            "instructions": self.instructions,
        }


def describe(session: Session, domain: Domain) -> Verification:
    settings = get_server_settings(session)
    mode = settings.domain_verification
    record = f"{CHALLENGE_LABEL}.{domain.name}"
    if not domain.pending:
        text = ""
    elif mode == "dns":
        text = (f"Publish a TXT record {record} with the value {domain.verification_token}, "
                f"or point the domain's MX record at {settings.mail_hostname}. The panel checks "
                "again every few minutes; 'Check now' checks at once. Until then no mail is "
                "accepted for the domain.")
    elif mode == "admin":
        text = ("The server admin or your reseller has to approve this domain; until then no "
                "mail is accepted for it.")
    else:
        text = "Verification is off on this server: 'Check now' activates the domain."
    return Verification(
        name=domain.name, pending=domain.pending, mode=mode, record_name=record,
        token=domain.verification_token, mail_hostname=settings.mail_hostname,
        checked_at=domain.verification_checked_at, note=domain.verification_note,
        instructions=text)


def verification_for(session: Session, actor: Actor, name: str) -> Verification:
    return describe(session, get_domain(session, actor, name, field="name"))


def _mark_verified(session: Session, actor: Actor, domain: Domain, how: str) -> None:
    if domain.verification_token is None:
        domain.verification_token = new_token()
    domain.pending = False
    domain.verified_at = actor.now()
    domain.verification_checked_at = actor.now()
    domain.verification_note = how[:300]
    session.flush()
    owner = session.get(PanelUser, domain.owner_id)
    record_event(session, actor, "domain.verified", object_type="domain", object_id=domain.id,
                 object_label=domain.name, customer_id=domain.owner_id,
                 reseller_id=owner.parent_id if owner else None,
                 before={"pending": True}, after={"pending": False, "how": how[:300]})


def _dns_proof(settings: ServerSettings, domain: Domain, timeout: float) -> DnsProof:
    if domain.verification_token is None:
        domain.verification_token = new_token()
    try:
        resolvers = parse_resolvers(settings.dns_resolvers)
    except ValidationError as exc:  # saved before validation existed: say so, do not crash
        return DnsProof(False, f"The server's DNS resolvers are misconfigured: {exc.message}")
    return check_dns(domain.name, domain.verification_token, settings.mail_hostname,
                     resolvers=resolvers, timeout=timeout)


def _check(session: Session, actor: Actor, domain: Domain, timeout: float) -> None:
    settings = get_server_settings(session)
    mode = settings.domain_verification
    if not domain.pending:
        return
    if mode == "none":
        _mark_verified(session, actor, domain, "Verification is off on this server.")
        return
    if mode == "admin":
        domain.verification_checked_at = actor.now()
        domain.verification_note = "Waiting for approval."
        session.flush()
        return
    proof = _dns_proof(settings, domain, timeout)
    if proof.verified:
        _mark_verified(session, actor, domain, proof.message)
        return
    domain.verification_checked_at = actor.now()
    domain.verification_note = proof.message[:300]
    session.flush()


def verify_domain(
    session: Session, actor: Actor, name: str, *, timeout: float = DEFAULT_TIMEOUT
) -> Verification:
    """Check a pending domain now (``mailadmin domain verify``, the panel's 'Check now')."""
    domain = get_domain(session, actor, name, field="name")
    _check(session, actor, domain, timeout)
    return describe(session, domain)


def approve_domain(session: Session, actor: Actor, name: str) -> Verification:
    """Approve a pending domain without proof: the server admin, or in "admin" mode the
    customer's reseller."""
    domain = get_domain(session, actor, name, field="name")
    if domain.pending:
        if not may_approve(session, actor, domain):
            raise PermissionDenied(
                "Only the server admin (or, when domains are approved by hand, the customer's "
                "reseller) can approve a domain.")
        _mark_verified(session, actor, domain, f"Approved by {actor.name}.")
    return describe(session, domain)


def pending_domain_names(session: Session) -> list[str]:
    return list(session.scalars(select(Domain.name).where(Domain.pending.is_(True))
                                .order_by(Domain.name)))


@dataclasses.dataclass(frozen=True)
class DueCheck:
    """A pending domain the background round should look up now."""

    domain_id: int
    name: str
    token: str | None


@dataclasses.dataclass(frozen=True)
class DnsSetup:
    mail_hostname: str
    resolvers: tuple[Resolver, ...]


def due_checks(
    session: Session, *, now: dt.datetime, every_seconds: float = RECHECK_SECONDS,
    batch: int = RECHECK_BATCH,
) -> tuple[DnsSetup | None, list[DueCheck]]:
    """The pending domains not checked for `every_seconds`, oldest check first, with the DNS
    settings to check them with; (None, []) unless the mode is "dns" (the other modes need a
    person) or when the resolvers setting is unusable."""
    settings = get_server_settings(session)
    if settings.domain_verification != "dns":
        return None, []
    try:
        setup = DnsSetup(settings.mail_hostname, parse_resolvers(settings.dns_resolvers))
    except ValidationError:
        log.warning("domain verification: the dns_resolvers setting is invalid; not checking")
        return None, []
    due = now - dt.timedelta(seconds=every_seconds)
    rows = session.execute(
        select(Domain.id, Domain.name, Domain.verification_token)
        .where(Domain.pending.is_(True))
        .where(or_(Domain.verification_checked_at.is_(None),
                   Domain.verification_checked_at <= due))
        .order_by(Domain.verification_checked_at.is_not(None),
                  Domain.verification_checked_at, Domain.id)
        .limit(batch)
    ).all()
    return setup, [DueCheck(i, n, t) for i, n, t in rows]


def lookup(setup: DnsSetup, check: DueCheck, *, timeout: float = DEFAULT_TIMEOUT) -> DnsProof:
    """The DNS lookups for one due domain (no database: run it outside a transaction)."""
    if check.token is None:
        return DnsProof(False, "No token yet: open the domain in the panel.")
    return check_dns(check.name, check.token, setup.mail_hostname, resolvers=setup.resolvers,
                     timeout=timeout)


def record_check(session: Session, check: DueCheck, proof: DnsProof, *,
                 now: dt.datetime) -> bool:
    """Store what a background lookup found, on the row as it is now; True if verified."""
    domain = session.get(Domain, check.domain_id)
    if domain is None or not domain.pending or domain.verification_token != check.token:
        return False  # removed, verified or re-tokened meanwhile
    if proof.verified:
        _mark_verified(session, dataclasses.replace(SYSTEM, clock=lambda: now), domain,
                       proof.message)
        return True
    domain.verification_checked_at = now
    domain.verification_note = proof.message[:300]
    session.flush()
    return False


def verify_all_pending(session: Session, actor: Actor) -> int:
    """Verification switched off: every pending domain counts now (audited one by one)."""
    domains = session.scalars(select(Domain).where(Domain.pending.is_(True))).all()
    for domain in domains:
        _mark_verified(session, actor, domain, "Verification was switched off.")
    return len(domains)
