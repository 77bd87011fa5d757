"""Panel account passwords and API token secrets. (Mailbox passwords: `mailadmin.hashing`.)"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from passlib.context import CryptContext

# Argon2id at OWASP's baseline (19 MiB, 2 passes); bcrypt hashes from an import still verify
# and are upgraded on the next successful sign-in because of deprecated="auto".
_panel_context = CryptContext(
    schemes=["argon2", "bcrypt"],
    deprecated="auto",
    argon2__type="ID",
    argon2__memory_cost=19456,
    argon2__time_cost=2,
    argon2__parallelism=1,
)

#: Held while an Argon2 hash is computed (panel passwords here, ARGON2ID mailbox passwords in
#: `mailadmin.hashing`): each takes its memory cost (19 or 64 MiB) for the time of the hash, and
#: the C code runs outside the interpreter lock, so N sign-ins at once in one process took N
#: times that (8 at once: +130 MiB measured on a waitress process). One at a time per process
#: bounds the peak to one hash's memory; it costs no throughput on a 2-core machine with a
#: worker per core, and a burst of sign-ins waits ~60 ms per sign-in ahead of it.
memory_hard_slot = threading.BoundedSemaphore(1)

# Verified against when the account does not exist, so a missing user takes as long to refuse
# as a wrong password and sign-in timing does not reveal which user names exist.
_DUMMY_HASH = _panel_context.hash(secrets.token_urlsafe(16))


def hash_panel_password(password: str) -> str:
    with memory_hard_slot:
        return str(_panel_context.hash(password))


def verify_panel_password(password: str, stored_hash: str | None) -> tuple[bool, str | None]:
    """Check a password; the second value is a replacement hash when the stored one is outdated."""
    with memory_hard_slot:
        if stored_hash is None:
            _panel_context.verify(password, _DUMMY_HASH)
            return False, None
        try:
            ok, new_hash = _panel_context.verify_and_update(password, stored_hash)
            return bool(ok), new_hash
        except ValueError:
            return False, None


def generate_password(length: int = 20) -> str:
    """A password for a person to copy: letters and digits without look-alikes."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def hash_token_secret(secret: str) -> str:
    # API secrets are 256 random bits, so a plain SHA-256 is enough and keeps every API call fast.
    return hashlib.sha256(secret.encode()).hexdigest()


def token_secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token_secret(secret), stored_hash)
