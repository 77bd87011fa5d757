"""Migration 0007 re-creates the mail views: the mail servers' database user keeps reading
them, and may read the new app-password views, without a new `sql-access grant`."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from mailadmin import migrate
from mailadmin.db import make_engine

OLD_VIEWS = ("mailsrv_users", "mailsrv_domains", "mailsrv_addresses", "mailsrv_aliases",
             "mailsrv_recipient_access")
NEW_VIEWS = ("mailsrv_app_passwords", "mailsrv_app_passwords_only")


def _can_select(conn: sa.Connection, backend: str, user: str, view: str) -> bool:
    if backend == "postgresql":
        return bool(conn.execute(sa.text("SELECT has_table_privilege(:u, :v, 'SELECT')"),
                                 {"u": user, "v": view}).scalar())
    return conn.execute(sa.text(
        "SELECT 1 FROM information_schema.table_privileges WHERE table_schema = DATABASE() "
        "AND table_name = :v AND privilege_type = 'SELECT' AND grantee = :g"),
        {"v": view, "g": f"'{user}'@'localhost'"}).first() is not None


def test_the_mail_servers_user_keeps_its_grants(backend_url: str) -> None:
    engine = make_engine(backend_url)
    backend = engine.url.get_backend_name()
    user = f"t{secrets.token_hex(6)}_mailsrv"
    account = f'"{user}"' if backend == "postgresql" else f"'{user}'@'localhost'"
    try:
        migrate.upgrade(engine, "0006")
        if backend == "sqlite":  # no users: the file's mode is the access control
            migrate.upgrade(engine)
            return
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE {'ROLE' if backend == 'postgresql' else 'USER'} "
                                 f"{account}"))
            for view in OLD_VIEWS:
                conn.execute(sa.text(f"GRANT SELECT ON {view} TO {account}"))
        migrate.upgrade(engine)
        with engine.connect() as conn:
            for view in (*OLD_VIEWS, *NEW_VIEWS):
                assert _can_select(conn, backend, user, view), view
        migrate.downgrade(engine, "0006")
        with engine.connect() as conn:
            for view in OLD_VIEWS:
                assert _can_select(conn, backend, user, view), view
    finally:
        if backend == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP OWNED BY {account}"))
                conn.execute(sa.text(f"DROP ROLE IF EXISTS {account}"))
        elif backend != "sqlite":
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP USER IF EXISTS {account}"))
        engine.dispose()
