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

from .base import Base, utcnow

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
    """The server admin's settings: one row, id 1."""

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
    imap_host: Mapped[str] = mapped_column(String(253), default="mail.example.net")
    pop3_host: Mapped[str] = mapped_column(String(253), default="mail.example.net")
    smtp_host: Mapped[str] = mapped_column(String(253), default="mail.example.net")
    imap_port: Mapped[int] = mapped_column(Integer, default=993)
    pop3_port: Mapped[int] = mapped_column(Integer, default=995)
    submission_port: Mapped[int] = mapped_column(Integer, default=587)
    password_scheme: Mapped[str] = mapped_column(String(16), default="SHA512-CRYPT")
    min_password_length: Mapped[int] = mapped_column(Integer, default=10)
    stack_mode: Mapped[str] = mapped_column(String(8), default="files")
    dovecot_version: Mapped[str] = mapped_column(String(16), default="2.3")
    config_output_dir: Mapped[str] = mapped_column(String(1024), default="/etc/mailadmin/stack")
    mail_root: Mapped[str] = mapped_column(String(1024), default="/var/vmail")
    vmail_uid: Mapped[int] = mapped_column(Integer, default=5000)
    vmail_gid: Mapped[int] = mapped_column(Integer, default=5000)
    apply_automatically: Mapped[bool] = mapped_column(Boolean, default=False)
    #: What the mail servers call themselves, and who receives their reports.
    mail_hostname: Mapped[str] = mapped_column(String(253), default="mail.example.net")
    postmaster_address: Mapped[str] = mapped_column(String(320), default="postmaster@example.net")
    #: Paths of the running mail stack (sockets, state, Postfix queue, logs; None = syslog).
    run_dir: Mapped[str] = mapped_column(String(1024), default="/run/mailadmin")
    state_dir: Mapped[str] = mapped_column(String(1024), default="/var/lib/mailadmin")
    queue_dir: Mapped[str] = mapped_column(String(1024), default="/var/spool/mailadmin-postfix")
    log_dir: Mapped[str | None] = mapped_column(String(1024))
    #: Where the servers listen (the ports above are what clients are told).
    listen_address: Mapped[str] = mapped_column(String(45), default="0.0.0.0")  # noqa: S104
    imap_listen_port: Mapped[int] = mapped_column(Integer, default=143)
    pop3_listen_port: Mapped[int] = mapped_column(Integer, default=110)
    submission_listen_port: Mapped[int] = mapped_column(Integer, default=587)
    smtp_listen_port: Mapped[int] = mapped_column(Integer, default=25)
    lmtp_listen_port: Mapped[int] = mapped_column(Integer, default=24)
    reinject_listen_port: Mapped[int] = mapped_column(Integer, default=10026)
    message_size_limit: Mapped[int] = mapped_column(BigInteger, default=50 * 1024 * 1024)
    tls_cert_file: Mapped[str | None] = mapped_column(String(1024))
    tls_key_file: Mapped[str | None] = mapped_column(String(1024))
    #: Alternatives offered to clients next to the TLS ports: STARTTLS on 143/110, SMTPS on 465.
    imap_starttls_port: Mapped[int] = mapped_column(Integer, default=143)
    pop3_starttls_port: Mapped[int] = mapped_column(Integer, default=110)
    smtps_port: Mapped[int] = mapped_column(Integer, default=465)
    webmail_url: Mapped[str | None] = mapped_column(String(1024))
    #: How a customer proves a new domain is theirs: "none", "dns" or "admin" (approval).
    domain_verification: Mapped[str] = mapped_column(String(8), default="none")
    #: "host:port" resolvers for the DNS proof, space separated; empty = the system's.
    dns_resolvers: Mapped[str] = mapped_column(String(1024), default="")
    #: Names only the admin may add, one entry per line; None = the shipped list
    #: (mailadmin.domain_policy.DEFAULT_DENY_LIST), so updates to it reach unedited servers.
    domain_deny_list: Mapped[str | None] = mapped_column(Text)
    #: When the mail data last changed, so an apply can coalesce a burst of changes and the
    #: panel can tell whether the servers have caught up.
    config_changed_at: Mapped[dt.datetime | None]
    config_applied_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LoginThrottle(Base):
    """Failed sign-ins counted per account and per client address, shared by every panel process."""

    __tablename__ = "login_throttles"
    __table_args__ = (
        UniqueConstraint("scope", "key"),
        CheckConstraint("scope IN ('account', 'address')", name="scope_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(320))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None]


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
