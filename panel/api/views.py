"""The API's operations: each parses its input, calls one service function and returns a model.

Every rule (names, limits, tenancy, loops) is the services'; a refusal is raised as a
`MailadminError` and turned into a JSON error by the blueprint.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from mailadmin.models import Autoresponder, Domain, Forwarder, Mailbox
from mailadmin.names import address_to_unicode, domain_to_unicode
from mailadmin.services import (
    autoresponders,
    deliverability,
    domain_ownership,
    domains,
    forwarders,
    mailboxes,
    usage,
)
from mailadmin.services.domains import DomainRow
from mailadmin.services.forwarders import ForwarderRow
from mailadmin.services.mailboxes import MailboxRow
from mailadmin.services.pagination import Page

from .. import db
from . import schemas as s
from .blueprint import bp
from .routing import current_api_actor, operation

# --- Serialisation (presentation only) ----------------------------------------------------


def jsonable(value: t.Any) -> t.Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def _page(model: type[s.PageOut[t.Any]], page: Page[t.Any], items: list[t.Any]) -> t.Any:
    return model(items=items, page=page.page, per_page=page.per_page, total=page.total,
                 pages=page.pages, total_exact=page.exact)


def _verification(status: domain_ownership.Verification) -> s.VerificationOut:
    return s.VerificationOut.model_validate(status.as_dict())


def _domain(domain: Domain) -> s.DomainOut:
    status = domain_ownership.describe(db.session(), domain)
    return s.DomainOut(
        pending=domain.pending, verification=_verification(status),
        name=domain.name, unicode_name=domain_to_unicode(domain.name), owner=domain.owner.username,
        default_quota=domain.default_quota, default_imap=domain.default_imap,
        default_pop3=domain.default_pop3, default_smtp=domain.default_smtp,
        catchall_action=domain.catchall_action,
        catchall_reject_reason=domain.catchall_reject_reason,
        catchall_target=domain.catchall_target,
    )


def _domain_row(row: DomainRow) -> s.DomainSummary:
    return s.DomainSummary(
        name=row.name, unicode_name=row.unicode_name, owner=row.owner, mailboxes=row.mailboxes,
        forwarders=row.forwarders, catchall_action=row.catchall_action,
        catchall_target=row.catchall_target, pending=row.pending,
    )


def _mailbox(mailbox: Mailbox | MailboxRow) -> s.MailboxOut:
    address = mailbox.address
    return s.MailboxOut(
        address=address, unicode_address=address_to_unicode(address), quota=mailbox.quota,
        imap=mailbox.imap, pop3=mailbox.pop3, smtp=mailbox.smtp,
        suspend_login=mailbox.suspend_login, suspend_incoming=mailbox.suspend_incoming,
        suspend_outgoing=mailbox.suspend_outgoing, usage_bytes=mailbox.usage_bytes,
        usage_messages=mailbox.usage_messages, usage_read_at=mailbox.usage_read_at,
    )


def _forwarder_row(row: ForwarderRow) -> s.ForwarderListItem:
    return s.ForwarderListItem(
        address=row.address, unicode_address=row.unicode_address,
        destinations=row.destinations, keep_copy=row.keep_copy, is_mailbox=row.is_mailbox,
    )


def _forwarder(forwarder: Forwarder) -> s.ForwarderOut:
    address = f"{forwarder.local_part}@{forwarder.domain.name}"
    return s.ForwarderOut(
        address=address, unicode_address=address_to_unicode(address),
        destinations=[address_to_unicode(d.address) for d in forwarder.destinations],
        keep_copy=forwarder.keep_copy,
    )


def _autoresponder(address: str, responder: Autoresponder) -> s.AutoresponderOut:
    return s.AutoresponderOut(
        address=address, subject=responder.subject, body=responder.body,
        starts_at=responder.starts_at, ends_at=responder.ends_at,
        interval_days=responder.interval_days, enabled=responder.enabled,
    )


# --- Domains ------------------------------------------------------------------------------


@operation(bp, "/domains", "GET", summary="List domains", tag="domains",
           query=s.DomainListQuery, response=s.DomainPage)
def list_domains(query: s.DomainListQuery) -> s.DomainPage:
    """The domains the token's owner manages, by name."""
    page = domains.list_domains(
        db.session(), current_api_actor(), search=query.search, page=query.page,
        per_page=query.per_page,
    )
    return t.cast(s.DomainPage, _page(s.DomainPage, page, [_domain_row(r) for r in page.items]))


@operation(bp, "/domains", "POST", summary="Add a domain", tag="domains",
           body=s.DomainCreate, response=s.DomainOut, status=201)
def add_domain(body: s.DomainCreate) -> s.DomainOut:
    """A customer adds to itself; a reseller or the admin names the customer."""
    domain = domains.add_domain(
        db.session(), current_api_actor(), body.name, customer=body.customer
    )
    return _domain(domain)


@operation(bp, "/domains/<name>", "DELETE", summary="Remove a domain", tag="domains", status=204)
def remove_domain(name: str) -> None:
    """Only a domain without mailboxes and forwarders can be removed."""
    domains.remove_domain(db.session(), current_api_actor(), name)


@operation(bp, "/domains/<name>/catchall", "PUT", summary="Set the default address",
           tag="domains", body=s.CatchAll, response=s.DomainOut)
def set_catchall(name: str, body: s.CatchAll) -> s.DomainOut:
    """What happens to mail for addresses of the domain that do not exist."""
    domain = domains.set_catchall(
        db.session(), current_api_actor(), name, body.action,
        reject_reason=body.reject_reason, target=body.target,
    )
    return _domain(domain)


@operation(bp, "/domains/<name>", "GET", summary="Show a domain", tag="domains",
           response=s.DomainOut)
def get_domain(name: str) -> s.DomainOut:
    """A domain the token's owner manages, with its verification state and what to do."""
    return _domain(domains.show_domain(db.session(), current_api_actor(), name))


@operation(bp, "/domains/<name>/verify", "POST", summary="Check a pending domain now",
           tag="domains", response=s.VerificationOut)
def verify_domain(name: str) -> s.VerificationOut:
    """Look for the DNS proof at once (the panel also re-checks pending domains by itself)."""
    return _verification(domain_ownership.verify_domain(db.session(), current_api_actor(), name))


def _dns_health(health: deliverability.DnsHealth) -> s.DnsHealthOut:
    return s.DnsHealthOut.model_validate(jsonable(health.as_dict()))


@operation(bp, "/domains/<name>/dns", "GET", summary="DNS health of a domain", tag="domains",
           response=s.DnsHealthOut)
def domain_dns(name: str) -> s.DnsHealthOut:
    """The last DNS check (per record: published, recommended, verdict) and the records we
    recommend; reading it sends no DNS query."""
    return _dns_health(deliverability.dns_health(db.session(), current_api_actor(), name))


@operation(bp, "/domains/<name>/dns/check", "POST", summary="Check a domain's DNS again",
           tag="domains", response=s.DnsHealthOut)
def check_domain_dns(name: str) -> s.DnsHealthOut:
    """Look every record up now (a check within seconds of the last one returns that one)."""
    return _dns_health(deliverability.dns_health(db.session(), current_api_actor(), name,
                                                 refresh=True))


@operation(bp, "/domains/<name>/approve", "POST", summary="Approve a pending domain",
           tag="domains", response=s.VerificationOut)
def approve_domain(name: str) -> s.VerificationOut:
    """The server admin, or (when domains are approved by hand) the customer's reseller."""
    return _verification(
        domain_ownership.approve_domain(db.session(), current_api_actor(), name))


@operation(bp, "/domains/<name>/defaults", "PUT", summary="Set defaults for new mailboxes",
           tag="domains", body=s.DomainDefaults, response=s.DomainOut)
def set_domain_defaults(name: str, body: s.DomainDefaults) -> s.DomainOut:
    """Quota and protocols that new mailboxes of the domain get; they must fit the package."""
    domain = domains.set_domain_defaults(
        db.session(), current_api_actor(), name,
        quota=body.quota, imap=body.imap, pop3=body.pop3, smtp=body.smtp,
    )
    return _domain(domain)


# --- Mailboxes ----------------------------------------------------------------------------


@operation(bp, "/mailboxes", "GET", summary="List mailboxes", tag="mailboxes",
           query=s.MailboxListQuery, response=s.MailboxPage)
def list_mailboxes(query: s.MailboxListQuery) -> s.MailboxPage:
    """One page, searched (prefix of the local part, or of the address with '@') and sorted."""
    page = mailboxes.list_mailboxes(
        db.session(), current_api_actor(), domain=query.domain, search=query.search,
        sort=query.sort, descending=query.descending, page=query.page, per_page=query.per_page,
    )
    return t.cast(s.MailboxPage, _page(s.MailboxPage, page, [_mailbox(r) for r in page.items]))


@operation(bp, "/mailboxes", "POST", summary="Create a mailbox", tag="mailboxes",
           body=s.MailboxCreate, response=s.MailboxOut, status=201)
def create_mailbox(body: s.MailboxCreate) -> s.MailboxOut:
    """Quota and protocols left out come from the domain's defaults, then the package."""
    mailbox = mailboxes.create_mailbox(
        db.session(), current_api_actor(), body.address, body.password,
        quota=body.quota, imap=body.imap, pop3=body.pop3, smtp=body.smtp,
    )
    return _mailbox(mailbox)


@operation(bp, "/mailboxes/<address>", "GET", summary="Show a mailbox", tag="mailboxes",
           response=s.MailboxOut)
def get_mailbox(address: str) -> s.MailboxOut:
    """A mailbox the token's owner manages."""
    return _mailbox(mailboxes.get_mailbox(db.session(), current_api_actor(), address))


@operation(bp, "/mailboxes/<address>", "PATCH", summary="Change quota and protocols",
           tag="mailboxes", body=s.MailboxUpdate, response=s.MailboxOut)
def update_mailbox(address: str, body: s.MailboxUpdate) -> s.MailboxOut:
    """Fields left out stay as they are."""
    mailbox = mailboxes.update_mailbox(
        db.session(), current_api_actor(), address,
        quota=body.quota, imap=body.imap, pop3=body.pop3, smtp=body.smtp,
    )
    return _mailbox(mailbox)


@operation(bp, "/mailboxes/<address>/password", "PUT", summary="Set a mailbox's password",
           tag="mailboxes", body=s.MailboxPassword, status=204)
def set_mailbox_password(address: str, body: s.MailboxPassword) -> None:
    """The password is checked against the policy and stored only as a hash."""
    mailboxes.set_mailbox_password(db.session(), current_api_actor(), address, body.password)


@operation(bp, "/mailboxes/<address>/suspend", "POST",
           summary="Suspend login, receiving or sending", tag="mailboxes",
           body=s.Suspensions, response=s.MailboxOut)
def suspend_mailbox(address: str, body: s.Suspensions) -> s.MailboxOut:
    """Each of login, incoming and outgoing that is true is suspended; the others are left."""
    mailbox = mailboxes.set_suspensions(
        db.session(), current_api_actor(), address,
        login=True if body.login else None,
        incoming=True if body.incoming else None,
        outgoing=True if body.outgoing else None,
    )
    return _mailbox(mailbox)


@operation(bp, "/mailboxes/<address>/resume", "POST",
           summary="Resume login, receiving or sending", tag="mailboxes",
           body=s.Suspensions, response=s.MailboxOut)
def resume_mailbox(address: str, body: s.Suspensions) -> s.MailboxOut:
    """Each of login, incoming and outgoing that is true is resumed; the others are left."""
    mailbox = mailboxes.set_suspensions(
        db.session(), current_api_actor(), address,
        login=False if body.login else None,
        incoming=False if body.incoming else None,
        outgoing=False if body.outgoing else None,
    )
    return _mailbox(mailbox)


@operation(bp, "/mailboxes/<address>", "DELETE", summary="Delete a mailbox", tag="mailboxes",
           body=s.MailboxDelete, status=204)
def delete_mailbox(address: str, body: s.MailboxDelete) -> None:
    """The body must repeat the address. The mail on disk is not touched by the panel."""
    mailboxes.delete_mailbox(db.session(), current_api_actor(), address, confirm=body.confirm)


@operation(bp, "/mailboxes/<address>/usage/recalculate", "POST",
           summary="Recount a mailbox's usage", tag="mailboxes", response=s.MailboxOut)
def recalculate_usage(address: str) -> s.MailboxOut:
    """Dovecot recounts the mailbox from its files (`doveadm quota recalc`); the fresh usage
    and the time it was read are stored and returned. 404 when the mail server does not know
    the mailbox yet (not applied); 400 `usage_unavailable` when doveadm fails."""
    return _mailbox(usage.recalculate(db.session(), current_api_actor(), address))


# --- Autoresponders -----------------------------------------------------------------------


@operation(bp, "/mailboxes/<address>/autoresponder", "PUT", summary="Set the autoresponder",
           tag="autoresponders", body=s.AutoresponderSet, response=s.AutoresponderOut)
def set_autoresponder(address: str, body: s.AutoresponderSet) -> s.AutoresponderOut:
    """Out-of-office reply: subject, body, optional start and end, interval per sender."""
    responder = autoresponders.set_autoresponder(
        db.session(), current_api_actor(), address,
        subject=body.subject, body=body.body, starts_at=body.starts_at, ends_at=body.ends_at,
        interval_days=body.interval_days, enabled=body.enabled,
    )
    return _autoresponder(responder.mailbox.address, responder)


@operation(bp, "/mailboxes/<address>/autoresponder", "DELETE", summary="Remove the autoresponder",
           tag="autoresponders", status=204)
def clear_autoresponder(address: str) -> None:
    """Removing one that does not exist is not an error."""
    autoresponders.clear_autoresponder(db.session(), current_api_actor(), address)


# --- Forwarders ---------------------------------------------------------------------------


@operation(bp, "/forwarders", "GET", summary="List forwarders", tag="forwarders",
           query=s.ForwarderListQuery, response=s.ForwarderPage)
def list_forwarders(query: s.ForwarderListQuery) -> s.ForwarderPage:
    """Forwarders and mailboxes' forwarding, by address."""
    page = forwarders.list_forwarders(
        db.session(), current_api_actor(), domain=query.domain, search=query.search,
        page=query.page, per_page=query.per_page,
    )
    return t.cast(
        s.ForwarderPage, _page(s.ForwarderPage, page, [_forwarder_row(r) for r in page.items])
    )


@operation(bp, "/forwarders/<address>", "PUT",
           summary="Create a forwarder or replace its destinations (see POST .../destinations "
           "to add)",
           tag="forwarders", body=s.ForwarderSet, response=s.ForwarderOut)
def set_forwarder(address: str, body: s.ForwarderSet) -> s.ForwarderOut:
    """At a mailbox's address this sets its forwarding (`keep_copy` allowed); loops are refused."""
    forwarder = forwarders.set_forwarder(
        db.session(), current_api_actor(), address, body.destinations, keep_copy=body.keep_copy
    )
    return _forwarder(forwarder)


@operation(bp, "/forwarders/<address>/destinations", "POST",
           summary="Add destinations to a forwarder (creating it if needed)", tag="forwarders",
           body=s.ForwarderAdd, response=s.ForwarderChangeOut)
def add_forwarder_destinations(address: str, body: s.ForwarderAdd) -> s.ForwarderChangeOut:
    """The current destinations stay; ones it has already are not repeated. Loops are refused."""
    forwarder, change = forwarders.add_destinations(
        db.session(), current_api_actor(), address, body.destinations, keep_copy=body.keep_copy
    )
    return s.ForwarderChangeOut(
        **_forwarder(forwarder).model_dump(), created=change.created,
        added=[address_to_unicode(a) for a in change.added],
        removed=[address_to_unicode(a) for a in change.removed], message=change.summary(),
    )


@operation(bp, "/forwarders/<address>", "DELETE", summary="Remove a forwarder", tag="forwarders",
           status=204)
def remove_forwarder(address: str) -> None:
    """Removes the forwarder (or a mailbox's forwarding); the mailbox stays."""
    forwarders.remove_forwarder(db.session(), current_api_actor(), address)
