"""Mailbox password hashes in Dovecot's ``{SCHEME}hash`` format.

Hashes are made with libpass (imported as ``passlib``) in one of three schemes a server admin may
choose, and each is checked against the real ``doveadm pw -t`` in the tests:

=============  ======================================  ==========================================
scheme         stored as                               cost; time per hash on the 2-core machine
=============  ======================================  ==========================================
SHA512-CRYPT   ``{SHA512-CRYPT}$6$rounds=100000$...``  100,000 rounds, 37-55 ms (*) (default)
BLF-CRYPT      ``{BLF-CRYPT}$2y$10$...``               cost 10, 60-85 ms
ARGON2ID       ``{ARGON2ID}$argon2id$v=19$m=65536...`` 64 MiB, 3 passes, 1 lane, 165-270 ms
=============  ======================================  ==========================================

(*) computed by libxcrypt (below); 55 ms and one hash at a time per process in passlib's Python.

Why these costs: Dovecot pays the same cost on every IMAP, POP3 and SMTP login (its auth cache is
off by default and phones open many connections), so the cost that protects a stolen table also
loads the mail server. SHA512-CRYPT and BLF-CRYPT are 20 and 32 times Dovecot's own defaults (5000
rounds, cost 5); ARGON2ID uses Dovecot's own parameters, which fit the default ``vsz_limit`` of its
auth process.

Who computes SHA512-CRYPT: libxcrypt (``crypt_rn`` in ``libcrypt.so.1``, the library Dovecot
itself verifies with), called through ctypes, when it is there and gives passlib's answer on a
test vector; else passlib's pure-Python code. libpass has no C backend left, and its builtin one
holds the interpreter lock for the whole hash (55 ms at 100,000 rounds): a panel process could
hash one password at a time whatever its threads. ctypes releases the lock during the call, and
the C code is faster (37 ms), so one process hashes on every core. Same format, same salt
alphabet and length, same rounds: only who does the arithmetic changes. A password libxcrypt
refuses (over 512 bytes) is left to passlib as before.

Why ``$2y$`` for BLF-CRYPT: it is the ident ``doveadm pw -s BLF-CRYPT`` writes itself. Dovecot hands
the hash to the system's ``crypt()`` (libxcrypt on Debian), which accepts ``$2a$``, ``$2b$`` and
``$2y$`` alike, so imported hashes with any of them are verified too. Like ``crypt()``, bcrypt uses
only the first 72 bytes of a password; they are cut here the same way so that what the panel
accepts and what Dovecot accepts never differ.

Legacy schemes that a hosting company brings along on import are verified but never written:
MD5-CRYPT (and Dovecot's alias MD5), SHA256-CRYPT, DES-CRYPT, CRYPT (any of the ``crypt()``
formats above), SSHA, SSHA256, SSHA512, SMD5 (through passlib's ``ldap_salted_*`` handlers, which
use Dovecot's exact format), and the unsalted SHA, SHA256, SHA512, PLAIN-MD5 and LDAP-MD5 (hex or
base64, as Dovecot accepts them; passlib has no handler for Dovecot's base64 SHA-2 or for its
``{LDAP-MD5}`` spelling). `needs_rehash` tells a service to replace them at the next login.

Cleartext schemes (PLAIN, CLEAR, CLEARTEXT, PLAIN-TRUNC) are never written and are refused by
`verify_mailbox_password` too: nothing in the panel can store one, so a cleartext value in the
database means something went around the services, and logging in with it would hide that.
Importers hash cleartext passwords with `hash_mailbox_password` on the way in.

No function here logs or returns a cleartext password.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from passlib.hash import (
    argon2,
    bcrypt,
    des_crypt,
    ldap_salted_md5,
    ldap_salted_sha1,
    ldap_salted_sha256,
    ldap_salted_sha512,
    md5_crypt,
    sha256_crypt,
    sha512_crypt,
)

from mailadmin.errors import ValidationError, WeakPassword
from mailadmin.security import memory_hard_slot

__all__ = [
    "DEFAULT_SCHEME",
    "STORAGE_SCHEMES",
    "StorageScheme",
    "generate_app_password",
    "hash_app_password",
    "hash_mailbox_password",
    "hash_scheme",
    "needs_rehash",
    "validate_imported_hash",
    "verify_mailbox_password",
]

log = logging.getLogger(__name__)

StorageScheme = Literal["SHA512-CRYPT", "BLF-CRYPT", "ARGON2ID"]
#: The schemes a server admin may choose for new hashes.
STORAGE_SCHEMES: Final[tuple[StorageScheme, ...]] = get_args(StorageScheme)
DEFAULT_SCHEME: Final[StorageScheme] = "SHA512-CRYPT"

SHA512_CRYPT_ROUNDS: Final = 100_000
BCRYPT_COST: Final = 10
ARGON2_MEMORY_KIB: Final = 65_536
ARGON2_PASSES: Final = 3
ARGON2_LANES: Final = 1

_BCRYPT_MAX_BYTES: Final = 72

_sha512_crypt: Any = sha512_crypt.using(rounds=SHA512_CRYPT_ROUNDS)
_bcrypt: Any = bcrypt.using(rounds=BCRYPT_COST, ident="2y")
_argon2id: Any = argon2.using(
    type="ID", memory_cost=ARGON2_MEMORY_KIB, rounds=ARGON2_PASSES, parallelism=ARGON2_LANES
)

_CLEARTEXT_SCHEMES: Final = frozenset({"PLAIN", "CLEAR", "CLEARTEXT", "PLAIN-TRUNC"})

#: sizeof(struct crypt_data) in libxcrypt: the scratch space `crypt_rn` works in.
_CRYPT_DATA_SIZE: Final = 32768
_HASH64: Final = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SHA512_SALT_CHARS: Final = 16


def _load_crypt_rn() -> Callable[[bytes, bytes], bytes | None] | None:
    """libxcrypt's ``crypt_rn(phrase, setting)``, or None when it is missing or disagrees with
    passlib on a test vector. The call releases the interpreter lock (ctypes does for CDLL)."""
    try:
        function = ctypes.CDLL("libcrypt.so.1").crypt_rn
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_char_p
    function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]

    def crypt_rn(phrase: bytes, setting: bytes) -> bytes | None:
        if b"\0" in phrase or b"\0" in setting:
            return None  # C would stop at the NUL: "abc\0def" must not be "abc"
        data = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
        try:
            result: bytes | None = function(phrase, setting, data, _CRYPT_DATA_SIZE)
            return result
        finally:
            ctypes.memset(data, 0, _CRYPT_DATA_SIZE)  # it held a copy of the password

    probe = sha512_crypt.using(rounds=1000, salt="saltsaltsaltsalt").hash(b"probe")
    try:
        agrees = crypt_rn(b"probe", probe.encode("ascii")) == probe.encode("ascii")
    except (OSError, ValueError):  # pragma: no cover - a broken library
        agrees = False
    return crypt_rn if agrees else None


_crypt_rn = _load_crypt_rn()


def _sha512_crypt_hash(password: bytes, rounds: int) -> str:
    """``$6$...`` for `password`, as passlib's ``sha512_crypt.using(rounds=rounds).hash`` makes
    it (5000 rounds, the default, are not written), computed by libxcrypt when it can."""
    if _crypt_rn is not None:
        salt = "".join(secrets.choice(_HASH64) for _ in range(_SHA512_SALT_CHARS))
        setting = f"$6${'' if rounds == 5000 else f'rounds={rounds}$'}{salt}"
        result = _crypt_rn(password, setting.encode("ascii"))
        if result is not None:
            return result.decode("ascii")
    handler = _sha512_crypt if rounds == SHA512_CRYPT_ROUNDS else sha512_crypt.using(rounds=rounds)
    return str(handler.hash(password))


def _sha512_crypt_verify(password: bytes, body: str) -> bool:
    """Whether `password` matches the ``$6$...`` hash `body` (libxcrypt when it can)."""
    if _crypt_rn is not None:
        result = _crypt_rn(password, body.encode("ascii"))
        # The same settings back (libxcrypt cuts long salts and raises low rounds; passlib
        # decides those cases, as it always has): then the checksums tell.
        if result is not None and result.rsplit(b"$", 1)[0] == body.encode("ascii").rsplit(
                b"$", 1)[0]:
            return hmac.compare_digest(result, body.encode("ascii"))
    return bool(sha512_crypt.verify(password, body))


def _bcrypt_secret(password: str) -> bytes:
    return password.encode("utf-8")[:_BCRYPT_MAX_BYTES]


def _utf8(password: str) -> bytes:
    return password.encode("utf-8")


@dataclass(frozen=True)
class _CryptScheme:
    """A scheme whose body is a ``crypt()``-style string that a passlib handler verifies."""

    handler: Any
    prefixes: tuple[str, ...]
    secret: Callable[[str], bytes] = _utf8


_BCRYPT_SCHEME = _CryptScheme(bcrypt, ("$2a$", "$2b$", "$2y$"), _bcrypt_secret)
_CRYPT_FAMILY: Final[tuple[_CryptScheme, ...]] = (
    _CryptScheme(sha512_crypt, ("$6$",)),
    _CryptScheme(sha256_crypt, ("$5$",)),
    _CryptScheme(md5_crypt, ("$1$",)),
    _BCRYPT_SCHEME,
)
_DES_SCHEME = _CryptScheme(des_crypt, ("",))

_CRYPT_SCHEMES: Final[dict[str, _CryptScheme]] = {
    "SHA512-CRYPT": _CRYPT_FAMILY[0],
    "SHA256-CRYPT": _CRYPT_FAMILY[1],
    "MD5-CRYPT": _CRYPT_FAMILY[2],
    # Dovecot's {MD5} is MD5-CRYPT, not a plain MD5 digest.
    "MD5": _CRYPT_FAMILY[2],
    "BLF-CRYPT": _BCRYPT_SCHEME,
    "DES-CRYPT": _DES_SCHEME,
}
# passlib parses these in exactly Dovecot's format: "{SCHEME}" + base64(digest + salt).
_SALTED_SCHEMES: Final[dict[str, Any]] = {
    "SSHA": ldap_salted_sha1,
    "SSHA256": ldap_salted_sha256,
    "SSHA512": ldap_salted_sha512,
    "SMD5": ldap_salted_md5,
}
_DIGESTS: Final[dict[str, str]] = {
    "SHA": "sha1",
    "SHA1": "sha1",
    "SHA256": "sha256",
    "SHA512": "sha512",
    "PLAIN-MD5": "md5",
    "LDAP-MD5": "md5",
}
_ARGON2_TYPES: Final[dict[str, str]] = {"ARGON2ID": "$argon2id$", "ARGON2I": "$argon2i$"}
_KNOWN_SCHEMES: Final = frozenset(
    [*_CRYPT_SCHEMES, "CRYPT", *_ARGON2_TYPES, *_SALTED_SCHEMES, *_DIGESTS]
)


def _split(stored: str) -> tuple[str, str, str | None]:
    """Split ``{SCHEME.ENC}body`` into scheme (upper case), body and encoding suffix.

    :raises ValueError: when there is no ``{SCHEME}`` prefix.
    """
    if not stored.startswith("{") or "}" not in stored:
        raise ValueError("no {SCHEME} prefix")
    name, body = stored[1:].split("}", 1)
    scheme, _, encoding = name.upper().partition(".")
    if not scheme:
        raise ValueError("empty scheme")
    return scheme, body, encoding or None


def hash_scheme(stored: str) -> str | None:
    """Return the upper-case Dovecot scheme of a stored hash, or None if it has no prefix."""
    try:
        return _split(stored)[0]
    except ValueError:
        return None


def hash_mailbox_password(password: str, scheme: StorageScheme = DEFAULT_SCHEME) -> str:
    """Hash a mailbox password for Dovecot, prefixed with its ``{SCHEME}``.

    :raises ValueError: when `scheme` is not one of `STORAGE_SCHEMES` (a settings error).
    :raises WeakPassword: when the password is empty or contains NUL, which no mail client can
        send (SASL PLAIN uses NUL as its separator) and bcrypt cannot hash.
    """
    if not password:
        raise WeakPassword("The password is empty.", field="password")
    if "\0" in password:
        raise WeakPassword("The password may not contain a NUL character.", field="password")
    if scheme == "SHA512-CRYPT":
        body: str = _sha512_crypt_hash(_utf8(password), SHA512_CRYPT_ROUNDS)
    elif scheme == "BLF-CRYPT":
        body = _bcrypt.hash(_bcrypt_secret(password))
    elif scheme == "ARGON2ID":
        with memory_hard_slot:  # 64 MiB each: one at a time per process
            body = _argon2id.hash(_utf8(password))
    else:
        raise ValueError(
            f"unknown mailbox password scheme {scheme!r}; use one of {STORAGE_SCHEMES}"
        )
    return f"{{{scheme}}}{body}"


#: Dovecot's own SHA512-CRYPT default. App passwords are random (`generate_app_password`, 120
#: bits), so no number of rounds would make guessing one feasible or infeasible; every round is
#: paid again for each slot passdb Dovecot walks at every login.
APP_PASSWORD_ROUNDS: Final = 5000
#: Lower-case letters without look-alikes (no l, o), typed on a phone in four groups of six.
_APP_PASSWORD_ALPHABET: Final = "abcdefghijkmnpqrstuvwxyz23456789"  # noqa: S105 - an alphabet
APP_PASSWORD_GROUPS: Final = 4
APP_PASSWORD_GROUP_LENGTH: Final = 6


def generate_app_password() -> str:
    """A new app password: 24 characters from 32 (120 bits), in groups split by hyphens."""
    chars = "".join(secrets.choice(_APP_PASSWORD_ALPHABET)
                    for _ in range(APP_PASSWORD_GROUPS * APP_PASSWORD_GROUP_LENGTH))
    n = APP_PASSWORD_GROUP_LENGTH
    return "-".join(chars[i:i + n] for i in range(0, len(chars), n))


def hash_app_password(password: str) -> str:
    """An app password's ``{SHA512-CRYPT}`` hash for Dovecot (see `APP_PASSWORD_ROUNDS`).

    :raises WeakPassword: for an empty password or one with NUL (as `hash_mailbox_password`).
    """
    if not password or "\0" in password:
        raise WeakPassword("An app password must be a non-empty text without NUL.",
                           field="password")
    return "{SHA512-CRYPT}" + _sha512_crypt_hash(_utf8(password), APP_PASSWORD_ROUNDS)


def _decode(body: str, encoding: str | None, raw_size: int | None) -> bytes:
    """Decode a digest body the way Dovecot does: by suffix, else hex when the length fits."""
    if encoding == "HEX" or (encoding is None and raw_size and len(body) == 2 * raw_size):
        return bytes.fromhex(body)
    if encoding in (None, "B64", "BASE64"):
        return base64.b64decode(body, validate=True)
    raise ValueError(f"unknown encoding {encoding}")


class _CleartextScheme(ValueError):
    pass


def _parse(handler: Any, text: str) -> None:
    # from_string also accepts a bare salt ("$6$salt"), which no password can ever match.
    if not handler.from_string(text).checksum:
        raise ValueError("hash without a checksum")


def _argon2_verify(password: bytes, body: str) -> bool:
    with memory_hard_slot:  # its memory cost each: one at a time per process
        return bool(argon2.verify(password, body))


def _verifier(stored: str) -> Callable[[str], bool]:
    """Parse a stored hash and return the function that checks a password against it.

    Parsing and checking are apart so that an import can validate a hash without paying for it.

    :raises ValueError: when the hash is malformed or in a scheme that is not verified here.
    """
    scheme, body, encoding = _split(stored)
    if scheme in _CLEARTEXT_SCHEMES:
        raise _CleartextScheme(scheme)
    crypt_scheme = _CRYPT_SCHEMES.get(scheme)
    if scheme == "CRYPT":
        # Dovecot's CRYPT is whatever crypt() recognises; without a "$id$" it is DES.
        crypt_scheme = next((c for c in _CRYPT_FAMILY if body.startswith(c.prefixes)), _DES_SCHEME)
    if crypt_scheme is not None:
        if encoding is not None or not body.startswith(crypt_scheme.prefixes):
            raise ValueError(f"not a {scheme} hash")
        handler, secret = crypt_scheme.handler, crypt_scheme.secret
        _parse(handler, body)
        if handler is sha512_crypt:
            return lambda password: _sha512_crypt_verify(secret(password), body)
        return lambda password: bool(handler.verify(secret(password), body))
    if scheme in _ARGON2_TYPES:
        if encoding is not None or not body.startswith(_ARGON2_TYPES[scheme]):
            raise ValueError(f"not a {scheme} hash")
        _parse(argon2, body)
        return lambda password: _argon2_verify(_utf8(password), body)
    if scheme in _SALTED_SCHEMES:
        salted = _SALTED_SCHEMES[scheme]
        if encoding is not None:
            body = base64.b64encode(_decode(body, encoding, None)).decode("ascii")
        ldap_form = f"{{{scheme}}}{body}"
        _parse(salted, ldap_form)
        return lambda password: bool(salted.verify(_utf8(password), ldap_form))
    if scheme in _DIGESTS:
        algorithm = _DIGESTS[scheme]
        expected = _decode(body, encoding, hashlib.new(algorithm).digest_size)
        if len(expected) != hashlib.new(algorithm).digest_size:
            raise ValueError(f"not a {scheme} hash")
        return lambda password: hmac.compare_digest(
            hashlib.new(algorithm, _utf8(password)).digest(), expected
        )
    raise ValueError("unknown scheme")


def verify_mailbox_password(password: str, stored: str) -> bool:
    """Tell whether `password` matches the stored Dovecot-format hash.

    Accepts the storage schemes and the legacy schemes listed in the module documentation. A
    hash without a ``{SCHEME}`` prefix, in a cleartext or unknown scheme, or malformed, never
    matches (a warning without the hash or password is logged for the unusable ones).
    """
    try:
        verifier = _verifier(stored)
    except _CleartextScheme as exc:
        log.warning("refusing to verify a password stored in cleartext scheme %s", exc)
        return False
    except (ValueError, binascii.Error):
        log.warning(
            "cannot verify a mailbox password stored as %r: malformed or unknown scheme",
            (hash_scheme(stored) or "no scheme")[:32],
        )
        return False
    try:
        return verifier(password)
    except (ValueError, TypeError):
        # passlib refuses unusable secrets (NUL for bcrypt, over 4 KiB) with ValueError; such a
        # password cannot match anything stored.
        return False


def needs_rehash(stored: str, preferred_scheme: StorageScheme = DEFAULT_SCHEME) -> bool:
    """Tell whether a hash should be replaced by a new one (after a successful login).

    True when the stored scheme is not `preferred_scheme`, or it is but with weaker parameters
    than this module now uses (fewer rounds, lower cost, less memory), or it cannot be parsed.
    A stronger hash than the current settings is left alone.

    :raises ValueError: when `preferred_scheme` is not one of `STORAGE_SCHEMES`.
    """
    if preferred_scheme not in STORAGE_SCHEMES:
        raise ValueError(f"unknown mailbox password scheme {preferred_scheme!r}")
    try:
        scheme, body, encoding = _split(stored)
        if scheme != preferred_scheme or encoding is not None:
            return True
        if scheme == "SHA512-CRYPT":
            return bool(sha512_crypt.from_string(body).rounds < SHA512_CRYPT_ROUNDS)
        if scheme == "BLF-CRYPT":
            return bool(bcrypt.from_string(body).rounds < BCRYPT_COST)
        parsed = argon2.from_string(body)
        return bool(
            parsed.type != "id"
            or parsed.memory_cost < ARGON2_MEMORY_KIB
            or parsed.rounds < ARGON2_PASSES
            or parsed.parallelism < ARGON2_LANES
        )
    except ValueError:
        return True


def validate_imported_hash(stored: str, *, field: str = "password_hash") -> str:
    """Check a hash brought in by an import before it is stored; return it with its scheme name
    in upper case.

    It must be in a scheme this module verifies and Dovecot accepts, parse as one, and consist of
    printable ASCII without ``:`` (the field separator of Dovecot's passwd-file) or spaces.

    :raises ValidationError: naming what is wrong, never echoing the hash.
    """
    if not stored.isascii() or not stored.isprintable() or ":" in stored or " " in stored:
        raise ValidationError(
            "The password hash contains characters that no supported scheme uses.", field=field
        )
    try:
        scheme, body, encoding = _split(stored)
    except ValueError:
        raise ValidationError(
            "The password hash needs a {SCHEME} prefix, such as {SHA512-CRYPT}.", field=field
        ) from None
    try:
        _verifier(stored)
    except _CleartextScheme:
        raise ValidationError(
            f"Passwords in the cleartext scheme {scheme} are not stored; import the password "
            "itself so that it is hashed.",
            field=field,
        ) from None
    except (ValueError, binascii.Error):
        if scheme in _KNOWN_SCHEMES:
            message = f"The password hash is not a valid {scheme} hash."
        else:
            message = f"The password hash scheme {scheme[:32]} is not supported."
        raise ValidationError(message, field=field) from None
    suffix = f".{encoding}" if encoding else ""
    return f"{{{scheme}{suffix}}}{body}"
