"""Server settings: the server admin's knobs, each validated before it is stored.

Every value here may end up in a generated Dovecot or Postfix file, so each has a validator
that accepts only what is safe there (host names, absolute paths of safe characters, ports).
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ..errors import NotFound, ValidationError
from ..hashing import STORAGE_SCHEMES
from ..models import ServerSettings
from ..names import normalize_address, normalize_domain
from ..sizes import parse_size
from .audit import record_event
from .context import Actor
from .scope import require_admin
from .server import get_server_settings

SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]{0,1000}$")
IPV4 = re.compile(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$")


def _host(value: str) -> str:
    text = value.strip().lower()
    if text == "localhost" or IPV4.fullmatch(text):
        return text
    return normalize_domain(text, field="value")


def _path(value: str) -> str:
    text = value.strip()
    if not SAFE_PATH.fullmatch(text) or "/../" in f"{text}/" or "//" in text:
        raise ValidationError(
            "Give an absolute path of letters, digits, '.', '_', '-' and '/'.", field="value"
        )
    return text.rstrip("/") or "/"


def _int_between(low: int, high: int) -> t.Callable[[str], int]:
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


def _choice(*choices: str) -> t.Callable[[str], str]:
    def parse(value: str) -> str:
        text = value.strip()
        if text.upper() in {c.upper() for c in choices}:
            return next(c for c in choices if c.upper() == text.upper())
        raise ValidationError(f"Choose one of: {', '.join(choices)}.", field="value")

    return parse


def _optional(parse: t.Callable[[str], t.Any]) -> t.Callable[[str], t.Any]:
    def parse_or_none(value: str) -> t.Any:
        text = "" if value is None else str(value).strip()
        return None if text in {"", "None", "none"} else parse(text)

    return parse_or_none


def _listen_address(value: str) -> str:
    text = value.strip()
    if not IPV4.fullmatch(text):
        raise ValidationError("Give an IPv4 address such as 0.0.0.0 or 127.0.0.1.", field="value")
    return text


def _address(value: str) -> str:
    return normalize_address(value, field="value")


def _size(value: str) -> int:
    size = parse_size(value, field="value")
    if size < 1024 * 1024:
        raise ValidationError("The message size limit must be at least 1M.", field="value")
    return size


WEB_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/%-]*)?$")


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


@dataclass(frozen=True)
class SettingSpec:
    name: str
    description: str
    parse: t.Callable[[str], t.Any]


SPECS: dict[str, SettingSpec] = {
    spec.name: spec
    for spec in (
        SettingSpec("imap_host", "Host name mail clients use for IMAP", _host),
        SettingSpec("pop3_host", "Host name mail clients use for POP3", _host),
        SettingSpec("smtp_host", "Host name mail clients use for sending (submission)", _host),
        SettingSpec("imap_port", "IMAP port told to clients (993 = TLS)", _int_between(1, 65535)),
        SettingSpec("pop3_port", "POP3 port told to clients (995 = TLS)", _int_between(1, 65535)),
        SettingSpec("submission_port", "Submission port told to clients", _int_between(1, 65535)),
        SettingSpec(
            "password_scheme", "Hash scheme for new mailbox passwords", _choice(*STORAGE_SCHEMES)
        ),
        SettingSpec(
            "min_password_length", "Shortest mailbox password accepted", _int_between(8, 128)
        ),
        SettingSpec("stack_mode", "How the mail servers read the data", _choice("files", "sql")),
        SettingSpec("dovecot_version", "Dovecot config syntax", _choice("2.3", "2.4", "auto")),
        SettingSpec("config_output_dir", "Where generated configuration is written", _path),
        SettingSpec("mail_root", "Where the mail servers keep mailboxes", _path),
        SettingSpec("vmail_uid", "User id owning the mail files", _int_between(1, 2**31 - 1)),
        SettingSpec("vmail_gid", "Group id owning the mail files", _int_between(1, 2**31 - 1)),
        SettingSpec("apply_automatically", "Apply the configuration after each change", _bool),
        SettingSpec("mail_hostname", "The mail servers' own host name", _host),
        SettingSpec("postmaster_address", "Who receives the mail servers' reports", _address),
        SettingSpec("run_dir", "Sockets and pid files of the mail servers", _path),
        SettingSpec("state_dir", "State of the mail servers", _path),
        SettingSpec("queue_dir", "Postfix queue", _path),
        SettingSpec("log_dir", "Log folder of the mail servers (empty: syslog)", _optional(_path)),
        SettingSpec("listen_address", "Address the mail servers listen on", _listen_address),
        SettingSpec("imap_listen_port", "IMAP listening port", _int_between(1, 65535)),
        SettingSpec("pop3_listen_port", "POP3 listening port", _int_between(1, 65535)),
        SettingSpec("submission_listen_port", "Submission listening port", _int_between(1, 65535)),
        SettingSpec(
            "smtp_listen_port", "SMTP (incoming mail) listening port", _int_between(1, 65535)
        ),
        SettingSpec("lmtp_listen_port", "LMTP listening port (loopback)", _int_between(1, 65535)),
        SettingSpec(
            "reinject_listen_port", "Loopback port for Sieve replies", _int_between(1, 65535)
        ),
        SettingSpec("message_size_limit", "Largest message accepted (e.g. 50M)", _size),
        SettingSpec("tls_cert_file", "TLS certificate (PEM; empty: no TLS)", _optional(_path)),
        SettingSpec("tls_key_file", "TLS private key (PEM)", _optional(_path)),
        SettingSpec(
            "imap_starttls_port", "IMAP STARTTLS port told to clients", _int_between(1, 65535)
        ),
        SettingSpec(
            "pop3_starttls_port", "POP3 STARTTLS port told to clients", _int_between(1, 65535)
        ),
        SettingSpec("smtps_port", "SMTP over TLS port told to clients", _int_between(1, 65535)),
        SettingSpec("webmail_url", "Webmail address (empty: none)", _optional(_web_url)),
    )
}


def list_settings(session: Session, actor: Actor) -> dict[str, t.Any]:
    require_admin(actor, "can see or change server settings")
    settings = get_server_settings(session)
    return {name: getattr(settings, name) for name in SPECS}


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
    return settings


def update_settings(
    session: Session, actor: Actor, raw_values: t.Mapping[str, str]
) -> ServerSettings:
    """Validate every given value first, then store them; one bad value changes nothing."""
    require_admin(actor, "can see or change server settings")
    parsed: dict[str, t.Any] = {}
    for name, raw in raw_values.items():
        spec = SPECS.get(name)
        if spec is None:
            raise NotFound(f"There is no setting {name!r}.", field=name)
        try:
            parsed[name] = spec.parse(raw)
        except ValidationError as exc:
            raise ValidationError(exc.message, field=name) from None
    for name, value in parsed.items():
        set_setting(session, actor, name, str(value))
    return get_server_settings(session)
