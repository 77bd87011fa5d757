"""Frozen, plain data the renderers work from, read from the database in a few bulk queries.

A snapshot holds no ORM objects, so rendering cannot trigger lazy loads (N+1 queries at
100,000 mailboxes) and two renders of the same snapshot are byte-identical.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing as t
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..dkim import SIGNING_ALGORITHMS
from ..models import (
    APP_PASSWORD_SLOTS,
    AppPassword,
    Autoresponder,
    DkimKey,
    DkimKeyState,
    Domain,
    Forwarder,
    ForwarderDestination,
    Mailbox,
    MailNode,
    PanelUser,
    ServerSettings,
)
from ..server_settings_table import DEFAULTS, TABLE
from .version import detect_dovecot_version

__all__ = [
    "APP_PASSWORD_SLOTS",
    "AppPasswordSnap",
    "AutoresponderSnap",
    "DomainSnap",
    "ForwarderSnap",
    "MailboxSnap",
    "NodeSnap",
    "StackPorts",
    "StackSettings",
    "StackSnapshot",
    "build_snapshot",
    "settings_from_server_settings",
]


@dataclasses.dataclass(frozen=True)
class StackPorts:
    """TCP ports the generated config listens on (standard ports in production)."""

    imap: int = DEFAULTS["imap_listen_port"]
    pop3: int = DEFAULTS["pop3_listen_port"]
    submission: int = DEFAULTS["submission_listen_port"]
    smtp: int = DEFAULTS["smtp_listen_port"]
    lmtp: int = DEFAULTS["lmtp_listen_port"]
    #: Loopback-only Postfix listener through which Dovecot sends Sieve vacation replies.
    reinject: int = DEFAULTS["reinject_listen_port"]

    @classmethod
    def from_base(cls, base: int) -> StackPorts:
        """Standard port + `base`, e.g. base 10000 gives IMAP 10143 and submission 10587."""
        return cls(
            imap=base + 143,
            pop3=base + 110,
            submission=base + 587,
            smtp=base + 25,
            lmtp=base + 24,
            reinject=base + 26,
        )

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class StackSettings:
    """Every host name, path, port and id the generated config uses.

    The caller fills it (from ServerSettings in production, from a scratch folder in the
    sandbox), so the same renderer makes both configs.
    """

    hostname: str
    postmaster_address: str
    #: Folder holding ``releases/<checksum>/`` and the ``current`` link.
    config_dir: str
    #: Dovecot base_dir lives at ``<run_dir>/dovecot`` (unix sockets: keep it short).
    run_dir: str
    #: Dovecot state_dir and Postfix data_directory live below it.
    state_dir: str
    queue_dir: str
    mail_root: str
    #: Log files for both servers; None means syslog.
    log_dir: str | None
    vmail_uid: int = DEFAULTS["vmail_uid"]
    vmail_gid: int = DEFAULTS["vmail_gid"]
    listen_address: str = DEFAULTS["listen_address"]
    ports: StackPorts = dataclasses.field(default_factory=StackPorts)
    message_size_limit: int = DEFAULTS["message_size_limit"]
    mode: str = DEFAULTS["stack_mode"]
    dovecot_version: str = DEFAULTS["dovecot_version"]
    instance_name: str = "mailadmin"
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    #: Dovecot's auth_failure_delay in seconds; None keeps Dovecot's default (2 s).
    auth_failure_delay: int | None = None
    #: False sends every non-local message to Postfix's discard transport (sandbox/tests).
    deliver_outbound: bool = True
    #: Tell a client *why* a protocol login is refused. The deny lists do not check the
    #: password, so this reveals to anyone that the account exists; off by default.
    reveal_deny_reason: bool = False
    #: DKIM private keys: ``<dkim_key_dir>/<domain>/<selector>.private`` (`mailadmin.dkim`).
    dkim_key_dir: str = DEFAULTS["dkim_key_dir"]
    #: Loopback port OpenDKIM listens on; Postfix hands it every message as a milter.
    dkim_milter_port: int = DEFAULTS["dkim_milter_port"]
    #: The mail node these files are for (`mailadmin node run --name`). None renders every
    #: domain as local, as on a single server; a name proxies the logins and hands on the
    #: incoming mail of the domains another node holds (see `render.routing`).
    node_name: str | None = None


@dataclasses.dataclass(frozen=True)
class DomainSnap:
    name: str
    catchall_action: str
    catchall_reject_reason: str | None
    catchall_target: str | None
    #: The mail node holding the domain's mail; None: every node (a single server).
    node: str | None = None


@dataclasses.dataclass(frozen=True)
class NodeSnap:
    """A mail node as the other nodes reach it."""

    name: str
    address: str


@dataclasses.dataclass(frozen=True)
class MailboxSnap:
    local_part: str
    domain: str
    password_hash: str
    quota: int
    imap: bool
    pop3: bool
    smtp: bool
    suspend_login: bool
    suspend_incoming: bool
    suspend_outgoing: bool
    #: The main password is refused over IMAP, POP3 and SMTP (app passwords still work).
    app_passwords_only: bool = False

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain}"


@dataclasses.dataclass(frozen=True)
class AppPasswordSnap:
    """An app password as the servers see it: its protocols are already narrowed to the
    mailbox's own."""

    local_part: str
    domain: str
    slot: int
    password_hash: str
    imap: bool
    pop3: bool
    smtp: bool

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain}"


@dataclasses.dataclass(frozen=True)
class ForwarderSnap:
    local_part: str
    domain: str
    keep_copy: bool
    destinations: tuple[str, ...]

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain}"


@dataclasses.dataclass(frozen=True)
class AutoresponderSnap:
    address: str
    subject: str
    body: str
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    interval_days: int


@dataclasses.dataclass(frozen=True)
class DkimKeySnap:
    """A key OpenDKIM signs the domain's mail with (the active one; its file is outside the
    release, see `mailadmin.dkim`)."""

    domain: str
    selector: str


@dataclasses.dataclass(frozen=True)
class StackSnapshot:
    settings: StackSettings
    domains: tuple[DomainSnap, ...]
    mailboxes: tuple[MailboxSnap, ...]
    forwarders: tuple[ForwarderSnap, ...]
    autoresponders: tuple[AutoresponderSnap, ...]
    app_passwords: tuple[AppPasswordSnap, ...] = ()
    #: No keys: no OpenDKIM files and no milter in main.cf.
    dkim_keys: tuple[DkimKeySnap, ...] = ()
    #: Every mail node (none on a single server), by name.
    nodes: tuple[NodeSnap, ...] = ()


def build_snapshot(session: Session, settings: StackSettings) -> StackSnapshot:
    """Read everything the mail servers need in seven queries, ordered for stable output.

    Only enabled autoresponders are included; their dates are enforced by the Sieve script
    itself so that a script does not need re-rendering when its period starts or ends.

    Every mailbox of a suspended customer (``PanelUser.mail_suspended``) is
    suspended for login, receiving and sending here, while its own flags stay as they are in
    the database: resuming the customer restores exactly what each mailbox had.

    Pending domains (claimed, not verified yet: ``Domain.pending``) are left out with all
    their mailboxes, forwarders and autoresponders: the mail servers neither accept mail for
    them nor deliver local mail to them until their owner has proven the claim.
    """
    verified = Domain.pending.is_(False)
    # PanelUser.mail_suspended, the one rule, as a join condition (no IN over 100k rows)
    owner_suspended = PanelUser.mail_suspended
    domains = tuple(
        DomainSnap(name, action, reason, target, node)
        for name, action, reason, target, node in session.execute(
            select(
                Domain.name,
                Domain.catchall_action,
                Domain.catchall_reject_reason,
                Domain.catchall_target,
                MailNode.name,
            ).outerjoin(MailNode, Domain.node_id == MailNode.id)
            .where(verified).order_by(Domain.name)
        )
    )
    nodes = tuple(NodeSnap(name, address) for name, address in session.execute(
        select(MailNode.name, MailNode.address).order_by(MailNode.name)))
    mailboxes = tuple(
        MailboxSnap(local, dom, password_hash, quota, imap, pop3, smtp,
                    login or bool(suspended), incoming or bool(suspended),
                    outgoing or bool(suspended), app_passwords_only)
        for local, dom, password_hash, quota, imap, pop3, smtp, login, incoming, outgoing,
        app_passwords_only, suspended in session.execute(
            select(
                Mailbox.local_part,
                Domain.name,
                Mailbox.password_hash,
                Mailbox.quota,
                Mailbox.imap,
                Mailbox.pop3,
                Mailbox.smtp,
                Mailbox.suspend_login,
                Mailbox.suspend_incoming,
                Mailbox.suspend_outgoing,
                Mailbox.app_passwords_only,
                owner_suspended.label("owner_suspended"),
            )
            .join(Domain, Mailbox.domain_id == Domain.id)
            .outerjoin(PanelUser, Domain.owner_id == PanelUser.id)
            .where(verified)
            .order_by(Domain.name, Mailbox.local_part)
        )
    )
    # One query for all destinations, grouped in Python: a join per forwarder would be N+1.
    destinations: dict[int, list[str]] = defaultdict(list)
    for fwd_id, dest in session.execute(
        select(ForwarderDestination.forwarder_id, ForwarderDestination.address).order_by(
            ForwarderDestination.forwarder_id,
            ForwarderDestination.position,
            ForwarderDestination.id,
        )
    ):
        destinations[fwd_id].append(dest)
    forwarders = tuple(
        ForwarderSnap(local, dom, keep, tuple(destinations.get(fid, ())))
        for fid, local, dom, keep in session.execute(
            select(Forwarder.id, Forwarder.local_part, Domain.name, Forwarder.keep_copy)
            .join(Domain, Forwarder.domain_id == Domain.id)
            .where(verified)
            .order_by(Domain.name, Forwarder.local_part)
        )
    )
    autoresponders = tuple(
        AutoresponderSnap(
            address=f"{local}@{dom}",
            subject=subject,
            body=body,
            starts_at=starts,
            ends_at=ends,
            interval_days=interval,
        )
        for local, dom, subject, body, starts, ends, interval in session.execute(
            select(
                Mailbox.local_part,
                Domain.name,
                Autoresponder.subject,
                Autoresponder.body,
                Autoresponder.starts_at,
                Autoresponder.ends_at,
                Autoresponder.interval_days,
            )
            .join(Mailbox, Autoresponder.mailbox_id == Mailbox.id)
            .join(Domain, Mailbox.domain_id == Domain.id)
            .where(Autoresponder.enabled.is_(True), verified)
            .order_by(Domain.name, Mailbox.local_part)
        )
    )
    app_passwords = tuple(
        AppPasswordSnap(
            local_part=row.local_part,
            domain=row.name,
            slot=row.slot,
            password_hash=row.password_hash,
            imap=row.imap and row.mailbox_imap,
            pop3=row.pop3 and row.mailbox_pop3,
            smtp=row.smtp and row.mailbox_smtp,
        )
        for row in session.execute(
            select(
                Mailbox.local_part,
                Domain.name,
                AppPassword.slot,
                AppPassword.password_hash,
                AppPassword.imap,
                AppPassword.pop3,
                AppPassword.smtp,
                Mailbox.imap.label("mailbox_imap"),
                Mailbox.pop3.label("mailbox_pop3"),
                Mailbox.smtp.label("mailbox_smtp"),
            )
            .join(Mailbox, AppPassword.mailbox_id == Mailbox.id)
            .join(Domain, Mailbox.domain_id == Domain.id)
            .where(verified)
            .order_by(Domain.name, Mailbox.local_part, AppPassword.slot)
        )
    )
    dkim_keys = tuple(
        DkimKeySnap(dom, selector)
        for dom, selector in session.execute(
            select(Domain.name, DkimKey.selector)
            .join(Domain, DkimKey.domain_id == Domain.id)
            .where(DkimKey.state == DkimKeyState.ACTIVE.value, verified,
                   DkimKey.algorithm.in_(SIGNING_ALGORITHMS))
            .order_by(Domain.name, DkimKey.selector)
        )
    )
    return StackSnapshot(settings, domains, mailboxes, forwarders, autoresponders,
                         app_passwords=app_passwords, dkim_keys=dkim_keys, nodes=nodes)


def _column(row: ServerSettings, name: str) -> t.Any:
    """The row's value, or the setting's default for a row not yet stored (defaults apply on
    INSERT, so a fresh ``ServerSettings()`` still has None everywhere)."""
    value = getattr(row, name)
    return DEFAULTS[name] if value is None else value


def settings_from_server_settings(row: ServerSettings, **overrides: object) -> StackSettings:
    """Every host name, path, port, id and TLS file from the ServerSettings row, placed where
    the settings table (`server_settings_table`, column ``snapshot``) says.

    `overrides` replace any field (the sandbox and the tests use loopback, high ports and a
    scratch folder this way).
    """
    values: dict[str, object] = {}
    ports: dict[str, object] = {}
    for setting in TABLE:
        if setting.snapshot is None:
            continue
        group, _, field = setting.snapshot.rpartition(".")
        (ports if group == "ports" else values)[field] = _column(row, setting.name)
    values["ports"] = StackPorts(**ports)  # type: ignore[arg-type]
    values.update(overrides)
    if values["dovecot_version"] == "auto":
        values["dovecot_version"] = detect_dovecot_version()
    return StackSettings(**values)  # type: ignore[arg-type]
