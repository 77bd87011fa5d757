"""The address resolver: for one address, the path Postfix and Dovecot will take.

The answer is computed from the very lookup tables the mail servers read. The database is read
with `build_snapshot` (the renderer's input, including "a suspended customer suspends all its
mailboxes"), narrowed to the domains the address can reach, and passed through the renderer's
own `postfix_maps`, `dovecot_users` and `dovecot_deny`. The resolver then looks the address up
in those tables the way Postfix and Dovecot do:

* Postfix ``smtpd`` at RCPT TO: the domain must be in ``virtual_mailbox_domains`` (else relay
  access denied); ``check_recipient_access`` looks up the address, then the domain and its
  parents (``smtpd_access_maps`` is in ``parent_domain_matches_subdomains``) and stops at DUNNO
  or a reply; then the recipient must be listed in ``virtual_alias_maps`` (address or
  ``@domain``) or ``virtual_mailbox_maps``.
* ``cleanup`` expands ``virtual_alias_maps`` recursively (an address that maps to itself is
  final), then each final address is delivered: to Dovecot over LMTP (``virtual_mailbox_maps``),
  to the discard transport, or out to the Internet.
* Dovecot: a login for a service is refused when the address is in ``deny.<service>``
  (before the password is checked); LMTP and logins need the user in the passwd-file. Sending
  is refused at MAIL FROM when the address is in ``sasl_access``.

So the resolver cannot drift from the generated configuration: a rule changed in the renderer
changes the resolver's answer with it. (SQL mode reads views that implement the same rules;
they are checked against the same test matrix.)

Tenancy: a customer or reseller resolves only addresses in its own domains; for any other
address it gets NotFound "... is not hosted in your account", the same whether another account
hosts the domain or nobody does. The server admin gets a "not_hosted" answer (Postfix refuses
relaying) for a domain nobody hosts. Where a
forward or a default address hands mail to an address outside the actor's domains, that
destination is shown as configured, without what happens to it there.
"""

from __future__ import annotations

import dataclasses
import typing as t

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import NotFound
from ..mailstack import build_snapshot, settings_from_server_settings
from ..mailstack.render import (
    DISCARD_DOMAIN,
    dovecot_deny,
    dovecot_users,
    postfix_maps,
)
from ..mailstack.snapshot import StackSnapshot
from ..models import Domain, Mailbox, PanelUser, Role
from ..names import domain_of, split_address, split_loosely
from ..protocols import PROTOCOLS, Protocol
from .context import Actor
from .refusals import MailboxFacts, Refusal, login_refusals
from .scope import may_manage_domain, require_mail_manager
from .server import get_server_settings

_ALIAS_DEPTH = 100  # Postfix's virtual_alias_recursion_limit is 1000; our maps are shallow


@dataclasses.dataclass(frozen=True)
class Login:
    protocol: Protocol
    allowed: bool
    #: Why not: "no_mailbox", "login_suspended", "customer_suspended" or "<protocol>_off".
    reason: str | None


@dataclasses.dataclass(frozen=True)
class Delivery:
    address: str
    #: "mailbox" (LMTP to Dovecot), "discard", "remote" (out to the Internet), "discarded
    #: (sandbox)" when outbound delivery is off, "bounce" (hosted domain, no such mailbox), or
    #: "outside_account" (an address in a domain the actor does not manage: not followed).
    how: str
    detail: str


@dataclasses.dataclass(frozen=True)
class Resolution:
    address: str
    #: The domain is hosted here (and, for a customer or reseller, in its account).
    hosted: bool
    #: "mailbox", "forwarder", "mailbox_forwarding" (a mailbox with forwarding),
    #: "default_address" (no mailbox or forward: the domain's default address decides) or
    #: "not_hosted" or "pending" (in the account, not verified yet).
    kind: str
    #: Postfix accepts the address at RCPT TO.
    accepted: bool
    #: The refusal a sender gets (SMTP reply), when not accepted.
    rcpt_reply: str | None
    #: Where accepted mail ends up, after virtual alias expansion.
    deliveries: tuple[Delivery, ...]
    #: The forwarding configured at this address (empty when none).
    forward_to: tuple[str, ...]
    keep_copy: bool | None
    #: The domain's default address (catch-all) setting: action, reject reason, target.
    default_action: str | None
    default_reject_reason: str | None
    default_target: str | None
    #: Whether the default address handles *this* address (no mailbox, no forwarder).
    default_applies: bool
    #: Mailbox facts (None without a mailbox at this address).
    quota: int | None
    logins: tuple[Login, ...]
    receiving_suspended: bool | None
    sending_suspended: bool | None
    sending_reply: str | None
    #: The owning customer is suspended (which suspends every mailbox it has).
    customer_suspended: bool | None
    #: The path, one human sentence per step.
    steps: tuple[str, ...]

    def as_dict(self) -> dict[str, t.Any]:
        return dataclasses.asdict(self)


def _parse_map(text: str) -> dict[str, str]:
    entries = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        entries[key] = value
    return entries


def _parse_passwd(text: str) -> set[str]:
    return {line.partition(":")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def _reachable(snapshot: StackSnapshot, domain: str) -> StackSnapshot:
    """The snapshot narrowed to `domain` and every hosted domain its mail can reach.

    The maps of one domain depend on other domains only through forward destinations and
    default-address targets (whether a local destination is suspended), so the closure over
    those gives the same entries for `domain` as rendering everything.
    """
    hosted = {d.name for d in snapshot.domains}
    keep = {domain}
    todo = [domain]
    while todo:
        current = todo.pop()
        targets: list[str] = []
        for f in snapshot.forwarders:
            if f.domain == current:
                targets.extend(f.destinations)
        for d in snapshot.domains:
            if d.name == current and d.catchall_target:
                targets.append(d.catchall_target)
        for target in targets:
            dom = domain_of(target)
            if dom in hosted and dom not in keep:
                keep.add(dom)
                todo.append(dom)
    return dataclasses.replace(
        snapshot,
        domains=tuple(d for d in snapshot.domains if d.name in keep),
        mailboxes=tuple(m for m in snapshot.mailboxes if m.domain in keep),
        forwarders=tuple(f for f in snapshot.forwarders if f.domain in keep),
        autoresponders=tuple(a for a in snapshot.autoresponders
                             if domain_of(a.address) in keep),
    )


def _not_hosted(address: str) -> Resolution:
    """The server admin's answer for a domain nobody hosts here."""
    return Resolution(
        address=address, hosted=False, kind="not_hosted", accepted=False,
        rcpt_reply=f"554 5.7.1 <{address}>: Relay access denied", deliveries=(), forward_to=(),
        keep_copy=None, default_action=None, default_reject_reason=None, default_target=None,
        default_applies=False, quota=None, logins=(), receiving_suspended=None,
        sending_suspended=None, sending_reply=None, customer_suspended=None,
        steps=(f"The domain of {address} is not hosted on this server: Postfix refuses mail "
               "for it from the Internet ('Relay access denied') and nobody can log in "
               "with it.",),
    )


def _pending(address: str) -> Resolution:
    """A domain in the account that has not been verified yet: the servers do not know it."""
    return dataclasses.replace(
        _not_hosted(address), hosted=True, kind="pending",
        steps=(f"The domain of {address} is waiting for verification: until it is verified "
               "the mail servers do not know it, so Postfix refuses mail for it from the "
               "Internet ('Relay access denied'), mail sent from this server to it leaves for "
               "wherever the domain's MX points, and nobody can log in with it.",),
    )


def _access_lookup(access: dict[str, str], address: str) -> tuple[str, str | None]:
    """check_recipient_access: (key that matched, its value), trying the address, then the
    domain and each parent domain."""
    domain = domain_of(address)
    keys = [address]
    labels = domain.split(".")
    keys += [".".join(labels[i:]) for i in range(len(labels) - 1)]
    for key in keys:
        if key in access:
            return key, access[key]
    return "", None


def _alias_lookup(valias: dict[str, str], address: str) -> str | None:
    if address in valias:
        return valias[address]
    return valias.get("@" + domain_of(address))


def _expand(valias: dict[str, str], address: str, depth: int = 0) -> list[str]:
    """Postfix's recursive virtual alias expansion; an address mapping to itself is final."""
    found = _alias_lookup(valias, address)
    if found is None or depth > _ALIAS_DEPTH:
        return [address]
    result: list[str] = []
    for index, target in enumerate(found.split(",")):
        if index == 0 and target.startswith("@"):
            # Postfix: an "@domain" result means the same local part in that domain (only as
            # the first address of a result)
            target = split_loosely(address)[0] + target
        if target == address:
            result.append(target)
        else:
            result.extend(_expand(valias, target, depth + 1))
    return list(dict.fromkeys(result))


def resolve_address(session: Session, actor: Actor, address: str) -> Resolution:
    """Where mail for `address` goes and who may log in with it (see the module docstring).

    Raises InvalidName for something that is not an address, NotFound for an address outside
    the actor's domains (a customer or reseller).
    """
    require_mail_manager(actor)
    local, domain_name = split_address(address)
    address = f"{local}@{domain_name}"
    domain = session.scalars(select(Domain).where(Domain.name == domain_name)).one_or_none()
    if actor.role is Role.ADMIN and domain is None:
        return _not_hosted(address)
    if domain is None or not may_manage_domain(session, actor, domain):
        # the same refusal whether another account hosts the domain or nobody does
        raise NotFound(f"{address} is not hosted in your account.", field="address")
    if domain.pending:
        return _pending(address)

    settings = settings_from_server_settings(get_server_settings(session))
    snapshot = _reachable(build_snapshot(session, settings), domain_name)
    maps = postfix_maps(snapshot)
    vdomains = _parse_map(maps["postfix/vdomains"])
    vmailbox = _parse_map(maps["postfix/vmailbox"])
    valias = _parse_map(maps["postfix/valias"])
    access = _parse_map(maps["postfix/recipient_access"])
    sasl_access = _parse_map(maps["postfix/sasl_access"])
    users = _parse_passwd(dovecot_users(snapshot, "/release"))
    denied = {p: _parse_passwd(dovecot_deny(snapshot, p)) for p in PROTOCOLS}

    def in_scope(addr: str) -> bool:
        if actor.role is Role.ADMIN:
            return True
        dom = session.scalars(
            select(Domain).where(Domain.name == domain_of(addr))).one_or_none()
        return dom is not None and may_manage_domain(session, actor, dom)

    steps: list[str] = []
    domain_snap = next(d for d in snapshot.domains if d.name == domain_name)
    mailbox_snap = next((m for m in snapshot.mailboxes if m.address == address), None)
    forwarder_snap = next((f for f in snapshot.forwarders if f.address == address), None)
    assert domain_name in vdomains  # every domain of the snapshot is rendered into vdomains
    steps.append(f"{domain_name} is a hosted domain (virtual_mailbox_domains): Postfix "
                 "accepts mail for it from anywhere.")

    # --- Postfix at RCPT TO
    key, verdict = _access_lookup(access, address)
    rcpt_reply: str | None = None
    if verdict is not None and verdict != "DUNNO":
        code, dsn, text = verdict.split(" ", 2)
        rcpt_reply = f"{code} {dsn} <{address}>: Recipient address rejected: {text}"
        steps.append(f"recipient_access has '{key}': Postfix refuses the recipient with "
                     f"\"{verdict}\".")
    elif verdict == "DUNNO":
        steps.append(f"recipient_access has '{key}' DUNNO: the domain's refusal does not "
                     "apply to this existing address.")
    listed = _alias_lookup(valias, address) is not None or address in vmailbox
    if rcpt_reply is None and not listed:
        rcpt_reply = (f"550 5.1.1 <{address}>: Recipient address rejected: User unknown in "
                      "virtual mailbox table")
        steps.append("The address is neither a mailbox nor a forward, and the domain's "
                     "default address refuses: Postfix answers 'User unknown'.")
    accepted = rcpt_reply is None

    # --- kind
    if mailbox_snap is not None:
        kind = "mailbox_forwarding" if forwarder_snap is not None else "mailbox"
    elif forwarder_snap is not None:
        kind = "forwarder"
    else:
        kind = "default_address"
    default_applies = mailbox_snap is None and forwarder_snap is None
    if default_applies:
        action = domain_snap.catchall_action
        if action == "reject":
            why = f" with \"{domain_snap.catchall_reject_reason}\"" \
                if domain_snap.catchall_reject_reason else ""
            steps.append(f"No mailbox or forward {address}: the domain's default address "
                         f"refuses{why}.")
        elif action == "discard":
            steps.append(f"No mailbox or forward {address}: the domain's default address "
                         "accepts and discards the mail.")
        elif accepted and (domain_snap.catchall_target or "").startswith("@"):
            steps.append(f"No mailbox or forward {address}: the domain's default address "
                         "forwards it to the same name at "
                         f"{(domain_snap.catchall_target or '@')[1:]}.")
        elif accepted:
            steps.append(f"No mailbox or forward {address}: the domain's default address "
                         f"delivers to {domain_snap.catchall_target}.")
        else:
            steps.append(f"No mailbox or forward {address}: the default address would "
                         f"deliver to {domain_snap.catchall_target}, which is suspended, so "
                         "the mail is refused.")

    # --- virtual alias expansion and delivery
    deliveries: list[Delivery] = []
    if accepted:
        expanded = _expand(valias, address)
        if expanded != [address]:
            steps.append(f"virtual_alias_maps expands {address} to {', '.join(expanded)}.")
        for final in expanded:
            final_domain = domain_of(final)
            if final_domain == DISCARD_DOMAIN:
                deliveries.append(Delivery(final, "discard",
                                           "discarded by the default address"))
            elif not in_scope(final):
                deliveries.append(Delivery(final, "outside_account",
                                           "handed on to an address outside your account"))
            elif final_domain in vdomains:
                if final in vmailbox:
                    deliveries.append(Delivery(final, "mailbox",
                                               "delivered by LMTP to the Dovecot mailbox"))
                else:
                    deliveries.append(Delivery(final, "bounce", "no such mailbox: bounced"))
            elif settings.deliver_outbound:
                deliveries.append(Delivery(final, "remote", "sent on to the Internet"))
            else:
                deliveries.append(Delivery(final, "discarded (sandbox)",
                                           "outbound delivery is off: discarded"))
        if forwarder_snap is not None and actor.role is not Role.ADMIN:
            # destinations outside the account: shown as configured, not as Postfix treats them
            shown = {d.address for d in deliveries}
            for dest in forwarder_snap.destinations:
                if dest not in shown and dest != address and not in_scope(dest):
                    deliveries.append(Delivery(dest, "outside_account",
                                               "handed on to an address outside your account"))
        for d in deliveries:
            steps.append(f"{d.address}: {d.detail}.")

    # --- Dovecot
    logins: list[Login] = []
    customer_suspended: bool | None = None
    if mailbox_snap is not None:
        mailbox, owner = session.execute(
            select(Mailbox, PanelUser)
            .join(Domain, Domain.id == Mailbox.domain_id)
            .join(PanelUser, PanelUser.id == Domain.owner_id)
            .where(Domain.name == domain_name, Mailbox.local_part == local)
        ).one()
        facts = MailboxFacts.of(mailbox, owner)
        customer_suspended = facts.customer_suspended
        if customer_suspended:
            steps.append("The customer owning this mailbox is suspended: login, receiving and "
                         "sending are suspended for all its mailboxes.")
        for protocol in PROTOCOLS:
            # the rendered deny list says whether; the facts say why
            reason = None
            if address not in users:
                reason = "no_mailbox"
            elif address in denied[protocol]:
                causes = login_refusals(facts, protocol)
                reason = (f"{protocol}_off" if not causes or causes[0] is Refusal.PROTOCOL_OFF
                          else causes[0].value)
            logins.append(Login(protocol, reason is None, reason))
        allowed = [lg.protocol.label for lg in logins if lg.allowed]
        steps.append("Dovecot (passwd-file and deny lists) lets it log in with: "
                     + (", ".join(allowed) if allowed else "nothing") + ".")
    sending_reply = sasl_access.get(address) if mailbox_snap is not None else None
    if sending_reply:
        steps.append(f"Submission: Postfix refuses to send for it (sasl_access): "
                     f"\"{sending_reply}\".")

    return Resolution(
        address=address, hosted=True, kind=kind, accepted=accepted, rcpt_reply=rcpt_reply,
        deliveries=tuple(deliveries),
        forward_to=forwarder_snap.destinations if forwarder_snap else (),
        keep_copy=forwarder_snap.keep_copy if forwarder_snap else None,
        default_action=domain_snap.catchall_action,
        default_reject_reason=domain_snap.catchall_reject_reason,
        default_target=domain_snap.catchall_target,
        default_applies=default_applies,
        quota=mailbox_snap.quota if mailbox_snap else None,
        logins=tuple(logins),
        receiving_suspended=mailbox_snap.suspend_incoming if mailbox_snap else None,
        sending_suspended=mailbox_snap.suspend_outgoing if mailbox_snap else None,
        sending_reply=sending_reply,
        customer_suspended=customer_suspended,
        steps=tuple(steps),
    )
