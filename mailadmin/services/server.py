"""The server admin's settings row."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..models import ServerSettings
from ..passwords import MAX_PASSWORD_LENGTH, MIN_PANEL_PASSWORD_LENGTH, policy_for_browsers


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


def password_rules(session: Session) -> dict[str, object]:
    """The password rules a browser needs to warn before a form is sent: the mailbox policy
    (`mailadmin.passwords`) with this server's minimum length, and the panel accounts' rule
    (`accounts.check_panel_password`)."""
    return {
        "mailbox": policy_for_browsers(get_server_settings(session).min_password_length),
        "panel": {"min_length": MIN_PANEL_PASSWORD_LENGTH, "max_length": MAX_PASSWORD_LENGTH},
    }


def own_host_names(session: Session) -> set[str]:
    """The names this server answers mail under (lower case): its mail host name and the
    client-facing IMAP, POP3 and SMTP host names."""
    settings = get_server_settings(session)
    names = {settings.mail_hostname, settings.smtp_host, settings.imap_host, settings.pop3_host}
    return {n.strip().lower().rstrip(".") for n in names if n}
