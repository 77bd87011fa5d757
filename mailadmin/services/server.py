"""The server admin's settings row."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..models import ServerSettings


def get_server_settings(session: Session) -> ServerSettings:
    """The settings row, created with defaults on first use."""
    settings = session.get(ServerSettings, 1)
    if settings is None:
        settings = ServerSettings(id=1)
        session.add(settings)
        session.flush()
    return settings


def webmail_url(session: Session) -> str | None:
    """The configured webmail address, or None when there is none."""
    return get_server_settings(session).webmail_url
