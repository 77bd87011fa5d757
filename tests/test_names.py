"""Local parts, domains and addresses: what is stored, what is refused, and that nothing unsafe
can get through."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailadmin.errors import InvalidName
from mailadmin.mailstack import UnsafeName
from mailadmin.names import (
    address_to_unicode,
    domain_to_unicode,
    is_safe_for_config,
    normalize_address,
    normalize_domain,
    normalize_local_part,
    safe_address,
    safe_domain,
    safe_hosted_domain,
    safe_local_part,
    split_address,
)

# Characters with a meaning somewhere the names end up: passwd-file, Postfix maps, Sieve, shell,
# SQL, paths; plus line breaks and look-alikes that Unicode case mapping turns into ASCII.
HOSTILE = ":,#@ \"'`\\;/%!$&|<>()[]{}*?~=^\n\r\t\x00\x0b\x0c\x85\u2028\u2029\u200b\u202e\ufeff"
# Kelvin sign, dotted capital I, dotless i, long s, fullwidth ':' ',' '#' '@', ideographic stop.
HOSTILE += "\u212a\u0130\u0131\u017f\uff1a\uff0c\uff03\uff20\u3002"

odd_text = st.one_of(
    st.text(),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=80),  # incl. surrogates
    st.text(st.sampled_from("abcXYZ019.-_+" + HOSTILE), max_size=80),
    st.text(st.sampled_from("ab.-"), min_size=60, max_size=300),
    # Mostly valid names with the odd hostile character, so that both outcomes are exercised.
    st.from_regex(
        r"[A-Za-z0-9._+\-]{1,20}@[A-Za-z\u00e4\u00df0-9\-]{1,20}\.[a-z]{2,6}\.?", fullmatch=True
    ),
    st.from_regex(r"[a-z0-9._\-:;'\"\n ]{1,20}@[a-z\u00fc0-9\-]{1,15}\.de", fullmatch=True),
    st.builds(
        lambda a, b, c: f"{a}@{b}.{c}",
        st.text(max_size=70),
        st.text(max_size=70),
        st.text(max_size=10),
    ),
)

Normaliser = Callable[[str], str]
NORMALISERS: dict[str, Normaliser] = {
    "local_part": normalize_local_part,
    "domain": normalize_domain,
    "address": normalize_address,
    "hosted_address": lambda s: normalize_address(s, hosted=True),
}

#: The check each renderer applies before writing a name of that kind.
RENDERER_CHECKS: dict[str, Callable[[str], str]] = {
    "local_part": safe_local_part,
    "domain": safe_domain,
    "address": safe_address,
    "hosted_address": safe_address,
}


def check_round_trip(kind: str, value: str) -> str | None:
    """Either refuse with a message or return a stable, config-safe stored form."""
    normalise = NORMALISERS[kind]
    try:
        stored = normalise(value)
    except InvalidName as error:
        assert error.message.strip()
        assert error.message.isprintable()  # no raw control characters reach a page or log
        return None
    assert normalise(stored) == stored
    assert is_safe_for_config(stored), stored
    # the renderers' own check (not a copy) accepts every stored form of its kind
    RENDERER_CHECKS[kind](stored)
    assert stored.isascii() and stored == stored.lower()
    assert set(stored) <= set("abcdefghijklmnopqrstuvwxyz0123456789.-_+@")
    assert stored.count("@") == (1 if "address" in kind else 0)
    return stored


@pytest.mark.parametrize("kind", NORMALISERS)
@given(value=odd_text)
@settings(max_examples=400, deadline=None)
@example(value="Anna.Meier")
@example(value="anna@Bücher.de")
@example(value="a:b@example.com")
@example(value="x\n@example.com")
@example(value="xn--bcher-kva.de")
@example(value="\u212aelvin@example.com")
def test_every_input_is_stored_safely_or_refused(kind: str, value: str) -> None:
    check_round_trip(kind, value)


@given(value=odd_text)
@settings(max_examples=300, deadline=None)
def test_unicode_display_round_trips(value: str) -> None:
    try:
        stored = normalize_domain(value)
    except InvalidName:
        return
    shown = domain_to_unicode(stored)
    assert normalize_domain(shown) == stored
    assert domain_to_unicode(shown) == shown


@pytest.mark.parametrize(
    ("given_value", "stored"),
    [
        ("Anna.Meier", "anna.meier"),
        ("  info\t", "info"),
        ("_dmarc-reports", "_dmarc-reports"),
        ("a" * 64, "a" * 64),
        ("x.y-z_9", "x.y-z_9"),
    ],
)
def test_local_parts_accepted(given_value: str, stored: str) -> None:
    assert normalize_local_part(given_value) == stored


@pytest.mark.parametrize(
    ("value", "in_message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a:b", "':' (U+003A): it separates fields in Dovecot's passwd-file"),
        ("a,b", "Postfix"),
        ("a#b", "comment"),
        ("a b", "spaces"),
        ('a"b', "Sieve"),
        ("a\\b", "escapes"),
        ("a'b", "quotes"),
        ("a;b", "commands"),
        ("a/b", "folder"),
        ("a@b", "'@'"),
        ("a+b", "sub-addresses"),
        ("a\nb", "U+000A"),
        ("a\0b", "U+0000"),
        ("jörg", "ASCII"),
        ("\u212aelvin", "ASCII"),  # KELVIN SIGN lower-cases to an ASCII 'k'
        ("a" * 65, "65 characters; at most 64"),
        (".anna", "must start"),
        ("-anna", "must start"),
        ("anna.", "end with '.'"),
        ("an..na", "two dots"),
    ],
)
def test_local_parts_refused(value: str, in_message: str) -> None:
    with pytest.raises(InvalidName) as error:
        normalize_local_part(value, field="name")
    assert in_message in error.value.message
    assert error.value.field == "name"


@pytest.mark.parametrize(
    ("given_value", "stored", "shown"),
    [
        ("Example.COM", "example.com", "example.com"),
        ("example.com.", "example.com", "example.com"),
        ("Bücher.de", "xn--bcher-kva.de", "bücher.de"),
        ("XN--BCHER-KVA.DE", "xn--bcher-kva.de", "bücher.de"),
        ("faß.de", "xn--fa-hia.de", "faß.de"),  # IDNA 2008, not transitional: ß is kept
        ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\u3002com", "example.com", "example.com"),
        ("mail.例え.テスト", "mail.xn--r8jz45g.xn--zckzah", "mail.例え.テスト"),
        ("a" * 63 + ".de", "a" * 63 + ".de", "a" * 63 + ".de"),
        ("x1.co", "x1.co", "x1.co"),
    ],
)
def test_domains_accepted(given_value: str, stored: str, shown: str) -> None:
    assert normalize_domain(given_value) == stored
    assert domain_to_unicode(given_value) == shown


@pytest.mark.parametrize(
    ("value", "in_message"),
    [
        ("", "empty"),
        (".", "empty"),
        ("localhost", "two labels"),
        ("192.0.2.1", "IP address"),
        ("[192.0.2.1]", "IP address"),
        ("2001:db8::1", "IP address"),
        ("[IPv6:2001:db8::1]", "IP address"),
        ("example.123", "ends in a number"),
        ("a..example", "empty label"),
        ("example.com..", "empty label"),
        ("-a.example", "start or end with '-'"),
        ("a-.example", "start or end with '-'"),
        ("ab--cd.example", "internationalised"),
        ("under_score.example", "'_'"),
        ("a:b.example", "':'"),
        ("a b.example", "U+0020"),
        ("ex\nample.com", "U+000A"),
        ("ex\u2028ample.com", "U+2028"),
        ("xn--zz.example", "internationalised"),
        ("💩.la", "internationalised"),
        ("a" * 64 + ".de", "1 to 63"),
        (".".join(["abcdefghi"] * 26), "at most 253"),
        ("example.com:25", "':'"),
    ],
)
def test_domains_refused(value: str, in_message: str) -> None:
    with pytest.raises(InvalidName) as error:
        normalize_domain(value)
    assert in_message in error.value.message
    assert error.value.field == "domain"


def test_non_canonical_a_label_is_refused() -> None:
    # Hypothesis would rarely find this: an A-label whose decoded form re-encodes differently.
    for value in ("xn--Bcher-kva.de", "xn--bcher-kva.de"):
        assert normalize_domain(value) == "xn--bcher-kva.de"
    with pytest.raises(InvalidName):
        normalize_domain("xn--a.de")


def test_longest_domain() -> None:
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(longest) == 253
    assert normalize_domain(longest) == longest
    with pytest.raises(InvalidName, match="at most 253"):
        normalize_domain("e" + longest)


@pytest.mark.parametrize(
    ("given_value", "stored"),
    [
        ("Anna@Bücher.de", "anna@xn--bcher-kva.de"),
        ("John.Doe+Newsletter@Example.ORG", "john.doe+newsletter@example.org"),
        (" info@example.com. ", "info@example.com"),
    ],
)
def test_addresses(given_value: str, stored: str) -> None:
    assert normalize_address(given_value) == stored
    assert split_address(given_value) == tuple(stored.split("@"))


def test_hosted_addresses_reserve_the_recipient_delimiter() -> None:
    assert normalize_address("anna@example.com", hosted=True) == "anna@example.com"
    with pytest.raises(InvalidName, match="sub-addresses"):
        normalize_address("anna+tag@example.com", hosted=True)
    assert split_address("Anna@Example.com", hosted=True) == ("anna", "example.com")


@pytest.mark.parametrize(
    ("value", "in_message"),
    [
        ("", "empty"),
        ("anna", "needs an '@'"),
        ("anna@b@example.com", "only one '@'"),
        ('"anna"@example.com', "'\"'"),
        ("anna@[192.0.2.1]", "IP address"),
        ("@example.com", "empty"),
        ("anna@", "empty"),
        ("anna@localhost", "two labels"),
        ("Anna <anna@example.com>", "U+0020"),
        ("<anna@example.com>", "'<'"),
        ("a" * 64 + "@" + ".".join(["b" * 63] * 3) + ".de", "longer than 254"),
    ],
)
def test_addresses_refused(value: str, in_message: str) -> None:
    with pytest.raises(InvalidName) as error:
        normalize_address(value, field="destination")
    assert in_message in error.value.message
    assert error.value.field == "destination"


def test_address_to_unicode() -> None:
    assert address_to_unicode("anna@xn--bcher-kva.de") == "anna@bücher.de"


@pytest.mark.parametrize(
    "value",
    ["anna", "anna.meier", "_x", "a+b", "example.com", "xn--bcher-kva.de", "a+b@example.com"],
)
def test_safe_for_config(value: str) -> None:
    assert is_safe_for_config(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Anna",
        "a:b",
        "a b",
        "a\n",
        "a@b@c",
        "@example.com",
        "anna@",
        "-x",
        ".x",
        "x.",
        "a..b",
        "a@b_c.de",
        "a@b.de-",
        "a@-b.de",
        "bücher.de",
        "a" * 255,
        "a;b",
        "a'b",
    ],
)
def test_not_safe_for_config(value: str) -> None:
    assert not is_safe_for_config(value)


@given(st.text(st.characters(codec="ascii"), max_size=40))
def test_safe_for_config_allows_only_the_safe_alphabet(value: str) -> None:
    if is_safe_for_config(value):
        assert set(value) <= set("abcdefghijklmnopqrstuvwxyz0123456789.-_+@")


# --- lenient splits: one place for text that is not validated ---------------------------------


def test_split_loosely_splits_at_the_last_at_and_never_raises() -> None:
    from mailadmin.names import domain_of, split_loosely

    assert split_loosely("a@b.test") == ("a", "b.test")
    assert split_loosely('"x@y"@b.test') == ('"x@y"', "b.test")
    assert split_loosely("no-at-sign") == ("", "no-at-sign")
    assert split_loosely("") == ("", "")
    assert domain_of("User@Example.TEST") == "Example.TEST"
    assert domain_of("@catchall.test") == "catchall.test"


def test_split_partial_splits_at_the_first_at() -> None:
    from mailadmin.names import split_partial

    assert split_partial("ann@exa") == ("ann", "exa")
    assert split_partial("ann") == ("ann", "")
    assert split_partial("@exa") == ("", "exa")
    assert split_partial("a@b@c") == ("a", "b@c")


def test_addresses_are_split_in_names_only() -> None:
    """Splitting at "@" is a rule (which "@", what without one); it lives in names.py."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    split = re.compile(r"""\.(r?split|r?partition)\(\s*["']@["']""")
    allowed = {"mailadmin/names.py", "mailadmin/mailstack/names.py"}
    found = []
    for package in ("mailadmin", "panel"):
        for path in (root / package).rglob("*.py"):
            rel = path.relative_to(root).as_posix()
            if rel in allowed:
                continue
            found += [f"{rel}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1)
                      if split.search(line)]
    assert found == []


@pytest.mark.parametrize(("check", "value"), [
    (safe_local_part, "-x"),  # doveadm/sendmail would read it as an option
    (safe_local_part, "a" * 65),
    (safe_local_part, "a:b"),
    (safe_domain, "a" * 64 + ".com"),
    (safe_domain, "a.123"),
    (safe_domain, "-a.com"),
    (safe_domain, "example"),
    (safe_address, "a@b@example.com"),
    (safe_address, "a" * 64 + "@" + ".".join(["b" * 62] * 3) + ".com"),  # 257 characters
    (safe_hosted_domain, "discard.mailadmin.invalid"),
])
def test_renderer_check_refuses(check: Callable[[str], str], value: str) -> None:
    with pytest.raises(UnsafeName):
        check(value)


def test_renderer_check_limits_come_from_the_normalisers() -> None:
    longest = "a" * 64 + "@" + ".".join(["b" * 61] * 3) + ".com"
    assert len(longest) == 254
    assert safe_address(longest) == longest
    # '+' has no meaning in a config file: a remote destination may carry it
    assert safe_address("a+tag@example.com") == "a+tag@example.com"
    with pytest.raises(InvalidName):
        normalize_address(longest + "x")
