"""Frozen, plain data the renderers work from, read from the database in a few bulk queries.

A snapshot holds no ORM objects, so rendering cannot trigger lazy loads (N+1 queries at
100,000 mailboxes) and two renders of the same snapshot are byte-identical.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing as t
from collections import defaultdict
from collections.abc import Collection

from sqlalchemy import ColumnElement, and_, false, or_, select
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
    "changed_domains",
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
    #: Several mail nodes: the address this node's doveadm server listens on for the other
    #: nodes (its `MailNode.address`). None (a single server): no doveadm listener at all.
    doveadm_address: str | None = None
    doveadm_port: int = DEFAULTS["doveadm_port"]
    #: The file holding ``doveadm_password = ...`` (0640 root:dovecot, outside the release,
    #: never in a revision); None: ``<config_dir>/doveadm/doveadm-password.conf.ext``.
    doveadm_secret_file: str | None = None
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
    #: A partial snapshot (`build_snapshot` with `domains`): the rows above are those of
    #: `only` alone (the DKIM keys excepted: always all), `domain_names` names every domain
    #: of the full snapshot in its order, and `incoming_suspended` lists every mailbox
    #: address, of any domain, that refuses incoming mail (forwarders and default addresses
    #: look it up across domains). None / empty: a full snapshot, where both follow from the
    #: rows themselves.
    #: Every mail node (none on a single server), by name.
    nodes: tuple[NodeSnap, ...] = ()
    only: frozenset[str] | None = None
    domain_names: tuple[str, ...] = ()
    incoming_suspended: frozenset[str] | None = None

    @property
    def all_domain_names(self) -> tuple[str, ...]:
        """Every domain of the full snapshot, in order (the partial one's `domain_names`)."""
        return self.domain_names if self.only is not None else tuple(
            d.name for d in self.domains)

    def refuses_incoming(self) -> frozenset[str]:
        """Every mailbox address, of any domain, that accepts no incoming mail."""
        if self.incoming_suspended is not None:
            return self.incoming_suspended
        return frozenset(m.address for m in self.mailboxes if m.suspend_incoming)


def build_snapshot(session: Session, settings: StackSettings,
                   domains: Collection[str] | None = None) -> StackSnapshot:
    """Read everything the mail servers need in seven queries, ordered for stable output.

    With `domains`, a partial snapshot: only the rows of those domains (for the incremental
    render, `render.incremental`), plus the names of all domains and the addresses refusing
    incoming mail.

    Only enabled autoresponders are included; their dates are enforced by the Sieve script
    itself so that a script does not need re-rendering when its period starts or ends.

    Every mailbox of a suspended customer (``PanelUser.mail_suspended``) is
    suspended for login, receiving and sending here, while its own flags stay as they are in
    the database: resuming the customer restores exactly what each mailbox had.

    Pending domains (claimed, not verified yet: ``Domain.pending``) are left out with all
    their mailboxes, forwarders and autoresponders: the mail servers neither accept mail for
    them nor deliver local mail to them until their owner has proven the claim.
    """
    verified: ColumnElement[bool] = Domain.pending.is_(False)
    only = None if domains is None else frozenset(domains)
    names_query = select(Domain.name).where(verified).order_by(Domain.name)
    if only is not None:
        # the DKIM keys below stay unrestricted: OpenDKIM's tables are one small file each
        verified = and_(verified, Domain.name.in_(sorted(only))) if only else false()
    # PanelUser.mail_suspended, the one rule, as a join condition (no IN over 100k rows)
    owner_suspended = PanelUser.mail_suspended
    domain_snaps = tuple(
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
    dest_query = select(ForwarderDestination.forwarder_id, ForwarderDestination.address)
    if only is not None:
        dest_query = (dest_query.join(Forwarder, ForwarderDestination.forwarder_id == Forwarder.id)
                      .join(Domain, Forwarder.domain_id == Domain.id).where(verified))
    for fwd_id, dest in session.execute(
        dest_query.order_by(
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
            .where(DkimKey.state == DkimKeyState.ACTIVE.value, Domain.pending.is_(False),
                   DkimKey.algorithm.in_(SIGNING_ALGORITHMS))
            .order_by(Domain.name, DkimKey.selector)
        )
    )
    if only is None:
        return StackSnapshot(settings, domain_snaps, mailboxes, forwarders, autoresponders,
                             app_passwords=app_passwords, dkim_keys=dkim_keys, nodes=nodes)
    refusing = frozenset(
        f"{local}@{dom}" for local, dom in session.execute(
            select(Mailbox.local_part, Domain.name)
            .join(Domain, Mailbox.domain_id == Domain.id)
            .outerjoin(PanelUser, Domain.owner_id == PanelUser.id)
            .where(Domain.pending.is_(False),
                   or_(Mailbox.suspend_incoming.is_(True), owner_suspended))
        )
    )
    return StackSnapshot(settings, domain_snaps, mailboxes, forwarders, autoresponders,
                         app_passwords=app_passwords, dkim_keys=dkim_keys, nodes=nodes, only=only,
                         domain_names=tuple(session.scalars(names_query)),
                         incoming_suspended=refusing)


def changed_domains(session: Session, since: dt.datetime,
                    gone: Collection[str] = ()) -> frozenset[str]:
    """The domains an incremental render must redo after the release of watermark `since`:
    those stamped later (`Domain.config_changed_at`, set by `services.changes`), the `gone`
    ones (in the release in force, no longer served: deleted, renamed, pending again), and
    those whose forwarders or default address send to one of these (whether an address there
    is a mailbox refusing incoming mail decides their Postfix entries).
    """
    changed = set(session.scalars(
        select(Domain.name).where(Domain.config_changed_at > since))) | set(gone)
    if not changed:
        return frozenset()
    names = sorted(changed)
    for i in range(0, len(names), 200):
        chunk = names[i:i + 200]
        into = or_(*(ForwarderDestination.address.like(f"%@{n}") for n in chunk))
        changed.update(session.scalars(
            select(Domain.name).distinct()
            .join(Forwarder, Forwarder.domain_id == Domain.id)
            .join(ForwarderDestination, ForwarderDestination.forwarder_id == Forwarder.id)
            .where(into)))
        changed.update(session.scalars(select(Domain.name).where(
            or_(*(Domain.catchall_target.like(f"%@{n}") for n in chunk)))))
    return frozenset(changed)


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
