"""The server settings table is the one source: defaults, validators, the render snapshot and
the rendered-settings list all come from it, and a value saved is a value the renderer takes."""

from __future__ import annotations

import dataclasses
import typing as t

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import ValidationError
from mailadmin.mailstack import StackSnapshot, render_release, settings_from_server_settings
from mailadmin.models import ServerSettings
from mailadmin.server_settings_table import DEFAULTS, RENDERED, SETTINGS, TABLE
from mailadmin.services import server_settings as settings_service
from mailadmin.services.changes import RENDERED_SETTINGS
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings

#: Columns of the settings row that are bookkeeping, not settings.
NOT_SETTINGS = {"id", "config_changed_at", "config_applied_at", "updated_at"}


def test_every_default_passes_its_own_validator() -> None:
    for setting in TABLE:
        parse = settings_service.SPECS[setting.name].parse
        if setting.default is None:
            assert setting.optional, setting.name
            assert parse("") is None
        else:
            assert isinstance(setting.default, setting.type), setting.name
            assert parse(str(setting.default)) == setting.default, setting.name


def test_the_table_is_the_settings_row() -> None:
    columns = ServerSettings.__table__.c
    assert set(SETTINGS) == {c.name for c in columns} - NOT_SETTINGS
    for setting in TABLE:
        column = columns[setting.name]
        default = column.default.arg if column.default is not None else None
        assert default == setting.default, setting.name
        assert column.nullable == setting.optional, setting.name
        assert column.type.python_type is setting.type, setting.name
    assert list(settings_service.SPECS) == [s.name for s in TABLE]


def test_a_new_row_gets_the_table_defaults(session: Session) -> None:
    row = get_server_settings(session)
    assert {name: getattr(row, name) for name in SETTINGS} == DEFAULTS


def test_rendered_list_is_the_tables_rendered_flags() -> None:
    assert RENDERED_SETTINGS == RENDERED == {s.name for s in TABLE if s.rendered}
    assert {s.name for s in TABLE if s.snapshot is not None} == RENDERED


def _changed_value(name: str) -> t.Any:
    """A valid value different from the default."""
    samples: dict[str, t.Any] = {
        "stack_mode": "sql", "dovecot_version": "2.4", "mail_hostname": "mx.example.org",
        "postmaster_address": "hostmaster@example.org", "listen_address": "127.0.0.1",
        "message_size_limit": 10 * 1024 * 1024, "vmail_uid": 5001, "vmail_gid": 5002,
        "imap_listen_port": 10143, "pop3_listen_port": 10110, "submission_listen_port": 10587,
        "smtp_listen_port": 10025, "lmtp_listen_port": 10024, "reinject_listen_port": 10026 + 1,
        "dkim_milter_port": 18891, "mail_server_addresses": "192.0.2.25",
    }
    if name in samples:
        return samples[name]
    return f"/srv/changed/{name}"


def test_snapshot_mapping_follows_the_table() -> None:
    """Each rendered setting lands in its snapshot place; no other setting reaches it."""
    base = settings_from_server_settings(ServerSettings(id=1))
    for setting in TABLE:
        row = ServerSettings(id=1, **{setting.name: _changed_value(setting.name)})
        got = settings_from_server_settings(row)
        if setting.snapshot is None:
            assert got == base, setting.name
            continue
        group, _, field = setting.snapshot.rpartition(".")
        holder = got.ports if group == "ports" else got
        assert getattr(holder, field) == _changed_value(setting.name), setting.name
        assert got != base


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("mail_root", "/" + "a" * 1000, "at most 200"),
        ("state_dir", "/var/" + "x" * 300, "at most 200"),
        # Dovecot's unix sockets live below run_dir: the renderer allows 60 characters
        ("run_dir", "/run/" + "r" * 60, "at most 60"),
        # a release goes to <dir>/releases/<64 hex>, which must stay a path the renderer takes
        ("config_output_dir", "/etc/" + "c" * 130, "at most 126"),
        ("mail_root", "/var/./vmail", "absolute path"),
        ("log_dir", "/var/log/" + "l" * 200, "at most 200"),
        ("tls_cert_file", "/etc/ssl/" + "t" * 200, "at most 200"),
        ("mail_hostname", "localhost", "two labels"),
        ("mail_hostname", "127.0.0.1", "IP address"),
    ],
)
def test_what_the_renderer_refuses_is_refused_at_save(
    name: str, value: str, message: str, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as s:
        before = settings_service.list_settings(s, Actor.operator())
    with pytest.raises(ValidationError) as refused, transaction(session_factory) as s:
        settings_service.update_settings(s, Actor.operator(), {"imap_host": "imap.example.org",
                                                                name: value})
    assert message in refused.value.message and refused.value.field == name
    with session_factory() as s:
        assert settings_service.list_settings(s, Actor.operator()) == before


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("mail_root", "/" + "a" * 199),
        ("run_dir", "/run/" + "r" * 55),
        ("config_output_dir", "/etc/" + "c" * 121),
        ("postmaster_address", "post+master@example.org"),
        ("mail_hostname", "mx.example.org"),
    ],
)
def test_the_longest_values_saved_render(
    name: str, value: str, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as s:
        settings_service.set_setting(s, Actor.operator(), name, value)
    with session_factory() as s:
        settings = settings_from_server_settings(get_server_settings(s))
    assert value in dataclasses.asdict(settings).values()
    checksum, files = render_release(StackSnapshot(settings, (), (), (), ()))
    assert len(checksum) == 64 and files


def test_migration_server_defaults_match_the_table() -> None:
    """Migrations are history and keep literal defaults; they must be the table's."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "migrations/versions/0002_mail_stack_settings.py"
    spec = importlib.util.spec_from_file_location("migration_0002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    checked = 0
    for column in module._settings_columns():
        if column.name not in SETTINGS:
            continue
        # log_dir's default became a folder later (issue 15): an existing install keeps the
        # syslog it had, only a new settings row starts with the folder.
        default = None if column.name == "log_dir" else SETTINGS[column.name].default
        server_default = column.server_default.arg if column.server_default is not None else None
        assert server_default == (None if default is None else str(default)), column.name
        checked += 1
    assert checked >= 20
