"""Audit trail, rendered configuration, API tokens, server settings, sign-in throttling, jobs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.mysql import LONGTEXT
from sqlalchemy.orm import Mapped, mapped_column

from ..server_settings_table import DEFAULTS
from .base import Base, PreciseUTCDateTime, utcnow

LONG_TEXT = Text().with_variant(LONGTEXT(), "mysql", "mariadb")


class AuditEvent(Base):
    """One change: who did it, as whom, to what, from where; written in the change's transaction."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_customer_at", "customer_id", "at"),
        Index("ix_audit_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: "panel", "mailbox", "api", "cli" or "system".
    channel: Mapped[str] = mapped_column(String(16))
    #: Names are kept as text so the trail survives the deletion of the accounts it mentions.
    actor: Mapped[str] = mapped_column(String(320))
    acting_as: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column(Integer)
    object_label: Mapped[str] = mapped_column(String(320))
    #: The customer whose object changed, so a customer's audit page is one index range.
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("panel_users.id", ondelete="SET NULL")
    )
    reseller_id: Mapped[int | None] = mapped_column(
        ForeignKey("panel_users.id", ondelete="SET NULL"), index=True
    )
    before: Mapped[str | None] = mapped_column(Text)  # JSON
    after: Mapped[str | None] = mapped_column(Text)  # JSON
    source: Mapped[str | None] = mapped_column(String(64))


class ConfigRevision(Base):
    """A rendered set of Dovecot/Postfix files, what validation said, and what became of it."""

    __tablename__ = "config_revisions"
    __table_args__ = (
        CheckConstraint(
            "state IN ('rendered', 'validated', 'applied', 'failed', 'rolled_back', 'superseded')",
            name="state_known",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320))
    mode: Mapped[str] = mapped_column(String(8))
    dovecot_version: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    #: SHA-256 over the whole file set; equal checksums mean nothing changed.
    checksum: Mapped[str] = mapped_column(String(64), index=True)
    #: JSON {relative path: file text}; kept so a rollback can re-apply exactly these files.
    #: Tens of MB at 100,000 mailboxes: MariaDB's TEXT stops at 64 KB, hence LONGTEXT there.
    files: Mapped[str] = mapped_column(LONG_TEXT)
    validation_output: Mapped[str | None] = mapped_column(LONG_TEXT)
    applied_at: Mapped[dt.datetime | None]
    rollback_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("config_revisions.id", ondelete="SET NULL")
    )


class ApiToken(Base):
    """A bearer token for the JSON API; only a hash of its secret is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("panel_users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    #: Public, random lookup key: the token reads "<prefix>.<secret>".
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class ServerSettings(Base):
    """The server admin's settings: one row, id 1. Defaults, rules and meaning of each column
    are in `mailadmin.server_settings_table`."""

    __tablename__ = "server_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint(
            "password_scheme IN ('SHA512-CRYPT', 'BLF-CRYPT', 'ARGON2ID')", name="scheme_known"
        ),
        CheckConstraint("stack_mode IN ('files', 'sql')", name="stack_mode_known"),
        CheckConstraint(
            "domain_verification IN ('none', 'dns', 'admin')", name="domain_verification_known"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=1)
    #: Host names mail clients are told to use.
    imap_host: Mapped[str] = mapped_column(String(253), default=DEFAULTS["imap_host"])
    pop3_host: Mapped[str] = mapped_column(String(253), default=DEFAULTS["pop3_host"])
    smtp_host: Mapped[str] = mapped_column(String(253), default=DEFAULTS["smtp_host"])
    imap_port: Mapped[int] = mapped_column(Integer, default=DEFAULTS["imap_port"])
    pop3_port: Mapped[int] = mapped_column(Integer, default=DEFAULTS["pop3_port"])
    submission_port: Mapped[int] = mapped_column(Integer, default=DEFAULTS["submission_port"])
    password_scheme: Mapped[str] = mapped_column(String(16), default=DEFAULTS["password_scheme"])
    min_password_length: Mapped[int] = mapped_column(
        Integer, default=DEFAULTS["min_password_length"]
    )
    stack_mode: Mapped[str] = mapped_column(String(8), default=DEFAULTS["stack_mode"])
    dovecot_version: Mapped[str] = mapped_column(String(16), default=DEFAULTS["dovecot_version"])
    config_output_dir: Mapped[str] = mapped_column(
        String(1024), default=DEFAULTS["config_output_dir"]
    )
    mail_root: Mapped[str] = mapped_column(String(1024), default=DEFAULTS["mail_root"])
    vmail_uid: Mapped[int] = mapped_column(Integer, default=DEFAULTS["vmail_uid"])
    vmail_gid: Mapped[int] = mapped_column(Integer, default=DEFAULTS["vmail_gid"])
    apply_automatically: Mapped[bool] = mapped_column(
        Boolean, default=DEFAULTS["apply_automatically"]
    )
    #: What the mail servers call themselves, and who receives their reports.
    mail_hostname: Mapped[str] = mapped_column(String(253), default=DEFAULTS["mail_hostname"])
    postmaster_address: Mapped[str] = mapped_column(
        String(320), default=DEFAULTS["postmaster_address"]
    )
    #: Paths of the running mail stack (sockets, state, Postfix queue, logs; None = syslog).
    run_dir: Mapped[str] = mapped_column(String(1024), default=DEFAULTS["run_dir"])
    state_dir: Mapped[str] = mapped_column(String(1024), default=DEFAULTS["state_dir"])
    queue_dir: Mapped[str] = mapped_column(String(1024), default=DEFAULTS["queue_dir"])
    log_dir: Mapped[str | None] = mapped_column(String(1024), default=DEFAULTS["log_dir"])
    #: Where the servers listen (the ports above are what clients are told).
    listen_address: Mapped[str] = mapped_column(String(45), default=DEFAULTS["listen_address"])
    imap_listen_port: Mapped[int] = mapped_column(Integer, default=DEFAULTS["imap_listen_port"])
    pop3_listen_port: Mapped[int] = mapped_column(Integer, default=DEFAULTS["pop3_listen_port"])
    submission_listen_port: Mapped[int] = mapped_column(
        Integer, default=DEFAULTS["submission_listen_port"]
    )
    smtp_listen_port: Mapped[int] = mapped_column(Integer, default=DEFAULTS["smtp_listen_port"])
    lmtp_listen_port: Mapped[int] = mapped_column(Integer, default=DEFAULTS["lmtp_listen_port"])
    reinject_listen_port: Mapped[int] = mapped_column(
        Integer, default=DEFAULTS["reinject_listen_port"]
    )
    message_size_limit: Mapped[int] = mapped_column(
        BigInteger, default=DEFAULTS["message_size_limit"]
    )
    tls_cert_file: Mapped[str | None] = mapped_column(String(1024))
    tls_key_file: Mapped[str | None] = mapped_column(String(1024))
    #: Alternatives offered to clients next to the TLS ports: STARTTLS on 143/110, SMTPS on 465.
    imap_starttls_port: Mapped[int] = mapped_column(Integer, default=DEFAULTS["imap_starttls_port"])
    pop3_starttls_port: Mapped[int] = mapped_column(Integer, default=DEFAULTS["pop3_starttls_port"])
    smtps_port: Mapped[int] = mapped_column(Integer, default=DEFAULTS["smtps_port"])
    webmail_url: Mapped[str | None] = mapped_column(String(1024))
    #: How a customer proves a new domain is theirs: "none", "dns" or "admin" (approval).
    domain_verification: Mapped[str] = mapped_column(
        String(8), default=DEFAULTS["domain_verification"]
    )
    #: "host:port" resolvers for the DNS proof, space separated; empty = the system's.
    dns_resolvers: Mapped[str] = mapped_column(String(1024), default=DEFAULTS["dns_resolvers"])
    #: Names only the admin may add, one entry per line; None = the shipped list
    #: (mailadmin.domain_policy.DEFAULT_DENY_LIST), so updates to it reach unedited servers.
    domain_deny_list: Mapped[str | None] = mapped_column(Text)
    #: Roles that must sign in with a second factor, space separated ("admin reseller").
    two_factor_required_roles: Mapped[str] = mapped_column(
        String(64), default=DEFAULTS["two_factor_required_roles"]
    )
    #: The server's public addresses (SPF, PTR), space separated; empty = not told.
    mail_server_addresses: Mapped[str] = mapped_column(
        String(1024), default=DEFAULTS["mail_server_addresses"])
    #: DKIM private keys live in <dkim_key_dir>/<domain>/<selector>.private.
    dkim_key_dir: Mapped[str] = mapped_column(String(1024), default=DEFAULTS["dkim_key_dir"])
    dkim_milter_port: Mapped[int] = mapped_column(Integer, default=DEFAULTS["dkim_milter_port"])
    #: Where each mail node's doveadm server listens for the other nodes (several nodes).
    doveadm_port: Mapped[int] = mapped_column(Integer, default=DEFAULTS["doveadm_port"])
    #: When the mail data last changed, so an apply can coalesce a burst of changes and the
    #: panel can tell whether the servers have caught up.
    config_changed_at: Mapped[dt.datetime | None] = mapped_column(PreciseUTCDateTime())
    config_applied_at: Mapped[dt.datetime | None] = mapped_column(PreciseUTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LoginThrottle(Base):
    """Failed sign-ins counted per account, per client address and per (account, address) pair,
    shared by every panel process (see `mailadmin.services.throttle`)."""

    __tablename__ = "login_throttles"
    __table_args__ = (
        UniqueConstraint("scope", "key"),
        CheckConstraint("scope IN ('account', 'address', 'pair')", name="scope_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(320))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None]
    #: Failures since the account last signed in, kept across windows (the owner is told at the
    #: next sign-in); with the time and client address of the latest one.
    unseen_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_failure_at: Mapped[dt.datetime | None]
    last_failure_from: Mapped[str | None] = mapped_column(String(64))


class KnownSignIn(Base):
    """Where an account signed in successfully before: a client address, or a browser's
    "known device" token (stored as its SHA-256). These may still sign in with the right
    password while the account is locked for everyone else."""

    __tablename__ = "known_sign_ins"
    __table_args__ = (
        UniqueConstraint("account_key", "kind", "value"),
        CheckConstraint("kind IN ('address', 'device')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_key: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(64))
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LoginSession(Base):
    """One signed-in browser session of a panel user or a mailbox user.

    The session cookie carries a random id whose SHA-256 is stored here; every request checks
    that the row still exists, so signing out (which deletes it) makes the cookie worthless.
    """

    __tablename__ = "login_sessions"
    __table_args__ = (
        CheckConstraint(
            "(panel_user_id IS NULL) <> (mailbox_id IS NULL)", name="one_principal"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    panel_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("panel_users.id", ondelete="CASCADE"), index=True
    )
    mailbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    client_address: Mapped[str | None] = mapped_column(String(64))
    #: When this session last proved a second factor (a TOTP or recovery code); None when it
    #: never did. Creating an API token asks for a recent one (`services.twofactor`).
    second_factor_at: Mapped[dt.datetime | None]


class Job(Base):
    """Long work (config apply, imports, usage reads) with progress a page can poll."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed')", name="state_known"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("panel_users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
