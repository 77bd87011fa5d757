"""SQL mode on each backend: every lookup is an indexed equality query, and the mail servers'
database user reads the views and nothing else."""

from __future__ import annotations

import re
import subprocess
import typing as t

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.orm import Session

from mailadmin.mailstack.render.sql import (
    DOVECOT_CONNECT,
    POSTFIX_PGPASS,
    POSTFIX_QUERIES,
    access_dir,
    dovecot_queries,
    load_access,
    mysql_tables_dir,
)
from mailadmin.models import Domain, Forwarder, ForwarderDestination, Mailbox, PanelUser
from mailadmin.services import sql_access
from tests.mailstack.conftest import eventually

from .conftest import SqlStack

pytestmark = pytest.mark.mailstack

BASE_TABLES = {"mailboxes", "domains", "forwarders", "forwarder_destinations", "panel_users"}


def _bulk(stack: SqlStack) -> None:
    """Enough rows that a planner prefers an index to a scan wherever one can be used."""
    with Session(stack.engine) as s:
        if s.scalar(sa.select(Domain.id).where(Domain.name == "bulk0.test")) is not None:
            return
        owners = [PanelUser(username=f"bulk-owner{i}", role="customer", password_hash="x")
                  for i in range(100)]
        s.add_all(owners)
        s.flush()
        domains = [Domain(name=f"bulk{i}.test", owner_id=owners[i].id, catchall_action="deliver",
                          catchall_target=f"u0@bulk{i}.test") for i in range(100)]
        s.add_all(domains)
        s.flush()
        s.add_all(Mailbox(domain_id=d.id, local_part=f"u{j}", password_hash="{X}y")
                  for d in domains for j in range(30))
        s.flush()
        for d in domains:
            for j in range(5):
                f = Forwarder(domain_id=d.id, local_part=f"f{j}")
                f.destinations = [ForwarderDestination(address=f"u{j}@{d.name}", position=0)]
                s.add(f)
        s.commit()
    with stack.engine.connect() as conn:
        if stack.backend in ("postgresql", "sqlite"):
            conn.execute(sa.text("ANALYZE"))
        else:
            for table in BASE_TABLES:
                conn.execute(sa.text(f"ANALYZE TABLE {table}"))
        conn.commit()


def _lookups() -> dict[str, str]:
    """Every query the generated files contain, with the servers' variables filled in."""
    from mailadmin.lab.sandbox import sandbox_settings

    out = {}
    for name, q in dovecot_queries(sandbox_settings("/tmp/x", mode="sql")).items():
        if name != "iterate_query":
            out[f"dovecot {name}"] = (q.replace("%n", "u7").replace("%d", "bulk42.test")
                                      .replace("%s", "imap"))
    for name, q in POSTFIX_QUERIES.items():
        key = "bulk42.test" if name == "domains" else "f3@bulk42.test"
        out[f"postfix {name}"] = (q.replace("%s", key).replace("%u", key.partition("@")[0])
                                  .replace("%d", "bulk42.test"))
    return out


def _plan(conn: sa.Connection, backend: str, query: str) -> tuple[str, list[str]]:
    """(plan text, problems): a full scan of a base table is a problem."""
    if backend == "sqlite":
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}").all()
        lines = [r[-1] for r in rows]
        # "SCAN <view>" reads the co-routine's output: the rows its branches found by index
        bad = [x for x in lines if re.match(r"SCAN ", x) and "CONSTANT ROW" not in x
               and x.split()[1] not in sql_access.VIEWS]
        return "\n".join(lines), bad
    if backend == "postgresql":
        # ~100 domains fit in 3 pages, so the cost model rightly prefers reading them all;
        # with seq scans priced out, a query that no index can answer still shows "Seq Scan"
        conn.exec_driver_sql("SET enable_seqscan = off")
        lines = [r[0] for r in conn.exec_driver_sql(f"EXPLAIN {query}").all()]
        bad = [x for x in lines if "Seq Scan" in x]
        return "\n".join(lines), bad
    rows = conn.exec_driver_sql(f"EXPLAIN {query}").mappings().all()
    lines = [f"{r['table']}: type={r['type']} key={r['key']} rows={r['rows']}" for r in rows]
    # <derivedN>/<unionN> are the few rows left after pushing the key into the view's union
    bad = [x for r, x in zip(rows, lines, strict=True)
           if r["type"] in ("ALL", "index") and not str(r["table"]).startswith("<")]
    return "\n".join(lines), bad


def test_every_lookup_uses_an_index(stack: SqlStack) -> None:
    _bulk(stack)
    failures = {}
    with stack.engine.connect() as conn:
        for name, query in _lookups().items():
            plan, bad = _plan(conn, stack.backend, query)
            if bad:
                failures[name] = plan
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    print(f"[{stack.backend}] {len(_lookups())} lookups: index only, no base-table scan")


def _mail_engine(stack: SqlStack) -> sa.Engine:
    """Connect exactly as the mail servers do: user and password from their access files."""
    access = load_access(stack.settings.config_dir)
    connect = (access_dir(stack.settings.config_dir) / DOVECOT_CONNECT).read_text()
    password = re.search(r"password=(\S+)", connect)
    assert password is not None
    driver = "postgresql+psycopg" if access.backend == "postgresql" else "mysql+pymysql"
    url = sa.URL.create(driver, username=access.user, password=password.group(1),
                        host=access.host, port=access.port, database=access.dbname)
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def test_mail_user_reads_the_views_and_nothing_else(stack: SqlStack) -> None:
    if stack.backend == "sqlite":
        # No users in SQLite: Postfix (user postfix) reads the file but cannot write it.
        path = load_access(stack.settings.config_dir).path
        probe = ("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
                 "print(c.execute('select count(*) from mailsrv_users').fetchone()[0]); "
                 "c.execute(\"update mailboxes set quota=1\"); c.commit()")
        run = subprocess.run(["runuser", "-u", "postfix", "--", "python3", "-c", probe, path],
                             capture_output=True, text=True, check=False)
        assert run.returncode != 0 and "readonly database" in run.stderr, run
        assert int(run.stdout.split()[0]) > 0
        return
    engine = _mail_engine(stack)
    denied = ("permission denied", "command denied", "access denied", "cannot delete from view", "must be owner",
              "not updatable")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM mailsrv_users")).scalar()
            for view in sql_access.VIEWS:
                conn.execute(sa.text(f"SELECT * FROM {view} WHERE 1 = 0")).all()  # noqa: S608
        statements = [
            "SELECT password_hash FROM panel_users",
            "SELECT username FROM panel_users",
            "SELECT password_hash FROM mailboxes",
            "SELECT * FROM api_tokens",
            "UPDATE mailboxes SET quota = 1",
            "INSERT INTO domains (name) VALUES ('x.test')",
            "DELETE FROM forwarders",
            "UPDATE mailsrv_domains SET domain = 'x.test'",
            "DELETE FROM mailsrv_users",
            "CREATE TABLE mailsrv_x (a INT)",
            "DROP VIEW mailsrv_users",
        ]
        for statement in statements:
            with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as err:
                conn.execute(sa.text(statement))
                conn.commit()
            assert any(d in str(err.value).lower() for d in denied), (statement, err.value)
    finally:
        engine.dispose()


def test_credentials_only_in_files_the_mail_services_read(stack: SqlStack) -> None:
    import grp
    import os
    import pwd

    config_dir = stack.settings.config_dir
    folder = access_dir(config_dir)

    def owner(p: t.Any) -> tuple[str, str, int]:
        st = os.stat(p)
        return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
                st.st_mode & 0o777)

    assert owner(folder / DOVECOT_CONNECT) == ("root", "dovecot", 0o640)
    if stack.backend == "postgresql":
        assert owner(folder / POSTFIX_PGPASS) == ("postfix", "postfix", 0o600)
    if stack.backend == "mysql" or stack.backend == "mariadb":
        for name in POSTFIX_QUERIES:
            assert owner(mysql_tables_dir(config_dir) / f"{name}.cf") == ("root", "postfix", 0o640)
    if stack.backend != "sqlite":
        secret = re.search(r"password=(\S+)", (folder / DOVECOT_CONNECT).read_text())
        assert secret is not None
        release = os.path.realpath(f"{config_dir}/current")
        found = subprocess.run(["grep", "-rl", secret.group(1), release], capture_output=True,
                               text=True, check=False).stdout
        assert found == "", f"password inside the release: {found}"


def test_cli_show_and_grant_rotates_without_breaking_the_servers(stack: SqlStack) -> None:
    from mailadmin.cli import main
    from mailadmin.models import ServerSettings

    with Session(stack.engine) as s:
        row = s.get(ServerSettings, 1) or ServerSettings(id=1)
        row.config_output_dir = stack.settings.config_dir
        s.add(row)
        s.commit()
    url = stack.engine.url.render_as_string(hide_password=False)
    env = {"MAILADMIN_DATABASE_URL": url}
    runner = CliRunner()
    shown = runner.invoke(main, ["sql-access", "show"], env=env, catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert f"backend  {load_access(stack.settings.config_dir).backend}" in shown.output
    before = (access_dir(stack.settings.config_dir) / DOVECOT_CONNECT).read_text()
    granted = runner.invoke(main, ["sql-access", "grant"], env=env, catch_exceptions=False)
    assert granted.exit_code == 0, granted.output
    after = (access_dir(stack.settings.config_dir) / DOVECOT_CONNECT).read_text()
    assert (before != after) == (stack.backend != "sqlite")
    assert "password" not in shown.output.lower() or "password=" not in shown.output
    # new connections use the new password: the servers keep answering. (SQLite: after a
    # schema change - here the ANALYZE of the index test - Dovecot 2.3's persistent
    # connection fails ONE query with "database schema has changed"; the next one works.)
    assert eventually(lambda: stack.imap_login("alice@example.test")[0], timeout=5)
    assert stack.submission_login("alice@example.test")[0]

    def accepted() -> bool:
        # Postfix's map client may meet the rotation once with a temporary 451 (the sender
        # retries); a new connection must then be accepted
        s = stack.smtp()
        s.mail("someone@remote.test")
        code, _ = s.rcpt("alice@example.test")
        s.quit()
        return code == 250

    assert eventually(accepted, timeout=10)
