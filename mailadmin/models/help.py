"""Help centre articles and the "was this helpful?" votes on them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow

#: Who an article is written for; a reader sees the audiences of their role and below.
AUDIENCES = ("public", "mailbox", "customer", "reseller")


class HelpArticle(Base):
    """One article: shipped with mailadmin (and maybe edited here), or written here.

    The database's full-text index covers `search_head` (title, tags and summary) and
    `search_body` (the body as plain text), both kept lowercase so that every backend matches
    without regard to case, whatever the column collation (the MariaDB test database is binary).
    Those indexes are built by migration 0009 per backend and are not part of this model.
    """

    __tablename__ = "help_articles"
    __table_args__ = (
        CheckConstraint(
            "audience IN ('public', 'mailbox', 'customer', 'reseller')", name="audience_known"
        ),
        CheckConstraint("origin IN ('shipped', 'local')", name="origin_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500), default="")
    #: Space-separated words people search with that the text may not contain.
    tags: Mapped[str] = mapped_column(String(500), default="")
    #: Space-separated slugs shown under "Related articles".
    related: Mapped[str] = mapped_column(String(1000), default="")
    #: Space-separated diagnosis families (mailadmin/diagnostics/catalogue.toml) explained here.
    families: Mapped[str] = mapped_column(String(500), default="")
    topic: Mapped[str] = mapped_column(String(64), default="General")
    audience: Mapped[str] = mapped_column(String(16), default="public")
    body: Mapped[str] = mapped_column(Text)
    search_head: Mapped[str] = mapped_column(Text)
    search_body: Mapped[str] = mapped_column(Text)
    #: "shipped": comes with mailadmin (mailadmin/help/articles); "local": written here.
    origin: Mapped[str] = mapped_column(String(8), default="local")
    #: A reseller's own article, for its customers and their mailbox users only; None = the
    #: server's (shipped or written by the server admin).
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("panel_users.id", ondelete="CASCADE"), index=True
    )
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A shipped article changed here: upgrades keep this text.
    locally_edited: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The hash of the shipped text this row holds or, when edited here, was edited from; a
    #: different hash in the package means a newer shipped version exists.
    shipped_hash: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="mailadmin")


class HelpVote(Base):
    """One reader's answer to "Was this answer helpful?"; one per reader and article."""

    __tablename__ = "help_votes"
    __table_args__ = (UniqueConstraint("article_id", "voter"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("help_articles.id", ondelete="CASCADE"), index=True
    )
    #: "user:<id>", "mailbox:<id>" or "browser:<sha256 of the browser's random cookie>".
    voter: Mapped[str] = mapped_column(String(80))
    helpful: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
