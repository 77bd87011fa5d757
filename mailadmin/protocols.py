"""The mail protocols a mailbox may be allowed: one enum read by models, services, forms,
the API, the CLI and the renderers.

A `StrEnum`, so a member equals its text (``Protocol.IMAP == "imap"``): database columns,
JSON bodies and form fields keep the plain names they have always had.
"""

from __future__ import annotations

import enum


class Protocol(enum.StrEnum):
    IMAP = "imap"
    POP3 = "pop3"
    #: Sending (submission); receiving mail is not a per-mailbox permission.
    SMTP = "smtp"

    @property
    def label(self) -> str:
        """The name mail programs and people know it by: "IMAP", "POP3", "SMTP"."""
        return self.value.upper()

    @property
    def permission_label(self) -> str:
        """The name in limits and refusals, where "SMTP" alone could be read as receiving."""
        return "SMTP (sending)" if self is Protocol.SMTP else self.label

    @property
    def allow_field(self) -> str:
        """The package / allocation column that allows the protocol."""
        return f"allow_{self.value}"

    @property
    def default_field(self) -> str:
        """The package / domain column that gives the protocol to new mailboxes."""
        return f"default_{self.value}"


#: Every protocol, in the order they are shown.
PROTOCOLS: tuple[Protocol, ...] = tuple(Protocol)
