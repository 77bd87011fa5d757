"""Mail nodes: the machines that run Dovecot + Postfix from the panel's configuration."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class MailNode(Base):
    """One mail server that `mailadmin node run` keeps current, and what it reported last.

    The node's runner is the only process that writes the servers' files and reloads them;
    the panel only records changes. `applied_through` is the ``config_changed_at`` watermark
    the node's servers are current with (see services.stack), so its lag is the time since
    the oldest change it does not have.
    """

    __tablename__ = "mail_nodes"
    __table_args__ = (CheckConstraint("role IN ('mail')", name="role_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    #: Where the other nodes reach this one (a host name or an IP address).
    address: Mapped[str] = mapped_column(String(253))
    role: Mapped[str] = mapped_column(String(16), default="mail")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: The runner's last sign of life (each loop of `mailadmin node run`).
    last_seen_at: Mapped[dt.datetime | None]
    applied_revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("config_revisions.id", ondelete="SET NULL")
    )
    applied_checksum: Mapped[str | None] = mapped_column(String(64))
    applied_at: Mapped[dt.datetime | None]
    applied_through: Mapped[dt.datetime | None]
    #: The last apply's failure as the tool said it; cleared by the next success.
    last_error: Mapped[str | None] = mapped_column(Text)
