"""Re-validation of every value that ends up in a generated config file.

Services validate names on the way in; the renderers check again here because a config file
is a security boundary: one stray ``:`` in a passwd-file, a newline in a Postfix map or a quote
in a Sieve script changes what the mail servers do. We refuse rather than escape.
"""

from __future__ import annotations

import ipaddress
import re

# Local parts, domains and addresses have one safety check, shared with the services:
# `mailadmin.names.safe_local_part` / `safe_domain` / `safe_address` (the renderers call them).
from ..names import UnsafeName, safe_domain

__all__ = [
    "UnsafeName",
    "hostname",
    "instance_name",
    "ipv4_listen",
    "node_address",
    "node_name",
    "password_hash",
    "path",
    "port",
    "reply_text",
]

# Dovecot "{SCHEME}hash": the crypt alphabets of SHA-crypt, bcrypt and argon2 only.
_HASH_RE = re.compile(r"\{[A-Z0-9-]{1,32}\}[A-Za-z0-9./$=,+-]{1,512}")
# Paths go into Dovecot and Postfix settings unquoted; keep to characters neither treats
# specially ("$" and "%" expand, "," and whitespace separate, "#" comments, "<" includes).
_PATH_RE = re.compile(r"/[A-Za-z0-9._/+-]*")
# Text shown to remote senders in an SMTP reply: printable ASCII, one line.
_REPLY_TEXT_RE = re.compile(r"[\x20-\x7e]{1,200}")


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
    return safe_domain(value)


def ipv4_listen(value: str) -> str:
    try:
        ip = ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise UnsafeName(f"listen address must be an IPv4 address, not {value!r}") from exc
    return str(ip)


def node_address(value: str) -> str:
    """Where the other mail nodes reach this one: an IPv4 address or a host name."""
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        pass
    try:
        return safe_domain(value)
    except UnsafeName:
        raise UnsafeName(f"a node address is an IPv4 address or a host name, not {value!r}"
                         ) from None


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


_NODE_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def node_name(value: str) -> str:
    """A mail node's name (the same rule as `services.nodes.check_node_name`)."""
    if not _NODE_NAME_RE.fullmatch(value):
        raise UnsafeName(f"unsafe mail node name {value!r}")
    return value
