"""Validation and normalisation of local parts, domains and mail addresses.

Names are a security boundary: what these functions return is written, unescaped, into Dovecot
passwd-files, Postfix lookup tables, Sieve scripts, shell command lines and SQL views. So instead of
accepting everything RFC 5321 allows and escaping it later, only a small alphabet that means nothing
special in any of those places is accepted, and everything else is refused with `InvalidName`.

Stored forms:

* a **local part** is lower-case ASCII: letters, digits, ``.``, ``-``, ``_`` (``+`` too, but only in
  the local part of a destination that may be remote, see `normalize_address`);
* a **domain** is the IDNA 2008 / UTS 46 ASCII form (``xn--mnchen-3ya.de``), lower case, without a
  trailing dot; `domain_to_unicode` gives the form to show;
* an **address** is ``local@domain`` built from the two.

Why lower case: Postfix folds the keys of its lookup tables to lower case and Dovecot is run with
lower-cased user names, so ``Anna@x.de`` and ``anna@x.de`` are one mailbox to the mail servers. The
panel must agree with them, or it would allow two rows that the servers cannot tell apart and miss
forwarder loops that differ only in case. RFC 5321 lets a remote host treat local parts
case-sensitively, but no mail service in practical use does, so destinations are folded as well.

Every function is idempotent on its own output: ``f(f(x)) == f(x)``.
"""

from __future__ import annotations

import functools
import ipaddress
import string
import unicodedata

import idna

from mailadmin.errors import InvalidName

__all__ = [
    "DISCARD_DOMAIN",
    "MAX_ADDRESS_LENGTH",
    "MAX_DOMAIN_LENGTH",
    "MAX_LABEL_LENGTH",
    "MAX_LOCAL_PART_LENGTH",
    "RESERVED_DOMAINS",
    "UnsafeName",
    "address_to_unicode",
    "domain_to_unicode",
    "is_safe_for_config",
    "normalize_address",
    "normalize_domain",
    "normalize_local_part",
    "refuse_reserved_domain",
    "safe_address",
    "safe_domain",
    "safe_hosted_domain",
    "safe_local_part",
    "split_address",
]

#: RFC 5321 section 4.5.3.1.1.
MAX_LOCAL_PART_LENGTH = 64
#: RFC 1035 allows 255 octets on the wire, which is 253 characters in dotted text.
MAX_DOMAIN_LENGTH = 253
MAX_LABEL_LENGTH = 63
#: RFC 5321 limits a path to 256 octets including the angle brackets.
MAX_ADDRESS_LENGTH = 254

_LOWER_ALNUM = frozenset(string.ascii_lowercase + string.digits)
_LOCAL_CHARS = _LOWER_ALNUM | frozenset("._-")
# '+' is the recipient delimiter (name+tag@domain) of the mail stack we configure: a hosted name
# containing it would shadow the sub-addresses of another mailbox. A remote address may use it.
_REMOTE_LOCAL_CHARS = _LOCAL_CHARS | {"+"}
_DOMAIN_CHARS = _LOWER_ALNUM | frozenset(".-")

# Only spaces and tabs around a value are forgiven (they come from copy and paste); a newline or
# any other control character anywhere is refused rather than silently dropped.
_TRIM = " \t"

# Why each printable ASCII character outside the alphabet is refused, in the user's terms.
_REASONS: dict[str, str] = {
    ":": "it separates fields in Dovecot's passwd-file",
    "@": "it separates the local part from the domain",
    ",": "it separates entries in Postfix tables",
    "#": "it starts a comment in Postfix tables",
    " ": "spaces separate fields in Postfix tables",
    '"': "quotes have a meaning in Sieve scripts, the shell and SQL",
    "'": "quotes have a meaning in the shell and SQL",
    "`": "it runs commands in the shell",
    "\\": "it escapes characters in Sieve scripts and the shell",
    ";": "it separates commands in the shell and SQL",
    "/": "it would name a different folder on the mail server",
    "%": "Postfix and Dovecot use it for routing and variables",
    "!": "Postfix treats it as a route (bang path)",
    "$": "it expands variables in the shell and Postfix",
    "+": "it is reserved for sub-addresses (name+tag@domain)",
}


def _char_name(ch: str) -> str:
    """A description of one character that is safe to print, even for control characters."""
    if ch.isprintable() and not ch.isspace():
        return f"'{ch}' (U+{ord(ch):04X})"
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" ({name.lower()})" if name else "")


def _printable(text: str) -> str:
    """`text` with every non-printable character replaced by its code point, for messages."""
    return "".join(ch if ch.isprintable() else f"U+{ord(ch):04X}" for ch in text)


def _refuse_char(what: str, ch: str, allowed: str, field: str, *, explain: bool) -> InvalidName:
    reason = _REASONS.get(ch) if explain else None
    if not ch.isprintable() and ch != " ":
        reason = "control characters are never accepted"
    elif not ch.isascii():
        reason = "only ASCII letters are accepted here"
    elif reason is None and explain:
        reason = "it has a meaning in mail server configuration or the shell"
    because = f": {reason}" if reason else ""
    return InvalidName(
        f"The {what} may not contain {_char_name(ch)}{because}. Use {allowed}.", field=field
    )


def _check_local_part(value: str, *, remote: bool, field: str, what: str) -> str:
    if not value:
        raise InvalidName(f"The {what} is empty.", field=field)
    chars = _REMOTE_LOCAL_CHARS if remote else _LOCAL_CHARS
    allowed = "letters a-z, digits, '.', '-'" + (", '+'" if remote else "") + " and '_'"
    for ch in value:
        # Only ASCII is lower-cased: str.lower() on other scripts can change the length or map
        # to ASCII (U+212A KELVIN SIGN becomes 'k'), which would let a refused name slip through.
        if not ch.isascii() or ch.lower() not in chars:
            raise _refuse_char(what, ch, allowed, field, explain=True)
    value = value.lower()
    if len(value) > MAX_LOCAL_PART_LENGTH:
        raise InvalidName(
            f"The {what} has {len(value)} characters; at most {MAX_LOCAL_PART_LENGTH} are allowed.",
            field=field,
        )
    if value[0] not in _LOWER_ALNUM and value[0] != "_":
        # A leading '-' would be read as an option by doveadm, sendmail and other commands.
        raise InvalidName(
            f"The {what} must start with a letter, a digit or '_', not '{value[0]}'.", field=field
        )
    if value.endswith("."):
        raise InvalidName(f"The {what} may not end with '.'.", field=field)
    if ".." in value:
        raise InvalidName(f"The {what} may not contain two dots in a row.", field=field)
    return value


def normalize_local_part(value: str, *, field: str = "local_part") -> str:
    """Return the stored form of the local part of a hosted address (mailbox or forwarder).

    Accepts ASCII letters (folded to lower case), digits, ``.``, ``-`` and ``_``; at most 64
    characters; starting with a letter, digit or ``_``; no trailing or doubled dot. Surrounding
    spaces and tabs are removed.

    :raises InvalidName: with a message naming the offending character or rule.
    """
    return _check_local_part(value.strip(_TRIM), remote=False, field=field, what="local part")


_LABEL_LENGTH_MESSAGE = (
    f"Each part of the domain between dots must have 1 to {MAX_LABEL_LENGTH} characters."
)
_LABEL_HYPHEN_MESSAGE = "A part of the domain may not start or end with '-'."


def _looks_like_ip(value: str) -> bool:
    if value.startswith("[") or value.endswith("]"):
        return True
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def normalize_domain(value: str, *, field: str = "domain") -> str:
    """Return the stored (IDNA ASCII, lower-case) form of a domain name.

    Unicode names are mapped and checked by UTS 46 and IDNA 2008 (``Bücher.de`` becomes
    ``xn--bcher-kva.de``); ASCII names are folded to lower case. A single trailing dot is removed.
    The result has at least two labels, each of 1 to 63 characters of ``a-z``, ``0-9`` and inner
    ``-``, and at most 253 characters. IP addresses and address literals are refused.

    :raises InvalidName: with a message naming the problem.
    """
    value = value.strip(_TRIM)
    if value.endswith("."):
        value = value[:-1]
    if not value:
        raise InvalidName("The domain is empty.", field=field)
    if _looks_like_ip(value):
        raise InvalidName(
            "An IP address is not accepted as a mail domain; enter a domain name.", field=field
        )
    allowed = "letters, digits, '-' and '.'"
    for ch in value:
        # ASCII punctuation is refused here, before IDNA mapping, so the message can name it;
        # non-ASCII characters are left to UTS 46, which maps or refuses them.
        if ch.isascii() and ch.lower() not in _DOMAIN_CHARS:
            raise _refuse_char("domain", ch, allowed, field, explain=False)
        if not ch.isascii() and unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            raise _refuse_char("domain", ch, allowed, field, explain=False)
    if len(value) > 4 * MAX_DOMAIN_LENGTH:
        # Cheap guard before handing megabytes to the IDNA codec.
        raise InvalidName(f"The domain is longer than {MAX_DOMAIN_LENGTH} characters.", field=field)
    if value.isascii() and len(value) > MAX_DOMAIN_LENGTH:
        raise InvalidName(
            f"The domain has {len(value)} characters; at most {MAX_DOMAIN_LENGTH} are allowed.",
            field=field,
        )
    for label in value.split("."):
        # Checked before IDNA only so that the message can be clearer than the codec's.
        if not label:
            raise InvalidName("The domain may not contain an empty label ('..').", field=field)
        if label.isascii() and len(label) > MAX_LABEL_LENGTH:
            raise InvalidName(_LABEL_LENGTH_MESSAGE, field=field)
        if label.startswith("-") or label.endswith("-"):
            raise InvalidName(_LABEL_HYPHEN_MESSAGE, field=field)
    try:
        ascii_form = idna.encode(value, uts46=True, transitional=False).decode("ascii")
        # Re-encoding the decoded form refuses A-labels that are not the canonical encoding of
        # what they decode to, so every domain has exactly one stored form.
        if idna.encode(idna.decode(ascii_form), uts46=True).decode("ascii") != ascii_form:
            raise idna.IDNAError("the A-label is not in canonical form")
    except UnicodeError as exc:
        raise InvalidName(
            f"The domain is not a valid internationalised domain name: {_printable(str(exc))}.",
            field=field,
        ) from None
    return _check_ascii_domain(ascii_form, field=field)


def _check_ascii_domain(name: str, *, field: str) -> str:
    # The IDNA codec already enforces most of this; it is checked again here because these rules
    # are what makes the name safe to render, and must not depend on a library's corner cases.
    if len(name) > MAX_DOMAIN_LENGTH:
        raise InvalidName(
            f"The domain has {len(name)} characters in its ASCII form; "
            f"at most {MAX_DOMAIN_LENGTH} are allowed.",
            field=field,
        )
    labels = name.split(".")
    if len(labels) < 2:
        raise InvalidName(
            "The domain needs at least two labels, such as 'example.com'.", field=field
        )
    for label in labels:
        if not label or len(label) > MAX_LABEL_LENGTH:
            raise InvalidName(_LABEL_LENGTH_MESSAGE, field=field)
        if not set(label) <= _DOMAIN_CHARS - {"."}:
            raise InvalidName("The domain contains a character that is not allowed.", field=field)
        if label[0] == "-" or label[-1] == "-":
            raise InvalidName(_LABEL_HYPHEN_MESSAGE, field=field)
    if labels[-1].isdigit():
        # RFC 3696: top-level domains are never all-numeric; such a name is an IP address typo.
        raise InvalidName(
            "The domain ends in a number; IP addresses are not accepted as mail domains.",
            field=field,
        )
    return name


@functools.lru_cache(maxsize=4096)
def domain_to_unicode(value: str) -> str:
    """Return a domain in Unicode for display (``xn--bcher-kva.de`` becomes ``bücher.de``).

    Accepts anything `normalize_domain` accepts. Remembers the last 4096 names: a list page
    shows the same few domains on every row, and decoding one costs ~50 µs (UTS 46 and IDNA
    checks), 2.5 ms of a 50-row page before it was remembered.

    :raises InvalidName: when the domain is not valid.
    """
    ascii_form = normalize_domain(value)
    try:
        return idna.decode(ascii_form)
    except UnicodeError:  # pragma: no cover - normalize_domain has decoded it already
        raise InvalidName("The domain is not a valid internationalised domain name.") from None


@functools.lru_cache(maxsize=8192)
def shown_domain(stored: str) -> str:
    """`domain_to_unicode` of a name as stored (already normalised IDNA ASCII), remembered:
    list pages show the same domains on every row and every request."""
    return domain_to_unicode(stored)


def split_address(value: str, *, hosted: bool = False, field: str = "address") -> tuple[str, str]:
    """Split an address into its normalised ``(local_part, domain)``.

    With ``hosted=True`` the local part follows the rules for names hosted here
    (`normalize_local_part`); otherwise it may also contain ``+``, as addresses elsewhere may.

    :raises InvalidName: when there is not exactly one ``@``, or either part is invalid.
    """
    value = value.strip(_TRIM)
    if not value:
        raise InvalidName("The address is empty.", field=field)
    count = value.count("@")
    if count == 0:
        raise InvalidName("The address needs an '@' between name and domain.", field=field)
    if count > 1:
        raise InvalidName("The address may contain only one '@'.", field=field)
    local, domain = value.split("@")
    local = _check_local_part(
        local, remote=not hosted, field=field, what="part of the address before '@'"
    )
    domain = normalize_domain(domain, field=field)
    if len(local) + 1 + len(domain) > MAX_ADDRESS_LENGTH:
        raise InvalidName(
            f"The address is longer than {MAX_ADDRESS_LENGTH} characters.", field=field
        )
    return local, domain


def split_loosely(text: str) -> tuple[str, str]:
    """``(local part, domain)`` of text that is not checked here: an address already stored or
    rendered, one found in a log line or a bounce.

    Split at the last ``@`` (as Postfix does); without one the local part is empty and all of
    the text is the domain. Never raises: anything a user types goes through `split_address`.
    """
    local, _, domain = text.rpartition("@")
    return local, domain


def domain_of(text: str) -> str:
    """The domain of an address that is not checked here (see `split_loosely`)."""
    return split_loosely(text)[1]


def split_partial(text: str) -> tuple[str, str]:
    """``(local part, domain)`` of text that may be only the start of an address: a search, a
    half-filled form. Split at the first ``@``; without one all of it is the local part."""
    local, _, domain = text.partition("@")
    return local, domain


def normalize_address(value: str, *, hosted: bool = False, field: str = "address") -> str:
    """Return the stored form ``local@domain`` of an address.

    By default this is for destinations, which may be remote, so ``+`` is accepted in the local
    part; pass ``hosted=True`` for a mailbox or forwarder address hosted here.

    :raises InvalidName: as `split_address`.
    """
    local, domain = split_address(value, hosted=hosted, field=field)
    return f"{local}@{domain}"


def address_to_unicode(value: str) -> str:
    """Return an address with its domain in Unicode, for display.

    :raises InvalidName: when the address is not valid.
    """
    local, domain = split_address(value)
    return f"{local}@{domain_to_unicode(domain)}"


# --------------------------------------------------------------------------- safety check
# The last line of defence before a name is written into a generated configuration file. The
# renderers call these on every local part, domain and address they write, and refuse to render
# rather than escape. The alphabet and lengths are the ones above; the check is deliberately
# character-level so it cannot depend on the IDNA codec, and it accepts '+' in every local part:
# '+' means nothing to a config file (the service refuses it in hosted names for a mail reason,
# sub-address shadowing, not a syntax one).

#: Domains the rendered configuration uses for itself; never hosted. ``.invalid`` can never be
#: a real domain (RFC 2606), so these cannot clash with a customer's name.
DISCARD_DOMAIN = "discard.mailadmin.invalid"
RESERVED_DOMAINS = frozenset({DISCARD_DOMAIN})


def refuse_reserved_domain(name: str, *, field: str = "domain") -> str:
    """`name` (a stored domain) unless it is one of the `RESERVED_DOMAINS`; for the services,
    which must refuse to host what the renderers would refuse to write."""
    if name in RESERVED_DOMAINS:
        raise InvalidName(
            f"The domain {name} is reserved for the mail server's own use.", field=field
        )
    return name


class UnsafeName(InvalidName):
    """A value refused by a renderer: it would change the meaning of a generated file."""

    code = "unsafe_name"


def _printable_repr(value: str) -> str:
    return repr(value[:80] + ("..." if len(value) > 80 else ""))


def safe_local_part(value: str) -> str:
    """`value` if it may be written into configuration as a local part, else `UnsafeName`.

    1 to 64 characters of ``a-z 0-9 . - _ +``, starting with a letter, digit or ``_`` (a
    leading ``-`` would be an option to doveadm and sendmail), no trailing or doubled dot.
    """
    if (
        not value
        or len(value) > MAX_LOCAL_PART_LENGTH
        or not set(value) <= _REMOTE_LOCAL_CHARS
        or (value[0] not in _LOWER_ALNUM and value[0] != "_")
        or value.endswith(".")
        or ".." in value
    ):
        raise UnsafeName(f"unsafe local part {_printable_repr(value)}")
    return value


def safe_domain(value: str) -> str:
    """`value` if it may be written into configuration as a domain, else `UnsafeName`.

    The stored (ASCII) form only: at most 253 characters, at least two labels of 1 to 63
    characters of ``a-z 0-9 -`` not starting or ending with ``-``, a top-level label that is
    not all digits (which also keeps IP addresses out).
    """
    if not _is_safe_domain(value):
        raise UnsafeName(f"unsafe domain {_printable_repr(value)}")
    return value


@functools.lru_cache(maxsize=65536)
def _is_safe_domain(value: str) -> bool:
    # cached: a render checks each domain once per mailbox, map entry and destination
    labels = value.split(".")
    return not (
        len(value) > MAX_DOMAIN_LENGTH
        or len(labels) < 2
        or not all(
            0 < len(label) <= MAX_LABEL_LENGTH
            and set(label) <= _DOMAIN_CHARS - {"."}
            and label[0] != "-"
            and label[-1] != "-"
            for label in labels
        )
        or labels[-1].isdigit()
    )


def safe_address(value: str) -> str:
    """`value` if it may be written into configuration as ``local@domain``, else `UnsafeName`.

    Exactly one ``@``, both sides pass `safe_local_part` and `safe_domain`, at most 254
    characters in all.
    """
    local, sep, domain = value.partition("@")
    if not sep or len(value) > MAX_ADDRESS_LENGTH:
        raise UnsafeName(f"unsafe address {_printable_repr(value)}")
    safe_local_part(local)
    safe_domain(domain)
    return value


def safe_hosted_domain(value: str) -> str:
    """`safe_domain`, and not one of the `RESERVED_DOMAINS` the configuration uses itself."""
    safe_domain(value)
    if value in RESERVED_DOMAINS:
        raise UnsafeName(f"{value} is reserved for the mail server's own use")
    return value


def is_safe_for_config(value: str) -> bool:
    """Tell whether `value` passes the renderers' check as an address (when it contains
    ``@``), or else as a local part or a domain. For tests and callers that only need a yes/no.
    """
    checks = (safe_address,) if "@" in value else (safe_local_part, safe_domain)
    for check in checks:
        try:
            check(value)
        except UnsafeName:
            continue
        return True
    return False
