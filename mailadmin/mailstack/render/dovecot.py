"""Dovecot's data files in files mode: the passwd-file, the per-protocol deny lists and the
app passwords.

App passwords: Dovecot's passdbs check one hash per user and lookup, so each app password of
a mailbox has a slot (1..APP_PASSWORD_SLOTS) and every slot a passdb of its own, reading
``app-passwords/<protocol>.<slot>``. An app password is listed only in the files of the
protocols it may use (its own and its mailbox's), so Dovecot accepts it for those alone. They
come after the deny lists (a protocol off or a suspended login refuses everything) and after the
main password, so that the usual login, with the main password, never walks the slots (each
empty slot would log "unknown user"). A mailbox set to "app passwords only" gets a hash in the
passwd-file that no password matches (`LOCKED_HASH`); the file stays its userdb.

Dovecot's main configuration is the ``dovecot.conf.j2`` template; in SQL mode these files do
not exist (Dovecot queries the panel's database).
"""

from __future__ import annotations

from collections.abc import Callable

from ...protocols import PROTOCOLS, Protocol
from .. import names
from ..snapshot import APP_PASSWORD_SLOTS, AppPasswordSnap, MailboxSnap, StackSnapshot
from .common import HEADER, RenderError, mailbox_address
from .dialect import Version
from .routing import proxy_fields, routing

#: The protocols with a deny list (``smtp`` is Postfix SASL logging in through Dovecot).
DENY_PROTOCOLS = PROTOCOLS


def app_password_slots() -> range:
    """The slot numbers, one passdb each (the same in every mode and version)."""
    return range(1, APP_PASSWORD_SLOTS + 1)


def _app_protocol(a: AppPasswordSnap, protocol: Protocol) -> bool:
    return {Protocol.IMAP: a.imap, Protocol.POP3: a.pop3, Protocol.SMTP: a.smtp}[protocol]


def dovecot_app_passwords(snapshot: StackSnapshot,
                          version: Version = "2.3") -> dict[str, str]:
    """``dovecot/app-passwords/<protocol>.<slot>`` for every protocol and slot, empty ones
    included (Dovecot refuses every login when a passdb's file is missing)."""
    known = {mailbox_address(m) for m in snapshot.mailboxes}
    route = routing(snapshot)
    entries: dict[tuple[Protocol, int], list[str]] = {
        (p, slot): [] for p in DENY_PROTOCOLS for slot in app_password_slots()}
    for a in snapshot.app_passwords:
        addr = mailbox_address(a)
        if addr not in known:
            raise RenderError(f"app password of {addr}, which is no mailbox here")
        if a.slot not in app_password_slots():
            raise RenderError(f"app password slot {a.slot!r} of {addr} out of range")
        proxy = proxy_fields(route, a.domain, version)
        # a mailbox held by another node: the login is proxied to it (render.routing)
        tail = f"::::::{proxy}" if proxy else ""
        line = f"{addr}:{names.password_hash(a.password_hash)}{tail}\n"
        for protocol in DENY_PROTOCOLS:
            if _app_protocol(a, protocol):
                entries[(protocol, a.slot)].append(line)
    return {f"dovecot/app-passwords/{p}.{slot}": f"# {HEADER}\n" + "".join(lines)
            for (p, slot), lines in entries.items()}


def _quota_bytes(quota: object) -> int:
    if not isinstance(quota, int) or isinstance(quota, bool) or quota < 0:
        raise RenderError(f"invalid quota {quota!r}")
    return quota


def quota_field(quota: int, version: Version) -> str:
    """The per-user quota as a passwd-file userdb field; 0 is unlimited in both versions."""
    quota = _quota_bytes(quota)
    if version == "2.4":
        # a bare number is bytes in 2.4 (dovecot24-lab 3a)
        return f"userdb_quota_storage_size={'unlimited' if quota == 0 else quota}"
    # "B" keeps the 2.3 limit exact in bytes
    return f"userdb_quota_rule={'*:storage=0' if quota == 0 else f'*:storage={quota}B'}"


#: What the passwd-file holds instead of the hash of a mailbox set to "app passwords only": a
#: SHA512-CRYPT salt without a checksum, which crypt() can never return, so every password is a
#: mismatch and Dovecot goes on to the app-password passdbs.
LOCKED_HASH = "{SHA512-CRYPT}$6$apppasswordsonly$"


def dovecot_users(snapshot: StackSnapshot, root: str, version: Version = "2.3") -> str:
    """The passwd-file: user:{SCHEME}hash:uid:gid::home::userdb extra fields.

    Autoresponders are found by the user name (dovecot.conf: 2.3's ``sieve_before``, 2.4's
    ``sieve_script`` block), so the file does not name its release folder and a release
    that does not change it links it from the one before (`apply._reusable`).
    """
    s = snapshot.settings
    route = routing(snapshot)
    lines = [f"# {HEADER}\n"]
    for m in snapshot.mailboxes:
        addr = mailbox_address(m)
        extra = quota_field(m.quota, version)
        proxy = proxy_fields(route, m.domain, version)
        if proxy:
            # held by another node: the hash stays (SASL here checks it), logins go there
            extra += f" {proxy}"
        password = LOCKED_HASH if m.app_passwords_only else names.password_hash(m.password_hash)
        lines.append(
            f"{addr}:{password}:{s.vmail_uid}:{s.vmail_gid}::"
            f"{s.mail_root}/{m.domain}/{m.local_part}::{extra}\n"
        )
    return "".join(lines)


def dovecot_deny(snapshot: StackSnapshot, service: str) -> str:
    """deny.<service>: mailboxes refused at login for imap / pop3 / smtp (SASL)."""
    flag: Callable[[MailboxSnap], bool] = {
        Protocol.IMAP: lambda m: m.imap,
        Protocol.POP3: lambda m: m.pop3,
        Protocol.SMTP: lambda m: m.smtp,
    }[Protocol(service)]
    reveal = snapshot.settings.reveal_deny_reason
    lines = [f"# {HEADER}\n"]
    for m in snapshot.mailboxes:
        if m.suspend_login or not flag(m):
            extra = "nodelay"
            if reveal:
                # extra-field values cannot contain spaces
                why = "login_suspended" if m.suspend_login else f"{service.upper()}_disabled"
                extra += f" reason={why}_for_this_account"
            lines.append(f"{mailbox_address(m)}:::::::{extra}\n")
    return "".join(lines)
