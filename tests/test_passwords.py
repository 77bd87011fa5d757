"""The mailbox password policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailadmin.errors import WeakPassword
from mailadmin.passwords import MAX_PASSWORD_LENGTH, check_password_policy, is_common_password

ADDRESS = "anna.meier@xn--bcher-kva.de"


def refused(password: str, **kwargs: object) -> str:
    options: dict[str, object] = {"min_length": 10, "address": ADDRESS, "username": "reseller7"}
    options.update(kwargs)
    with pytest.raises(WeakPassword) as error:
        check_password_policy(password, **options)  # type: ignore[arg-type]
    assert error.value.field == "password"
    assert error.value.code == "weak_password"
    return error.value.message


@pytest.mark.parametrize(
    "password",
    [
        "Tr0ub4dor&3 horse",
        "ablak-kefe-tó-1987",
        "Grüße aus Köln!",
        "vier Wörter ohne Sinn",
        "東京タワーの夜景",
    ],
)
def test_good_passwords_pass(password: str) -> None:
    check_password_policy(password, min_length=8, address=ADDRESS, username="reseller7")


def test_too_short_names_the_numbers() -> None:
    assert refused("Zq8#kx", min_length=12) == (
        "The password must have at least 12 characters; this one has 6."
    )
    # Characters, not bytes: eight umlauts are eight characters.
    check_password_policy("äöüßÄÖÜé", min_length=8)


def test_too_long() -> None:
    message = refused("Zq8#kxWm" * 200)
    assert str(MAX_PASSWORD_LENGTH) in message
    assert "1600" in message
    check_password_policy(("Zq8#kxWm" * 128)[:MAX_PASSWORD_LENGTH], min_length=10)


@pytest.mark.parametrize(
    "ch", ["\0", "\n", "\r", "\t", "\x1b", "\x7f", "\u200b", "\ufeff", "\u2028", "\u202e"]
)
def test_control_and_invisible_characters(ch: str) -> None:
    message = refused(f"Zq8#kx{ch}Wm-river")
    assert f"U+{ord(ch):04X}" in message
    assert ch not in message


@pytest.mark.parametrize(
    ("password", "what"),
    [
        ("anna.meier@xn--bcher-kva.de", "mail address"),
        ("ANNA.MEIER@XN--BCHER-KVA.DE", "mail address"),
        ("Anna.Meier", "name before '@'"),
        ("my-anna.meier-2024", "name before '@'"),
        ("xn--bcher-kva.de!!", "domain"),
        ("love bücher.de forever", "domain"),
        ("reseller7-secret", "user name"),
    ],
)
def test_identity_is_refused(password: str, what: str) -> None:
    assert what in refused(password, min_length=6)


def test_short_local_parts_are_only_refused_whole() -> None:
    check_password_policy("an orange river", min_length=8, address="an@example.org")
    assert "name before" in refused("an", min_length=1, address="an@example.org")


@pytest.mark.parametrize(
    "password",
    ["password", "PASSWORD", "qwertyuiop", "iloveyou", "correct horse battery staple", "пароль"],
)
def test_common_passwords(password: str) -> None:
    assert is_common_password(password)
    assert "most common passwords" in refused(password, min_length=6)


@pytest.mark.parametrize(
    "password",
    [
        "Password2024!",
        "Pa55w0rd",
        "P@ssw0rd123",
        "!!sunshine!!",
        "123456789012",
        "2024-dragon",
        "qwertyuiop2024",
    ],
)
def test_common_passwords_with_small_changes(password: str) -> None:
    assert "small changes" in refused(password, min_length=6)


@pytest.mark.parametrize("password", ["aaaaaaaaaaaa", "abababababab", "111111111111111"])
def test_one_or_two_characters(password: str) -> None:
    assert "one or two different characters" in refused(password)


def test_common_list_is_a_real_list() -> None:
    from mailadmin.passwords import _common_passwords

    common = _common_passwords()
    assert 500 <= len(common) <= 10_000
    assert all(entry == entry.casefold().strip() and entry for entry in common)
    assert not any(entry.startswith("#") for entry in common)


@given(st.text(max_size=60))
def test_any_input_is_accepted_or_refused_with_a_message(password: str) -> None:
    try:
        check_password_policy(password, min_length=10, address=ADDRESS, username="reseller7")
    except WeakPassword as error:
        assert error.message
        # The message never repeats the password (it may end up in a log or on a shared screen).
        assert len(password) < 4 or password not in error.message
