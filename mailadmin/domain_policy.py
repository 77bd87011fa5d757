"""Which domain names a customer may claim, and how a claim is proven: pure rules, no database.

A hosted domain receives every message the server's own users and forwarders send to it, so a
customer who adds someone else's domain (a big mailbox provider's, another company's, a
subdomain of another tenant's) reads mail meant for others. Two defences live here:

* the **deny list**: names nobody but the server admin may add. It is a server setting the
  admin edits; an unedited server uses `DEFAULT_DENY_LIST` (so updates to the shipped list reach
  it). An entry ``gmail.com`` refuses that name and every name below it; an entry whose last
  label is ``*`` (``gmx.*``) stands for any top-level domain, one label (``gmx.de``) or a
  country's second level (``yahoo.co.jp``); a one-label entry (``invalid``, written ``.invalid``
  too) refuses a whole top-level domain. ``#`` starts a comment.
* **verification** (`check_dns`): a TXT record ``_mailadmin-challenge.<domain>`` holding the
  token the panel shows, or an MX record pointing at the server, proves that whoever controls
  the domain's DNS wants its mail here.

The names the renderer reserves for itself (`RENDERER_RESERVED`) are refused for everyone,
the admin included: a render containing one fails, and no claim may make an apply fail.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

from .errors import InvalidName, ValidationError
from .names import RESERVED_DOMAINS, normalize_domain

#: The renderer's own names (`mailadmin.names.RESERVED_DOMAINS`, the one list the renderers
#: check too), refused with every name below them.
RENDERER_RESERVED: tuple[str, ...] = tuple(sorted(RESERVED_DOMAINS))

#: Top-level names that can never be a real mail domain (RFC 6761 .invalid/.localhost,
#: RFC 6762 .local (mDNS), RFC 7686 .onion, .arpa (infrastructure, RFC 3172; home.arpa too),
#: RFC 9476 .alt, and .internal (ICANN, reserved for private use in 2024)). ``.test`` and
#: ``.example`` are left out: labs and tests use them; the admin may add them.
SPECIAL_USE: tuple[str, ...] = ("invalid", "localhost", "local", "onion", "arpa", "alt",
                                "internal")

#: The big mailbox providers' domains (their users' addresses must never be hosted here).
PROVIDERS: tuple[str, ...] = (
    # Google, Microsoft, Yahoo, AOL, Apple
    "gmail.com", "googlemail.com", "google.com",
    "outlook.*", "hotmail.*", "live.com", "live.co.uk", "live.de", "live.fr", "live.nl",
    "msn.com", "passport.com", "windowslive.com",
    "yahoo.*", "ymail.com", "rocketmail.com", "aol.*", "aim.com",
    "icloud.com", "me.com", "mac.com",
    # Europe
    "gmx.*", "web.de", "freenet.de", "t-online.de", "arcor.de", "posteo.de", "posteo.net",
    "mailbox.org", "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr",
    "libero.it", "virgilio.it", "tiscali.it", "seznam.cz", "wp.pl", "o2.pl", "onet.pl",
    "interia.pl", "btinternet.com", "ziggo.nl", "telenet.be", "bluewin.ch",
    # Russia and neighbours
    "yandex.*", "ya.ru", "mail.ru", "inbox.ru", "list.ru", "bk.ru", "rambler.ru", "ukr.net",
    # privacy-minded and independent providers
    "proton.me", "protonmail.com", "protonmail.ch", "pm.me", "tutanota.com", "tutanota.de",
    "tuta.io", "tuta.com", "fastmail.com", "fastmail.fm", "hey.com", "zoho.com",
    "zohomail.com", "mail.com", "email.com", "hushmail.com",
    # Asia
    "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net", "sina.com", "sina.cn",
    "sohu.com", "aliyun.com", "naver.com", "daum.net", "hanmail.net", "rediffmail.com",
    # North American access providers
    "comcast.net", "verizon.net", "att.net", "sbcglobal.net", "cox.net", "shaw.ca",
    "rogers.com", "bell.net",
)

DEFAULT_DENY_LIST: tuple[str, ...] = PROVIDERS + tuple(f".{tld}" for tld in SPECIAL_USE)

#: Second-level labels under which countries register names (``example.co.uk``); a name of
#: this shape alone (``co.uk``) is a registry, never one customer's domain.
_COUNTRY_SECOND_LEVEL = frozenset(
    {"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go", "gv", "ltd", "plc"}
)
MAX_DENY_ENTRIES = 5000
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def public_suffix_length(labels: Sequence[str]) -> int:
    """How many trailing labels are the registry's part: 2 for ``co.uk``-like, else 1."""
    if (len(labels) >= 3 and labels[-2] in _COUNTRY_SECOND_LEVEL and len(labels[-1]) == 2
            and labels[-1].isalpha()):
        return 2
    return 1


def is_registry_name(name: str) -> bool:
    """True for ``co.uk``-shaped names: claiming one would claim every domain under it."""
    labels = name.split(".")
    return (len(labels) == 2 and labels[0] in _COUNTRY_SECOND_LEVEL and len(labels[1]) == 2
            and labels[1].isalpha())


@dataclasses.dataclass(frozen=True)
class DenyEntry:
    """One deny-list entry: `labels` (the last may be ``*``), as written back (`text`)."""

    labels: tuple[str, ...]

    @property
    def text(self) -> str:
        return ("." if len(self.labels) == 1 else "") + ".".join(self.labels)

    def matches(self, name: str) -> bool:
        """True when `name` (stored ASCII form) is this entry or a name below it."""
        labels = name.split(".")
        if self.labels[-1] != "*":
            n = len(self.labels)
            return len(labels) >= n and tuple(labels[-n:]) == self.labels
        stem = labels[: len(labels) - public_suffix_length(labels)]
        want = self.labels[:-1]
        return len(stem) >= len(want) and tuple(stem[len(stem) - len(want):]) == want


def parse_entry(raw: str, *, field: str = "value") -> DenyEntry:
    """One entry as an admin types it (``gmail.com``, ``.invalid``, ``gmx.*``, ``bücher.de``).

    :raises ValidationError: naming what is wrong with it.
    """
    text = raw.strip().lower().lstrip(".")
    if not text:
        raise ValidationError("An empty entry.", field=field)
    wildcard = text.endswith(".*")
    body = text[:-2] if wildcard else text
    if "*" in body:
        raise ValidationError(
            f"{raw.strip()!r}: '*' may only stand for the top-level domain, as in gmx.*.",
            field=field,
        )
    if "." in body:
        try:
            ascii_body = normalize_domain(body, field=field)
        except InvalidName as exc:
            raise ValidationError(f"{raw.strip()!r}: {exc.message}", field=field) from None
    else:
        # one label: a whole top-level domain (or a stem before '*')
        try:
            ascii_body = normalize_domain(f"{body}.x", field=field)[:-2]
        except InvalidName as exc:
            raise ValidationError(f"{raw.strip()!r}: {exc.message}", field=field) from None
        if not _LABEL.fullmatch(ascii_body):
            raise ValidationError(f"{raw.strip()!r} is not a domain name.", field=field)
    labels = tuple(ascii_body.split("."))
    return DenyEntry((*labels, "*") if wildcard else labels)


def parse_deny_list(text: str, *, field: str = "value") -> tuple[DenyEntry, ...]:
    """Entries from text (one per line or separated by commas/spaces, ``#`` comments).

    :raises ValidationError: naming the first bad entry and its line.
    """
    entries: dict[DenyEntry, None] = {}
    for number, line in enumerate(str(text).splitlines(), start=1):
        line = line.split("#", 1)[0]
        for word in re.split(r"[\s,;]+", line):
            if not word:
                continue
            try:
                entries[parse_entry(word, field=field)] = None
            except ValidationError as exc:
                raise ValidationError(f"Line {number}: {exc.message}", field=field) from None
    if len(entries) > MAX_DENY_ENTRIES:
        raise ValidationError(f"At most {MAX_DENY_ENTRIES} entries.", field=field)
    return tuple(entries)


def format_deny_list(entries: Iterable[DenyEntry]) -> str:
    """The stored form: one normalised entry per line."""
    return "".join(f"{e.text}\n" for e in entries)


#: Parsed once: the list an unedited server uses, and the names refused for everyone.
DEFAULT_ENTRIES: tuple[DenyEntry, ...] = parse_deny_list("\n".join(DEFAULT_DENY_LIST))
RESERVED_ENTRIES: tuple[DenyEntry, ...] = parse_deny_list("\n".join(RENDERER_RESERVED))


def deny_entries(stored: str | None) -> tuple[DenyEntry, ...]:
    """The server's deny list: the admin's text, or the shipped default when never edited."""
    return DEFAULT_ENTRIES if stored is None else parse_deny_list(stored)


def denied_by(name: str, entries: Iterable[DenyEntry]) -> DenyEntry | None:
    """The first entry refusing `name` (stored ASCII form), or None."""
    return next((e for e in entries if e.matches(name)), None)


def reserved_by_renderer(name: str) -> bool:
    """True for the renderer's own names and the names below them."""
    return denied_by(name, RESERVED_ENTRIES) is not None
