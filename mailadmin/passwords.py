"""The password policy for mailbox passwords.

`check_password_policy` refuses, with a message written for the person choosing the password:

* control and invisible characters (a password must be typeable on every device, and a NUL, a
  newline or a zero-width character pasted by accident would lock the user out);
* more than `MAX_PASSWORD_LENGTH` characters, and fewer than the configured minimum;
#: Panel accounts (admins, resellers, customers): at least this many characters.
MIN_PANEL_PASSWORD_LENGTH = 10
* the mail address, the name before ``@``, the domain or the panel user name, or a password
  containing them;
* a password made of only one or two different characters;
* a very common password (from ``data/common-passwords.txt``), also with digits or punctuation
  added before or after it, or with the usual look-alike substitutions (``p@ssw0rd``).

Lengths count Unicode code points, which is what a person counts when typing.
"""

from __future__ import annotations

import contextlib
import functools
import unicodedata
from importlib import resources
from typing import Final

from mailadmin.errors import InvalidName, WeakPassword
from mailadmin.names import domain_to_unicode, split_loosely

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PANEL_PASSWORD_LENGTH",
    "check_password_policy",
    "is_common_password",
    "policy_for_browsers",
]

MAX_PASSWORD_LENGTH: Final = 1024
#: Panel accounts (admins, resellers, customers): at least this many characters.
MIN_PANEL_PASSWORD_LENGTH: Final = 10

# Shorter names would refuse too much: "an" is inside half of all passphrases.
_MIN_CONTAINED_LENGTH: Final = 3

# Cc control, Cf invisible format characters (zero-width space, BOM, bidi overrides), Cs lone
# surrogates, Zl/Zp line and paragraph separators.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_DECORATION: Final = "0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_LOOKALIKE_LETTERS: Final = {"@": "a", "4": "a", "0": "o", "3": "e", "$": "s", "5": "s"}
_LOOKALIKES: Final = str.maketrans(_LOOKALIKE_LETTERS)

_FIELD: Final = "password"


@functools.cache
def _common_passwords() -> frozenset[str]:
    text = resources.files("mailadmin").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().casefold()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def is_common_password(password: str) -> bool:
    """Tell whether `password` is on the common list as it is (ignoring case)."""
    return password.casefold() in _common_passwords()


def _common_core(password: str) -> str | None:
    """Return the common password that `password` is made from, if there is one."""
    folded = password.casefold()
    common = _common_passwords()
    stripped = folded.strip(_DECORATION)
    for candidate in (
        folded,
        stripped,
        folded.translate(_LOOKALIKES),
        stripped.translate(_LOOKALIKES),
    ):
        if candidate and candidate in common:
            return candidate
    if not stripped:
        # Only digits and punctuation: "123456789012" is "123456789" with digits added.
        for entry in common:
            if len(entry) >= 4 and (folded.startswith(entry) or folded.endswith(entry)):
                return entry
    return None


def _identity_parts(address: str | None, username: str | None) -> list[tuple[str, str]]:
    """Pairs of (casefolded text, what to call it in a message) the password may not contain."""
    parts: list[tuple[str, str]] = []
    if address:
        parts.append((address, "the mail address"))
        local, domain = split_loosely(address)
        if local:
            parts.append((local, "the name before '@' in the mail address"))
        if domain:
            parts.append((domain, "the domain"))
            # An address that is not valid yet still has its ASCII form checked above.
            with contextlib.suppress(InvalidName):
                parts.append((domain_to_unicode(domain), "the domain"))
    if username:
        parts.append((username, "your user name"))
    return [(text.casefold(), label) for text, label in parts if text]


def check_password_policy(
    password: str,
    *,
    min_length: int,
    address: str | None = None,
    username: str | None = None,
) -> None:
    """Refuse a mailbox password that breaks the policy; return None when it is acceptable.

    `address` is the mailbox's address and `username` the panel user's name, when known; the
    password may not be or contain either (parts shorter than three characters only may not be
    the whole password).

    :raises WeakPassword: with a message that says what is wrong (never the password itself).
    """
    length = len(password)
    if length > MAX_PASSWORD_LENGTH:
        raise WeakPassword(
            f"The password may have at most {MAX_PASSWORD_LENGTH} characters; "
            f"this one has {length}.",
            field=_FIELD,
        )
    for ch in password:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            raise WeakPassword(
                f"The password contains an invisible or control character (U+{ord(ch):04X}); "
                "use letters, digits, spaces and punctuation.",
                field=_FIELD,
            )
    if length < min_length:
        raise WeakPassword(
            f"The password must have at least {min_length} characters; this one has {length}.",
            field=_FIELD,
        )
    folded = password.casefold()
    for part, label in _identity_parts(address, username):
        if folded == part or (len(part) >= _MIN_CONTAINED_LENGTH and part in folded):
            raise WeakPassword(f"The password may not contain {label}.", field=_FIELD)
    if len(set(folded)) <= 2:
        raise WeakPassword(
            "The password uses only one or two different characters; choose one that is "
            "harder to guess.",
            field=_FIELD,
        )
    core = _common_core(password)
    if core is not None:
        if core == folded:
            message = (
                "This is one of the most common passwords, which attackers try first; "
                "choose another."
            )
        else:
            message = (
                "This password is a very common password with small changes, which attackers "
                "try first; choose another."
            )
        raise WeakPassword(message, field=_FIELD)


def policy_for_browsers(min_length: int) -> dict[str, object]:
    """The data of this policy for the panel's password meter (panel/static/js/passwords.js),
    which repeats `check_password_policy` in the browser so a person sees a refusal while
    typing; the server still checks every password it receives."""
    return {
        "min_length": min_length,
        "max_length": MAX_PASSWORD_LENGTH,
        "min_contained": _MIN_CONTAINED_LENGTH,
        "refused_categories": sorted(_REFUSED_CATEGORIES),
        "decoration": _DECORATION,
        "lookalikes": _LOOKALIKE_LETTERS,
        "common": sorted(_common_passwords()),
    }
