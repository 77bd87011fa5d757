"""Panel accounts (server admin, reseller, customer), packages and reseller allocations."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    and_,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow

USERNAME_MAX = 64


class Role(enum.StrEnum):
    ADMIN = "admin"
    RESELLER = "reseller"
    CUSTOMER = "customer"


class PanelUser(Base):
    """Someone who signs in with a user name (mailbox users sign in with their address)."""

    __tablename__ = "panel_users"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'reseller', 'customer')", name="role_known"),
        # A customer hangs under a reseller (or directly under the server admin); nobody else
        # has a parent, so the ownership tree is at most two levels deep.
        CheckConstraint(
            "role = 'customer' OR parent_id IS NULL", name="only_customers_have_parent"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    #: The reseller that sells to this customer; NULL for customers of the server admin.
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("panel_users.id", ondelete="RESTRICT"), index=True
    )
    # use_alter: packages and panel_users refer to each other; this key is added after both exist.
    package_id: Mapped[int | None] = mapped_column(
        ForeignKey("packages.id", ondelete="RESTRICT", use_alter=True), index=True
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    #: A suspended panel account cannot sign in; its mail keeps working.
    is_suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None]
    password_changed_at: Mapped[dt.datetime | None]
    #: The IANA zone this person reads times in (e.g. "Europe/Berlin"); None: UTC.
    time_zone: Mapped[str | None] = mapped_column(String(64))

    parent: Mapped[PanelUser | None] = relationship(remote_side=[id], foreign_keys=[parent_id])
    package: Mapped[Package | None] = relationship(foreign_keys=[package_id])

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    @hybrid_property
    def mail_suspended(self) -> bool:
        """A suspended customer: every mailbox it has is refused for login, receiving and
        sending, whatever the mailbox's own flags say (they stay, so resuming restores them).

        The one statement of the rule, in Python and (below) in SQL: the renderer's snapshot,
        the tenant queries, the resolver and account diagnosis all read it from here.
        """
        return self.role == Role.CUSTOMER.value and bool(self.is_suspended)

    @mail_suspended.inplace.expression
    @classmethod
    def _mail_suspended_expression(cls) -> ColumnElement[bool]:
        return and_(cls.role == Role.CUSTOMER.value, cls.is_suspended.is_(True))

    def __repr__(self) -> str:
        return f"<PanelUser {self.id} {self.username!r} {self.role}>"


class Package(Base):
    """A plan: the limits and defaults a customer's mail lives within.

    A limit of NULL means unlimited. Sizes are in bytes.
    """

    __tablename__ = "packages"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The reseller (or server admin) who offers this package.
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("panel_users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    max_domains: Mapped[int | None] = mapped_column(Integer)
    max_mailboxes: Mapped[int | None] = mapped_column(Integer)
    max_forwarders: Mapped[int | None] = mapped_column(Integer)
    max_quota_per_mailbox: Mapped[int | None] = mapped_column(BigInteger)
    max_total_quota: Mapped[int | None] = mapped_column(BigInteger)
    allow_unlimited_quota: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_imap: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_pop3: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_smtp: Mapped[bool] = mapped_column(Boolean, default=True)
    default_quota: Mapped[int] = mapped_column(BigInteger, default=1024**3)
    default_imap: Mapped[bool] = mapped_column(Boolean, default=True)
    default_pop3: Mapped[bool] = mapped_column(Boolean, default=True)
    default_smtp: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    owner: Mapped[PanelUser] = relationship(foreign_keys=[owner_id])


class ResellerAllocation(Base):
    """What the server admin grants a reseller; its customers' packages must fit inside."""

    __tablename__ = "reseller_allocations"

    reseller_id: Mapped[int] = mapped_column(
        ForeignKey("panel_users.id", ondelete="CASCADE"), primary_key=True
    )
    max_customers: Mapped[int | None] = mapped_column(Integer)
    max_domains: Mapped[int | None] = mapped_column(Integer)
    max_mailboxes: Mapped[int | None] = mapped_column(Integer)
    max_total_quota: Mapped[int | None] = mapped_column(BigInteger)
    allow_imap: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_pop3: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_smtp: Mapped[bool] = mapped_column(Boolean, default=True)
