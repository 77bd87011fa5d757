"""The Alembic migrations create exactly the models' schema, on every backend, and undo it."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mailadmin import migrate
from mailadmin.db import make_engine
from mailadmin.help.search_index import include_name
from mailadmin.models import Base


def test_upgrade_matches_models_and_downgrades(backend_url: str) -> None:
    engine = make_engine(backend_url)
    try:
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as conn:
            # The same hook as migrations/env.py: the help search index is no model (0009).
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_name": include_name})
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
        assert set(Base.metadata.tables) <= set(sa.inspect(engine).get_table_names())

        migrate.downgrade(engine, "base")
        engine.dispose()
        remaining = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
        assert remaining == set()
    finally:
        engine.dispose()


def test_foreign_keys_enforced(backend_session_factory: sa.orm.sessionmaker[sa.orm.Session]
                               ) -> None:
    """Every backend refuses a mailbox whose domain does not exist (SQLite needs a pragma)."""
    import pytest

    from mailadmin.models import Mailbox

    with backend_session_factory() as session:
        session.add(Mailbox(domain_id=424242, local_part="x", password_hash="{X}y"))
        with pytest.raises(sa.exc.IntegrityError):
            session.flush()


def test_upgrade_keeps_existing_rows(backend_url: str) -> None:
    """0001 -> 0002 on a database holding data: new NOT NULL columns get their defaults."""
    engine = make_engine(backend_url)
    try:
        migrate.upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO panel_users (id, username, role, password_hash, is_suspended, created_at)"
                " VALUES (1, 'alice', 'customer', 'x', :f, :now)"), {"f": False, "now": "2026-01-01 00:00:00"})
            conn.execute(sa.text(
                "INSERT INTO domains (id, name, owner_id, default_imap, default_pop3, default_smtp,"
                " catchall_action, created_at) VALUES (1, 'a.example', 1, :t, :t, :t, 'reject', :now)"),
                {"t": True, "now": "2026-01-01 00:00:00"})
            conn.execute(sa.text(
                "INSERT INTO server_settings (id, imap_host, pop3_host, smtp_host, imap_port, pop3_port,"
                " submission_port, password_scheme, min_password_length, stack_mode, dovecot_version,"
                " config_output_dir, mail_root, vmail_uid, vmail_gid, apply_automatically, updated_at)"
                " VALUES (1, 'm', 'm', 'm', 993, 995, 587, 'SHA512-CRYPT', 10, 'files', '2.3', '/etc/x',"
                " '/var/vmail', 5000, 5000, :f, :now)"), {"f": False, "now": "2026-01-01 00:00:00"})
        migrate.upgrade(engine)
        with engine.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT allow_self_forwarding, allow_self_autoresponder FROM domains")).one()
            assert tuple(bool(v) for v in row) == (True, True)
            settings = conn.execute(sa.text(
                "SELECT mail_hostname, smtps_port, message_size_limit, webmail_url FROM server_settings"
            )).one()
            assert tuple(settings) == ("mail.example.net", 465, 50 * 1024 * 1024, None)
        migrate.downgrade(engine, "0001")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM domains")).scalar() == "a.example"
    finally:
        engine.dispose()


def test_large_revision_files_fit(backend_session_factory: sa.orm.sessionmaker[sa.orm.Session]
                                  ) -> None:
    """A release at scale is tens of MB; 2 MB must round-trip on every backend."""
    from mailadmin.models import ConfigRevision, utcnow

    files = "x" * (2 * 1024 * 1024)
    with backend_session_factory() as session:
        session.add(ConfigRevision(created_at=utcnow(), created_by="t", mode="files",
                                   dovecot_version="2.3", state="applied", checksum="0" * 64,
                                   files=files))
        session.commit()
        stored = session.scalars(sa.select(ConfigRevision.files)).one()
    assert stored == files
