"""DKIM keys: generation, the DNS record text, selectors and the private key files.

The private key never enters the database: it is written once, to
``<dkim_key_dir>/<domain>/<selector>.private``, readable only by the signer (OpenDKIM). Run as
root with Debian's ``opendkim`` group present, the file is ``root:opendkim 0640`` in a
``root:opendkim 0750`` folder; otherwise it is ``0600`` for the user that runs the panel
(who then runs the signer). The database keeps the public half, which is what DNS publishes.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import grp
import os
import re
import typing as t
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

Algorithm = t.Literal["rsa", "ed25519"]
ALGORITHMS: tuple[Algorithm, ...] = ("rsa", "ed25519")
#: The keys OpenDKIM is given. Debian's OpenDKIM 2.11.0 cannot sign with an Ed25519 key:
#: it answers the message with 451 4.7.0 ("EVP_PKEY_get1_RSA() failed"), which would hold
#: the domain's mail. Ed25519 keys are made and published (DNS is ready for a signer that
#: can), but do not sign here.
SIGNING_ALGORITHMS: tuple[Algorithm, ...] = ("rsa",)
RSA_BITS = 2048
#: Debian's opendkim package runs the signer as this user and group.
SIGNER_GROUP = "opendkim"
#: ``s20261206`` or ``s20261206-2``: a date, so a selector says when its key was made.
SELECTOR_RE = re.compile(r"s\d{8}(?:-\d{1,3})?")


class KeyPair(t.NamedTuple):
    private_pem: bytes
    #: base64 of what DNS publishes in ``p=`` (RSA: the DER SubjectPublicKeyInfo;
    #: Ed25519: the raw 32-byte key, RFC 8463).
    public_b64: str


def generate(algorithm: Algorithm = "rsa") -> KeyPair:
    if algorithm == "rsa":
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        pem = rsa_key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        public = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    elif algorithm == "ed25519":
        ed_key = ed25519.Ed25519PrivateKey.generate()
        pem = ed_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
        public = ed_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
    else:
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}")
    return KeyPair(pem, base64.b64encode(public).decode("ascii"))


def record_value(algorithm: str, public_b64: str) -> str:
    """The TXT record value of ``<selector>._domainkey.<domain>``."""
    return f"v=DKIM1; k={algorithm}; p={public_b64}"


def record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def parse_tags(text: str) -> dict[str, str]:
    """``v=DKIM1; k=rsa; p=...`` -> tags (names lower-cased, whitespace in values removed)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), re.sub(r"\s+", "", value))
    return tags


def publishes(text: str, public_b64: str) -> bool:
    """Does this TXT record publish exactly this public key?"""
    tags = parse_tags(text)
    return tags.get("v", "DKIM1") == "DKIM1" and tags.get("p") == public_b64


def selector_for(day: dt.date, taken: t.Collection[str]) -> str:
    base = f"s{day:%Y%m%d}"
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def key_path(key_dir: str, domain: str, selector: str) -> Path:
    if not SELECTOR_RE.fullmatch(selector):
        raise ValueError(f"not a DKIM selector made by mailadmin: {selector!r}")
    return Path(key_dir) / domain / f"{selector}.private"


def _signer_gid() -> int | None:
    if os.geteuid() != 0:
        return None
    try:
        return grp.getgrnam(SIGNER_GROUP).gr_gid
    except KeyError:
        return None


def write_private_key(path: Path, pem: bytes) -> None:
    """Create the key file (never overwrite one) readable only by the signer.

    The file is created with mode 0600 from the start (no moment where it is wider), then
    handed to the signer's group when there is one.
    """
    gid = _signer_gid()
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for directory in (folder.parent, folder):
        if gid is not None:
            os.chown(directory, 0, gid)
        directory.chmod(0o750 if gid is not None else 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
        if gid is not None:
            os.fchown(fd, 0, gid)
            os.fchmod(fd, 0o640)
    finally:
        os.close(fd)


def remove_private_key(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
