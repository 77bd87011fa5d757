"""Re-validation of every value that ends up in a generated config file.

Services validate names on the way in; the renderers check again here because a config file
is a security boundary: one stray ``:`` in a passwd-file, a newline in a Postfix map or a quote
in a Sieve script changes what the mail servers do. We refuse rather than escape.
"""

from __future__ import annotations

import ipaddress
import re

from ..errors import InvalidName

# A conservative subset of RFC 5321 dot-atoms: nothing that means anything to a passwd-file
# (":"), a Postfix map (whitespace, ","), Sieve ('"', "\\") or a shell.
_LOCAL_RE = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*")
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Dovecot "{SCHEME}hash": the crypt alphabets of SHA-crypt, bcrypt and argon2 only.
_HASH_RE = re.compile(r"\{[A-Z0-9-]{1,32}\}[A-Za-z0-9./$=,+-]{1,512}")
# Paths go into Dovecot and Postfix settings unquoted; keep to characters neither treats
# specially ("$" and "%" expand, "," and whitespace separate, "#" comments, "<" includes).
_PATH_RE = re.compile(r"/[A-Za-z0-9._/+-]*")
# Text shown to remote senders in an SMTP reply: printable ASCII, one line.
_REPLY_TEXT_RE = re.compile(r"[\x20-\x7e]{1,200}")


class UnsafeName(InvalidName):
    """A value refused by a renderer: it would change the meaning of a generated file."""

    code = "unsafe_name"


def local_part(value: str) -> str:
    if not (1 <= len(value) <= 64) or not _LOCAL_RE.fullmatch(value):
        raise UnsafeName(f"unsafe local part {value!r}")
    return value


def domain(value: str) -> str:
    labels = value.split(".")
    if (
        len(value) > 253
        or len(labels) < 2
        or not all(_LABEL_RE.fullmatch(label) for label in labels)
        # the top-level label is never all digits; this also keeps IP literals out
        or labels[-1].isdigit()
    ):
        raise UnsafeName(f"unsafe domain {value!r}")
    return value


def address(value: str) -> str:
    local, sep, dom = value.rpartition("@")
    if not sep or len(value) > 320:
        raise UnsafeName(f"unsafe address {value!r}")
    local_part(local)
    domain(dom)
    return value


def password_hash(value: str) -> str:
    if not _HASH_RE.fullmatch(value):
        # never echo the hash itself into an error message or a log
        raise UnsafeName("password hash is not in Dovecot {SCHEME}hash form")
    return value


def path(value: str, *, max_len: int = 200) -> str:
    if (
        len(value) > max_len
        or not _PATH_RE.fullmatch(value)
        or "//" in value
        or "/../" in value + "/"
        or "/./" in value + "/"
    ):
        raise UnsafeName(f"unsafe path {value!r}")
    return value


def hostname(value: str) -> str:
    return domain(value)


def ipv4_listen(value: str) -> str:
    try:
        ip = ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise UnsafeName(f"listen address must be an IPv4 address, not {value!r}") from exc
    return str(ip)


def port(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not (1 <= value <= 65535):
        raise UnsafeName(f"invalid port {value!r}")
    return value


def reply_text(value: str) -> str:
    if not _REPLY_TEXT_RE.fullmatch(value) or value != value.strip():
        raise UnsafeName(f"unsafe SMTP reply text {value!r}")
    return value


def instance_name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", value):
        raise UnsafeName(f"unsafe instance name {value!r}")
    return value
