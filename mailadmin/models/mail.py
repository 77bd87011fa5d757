"""Mail objects: domains, mailboxes, forwarders and autoresponders.

Names stored here have passed `mailadmin.names` validation: local parts are RFC 5321 dot-atoms
without any character that means something to a passwd-file, a Postfix map, Sieve or a shell,
and domains are IDNA ASCII. Renderers check again and refuse rather than escape.
"""

from __future__ import annotations

import datetime as dt
import enum

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
    text,
)
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from .base import Base, PreciseUTCDateTime, utcnow
from .users import PanelUser

DOMAIN_MAX = 253
LOCAL_PART_MAX = 64
ADDRESS_MAX = 320


class CatchAllAction(enum.StrEnum):
    REJECT = "reject"
    DISCARD = "discard"
    DELIVER = "deliver"


class Domain(Base):
    __tablename__ = "domains"
    __table_args__ = (
        CheckConstraint(
            "catchall_action IN ('reject', 'discard', 'deliver')", name="catchall_action_known"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: IDNA ASCII form ("xn--bcher-kva.example"); shown in Unicode by the panel.
    name: Mapped[str] = mapped_column(String(DOMAIN_MAX), unique=True)
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("panel_users.id", ondelete="RESTRICT"), index=True
    )
    default_quota: Mapped[int | None] = mapped_column(BigInteger)
    default_imap: Mapped[bool] = mapped_column(Boolean, default=True)
    default_pop3: Mapped[bool] = mapped_column(Boolean, default=True)
    default_smtp: Mapped[bool] = mapped_column(Boolean, default=True)
    catchall_action: Mapped[str] = mapped_column(String(16), default=CatchAllAction.REJECT.value)
    #: Text given to the sender when the default address rejects (one line, validated).
    catchall_reject_reason: Mapped[str | None] = mapped_column(String(200))
    #: Where the default address delivers when its action is "deliver".
    catchall_target: Mapped[str | None] = mapped_column(String(ADDRESS_MAX))
    #: What mailbox users of the domain may change themselves.
    allow_self_forwarding: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_self_autoresponder: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: Claimed but not proven yet: the mail servers do not know the domain (see
    #: mailadmin.services.domain_ownership). A row made without the services counts.
    pending: Mapped[bool] = mapped_column(Boolean, default=False)
    #: When the claim was proven (DNS) or approved.
    verified_at: Mapped[dt.datetime | None]
    #: What the owner publishes in the TXT record ``_mailadmin-challenge.<domain>``.
    verification_token: Mapped[str | None] = mapped_column(String(64))
    #: The last check of a pending domain and what it found (shown to the owner).
    verification_checked_at: Mapped[dt.datetime | None]
    verification_note: Mapped[str | None] = mapped_column(String(300))
    #: The mail node that stores this domain's mail; every other node proxies logins and
    #: hands incoming mail to it. None on a single-server install (the one node holds all).
    node_id: Mapped[int | None] = mapped_column(
        ForeignKey("mail_nodes.id", ondelete="RESTRICT"), index=True
    )
    #: The ``ServerSettings.config_changed_at`` of the last commit that changed what the mail
    #: servers hold for this domain (its row, mailboxes, forwarders, autoresponders, app
    #: passwords, DKIM keys or owner's suspension; `services.changes`). Domains stamped after
    #: the watermark of the release in force are the ones an incremental render redoes.
    config_changed_at: Mapped[dt.datetime | None] = mapped_column(
        PreciseUTCDateTime(), index=True)

    # Counters over the domain's mailboxes, kept by the services in the same transaction as
    # the mailbox rows (`mailadmin.services.counters`), so list pages, package limits and
    # usage bars read one row per domain instead of summing every mailbox per page view.
    # `mailadmin db recount` rebuilds them from the rows (after a hand edit).
    mailbox_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: Sum of the quotas, and how many mailboxes have none (quota 0, unlimited).
    quota_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    unlimited_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: Mailboxes with a usage reading, and the sums of those readings.
    usage_read_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    usage_bytes_total: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default=text("0"))
    usage_messages_total: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default=text("0"))
    #: The oldest reading among them (how stale the sums may be).
    usage_oldest_read_at: Mapped[dt.datetime | None]

    owner: Mapped[PanelUser] = relationship()


class Mailbox(Base):
    __tablename__ = "mailboxes"
    __table_args__ = (
        UniqueConstraint("domain_id", "local_part"),
        CheckConstraint("quota >= 0", name="quota_not_negative"),
        # The list page sorts and searches within a domain; these keep it an index range scan.
        Index("ix_mailboxes_domain_quota", "domain_id", "quota"),
        # Sorting one domain by usage, and (covering) the per-domain usage sums.
        Index("ix_mailboxes_domain_usage", "domain_id", "usage_bytes", "local_part", "quota",
              "usage_read_at", "usage_messages"),
        Index("ix_mailboxes_domain_status", "domain_id", "suspend_login", "suspend_incoming",
              "suspend_outgoing", "local_part"),
        # The oldest usage reading of a domain, found again when a mailbox goes (counters).
        Index("ix_mailboxes_domain_read_at", "domain_id", "usage_read_at"),
        # Sorting every mailbox in sight by quota or usage (the server admin's list, or a
        # customer holding thousands of domains) walks these instead of sorting all rows.
        # The id at the end makes a page's ids an index-only scan on PostgreSQL.
        Index("ix_mailboxes_quota", "quota", "local_part", "domain_id", "id"),
        Index("ix_mailboxes_usage", "usage_bytes", "local_part", "domain_id", "id"),
        Index("ix_mailboxes_status", "suspend_login", "suspend_incoming", "suspend_outgoing",
              "local_part", "domain_id", "id"),
        # "Search anywhere" in the local part: a trigram index on PostgreSQL (migration 0017
        # falls back to a plain one where the pg_trgm extension cannot be created).
        Index("ix_mailboxes_local_part_search", "local_part", postgresql_using="gin",
              postgresql_ops={"local_part": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="RESTRICT"))
    local_part: Mapped[str] = mapped_column(String(LOCAL_PART_MAX))
    #: Dovecot format with the scheme prefix, e.g. "{SHA512-CRYPT}$6$...".
    password_hash: Mapped[str] = mapped_column(String(255))
    #: Bytes; 0 means unlimited and is only allowed where the package allows it.
    quota: Mapped[int] = mapped_column(BigInteger, default=0)
    imap: Mapped[bool] = mapped_column(Boolean, default=True)
    pop3: Mapped[bool] = mapped_column(Boolean, default=True)
    smtp: Mapped[bool] = mapped_column(Boolean, default=True)
    suspend_login: Mapped[bool] = mapped_column(Boolean, default=False)
    suspend_incoming: Mapped[bool] = mapped_column(Boolean, default=False)
    suspend_outgoing: Mapped[bool] = mapped_column(Boolean, default=False)
    usage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    usage_messages: Mapped[int | None] = mapped_column(Integer)
    usage_read_at: Mapped[dt.datetime | None]
    display_name: Mapped[str | None] = mapped_column(String(100))
    #: The IANA zone the mailbox user reads times in (e.g. "Europe/Berlin"); None: UTC.
    time_zone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    password_changed_at: Mapped[dt.datetime | None]
    last_login_at: Mapped[dt.datetime | None]
    #: The main password signs in to the panel only; IMAP, POP3 and SMTP take app passwords.
    app_passwords_only: Mapped[bool] = mapped_column(Boolean, default=False)

    domain: Mapped[Domain] = relationship()

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain.name}"


#: App passwords per mailbox. Dovecot checks one hash per passdb lookup, so each app password
#: has a numbered slot with a passdb of its own; this many are configured.
APP_PASSWORD_SLOTS = 8
APP_PASSWORD_LABEL_MAX = 64


class AppPassword(Base):
    """A second password of a mailbox for one device, limited to some of its protocols.

    Only the hash is stored (Dovecot format); the protocols that count are these *and* the
    mailbox's own, so switching a protocol off on the mailbox switches it off here too.
    """

    __tablename__ = "app_passwords"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "slot"),
        UniqueConstraint("mailbox_id", "label"),
        CheckConstraint(f"slot >= 1 AND slot <= {APP_PASSWORD_SLOTS}", name="slot_in_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    #: Which passdb checks it (1..APP_PASSWORD_SLOTS, the lowest free one when created).
    slot: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(APP_PASSWORD_LABEL_MAX))
    password_hash: Mapped[str] = mapped_column(String(255))
    imap: Mapped[bool] = mapped_column(Boolean, default=False)
    pop3: Mapped[bool] = mapped_column(Boolean, default=False)
    smtp: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    mailbox: Mapped[Mailbox] = relationship()


class Forwarder(Base):
    """An address that hands mail on to one or more destinations.

    When a mailbox with the same address exists, this is that mailbox's forwarding and
    `keep_copy` says whether the mailbox also keeps the message.
    """

    __tablename__ = "forwarders"
    __table_args__ = (UniqueConstraint("domain_id", "local_part"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="RESTRICT"))
    local_part: Mapped[str] = mapped_column(String(LOCAL_PART_MAX))
    keep_copy: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    domain: Mapped[Domain] = relationship()
    destinations: Mapped[list[ForwarderDestination]] = relationship(
        back_populates="forwarder",
        cascade="all, delete-orphan",
        order_by="ForwarderDestination.position",
    )


class ForwarderDestination(Base):
    __tablename__ = "forwarder_destinations"
    __table_args__ = (UniqueConstraint("forwarder_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    forwarder_id: Mapped[int] = mapped_column(ForeignKey("forwarders.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(ADDRESS_MAX), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    forwarder: Mapped[Forwarder] = relationship(back_populates="destinations")


class Autoresponder(Base):
    """An out-of-office reply, rendered as a Sieve vacation script for its mailbox."""

    __tablename__ = "autoresponders"
    __table_args__ = (
        CheckConstraint("interval_days >= 1", name="interval_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), unique=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[dt.datetime | None]
    ends_at: Mapped[dt.datetime | None]
    #: How many days pass before the same sender is answered again.
    interval_days: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    mailbox: Mapped[Mailbox] = relationship()

    def state(self, now: dt.datetime) -> str:
        """"off" (switched off), "scheduled" (its period has not started), "ended" (its period
        is over) or "on" (answering now): what the person is told instead of a bare tick."""
        if not self.enabled:
            return "off"
        if self.starts_at is not None and _aware(self.starts_at) > now:
            return "scheduled"
        if self.ends_at is not None and _aware(self.ends_at) <= now:
            return "ended"
        return "on"


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)

class DkimKeyState(enum.StrEnum):
    #: Made and shown to the owner; signing starts once DNS publishes it.
    PUBLISHED = "published"
    #: Signs the domain's outgoing mail.
    ACTIVE = "active"
    #: Replaced by a newer key; stays in DNS until `retire_at` so mail in flight verifies.
    RETIRING = "retiring"


class DkimKey(Base):
    """A domain's DKIM key: the public half (what DNS publishes); the private half is a file
    outside the database (`mailadmin.dkim`)."""

    __tablename__ = "dkim_keys"
    __table_args__ = (
        UniqueConstraint("domain_id", "selector"),
        CheckConstraint("algorithm IN ('rsa', 'ed25519')", name="algorithm_known"),
        CheckConstraint("state IN ('published', 'active', 'retiring')", name="state_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"),
                                           index=True)
    selector: Mapped[str] = mapped_column(String(63))
    algorithm: Mapped[str] = mapped_column(String(8))
    #: base64, as in the record's ``p=`` tag.
    public_key: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default=DkimKeyState.PUBLISHED.value)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[dt.datetime | None]
    #: A retiring key is removed (row and file) after this time.
    retire_at: Mapped[dt.datetime | None]

    # the domain's keys go with the domain (the database cascades too)
    domain: Mapped[Domain] = relationship(
        backref=backref("dkim_keys", cascade="all, delete-orphan", passive_deletes=True))


class DnsHealthCheck(Base):
    """The last DNS health check of a domain, as read (shown with its time until checked
    again)."""

    __tablename__ = "dns_health_checks"

    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    checked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: JSON: the list of record verdicts (`mailadmin.dnshealth.Verdict.as_dict`).
    results: Mapped[str] = mapped_column(Text)

    domain: Mapped[Domain] = relationship(
        backref=backref("dns_health", cascade="all, delete-orphan", passive_deletes=True,
                        uselist=False))
