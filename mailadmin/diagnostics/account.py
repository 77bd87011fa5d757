"""Hold a diagnosis against the hosted account: did *the account* cause it, or something else?

The classifier says what a reply means ("authentication failed", "mailbox full"). A refused
login looks exactly like a wrong password when a protocol is switched off or the login is
suspended (the servers do not tell the client why, see ``StackSettings.reveal_deny_reason``),
so :func:`check_account` reads the mailbox's state and names the cause that is the account's
own, or says that the account is fine and where to look next.

Pure logic over data read with a SQLAlchemy ``Session``: no Flask. Scope: a customer (or a
mailbox user) sees only its own addresses; any other address is "not hosted in your account",
whether it exists elsewhere on the server or not, so nothing leaks.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InvalidName, NotFound
from ..models import Domain, Forwarder, Mailbox, PanelUser
from ..names import split_address
from ..protocols import PROTOCOLS, Protocol
from ..services import limits as package_limits
from ..services.context import Actor
from ..services.forwarders import find_forwarding_loop
from ..services.refusals import (
    MailboxFacts,
    Refusal,
    login_refusals,
    receiving_refusals,
    sending_refusals,
)
from ..services.scope import may_manage_domain
from ..services.selfservice import MailboxUser
from ..sizes import format_size
from .catalogue import family as family_entry
from .classify import Finding

#: Families where the server refused a login: always check the protocol flags and suspensions.
LOGIN_FAMILIES = frozenset({"auth_failed", "protocol_disabled", "account_suspended"})
#: Families about sending through our submission service.
SENDING_FAMILIES = frozenset({"sender_not_owned", "relay_denied", "rcpt_before_data",
                              "rate_limited", "starttls_required", "policy_rejected"})
#: Families about a recipient hosted here.
RECEIVING_FAMILIES = frozenset({"quota_full", "user_unknown", "account_suspended",
                                "domain_unknown", "delivery_timeout", "temp_failure",
                                "policy_rejected", "size_exceeded"})

_ADDRESS = re.compile(r"<([^<>@\s]{1,64}@[A-Za-z0-9.-]{1,253})>")
_LOGIN_USER = re.compile(r"(?i)not owned by user\s+([^\s;,]{1,64}@[A-Za-z0-9.-]{1,253})")

Principal = Actor | MailboxUser


@dataclass(frozen=True)
class AccountCheck:
    """One statement about the account: what was checked and what it says."""

    #: protocol_off, login_suspended, receiving_suspended, sending_suspended,
    #: customer_suspended, domain_pending, over_quota, quota_ok, domain_not_hosted,
    #: no_such_address,
    #: forwarder_loop, sender_not_owned, package_limit, password_wrong, app_passwords_only,
    #: account_fine,
    #: not_in_your_account, address_needed.
    cause: str
    address: str | None
    title: str
    detail: str
    next_step: str
    #: True when the account's own state explains the finding.
    account_caused: bool
    family: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "cause": self.cause,
            "address": self.address,
            "title": self.title,
            "detail": self.detail,
            "next_step": self.next_step,
            "account_caused": self.account_caused,
            "family": self.family,
        }


@dataclass(frozen=True)
class AccountReport:
    """Every check made for a set of findings (and the address asked about)."""

    address: str | None
    checks: tuple[AccountCheck, ...] = field(default_factory=tuple)

    @property
    def account_caused(self) -> tuple[AccountCheck, ...]:
        return tuple(c for c in self.checks if c.account_caused)

    @property
    def account_fine(self) -> bool:
        return not self.account_caused and not any(
            c.cause in {"not_in_your_account", "no_such_address", "domain_not_hosted",
                        "address_needed"}
            for c in self.checks
        )

    @property
    def causes(self) -> tuple[str, ...]:
        return tuple(c.cause for c in self.checks)

    @property
    def summary(self) -> str:
        caused = self.account_caused
        if caused:
            return "The account causes this: " + "; ".join(c.title for c in caused) + "."
        if any(c.cause == "not_in_your_account" for c in self.checks):
            return "The address is not hosted in your account, so its state cannot be checked."
        if any(c.cause == "address_needed" for c in self.checks):
            return "Name the mailbox to hold this against its account."
        if self.account_fine and self.checks:
            return "The account is fine; the problem lies elsewhere."
        return "Nothing in the account explains this."

    def as_dict(self) -> dict[str, object]:
        return {
            "address": self.address,
            "account_fine": self.account_fine,
            "summary": self.summary,
            "checks": [c.as_dict() for c in self.checks],
        }


# --------------------------------------------------------------------------- lookups


@dataclass(frozen=True)
class _Hosted:
    address: str
    domain: Domain
    mailbox: Mailbox | None
    forwarder: Forwarder | None
    owner: PanelUser | None


def _in_scope(session: Session, principal: Principal, domain: Domain, address: str) -> bool:
    if isinstance(principal, MailboxUser):
        return address == principal.address
    return may_manage_domain(session, principal, domain)


def _lookup(session: Session, principal: Principal, address: str
            ) -> _Hosted | AccountCheck:
    """The hosted address in the principal's scope, or the check that says why not."""
    try:
        local, domain_name = split_address(address, hosted=True)
    except InvalidName:
        return AccountCheck("no_such_address", address, f"{address} is not a valid address",
                            "The address cannot be hosted here as written.",
                            "Check the spelling of the address.", False)
    normal = f"{local}@{domain_name}"
    domain = session.scalars(select(Domain).where(Domain.name == domain_name)).one_or_none()
    admin = isinstance(principal, Actor) and principal.is_admin
    if domain is None or not _in_scope(session, principal, domain, normal):
        if admin:
            return AccountCheck(
                "domain_not_hosted", normal, f"The domain {domain_name} is not hosted here",
                "No domain of that name is set up on this server, so it accepts no mail for it "
                "and nobody can log in with an address in it.",
                "Add the domain in the panel if it should be hosted here, and check that its MX "
                "points to this server; otherwise the problem lies with the domain's own host.",
                True)
        return AccountCheck(
            "not_in_your_account", normal, f"{normal} is not hosted in your account",
            "The address is not one of your account's addresses, so its state cannot be shown.",
            "If it should be yours, add its domain in the panel; otherwise ask whoever hosts "
            "that address.", False)
    mailbox = session.scalars(select(Mailbox).where(
        Mailbox.domain_id == domain.id, Mailbox.local_part == local)).one_or_none()
    forwarder = session.scalars(select(Forwarder).where(
        Forwarder.domain_id == domain.id, Forwarder.local_part == local)).one_or_none()
    owner = session.get(PanelUser, domain.owner_id)
    return _Hosted(normal, domain, mailbox, forwarder, owner)


def _when(value: dt.datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "never"


# --------------------------------------------------------------------------- checks


def _customer_suspended(h: _Hosted) -> AccountCheck | None:
    if h.owner is not None and h.owner.mail_suspended:
        return AccountCheck(
            "customer_suspended", h.address, "The whole customer account is suspended",
            "While the customer is suspended every mailbox of it is refused for login, "
            "receiving and sending, whatever the mailbox's own settings say.",
            "Ask the provider (reseller or server admin) to resume the customer account.", True)
    return None


def _domain_pending(h: _Hosted, family: str | None) -> list[AccountCheck]:
    if not h.domain.pending:
        return []
    return [AccountCheck(
        "domain_pending", h.address, f"The domain {h.domain.name} is waiting for verification",
        "Until its owner proves the domain is theirs (or it is approved), the mail servers do "
        "not know it: mail for it is refused ('Relay access denied') and its mailboxes cannot "
        "log in or send.",
        "Open the domain in the panel and follow its verification steps, then apply the "
        "configuration.", True, family)]


def _protocols_for(finding: Finding) -> tuple[Protocol, ...]:
    """Which protocol a refused login was for, from the reply's wording (all when unsure)."""
    line = finding.line
    if finding.replycode in {"535", "530", "534", "538"} or re.search(r"\b5\.7\.[08]\b", line):
        return (Protocol.SMTP,)
    if "AUTHENTICATIONFAILED" in line.upper() or re.search(r"(?i)^\S+ NO\b", line):
        return (Protocol.IMAP,)
    if line.startswith("-ERR"):
        return (Protocol.POP3,)
    return PROTOCOLS


def _login_checks(session: Session, h: _Hosted, protocols: Sequence[Protocol],
                  family: str) -> list[AccountCheck]:
    m = h.mailbox
    if m is None:
        what = "a forwarder" if h.forwarder is not None else "not a mailbox"
        return [AccountCheck(
            "no_such_address", h.address, f"{h.address} is {what}, so it cannot log in",
            "Only mailboxes have a password; the server refuses a login for any other address "
            "as if the password were wrong.",
            "Log in with the full address of an existing mailbox.", True, family)]
    out: list[AccountCheck] = []
    facts = MailboxFacts.of(m, h.owner)
    refused = {p: login_refusals(facts, p) for p in protocols}
    reasons = {r for found in refused.values() for r in found}
    if Refusal.CUSTOMER_SUSPENDED in reasons:
        suspended = _customer_suspended(h)
        assert suspended is not None
        out.append(suspended)
    out.extend(_domain_pending(h, family))
    if Refusal.LOGIN_SUSPENDED in reasons:
        out.append(AccountCheck(
            "login_suspended", h.address, "The mailbox's login is suspended",
            "A suspended login is refused over IMAP, POP3 and SMTP exactly like a wrong "
            "password; mail may still arrive.",
            "Resume the login in the panel (Mailbox > Suspend) if the hold is no longer needed.",
            True, family))
    limits = package_limits.limits_for(session, h.owner) if h.owner else None
    for proto in protocols:
        if Refusal.PROTOCOL_OFF in refused[proto]:
            label = proto.permission_label
            out.append(AccountCheck(
                "protocol_off", h.address, f"{label} is switched off for this mailbox",
                f"The server refuses every {label} login for {h.address} with the same reply "
                "as a wrong password, so changing the password would not help.",
                f"Switch {label} on for the mailbox in the panel, or use a protocol that is on.",
                True, family))
            if limits is not None and proto not in limits.protocols:
                out.append(AccountCheck(
                    "package_limit", h.address,
                    f"The package {limits.package_name!r} does not include {label}",
                    f"The customer's package does not allow {label}, so it cannot be "
                    "switched on for any mailbox.",
                    "Ask the provider for a package that includes it.", True, family))
    if not out and m.app_passwords_only:
        out.append(AccountCheck(
            "app_passwords_only", h.address,
            "The mailbox takes app passwords only",
            "IMAP, POP3 and SMTP refuse the mailbox's main password (it signs in to the panel "
            "only); a mail program must use an app password made for it, which may also be "
            "limited to other protocols or revoked.",
            "Create an app password for this device under App passwords (or check the one it "
            "uses allows this protocol), or switch \"app passwords only\" off.",
            True, family))
    if not out:
        names = ", ".join(p.permission_label for p in protocols)
        out.append(AccountCheck(
            "password_wrong", h.address, "The password is wrong; the account is fine",
            f"The mailbox is active, its login is not suspended and {names} is on, so the "
            "server refused the password (or the user name) the program sent.",
            "Use the full e-mail address as the user name and re-type the password in the mail "
            "program (reset it in the panel if unsure). Run the login test to confirm.",
            False, family))
    return out


def _sending_checks(session: Session, h: _Hosted, finding: Finding) -> list[AccountCheck]:
    m = h.mailbox
    out: list[AccountCheck] = []
    suspended = _customer_suspended(h)
    if suspended:
        out.append(suspended)
    out.extend(_domain_pending(h, finding.family))
    if m is not None:
        reasons = sending_refusals(MailboxFacts.of(m, h.owner))
        if Refusal.LOGIN_SUSPENDED in reasons:
            out.append(AccountCheck(
                "login_suspended", h.address, "The mailbox's login is suspended",
                "It cannot log in to send, so the server refuses relaying for it.",
                "Resume the login in the panel.", True, finding.family))
        if Refusal.PROTOCOL_OFF in reasons:
            out.append(AccountCheck(
                "protocol_off", h.address, "SMTP (sending) is switched off for this mailbox",
                "The mail program cannot log in to send, so every RCPT TO to an outside "
                "address is refused and DATA then fails with 503.",
                "Switch SMTP on for the mailbox in the panel.", True, finding.family))
        if Refusal.SENDING_SUSPENDED in reasons:
            out.append(AccountCheck(
                "sending_suspended", h.address, "Sending is suspended for this mailbox",
                "The server refuses every recipient of mail this mailbox sends (550 at RCPT TO); "
                "a client that goes on to DATA then gets 503.",
                "Resume sending in the panel once the reason for the hold is dealt with.",
                True, finding.family))
    if finding.family == "sender_not_owned":
        login = _LOGIN_USER.search(finding.line)
        senders = [a for a in _ADDRESS.findall(finding.line)]
        sender = senders[0].lower() if senders else None
        user = login.group(1).lower() if login else h.address
        if sender and sender != user:
            out.append(AccountCheck(
                "sender_not_owned", h.address, f"{user} may not send as {sender}",
                f"A mailbox may send only as its own address; the program logged in as {user} "
                f"but used {sender} as the sender.",
                f"Send from {user}, or log in as the mailbox {sender} to send as it.",
                True, finding.family))
    return out


def _receiving_checks(session: Session, h: _Hosted, finding: Finding) -> list[AccountCheck]:
    m = h.mailbox
    out: list[AccountCheck] = []
    suspended = _customer_suspended(h)
    if suspended:
        out.append(suspended)
    out.extend(_domain_pending(h, finding.family))
    if m is None and h.forwarder is None:
        action = h.domain.catchall_action
        out.append(AccountCheck(
            "no_such_address", h.address, f"There is no mailbox or forwarder {h.address}",
            f"The domain {h.domain.name} is hosted here, but not this address; its default "
            f"address is set to {action!r}.",
            "Create the mailbox or forwarder, or ask the sender for the right address.",
            finding.family == "user_unknown", finding.family))
    if m is not None:
        if Refusal.RECEIVING_SUSPENDED in receiving_refusals(MailboxFacts.of(m, h.owner)):
            out.append(AccountCheck(
                "receiving_suspended", h.address, "Receiving is suspended for this mailbox",
                "The server refuses mail to it at RCPT TO (550 5.2.1), also through forwarders "
                "that lead to it.",
                "Resume receiving in the panel.", True, finding.family))
        out.extend(_quota_checks(session, h, m, finding))
    if h.forwarder is not None and h.forwarder.destinations:
        loop = find_forwarding_loop(session, h.domain.owner_id, h.address,
                          [d.address for d in h.forwarder.destinations])
        if loop:
            out.append(AccountCheck(
                "forwarder_loop", h.address, "The forwarding makes a loop",
                "Mail to it is handed round " + " → ".join(loop) + " until the server gives up "
                "(\"too many hops\").",
                "Remove one of the forwardings in the loop in the panel.", True, finding.family))
        else:
            for dest in h.forwarder.destinations:
                if dest.address == h.address:
                    continue
                dest_h = _lookup(session, _owner_actor(h), dest.address)
                if isinstance(dest_h, _Hosted) and dest_h.mailbox is not None and (
                        Refusal.RECEIVING_SUSPENDED in receiving_refusals(
                            MailboxFacts.of(dest_h.mailbox, dest_h.owner))):
                    out.append(AccountCheck(
                        "receiving_suspended", h.address,
                        f"The forwarder's destination {dest.address} does not receive mail",
                        "Receiving is suspended for the mailbox the forwarder hands mail to.",
                        "Resume receiving for that mailbox, or change the forwarder.", True,
                        finding.family))
    return out


def _owner_actor(h: _Hosted) -> Actor:
    from ..models import Role

    return Actor(name="diagnostics", role=Role.CUSTOMER, channel="system",
                 customer_id=h.domain.owner_id)


def _quota_checks(session: Session, h: _Hosted, m: Mailbox, finding: Finding
                  ) -> list[AccountCheck]:
    quota_family = finding.family == "quota_full"
    if not quota_family and not m.quota:
        return []
    if not m.quota:
        return [AccountCheck("quota_ok", h.address, "The mailbox has no quota",
                             "Its size is not limited.", "Look elsewhere for the cause.",
                             False, finding.family)] if quota_family else []
    usage = m.usage_bytes
    read = _when(m.usage_read_at)
    limits = package_limits.limits_for(session, h.owner) if h.owner else None
    at_max = (limits is not None and limits.max_quota_per_mailbox is not None
              and m.quota >= limits.max_quota_per_mailbox)
    raise_hint = ("The quota is already the most the package allows per mailbox: delete or "
                  "archive mail, or ask for a bigger package." if at_max else
                  "Delete or archive old mail (and empty the Trash), or raise the quota in the "
                  "panel.")
    if usage is not None and usage >= m.quota:
        return [AccountCheck(
            "over_quota", h.address, "The mailbox is over its quota",
            f"It uses {format_size(usage)} of {format_size(m.quota)} "
            f"(usage read {read}), so new mail is refused.", raise_hint, True, finding.family)]
    if not quota_family:
        return []
    if usage is None:
        return [AccountCheck(
            "over_quota", h.address, "The mailbox quota is too small for the message",
            f"The quota is {format_size(m.quota)}; its usage has not been read yet, and the "
            "server refused the message because it would not fit in what is left.",
            raise_hint, True, finding.family)]
    free = m.quota - usage
    return [AccountCheck(
        "over_quota", h.address, "The message does not fit in what is left of the quota",
        f"It uses {format_size(usage)} of {format_size(m.quota)} (usage read {read}); only "
        f"{format_size(free) if free else '0 B'} is free, less than the message needs.",
        raise_hint, True, finding.family)]


# --------------------------------------------------------------------------- entry point


def _finding_addresses(finding: Finding) -> list[str]:
    found: list[str] = []
    if finding.recipient:
        found.append(finding.recipient.lower())
    for addr in _ADDRESS.findall(finding.line):
        if addr.lower() not in found:
            found.append(addr.lower())
    return found


def _elsewhere(address: str | None, findings: Sequence[Finding]) -> AccountCheck:
    if findings:
        entry = family_entry(findings[0].family)
        where = ("the mail program's settings" if entry.client_side
                 else "the remote site or the message itself")
        step = entry.fix
    else:
        where, step = "elsewhere", ("Paste the whole bounce or error, or run the login test for "
                                    "the mailbox.")
    return AccountCheck(
        "account_fine", address, "The account is fine; the problem lies elsewhere",
        f"Nothing in the account's state explains this: the mailbox is active and allowed to "
        f"do this. Look at {where}.", step, False, findings[0].family if findings else None)


def check_account(session: Session, actor: Principal, findings: Iterable[Finding], *,
                  address: str | None = None, protocol: str | None = None) -> AccountReport:
    """Hold each finding against the state of the hosted account.

    ``address`` is the account the findings are about (the mailbox that logged in or sent);
    without it the addresses named in each finding are checked. ``protocol`` (imap, pop3,
    smtp) narrows the flags checked for a refused login; otherwise they are read from the
    reply's wording, or all are checked.
    """
    found = list(findings)
    checks: list[AccountCheck] = []
    looked: dict[str, _Hosted | AccountCheck] = {}

    def hosted(addr: str) -> _Hosted | AccountCheck:
        if addr not in looked:
            looked[addr] = _lookup(session, actor, addr)
        return looked[addr]

    def add(items: Iterable[AccountCheck]) -> None:
        for item in items:
            if all((c.cause, c.address, c.title) != (item.cause, item.address, item.title)
                   for c in checks):
                checks.append(item)

    primary = address.strip().lower() if address else None
    if primary is not None:
        h = hosted(primary)
        if isinstance(h, AccountCheck):
            return AccountReport(primary, (h,))
    for finding in found:
        fam = finding.family
        if fam in LOGIN_FAMILIES and primary is not None and not (
                fam == "account_suspended" and "does not accept mail" in finding.line):
            h = hosted(primary)
            assert isinstance(h, _Hosted)
            protos = (Protocol(protocol),) if protocol in PROTOCOLS else _protocols_for(finding)
            add(_login_checks(session, h, protos, fam))
            continue
        if fam in SENDING_FAMILIES and primary is not None:
            h = hosted(primary)
            assert isinstance(h, _Hosted)
            add(_sending_checks(session, h, finding))
        targets = _finding_addresses(finding)
        if fam == "sender_not_owned":
            targets = []
        for addr in targets:
            if addr == primary and fam in SENDING_FAMILIES:
                continue
            h = hosted(addr)
            if isinstance(h, AccountCheck):
                if h.cause != "no_such_address":
                    add([h])
                continue
            add(_receiving_checks(session, h, finding))
    if primary is None and not checks and any(f.family in LOGIN_FAMILIES for f in found):
        return AccountReport(None, (AccountCheck(
            "address_needed", None, "Name the mailbox to check its account",
            "A refused login looks the same whether the password is wrong, the protocol is "
            "switched off or the login is suspended; only the mailbox's state tells them apart.",
            "Give the mailbox's address (or run the login test from the mailbox page).",
            False, found[0].family),))
    if primary is None and not checks:
        return AccountReport(None, (_elsewhere(None, found),) if found else ())
    if not any(c.account_caused or c.cause in {"password_wrong", "not_in_your_account"}
               for c in checks):
        checks.append(_elsewhere(primary, found))
    return AccountReport(primary, tuple(checks))


def mailbox_in_scope(session: Session, actor: Principal, address: str) -> Mailbox:
    """The mailbox at ``address`` if the principal may see it; NotFound otherwise (no leak)."""
    h = _lookup(session, actor, address)
    if isinstance(h, AccountCheck) or h.mailbox is None:
        raise NotFound(f"There is no mailbox {address!r} in your account.", field="address")
    return h.mailbox
