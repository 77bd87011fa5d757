"""What an import brings, per domain, before any rule is applied."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Origin:
    """Where a record was read: a file (relative to what was imported) and a line (1-based)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class MailboxRecord:
    """A mailbox; None leaves a value as it is (existing mailbox) or to the defaults (new)."""

    local_part: str
    origin: Origin
    password: str | None = None
    password_hash: str | None = None
    quota: int | None = None
    imap: bool | None = None
    pop3: bool | None = None
    smtp: bool | None = None
    suspend_login: bool | None = None
    suspend_incoming: bool | None = None
    suspend_outgoing: bool | None = None


@dataclass(frozen=True)
class ForwarderRecord:
    local_part: str
    destinations: tuple[str, ...]
    origin: Origin
    #: For a mailbox's forwarding: whether the mailbox keeps a copy (None: as it is / off).
    keep_copy: bool | None = None


@dataclass(frozen=True)
class DefaultAddressRecord:
    """The domain's default (catch-all) address: "reject", "discard" or "deliver"."""

    action: str
    origin: Origin
    reject_reason: str | None = None
    target: str | None = None


@dataclass(frozen=True)
class AutoresponderRecord:
    local_part: str
    subject: str
    body: str
    origin: Origin
    interval_days: int = 1
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None


@dataclass(frozen=True)
class Skipped:
    """Something that is not imported, and why."""

    what: str
    reason: str
    origin: Origin | None = None


@dataclass(frozen=True)
class Malformed:
    """A line that cannot be read; the domain it belongs to is not imported at all."""

    origin: Origin
    message: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.message}"


@dataclass
class DomainImport:
    """Everything one domain brings. `name` is as read; the service validates it."""

    name: str
    mailboxes: list[MailboxRecord] = field(default_factory=list)
    forwarders: list[ForwarderRecord] = field(default_factory=list)
    default_address: DefaultAddressRecord | None = None
    autoresponders: list[AutoresponderRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Records to apply (for progress)."""
        return (
            len(self.mailboxes)
            + len(self.forwarders)
            + len(self.autoresponders)
            + (1 if self.default_address else 0)
        )


@dataclass(frozen=True)
class ExportRow:
    """One address as `mailadmin export csv` writes it: a mailbox (with its forwarding, if
    any) or a forwarder of its own (no hash)."""

    address: str
    password_hash: str | None
    quota: int | None
    imap: bool | None
    pop3: bool | None
    smtp: bool | None
    suspend_login: bool | None
    suspend_incoming: bool | None
    suspend_outgoing: bool | None
    forwarders: tuple[str, ...]
    keep_copy: bool | None
