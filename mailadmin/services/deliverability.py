"""Deliverability of a domain: the records we recommend and the DNS health check.

`dns_health` shows the last check (cached in `DnsHealthCheck` with the time it was read) and
looks up anew only when asked to ("check again", ``mailadmin dns check``,
``POST /api/v1/domains/<name>/dns/check``): showing a page never sends DNS queries. A check
also moves the domain's DKIM keys on (`dkim_keys.advance_keys`: a new key signs once DNS
shows it). Scope: customers their domains, resellers their customers', the server admin all
(`scope.get_domain`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..dnshealth import LookupFn, Verdict, check_domain
from ..dnsrecords import (
    DkimPublic,
    MailServer,
    Record,
    mta_sts_policy,
    parse_server_addresses,
    recommended,
)
from ..errors import NotFound, ValidationError
from ..models import DnsHealthCheck, Domain, ServerSettings
from ..names import normalize_domain
from . import dkim_keys
from .context import Actor
from .scope import get_domain
from .server import get_server_settings

#: A "check again" sooner than this after the last check shows the last check.
RECHECK_SECONDS = 3


@dataclasses.dataclass(frozen=True)
class DnsHealth:
    domain: str
    checked_at: dt.datetime | None
    verdicts: tuple[Verdict, ...]
    records: tuple[Record, ...]
    keys: tuple[dkim_keys.KeyInfo, ...]

    @property
    def all_ok(self) -> bool:
        return bool(self.verdicts) and all(v.status == "ok" for v in self.verdicts)

    def as_dict(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "records": [v.as_dict() for v in self.verdicts],
            "zone": [r.line for r in self.records],
            "dkim_keys": [k.as_dict() for k in self.keys],
        }


def mail_server(settings: ServerSettings) -> MailServer:
    try:
        addresses = parse_server_addresses(settings.mail_server_addresses)
    except ValidationError:
        addresses = ()  # saved before validation existed: the PTR verdict says "not set"
    return MailServer(
        mail_hostname=settings.mail_hostname, addresses=addresses,
        smtp_host=settings.smtp_host, imap_host=settings.imap_host,
        pop3_host=settings.pop3_host, submission_port=settings.submission_port,
        imap_port=settings.imap_port, pop3_port=settings.pop3_port)


def _published_keys(session: Session, domain: Domain) -> tuple[DkimPublic, ...]:
    """The keys DNS should hold: every key that is not gone (waiting, signing, retiring)."""
    return tuple(DkimPublic(k.selector, k.algorithm, k.public_key)
                 for k in dkim_keys.domain_keys(session, domain))


def _health(session: Session, domain: Domain, server: MailServer) -> DnsHealth:
    cached = session.get(DnsHealthCheck, domain.id)
    verdicts: tuple[Verdict, ...] = ()
    if cached is not None:
        verdicts = tuple(Verdict.from_dict(v) for v in json.loads(cached.results))
    keys = tuple(dkim_keys.key_infos(session, domain))
    return DnsHealth(domain.name, cached.checked_at if cached else None, verdicts,
                     tuple(recommended(domain.name, server, _published_keys(session, domain))),
                     keys)


def dns_health(session: Session, actor: Actor, name: str, *, refresh: bool = False,
               lookup: LookupFn | None = None) -> DnsHealth:
    """The domain's DNS health as last checked (no verdicts before the first check); with
    `refresh`, looked up now, unless the last check is under `RECHECK_SECONDS` old (a
    button pressed over and over does not turn the panel into a DNS flooder)."""
    domain = get_domain(session, actor, name, field="name")
    settings = get_server_settings(session)
    server = mail_server(settings)
    cached = session.get(DnsHealthCheck, domain.id)
    recent = cached is not None and (
        actor.now() - cached.checked_at < dt.timedelta(seconds=RECHECK_SECONDS))
    if refresh and not recent:
        fn = lookup or dkim_keys.lookup_for(session)
        dkim_keys.advance_keys(session, actor, domain.name, lookup=fn)
        verdicts = check_domain(domain.name, server, _published_keys(session, domain), fn)
        row = session.get(DnsHealthCheck, domain.id)
        if row is None:
            row = DnsHealthCheck(domain_id=domain.id, results="[]")
            session.add(row)
        row.checked_at = actor.now()
        row.results = json.dumps([v.as_dict() for v in verdicts])
        session.flush()
    return _health(session, domain, server)


def mta_sts_policy_for(session: Session, host: str) -> str:
    """The MTA-STS policy served for ``Host: mta-sts.<domain>`` (public, no sign-in).

    Raises NotFound unless `<domain>` is a hosted, verified domain (the panel must not vouch
    for a domain it does not receive mail for).
    """
    name = host.split(":", 1)[0].strip().lower().rstrip(".")
    if not name.startswith("mta-sts."):
        raise NotFound("No MTA-STS policy here.")
    try:
        domain_name = normalize_domain(name.removeprefix("mta-sts."))
    except ValidationError:
        raise NotFound("No MTA-STS policy here.") from None
    found = session.scalar(select(Domain.id).where(Domain.name == domain_name,
                                                   Domain.pending.is_(False)))
    if found is None:
        raise NotFound("No MTA-STS policy here.")
    return mta_sts_policy(get_server_settings(session).mail_hostname)
