"""Encryption of small secrets at rest with the instance's secret key.

A TOTP secret must be readable by the panel (it computes the expected codes), so it cannot be
hashed like a password. It is encrypted instead, with AES-256-GCM under a key derived from the
instance secret key (`config.SECRET_KEY`, a file in the instance folder, not in the
database): a copy of the database alone does not give anyone the codes. Each text is bound
to its owner (`context`, the GCM associated data), so a row copied onto another account does
not decrypt there.

Changing the instance secret key makes the stored secrets unreadable: `open_text` then raises
`SecretUnreadable`, and the owner must enrol again (the admin resets it with
`mailadmin user 2fa reset`).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1"
NONCE_BYTES = 12


class SecretUnreadable(Exception):
    """The stored text does not decrypt with this key (another key, or tampered with)."""


@dataclass(frozen=True)
class SecretBox:
    """Seals and opens short texts with a key derived from the instance secret key."""

    key: bytes = field(repr=False)

    @classmethod
    def from_secret_key(cls, secret_key: str | bytes, purpose: str) -> SecretBox:
        """A box for one `purpose`: each purpose gets its own key from the one secret key."""
        material = secret_key.encode() if isinstance(secret_key, str) else secret_key
        if len(material) < 16:
            raise ValueError("the instance secret key is too short to derive a key from")
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None,
            info=f"mailadmin {purpose}".encode(),
        ).derive(material)
        return cls(key=derived)

    def seal(self, text: str, context: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self.key).encrypt(nonce, text.encode(), context.encode())
        return f"{VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open_text(self, stored: str, context: str) -> str:
        version, _, body = stored.partition(":")
        if version != VERSION:
            raise SecretUnreadable(f"unknown format {version!r}")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            plain = AESGCM(self.key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError, binascii.Error):
            raise SecretUnreadable("the text does not decrypt with this key") from None
        return plain.decode()
