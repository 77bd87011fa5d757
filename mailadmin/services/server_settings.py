"""Server settings: the server admin's knobs, each validated before it is stored.

The settings themselves - name, type, default, rule, place in the render snapshot - are the
table in `mailadmin.server_settings_table`; this module turns each rule into a validator.
Every value may end up in a generated Dovecot or Postfix file, so a rendered setting is also
checked with the renderer's own check (`mailadmin.mailstack.names`): a value saved here is
a value the next apply accepts, not one that fails there.
"""

from __future__ import annotations

import re
import typing as t
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ..dnscheck import format_resolvers, parse_resolvers
from ..dnsrecords import parse_server_addresses
from ..domain_policy import DEFAULT_ENTRIES, format_deny_list, parse_deny_list
from ..errors import InvalidFields, InvalidName, NotFound, ValidationError
from ..mailstack import names as stack_names
from ..models import ServerSettings
from ..names import normalize_address, normalize_domain, safe_address
from ..server_settings_table import TABLE, Check, Setting
from ..sizes import parse_size, size_for_input
from . import domain_ownership
from .audit import record_event
from .context import Actor
from .scope import require_admin
from .server import get_server_settings

IPV4 = re.compile(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$")
WEB_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/%-]*)?$")
#: A release is written to <config_output_dir>/releases/<SHA-256 hex>; the renderer checks it.
_RELEASE_SUFFIX = "/releases/" + "0" * 64


def _rendered(check: Callable[[], object], message: str) -> None:
    """Run the renderer's check of a value; its refusal becomes a message for the admin."""
    try:
        check()
    except InvalidName:
        raise ValidationError(message, field="value") from None


def _client_host(value: str) -> str:
    text = value.strip().lower()
    if text == "localhost" or IPV4.fullmatch(text):
        return text
    return normalize_domain(text, field="value")


def _mail_host(value: str) -> str:
    text = normalize_domain(value.strip().lower(), field="value")
    _rendered(lambda: stack_names.hostname(text),
              "Give a host name with a dot, such as mail.example.net.")
    return text


def _path(max_len: int) -> Callable[[str], str]:
    message = (
        f"Give an absolute path of at most {max_len} letters, digits, '.', '_', '-', '+' "
        "and '/', without '//', '/./' or '/../'."
    )

    def parse(value: str) -> str:
        text = value.strip()
        _rendered(lambda: stack_names.path(text, max_len=max_len), message)
        return text.rstrip("/") or "/"

    return parse


def _config_dir(value: str) -> str:
    limit = 200 - len(_RELEASE_SUFFIX)
    text = _path(limit)(value)
    _rendered(lambda: stack_names.path(text + _RELEASE_SUFFIX),
              f"Give an absolute path of at most {limit} characters.")
    return text


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValidationError(
                f"Give a whole number from {low} to {high}.", field="value"
            ) from None
        if not low <= number <= high:
            raise ValidationError(f"Give a whole number from {low} to {high}.", field="value")
        return number

    return parse


def _port(value: str) -> int:
    number = _int_between(1, 65535)(value)
    _rendered(lambda: stack_names.port(number), "Give a whole number from 1 to 65535.")
    return number


#: What an admin types for a port that is not offered (stored as 0).
PORT_OFF_WORDS = frozenset({"", "0", "off", "none", "no"})


def _port_or_off(value: str) -> int:
    """A port, or 0 for "not offered" (0, "off" or nothing)."""
    if str(value).strip().lower() in PORT_OFF_WORDS:
        return 0
    try:
        return _port(value)
    except ValidationError:
        raise ValidationError(
            "Give a whole number from 1 to 65535, or 0 (or leave it empty) for not offered.",
            field="value") from None


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        text = value.strip()
        if text.upper() in {c.upper() for c in choices}:
            return next(c for c in choices if c.upper() == text.upper())
        raise ValidationError(f"Choose one of: {', '.join(choices)}.", field="value")

    return parse


def _optional(parse: Callable[[str], t.Any]) -> Callable[[str], t.Any]:
    def parse_or_none(value: str) -> t.Any:
        text = "" if value is None else str(value).strip()
        return None if text in {"", "None", "none"} else parse(text)

    return parse_or_none


def _listen_address(value: str) -> str:
    text = value.strip()
    message = "Give an IPv4 address such as 0.0.0.0 or 127.0.0.1."
    if not IPV4.fullmatch(text):
        raise ValidationError(message, field="value")
    _rendered(lambda: stack_names.ipv4_listen(text), message)
    return text


def _address(value: str) -> str:
    address = normalize_address(value, field="value")
    _rendered(lambda: safe_address(address),
              "Give an address of letters, digits, '.', '_', '+' and '-' before the '@'.")
    return address


def _size(value: str) -> int:
    size = parse_size(value, field="value")
    if size < 1024 * 1024:
        raise ValidationError("The message size limit must be at least 1M.", field="value")
    return size


def _web_url(value: str) -> str:
    text = value.strip()
    if not WEB_URL.fullmatch(text):
        raise ValidationError(
            "Give an http(s) address such as https://webmail.example.net/.", field="value"
        )
    return text


def _bool(value: str) -> bool:
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValidationError("Give true or false.", field="value")


def _resolvers(value: str) -> str:
    return format_resolvers(parse_resolvers(value))


def _ip_addresses(value: str) -> str:
    return " ".join(str(a) for a in parse_server_addresses(value))


#: What an admin's list without any entry is stored as (empty text means the shipped list).
NO_ENTRIES = "# no entries\n"


def _deny_list(value: str | None) -> str | None:
    """The admin's deny list in its stored form; None for the shipped list (entered as
    nothing, "default", or exactly the shipped entries), so later updates of it reach this
    server. A text with no entry (only a comment) switches the list off."""
    text = "" if value is None else str(value)
    if text.strip().lower() in {"", "default", "none"}:
        return None
    entries = parse_deny_list(text)
    if entries == DEFAULT_ENTRIES:
        return None
    return format_deny_list(entries) if entries else NO_ENTRIES


def deny_list_text(stored: str | None) -> str:
    """The list in force, as the admin edits it (None stands for the shipped list)."""
    return format_deny_list(DEFAULT_ENTRIES) if stored is None else stored


#: The roles a server can require two-factor sign-in of, in the order they are stored.
TWO_FACTOR_ROLES = ("admin", "reseller", "customer", "mailbox")


def _roles(value: str) -> str:
    chosen = {word for word in re.split(r"[\s,]+", str(value).strip().lower()) if word}
    unknown = sorted(chosen - set(TWO_FACTOR_ROLES))
    if unknown:
        raise ValidationError(
            f"Unknown role {unknown[0]!r}: give any of {', '.join(TWO_FACTOR_ROLES)}, "
            "separated by spaces or commas (or nothing).", field="value"
        )
    return " ".join(role for role in TWO_FACTOR_ROLES if role in chosen)


def _validator(setting: Setting) -> Callable[[str], t.Any]:
    """The validator of one row of the table: text in, the value to store out."""
    parsers: dict[Check, Callable[[], Callable[[str], t.Any]]] = {
        Check.CLIENT_HOST: lambda: _client_host,
        Check.MAIL_HOST: lambda: _mail_host,
        Check.PATH: lambda: _path(setting.max_len),
        Check.CONFIG_DIR: lambda: _config_dir,
        Check.PORT: lambda: _port,
        Check.PORT_OR_OFF: lambda: _port_or_off,
        Check.NUMBER: lambda: _int_between(setting.low, setting.high),
        Check.CHOICE: lambda: _choice(*setting.choices),
        Check.BOOL: lambda: _bool,
        Check.ADDRESS: lambda: _address,
        Check.LISTEN: lambda: _listen_address,
        Check.SIZE: lambda: _size,
        Check.WEB_URL: lambda: _web_url,
        Check.RESOLVERS: lambda: _resolvers,
        Check.DENY_LIST: lambda: _deny_list,
        Check.ROLES: lambda: _roles,
        Check.IP_ADDRESSES: lambda: _ip_addresses,
    }
    parse = parsers[setting.check]()
    return _optional(parse) if setting.optional else parse


@dataclass(frozen=True)
class SettingSpec:
    name: str
    description: str
    parse: t.Callable[[str], t.Any]


SPECS: dict[str, SettingSpec] = {
    s.name: SettingSpec(s.name, s.description, _validator(s)) for s in TABLE
}


def list_settings(session: Session, actor: Actor) -> dict[str, t.Any]:
    require_admin(actor, "can see or change server settings")
    settings = get_server_settings(session)
    return {name: getattr(settings, name) for name in SPECS}


def as_text(setting: Setting, value: t.Any) -> str:
    """A stored value as the settings page shows it and takes it back: sizes as "50M",
    booleans as true/false, "not set" as an empty field, the deny list as its text."""
    if setting.check is Check.DENY_LIST:
        return deny_list_text(value)
    if value is None:
        return ""
    if setting.check is Check.SIZE:
        return size_for_input(int(value))
    if setting.check is Check.BOOL:
        return "true" if value else "false"
    return str(value)


def settings_for_editing(session: Session, actor: Actor) -> dict[str, str]:
    """Every setting's value as text for the settings page (admin only)."""
    values = list_settings(session, actor)
    return {s.name: as_text(s, values[s.name]) for s in TABLE}


def get_setting(session: Session, actor: Actor, name: str) -> t.Any:
    require_admin(actor, "can see or change server settings")
    if name not in SPECS:
        raise NotFound(f"There is no setting {name!r}.", field="name")
    return getattr(get_server_settings(session), name)


def set_setting(session: Session, actor: Actor, name: str, raw_value: str) -> ServerSettings:
    """Validate and store one setting; the audit log keeps the old and the new value."""
    require_admin(actor, "can see or change server settings")
    spec = SPECS.get(name)
    if spec is None:
        raise NotFound(f"There is no setting {name!r}.", field="name")
    value = spec.parse(raw_value)
    settings = get_server_settings(session)
    before = getattr(settings, name)
    if before != value:
        setattr(settings, name, value)
        settings.updated_at = actor.now()
        session.flush()
        record_event(
            session,
            actor,
            "settings.set",
            object_type="settings",
            object_id=1,
            object_label=name,
            before={name: before},
            after={name: value},
        )
        if name == "domain_verification" and value == "none":
            # verification off: nothing may stay pending with nobody able to end it
            domain_ownership.verify_all_pending(session, actor)
    return settings


def update_settings(
    session: Session, actor: Actor, raw_values: t.Mapping[str, str]
) -> ServerSettings:
    """Validate every given value first, then store them; one bad value changes nothing.

    Raises InvalidFields naming every refused field (not only the first), NotFound for a
    name that is no setting.
    """
    require_admin(actor, "can see or change server settings")
    parsed: dict[str, t.Any] = {}
    refused: dict[str, str] = {}
    for name, raw in raw_values.items():
        spec = SPECS.get(name)
        if spec is None:
            raise NotFound(f"There is no setting {name!r}.", field=name)
        try:
            parsed[name] = spec.parse(raw)
        except ValidationError as exc:
            refused[name] = exc.message
    if refused:
        raise InvalidFields(refused)
    for name, value in parsed.items():
        set_setting(session, actor, name, str(value))
    return get_server_settings(session)
