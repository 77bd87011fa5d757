"""DKIM keys per domain: create, rotate, switch once DNS shows the new key, retire, remove.

A key goes ``published`` -> ``active`` -> ``retiring`` -> gone:

* `rotate_key` makes a new key (RSA 2048 by default, Ed25519 on request) with a selector
  named by the date; it is *published*: shown to the owner to put in DNS, not signing yet.
* `advance_keys` looks the waiting key up in DNS; once DNS serves it, it becomes *active*
  (OpenDKIM signs with it after the next apply) and the key it replaces becomes *retiring*:
  still listed in DNS so that mail signed with it just before verifies, until `retire_at`
  (`RETIRE_AFTER` later). Retiring keys past that time are removed, row and file.
* `remove_keys` removes one key or all of a domain's keys at once (signing stops).

Private keys are files outside the database (`mailadmin.dkim`), written before the row is
flushed; a transaction that rolls back afterwards leaves an unused file behind, never a row
without its file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import dkim
from ..dnscheck import DEFAULT_TIMEOUT, parse_resolvers
from ..dnshealth import Lookup, LookupFn
from ..errors import Conflict, MailadminError, NotFound, ValidationError
from ..models import DkimKey, DkimKeyState, Domain, PanelUser
from ..names import domain_to_unicode
from .audit import record_event
from .context import Actor
from .scope import get_domain
from .server import get_server_settings

#: How long a replaced key stays in DNS (mail in queues and in flight still verifies).
RETIRE_AFTER = dt.timedelta(days=7)
PUBLISHED, ACTIVE, RETIRING = (DkimKeyState.PUBLISHED.value, DkimKeyState.ACTIVE.value,
                               DkimKeyState.RETIRING.value)


class KeyFileError(MailadminError):
    code = "dkim_key_file"


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    selector: str
    algorithm: str
    state: str
    created_at: dt.datetime
    activated_at: dt.datetime | None
    retire_at: dt.datetime | None
    record_name: str
    record_value: str

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _info(domain: Domain, key: DkimKey) -> KeyInfo:
    return KeyInfo(key.selector, key.algorithm, key.state, key.created_at, key.activated_at,
                   key.retire_at, dkim.record_name(key.selector, domain.name),
                   dkim.record_value(key.algorithm, key.public_key))


def domain_keys(session: Session, domain: Domain) -> list[DkimKey]:
    """The domain's keys, oldest first (for services that already hold the scoped domain)."""
    return list(session.scalars(select(DkimKey).where(DkimKey.domain_id == domain.id)
                                .order_by(DkimKey.created_at, DkimKey.id)))



def key_infos(session: Session, domain: Domain) -> list[KeyInfo]:
    return [_info(domain, k) for k in domain_keys(session, domain)]


def _audit(session: Session, actor: Actor, action: str, domain: Domain, key: DkimKey,
           before: dict[str, object] | None, after: dict[str, object] | None) -> None:
    owner = session.get(PanelUser, domain.owner_id)
    record_event(session, actor, action, object_type="dkim_key", object_id=key.id,
                 object_label=f"{key.selector}._domainkey.{domain.name}",
                 customer_id=domain.owner_id, reseller_id=owner.parent_id if owner else None,
                 before=before, after=after)


def list_keys(session: Session, actor: Actor, name: str) -> list[KeyInfo]:
    domain = get_domain(session, actor, name, field="name")
    return [_info(domain, k) for k in domain_keys(session, domain)]


def rotate_key(session: Session, actor: Actor, name: str, *,
               algorithm: str = "rsa") -> KeyInfo:
    """Make a new key for the domain (its first one, or the successor of the active one).

    Raises ValidationError (unknown algorithm), Conflict (a new key of that algorithm is
    still waiting for DNS), KeyFileError (the key folder is not writable), NotFound.
    """
    if algorithm not in dkim.ALGORITHMS:
        raise ValidationError(f"Choose the key type {' or '.join(dkim.ALGORITHMS)}.",
                              field="algorithm")
    domain = get_domain(session, actor, name, field="name")
    keys = domain_keys(session, domain)
    waiting = [k for k in keys if k.state == PUBLISHED and k.algorithm == algorithm]
    if waiting:
        raise Conflict(
            f"The new key {waiting[0].selector} of {domain_to_unicode(domain.name)} still "
            "waits for DNS: publish its record and check again, or remove it first.",
            field="name")
    selector = dkim.selector_for(actor.now().date(), {k.selector for k in keys})
    pair = dkim.generate(_algorithm(algorithm))
    key_dir = get_server_settings(session).dkim_key_dir
    path = dkim.key_path(key_dir, domain.name, selector)
    try:
        dkim.write_private_key(path, pair.private_pem)
    except OSError as exc:
        raise KeyFileError(f"Cannot write the DKIM key file {path}: {exc.strerror}. The "
                           "server admin sets dkim_key_dir to a folder the panel may write."
                           ) from None
    key = DkimKey(domain_id=domain.id, selector=selector, algorithm=algorithm,
                  public_key=pair.public_b64, state=PUBLISHED, created_at=actor.now())
    session.add(key)
    session.flush()
    _audit(session, actor, "dkim.create", domain, key, None,
           {"selector": selector, "algorithm": algorithm, "state": PUBLISHED})
    return _info(domain, key)


def _algorithm(value: str) -> dkim.Algorithm:
    return "ed25519" if value == "ed25519" else "rsa"


def lookup_for(session: Session, timeout: float = DEFAULT_TIMEOUT) -> Lookup:
    """DNS lookups through the server's resolvers (setting ``dns_resolvers``)."""
    try:
        resolvers = parse_resolvers(get_server_settings(session).dns_resolvers)
    except ValidationError as exc:
        raise ValidationError(f"The server's DNS resolvers are misconfigured: {exc.message}"
                              ) from None
    return Lookup(resolvers, timeout)


def _advance(session: Session, actor: Actor, domain: Domain, lookup: LookupFn) -> None:
    now = actor.now()
    keys = domain_keys(session, domain)
    for key in keys:
        if key.state != PUBLISHED:
            continue
        texts = lookup(dkim.record_name(key.selector, domain.name), "TXT") or []
        if not any(dkim.publishes(text, key.public_key) for text in texts):
            continue
        for old in keys:
            if old.state == ACTIVE and old.algorithm == key.algorithm:
                old.state, old.retire_at = RETIRING, now + RETIRE_AFTER
                _audit(session, actor, "dkim.retire", domain, old, {"state": ACTIVE},
                       {"state": RETIRING, "retire_at": old.retire_at.isoformat()})
        key.state, key.activated_at = ACTIVE, now
        _audit(session, actor, "dkim.activate", domain, key, {"state": PUBLISHED},
               {"state": ACTIVE})
    _retire_due(session, actor, domain, keys, now)
    session.flush()


def _retire_due(session: Session, actor: Actor, domain: Domain, keys: Sequence[DkimKey],
                now: dt.datetime) -> None:
    key_dir = get_server_settings(session).dkim_key_dir
    for key in keys:
        if key.state == RETIRING and key.retire_at is not None and key.retire_at <= now:
            _delete(session, actor, domain, key, key_dir, "dkim.retired")


def _delete(session: Session, actor: Actor, domain: Domain, key: DkimKey, key_dir: str,
            action: str) -> None:
    _audit(session, actor, action, domain, key, {"state": key.state}, None)
    session.delete(key)
    # The file goes before the commit: should the transaction roll back, the row of a key
    # that was not signing stays without its file (harmless), and an apply for a signing
    # one fails validation by name ("DKIM key files are missing") rather than dropping mail.
    dkim.remove_private_key(dkim.key_path(key_dir, domain.name, key.selector))


def advance_keys(session: Session, actor: Actor, name: str, *,
                 lookup: LookupFn | None = None) -> list[KeyInfo]:
    """Activate a waiting key once DNS serves it; remove retiring keys whose time is up."""
    domain = get_domain(session, actor, name, field="name")
    _advance(session, actor, domain, lookup or lookup_for(session))
    return [_info(domain, k) for k in domain_keys(session, domain)]


def advance_all(session: Session, actor: Actor, *, lookup: LookupFn | None = None) -> int:
    """`advance_keys` for every domain with a waiting or retiring key (the operator's
    ``mailadmin dkim update``, the background round); returns how many domains changed."""
    ids = session.scalars(select(DkimKey.domain_id).where(DkimKey.state != ACTIVE)
                          .distinct()).all()
    changed = 0
    fn = lookup or lookup_for(session)
    for domain_id in ids:
        domain = session.get(Domain, domain_id)
        if domain is None:
            continue
        before = [(k.selector, k.state) for k in domain_keys(session, domain)]
        _advance(session, actor, domain, fn)
        changed += before != [(k.selector, k.state) for k in domain_keys(session, domain)]
    return changed


def waiting_records(session: Session) -> list[str]:
    """The DNS names of every key waiting for DNS (for the background round's lookups)."""
    return [dkim.record_name(selector, name) for selector, name in session.execute(
        select(DkimKey.selector, Domain.name).join(Domain, DkimKey.domain_id == Domain.id)
        .where(DkimKey.state == PUBLISHED).order_by(Domain.name, DkimKey.selector))]


def remove_keys(session: Session, actor: Actor, name: str, selector: str | None = None) -> int:
    """Remove one key (by selector) or every key of the domain; returns how many."""
    domain = get_domain(session, actor, name, field="name")
    keys = [k for k in domain_keys(session, domain) if selector is None or k.selector == selector]
    if selector is not None and not keys:
        raise NotFound(f"{domain_to_unicode(domain.name)} has no DKIM key {selector!r}.",
                       field="selector")
    key_dir = get_server_settings(session).dkim_key_dir
    for key in keys:
        _delete(session, actor, domain, key, key_dir, "dkim.remove")
    session.flush()
    return len(keys)


def forget_keys(session: Session, actor: Actor, domain: Domain) -> None:
    """The domain is being removed: its keys go too, files included (`domains.remove_domain`;
    no private key is left behind for a name the server no longer hosts)."""
    key_dir = get_server_settings(session).dkim_key_dir
    for key in domain_keys(session, domain):
        _delete(session, actor, domain, key, key_dir, "dkim.remove")
    session.flush()
