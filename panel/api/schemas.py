"""Pydantic models of the JSON API: what requests may contain and what responses contain.

Request bodies are strict (a JSON string is not a number, `1` is not `true`) and refuse unknown
fields, so a typo is an error rather than a silently ignored change. They check shape only;
names, limits and every other rule are the services'. The OpenAPI document is generated from
these models.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from mailadmin.errors import ValidationError as ServiceValidationError
from mailadmin.services.pagination import MAX_PAGE
from mailadmin.sizes import parse_size

T = t.TypeVar("T")

# --- Patterns of the strings a request may contain ------------------------------------------
#
# They describe the shape of each string in the OpenAPI document, so that a client (or a
# schema-driven tester) knows what may be sent. The services stay the authority: these are
# never stricter than what they accept (a value the pattern admits may still be refused, with
# a 422 and the service's precise message), and they are not enforced by the models, so a
# refused value gets the service's message, which names the character and why.

#: A domain label: ASCII letters, digits and '-', or any non-ASCII character but the C1
#: controls, no-break space and surrogates (IDN labels in Unicode form). Written as negated
#: classes: the same set as a list of ranges makes generating examples ten times slower.
_NOT_LABEL_ASCII = r"\u0000-\u002c\u002e\u002f\u003a-\u0040\u005b-\u0060\u007b-\u00a0\ud800-\udfff"
_LABEL_CHAR = rf"[^{_NOT_LABEL_ASCII}]"
_LABEL_EDGE = rf"[^\u002d{_NOT_LABEL_ASCII}]"
_LABEL = rf"{_LABEL_EDGE}(?:{_LABEL_CHAR}*{_LABEL_EDGE})?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})+"
DOMAIN_PATTERN = rf"^{_DOMAIN}$"
#: A hosted address: the local part is ASCII letters, digits, '.', '-' and '_'.
ADDRESS_PATTERN = rf"^[A-Za-z0-9_][A-Za-z0-9._-]*@{_DOMAIN}$"
#: Any address mail may go to ('+' allowed in the local part, as in name+tag@example.org).
REMOTE_ADDRESS_PATTERN = rf"^[A-Za-z0-9_][A-Za-z0-9._+-]*@{_DOMAIN}$"
#: A panel user name.
USERNAME_PATTERN = r"^[A-Za-z][A-Za-z0-9._-]{1,63}$"
#: One line of text: no control characters.
LINE_PATTERN = r"^[^\u0000-\u001f\u007f]*$"
#: Text of several lines: tab, line feed and carriage return are the only control characters.
TEXT_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$"
#: A password: no control characters (the password policy refuses more, such as invisible
#: format characters).
PASSWORD_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]+$"  # noqa: S105  (a pattern)

#: The schema of each path parameter, by name (every API path uses these names only).
PATH_PARAMETERS: dict[str, dict[str, t.Any]] = {
    "name": {"type": "string", "pattern": DOMAIN_PATTERN, "maxLength": 253,
             "description": "A domain name, Unicode or IDNA ASCII.", "examples": ["example.org"]},
    "address": {"type": "string", "pattern": REMOTE_ADDRESS_PATTERN, "maxLength": 254,
                "description": "A mail address.", "examples": ["info@example.org"]},
    "slug": {"type": "string", "pattern": r"^[a-z0-9]+(?:-[a-z0-9]+)*$", "maxLength": 80,
             "description": "A help article's slug.", "examples": ["pop-vs-imap"]},
    "app_password_id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1,
                        "description": "An app password's id.", "examples": [1]},
}


def pattern(regex: str) -> dict[str, t.Any]:
    """`Field(json_schema_extra=...)` documenting a string's pattern (see above)."""
    return {"pattern": regex}


# For optional strings (`X | None`): the pattern must sit on the string branch of the union,
# where a field-level `json_schema_extra` does not reach.
DomainText = t.Annotated[str, Field(json_schema_extra=pattern(DOMAIN_PATTERN))]
RemoteAddressText = t.Annotated[str, Field(json_schema_extra=pattern(REMOTE_ADDRESS_PATTERN))]
UsernameText = t.Annotated[str, Field(json_schema_extra=pattern(USERNAME_PATTERN))]
LineText = t.Annotated[str, Field(json_schema_extra=pattern(LINE_PATTERN))]



def _size(value: object) -> int:
    # Runs before the strict integer check, so "2G" can become bytes; a bool or a float is
    # still refused (JSON true is not a size).
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("Give the size as a whole number of bytes or as text such as \"2G\".")
    try:
        return parse_size(value)
    except ServiceValidationError as exc:
        # A ValueError becomes an ordinary pydantic error located at the field.
        raise ValueError(exc.message) from None


#: A size as text (`mailadmin.sizes.parse_size`): bytes or a number with K, M, G or T, or
#: "unlimited"/"none".
SIZE_PATTERN = (r"^\s*(?:\d+(?:\.\d+)?\s*[KMGTkmgt]?(?:[iI]?[bB])?"
                r"|[Uu][Nn][Ll][Ii][Mm][Ii][Tt][Ee][Dd]|[Nn][Oo][Nn][Ee])\s*$")
SizeText = t.Annotated[str, Field(json_schema_extra={"pattern": SIZE_PATTERN})]

Size = t.Annotated[
    int,
    BeforeValidator(_size, json_schema_input_type=int | SizeText),
    Field(
        description="Bytes, or a size such as \"500M\" or \"2G\" (binary units); 0 or "
        "\"unlimited\" mean no limit where the package allows it.",
        examples=[1073741824, "500M", "2G"],
    ),
]


class Body(BaseModel):
    """Base of request bodies: strict types, no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Query(BaseModel):
    """Base of query strings: values arrive as text, so they are converted (not strict)."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- Requests -----------------------------------------------------------------------------


class ListQuery(Query):
    page: int = Field(
        1, ge=1, description=f"1-based page number; past {MAX_PAGE:,} the answer is 404.",
        # Documented, not enforced here: the service answers a page past it with 404.
        json_schema_extra={"maximum": MAX_PAGE},
    )
    per_page: int = Field(50, ge=1, le=200, description="Items per page (at most 200).")
    search: LineText | None = Field(None, max_length=320, description="Prefix to search for.")


class DomainListQuery(ListQuery):
    pass


class MailboxListQuery(ListQuery):
    domain: DomainText | None = Field(
        None, max_length=253, description="Only this domain's mailboxes."
    )
    sort: t.Literal["address", "quota", "usage", "status", "created"] = "address"
    descending: bool = False
    search: LineText | None = Field(
        None, max_length=320, description="Text found anywhere in the address."
    )


class ForwarderListQuery(ListQuery):
    domain: DomainText | None = Field(
        None, max_length=253, description="Only this domain's forwarders."
    )


class DomainCreate(Body):
    name: str = Field(
        description="Domain name, Unicode or IDNA ASCII.", examples=["bücher.example"],
        json_schema_extra=pattern(DOMAIN_PATTERN),
    )
    customer: UsernameText | None = Field(
        None, description="Owning customer's user name; required for resellers and the admin."
    )


class DomainDefaults(Body):
    quota: Size | None = Field(
        None, description="Default quota of new mailboxes; null uses the package's default."
    )
    imap: bool
    pop3: bool
    smtp: bool


class CatchAll(Body):
    action: t.Literal["reject", "discard", "deliver"]
    reject_reason: LineText | None = Field(None, description="Told to the sender when rejecting.")
    target: RemoteAddressText | None = Field(
        None, description="Address that receives the mail when delivering."
    )


class MailboxCreate(Body):
    address: str = Field(examples=["info@example.org"], json_schema_extra=pattern(ADDRESS_PATTERN))
    password: str = Field(
        min_length=1, max_length=1024, json_schema_extra=pattern(PASSWORD_PATTERN)
    )
    quota: Size | None = Field(None, description="Omitted: the domain's or package's default.")
    imap: bool | None = None
    pop3: bool | None = None
    smtp: bool | None = None


class MailboxUpdate(Body):
    """Fields left out are not changed."""

    quota: Size | None = None
    imap: bool | None = None
    pop3: bool | None = None
    smtp: bool | None = None


class MailboxPassword(Body):
    password: str = Field(
        min_length=1, max_length=1024, json_schema_extra=pattern(PASSWORD_PATTERN)
    )


class Suspensions(Body):
    """Which of login, receiving and sending to suspend (or resume).

    False or left out: unchanged."""

    login: bool = False
    incoming: bool = False
    outgoing: bool = False

    @model_validator(mode="after")
    def _one_chosen(self) -> Suspensions:
        if not (self.login or self.incoming or self.outgoing):
            raise ValueError("Choose at least one of login, incoming and outgoing.")
        return self


class MailboxDelete(Body):
    confirm: str = Field(description="The mailbox's address again, to confirm.",
                         json_schema_extra=pattern(REMOTE_ADDRESS_PATTERN))


class ForwarderSet(Body):
    destinations: list[RemoteAddressText] = Field(min_length=1, max_length=50)
    keep_copy: bool = Field(False, description="Only for a mailbox's own address.")


class ForwarderAdd(Body):
    destinations: list[RemoteAddressText] = Field(min_length=1, max_length=50)
    keep_copy: bool | None = Field(
        None, description="Only for a mailbox's own address; null leaves the setting as it is.")


class AutoresponderSet(Body):
    subject: str = Field(max_length=200, json_schema_extra=pattern(LINE_PATTERN))
    body: str = Field(max_length=10_000, json_schema_extra=pattern(TEXT_PATTERN))
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    interval_days: int = Field(
        1, description="Answer the same sender at most once per this many days."
    )
    enabled: bool = True


# --- Responses ----------------------------------------------------------------------------


class PageOut(Output, t.Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int
    pages: int
    total_exact: bool = Field(
        True, description="False when a search stopped counting its matches: `total` is then a "
        "lower bound, and `pages` counts up to the next page only while more rows follow.")


class DomainSummary(Output):
    name: str = Field(description="IDNA ASCII form.")
    unicode_name: str
    owner: str
    mailboxes: int
    forwarders: int
    catchall_action: str
    catchall_target: str | None
    pending: bool = Field(description="Waiting for verification: the mail servers do not "
                                      "know the domain yet.")


class VerificationOut(Output):
    pending: bool = Field(description="Waiting for verification: no mail is accepted yet.")
    mode: t.Literal["none", "dns", "admin"] = Field(
        description="How this server verifies domains.")
    record_name: str | None = Field(
        description="With mode dns: the TXT record to publish (null once verified).")
    token: str | None = Field(description="With mode dns: the value of that TXT record.")
    checked_at: str | None = Field(description="When the domain was last checked (ISO 8601).")
    note: str | None = Field(description="What the last check found.")
    instructions: str = Field(description="What to do; empty once verified.")


class DnsRecordOut(Output):
    record: t.Literal["mx", "spf", "dkim", "dmarc", "ptr", "mta-sts", "autoconfig"]
    status: t.Literal["ok", "missing", "wrong", "conflicting"]
    published: list[str] = Field(description="What DNS holds (record texts).")
    recommended: list[str] = Field(description="Zone-file lines that make the record ok.")
    message: str = Field(description="The verdict in a sentence.")


class DkimKeyOut(Output):
    selector: str
    algorithm: t.Literal["rsa", "ed25519"]
    state: t.Literal["published", "active", "retiring"] = Field(
        description="published: waits for DNS; active: signs; retiring: replaced, removed "
                    "at retire_at.")
    created_at: str
    activated_at: str | None
    retire_at: str | None
    record_name: str
    record_value: str


class DnsHealthOut(Output):
    domain: str
    checked_at: str | None = Field(
        description="When DNS was read (ISO 8601); null before the first check.")
    records: list[DnsRecordOut] = Field(
        description="One verdict per record as last checked (empty before the first check).")
    zone: list[str] = Field(description="Every record we recommend, as zone-file lines.")
    dkim_keys: list[DkimKeyOut]


class DomainOut(Output):
    name: str = Field(description="IDNA ASCII form.")
    unicode_name: str
    owner: str
    default_quota: int | None
    default_imap: bool
    default_pop3: bool
    default_smtp: bool
    catchall_action: str
    catchall_reject_reason: str | None
    catchall_target: str | None
    pending: bool = Field(description="Waiting for verification (see verification).")
    verification: VerificationOut


class MailboxOut(Output):
    address: str = Field(description="Stored form: lower-case local part, IDNA ASCII domain.")
    unicode_address: str
    quota: int = Field(description="Bytes; 0 is unlimited.")
    imap: bool
    pop3: bool
    smtp: bool
    suspend_login: bool
    suspend_incoming: bool
    suspend_outgoing: bool
    usage_bytes: int | None = Field(
        description="Bytes used as Dovecot last reported it (to the KiB); null until read.")
    usage_messages: int | None = Field(description="Messages stored; null until read.")
    usage_read_at: dt.datetime | None = Field(
        description="When the usage was read from Dovecot; null until read.")


class ForwarderOut(Output):
    address: str
    unicode_address: str
    destinations: list[str] = Field(description="Destinations, domains shown in Unicode.")
    keep_copy: bool


class ForwarderChangeOut(ForwarderOut):
    created: bool = Field(description="True when the forwarder did not exist before.")
    added: list[str] = Field(description="Destinations that are new to the forwarder.")
    removed: list[str] = Field(description="Destinations it no longer delivers to.")
    message: str = Field(description="What happened, in a sentence.")


class ForwarderListItem(ForwarderOut):
    is_mailbox: bool = Field(description="True when this is a mailbox's own forwarding.")


class AutoresponderOut(Output):
    address: str
    subject: str
    body: str
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    interval_days: int
    enabled: bool


class ErrorDetail(Output):
    code: str = Field(description="Stable, machine-readable: invalid, invalid_name, weak_password, "
                      "not_found, forbidden, conflict, limit_reached, authentication_failed, "
                      "rate_limited, bad_request, method_not_allowed, internal_error, ...")
    message: str = Field(description="For the person who asked.")
    field: str | None = Field(description="The request field the message is about, if any.")


class Problem(Output):
    field: str | None
    message: str
    type: str = Field(description="pydantic's error type, e.g. missing or extra_forbidden.")


class ErrorWithDetails(ErrorDetail):
    details: list[Problem] | None = Field(
        None, description="With code invalid: every problem found in the request."
    )


class ErrorOut(Output):
    error: ErrorWithDetails


class AppPasswordCreate(Body):
    label: str = Field(min_length=1, max_length=64, examples=["Anna's phone"],
                       description="A name to tell the devices apart.",
                       json_schema_extra=pattern(LINE_PATTERN))
    protocols: list[t.Literal["imap", "pop3", "smtp"]] = Field(
        min_length=1, max_length=3, examples=[["imap", "smtp"]],
        description="What it may use; each must be allowed on the mailbox.")


class AppPasswordsOnly(Body):
    enabled: bool = Field(description="True: IMAP, POP3 and SMTP refuse the main password "
                          "(it still signs in to the panel).")


class AppPasswordOut(Output):
    id: int
    label: str
    protocols: list[str] = Field(description="What it was given.")
    effective_protocols: list[str] = Field(
        description="What it may use now: its protocols that the mailbox allows too.")
    created_at: dt.datetime


class AppPasswordCreated(AppPasswordOut):
    password: str = Field(description="The app password; returned this once, never again.")


class AppPasswordList(Output):
    items: list[AppPasswordOut]
    app_passwords_only: bool
    max_app_passwords: int = Field(description="How many a mailbox may have.")


DomainPage = PageOut[DomainSummary]
MailboxPage = PageOut[MailboxOut]
ForwarderPage = PageOut[ForwarderListItem]
