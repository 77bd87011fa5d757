"""Two-factor sign-in (TOTP): the enrolled secret, recovery codes, remembered browsers.

Each row belongs to exactly one panel user or one mailbox, as `LoginSession` does.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow

ONE_OWNER = "(panel_user_id IS NULL) <> (mailbox_id IS NULL)"


class TwoFactorSecret(Base):
    """A principal's TOTP secret: encrypted with the instance's secret key (see
    `mailadmin.secretbox`), so a copy of the database alone does not give the codes.

    `confirmed_at` is None while the enrolment waits for its first code; such a row does not
    ask for a second factor at sign-in.
    """

    __tablename__ = "two_factor_secrets"
    __table_args__ = (CheckConstraint(ONE_OWNER, name="one_owner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    panel_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("panel_users.id", ondelete="CASCADE"), unique=True
    )
    mailbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), unique=True
    )
    secret_encrypted: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None]
    #: The TOTP time step of the last code accepted: a code is good once (RFC 6238, 5.2).
    last_used_step: Mapped[int | None] = mapped_column(Integer)


class TwoFactorRecoveryCode(Base):
    """A single-use recovery code; only its SHA-256 is kept (the code has 80 random bits)."""

    __tablename__ = "two_factor_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret_id: Mapped[int] = mapped_column(
        ForeignKey("two_factor_secrets.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[dt.datetime | None]


class TwoFactorBrowser(Base):
    """A browser told to skip the second factor for a while ("remember this browser").

    The browser's cookie carries a random token, signed; only its SHA-256 is here, so signing
    out everywhere or turning two-factor sign-in off (which delete the rows) makes the
    cookie worthless.
    """

    __tablename__ = "two_factor_browsers"
    __table_args__ = (CheckConstraint(ONE_OWNER, name="one_owner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    panel_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("panel_users.id", ondelete="CASCADE"), index=True
    )
    mailbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
