"""Copying mail brought from another server into imported mailboxes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from ..mailstack.mailcopy import MailCopyFailed, sync_maildir
from .context import Actor
from .mailboxes import get_mailbox
from .scope import require_admin
from .server import get_server_settings


def copy_cpanel_mail(
    session: Session, actor: Actor, domain_folder: Path, addresses: Sequence[str]
) -> list[str]:
    """Pull each mailbox's Maildir from `domain_folder`/<local part> (cPanel's
    ``mail/<domain>/<user>``) into the mailbox; one line per mailbox saying what happened.

    Only the server admin: the folder is read by Dovecot as root's mail user. Raises NotFound
    for an address that is not the actor's.
    """
    require_admin(actor, "copies mail folders from the server's disk")
    from ..mailstack import settings_from_server_settings

    settings = settings_from_server_settings(get_server_settings(session))
    lines = []
    for address in addresses:
        mailbox = get_mailbox(session, actor, address)
        source = domain_folder / mailbox.local_part
        if not source.is_dir() or source.is_symlink():
            lines.append(f"{address}: no mail folder {source}")
            continue
        try:
            sync_maildir(settings.config_dir, mailbox.address, source,
                         uid=settings.vmail_uid, gid=settings.vmail_gid)
        except MailCopyFailed as exc:
            lines.append(f"{address}: mail NOT copied: {exc.message}")
            continue
        lines.append(f"{address}: mail copied from {source}")
    return lines
