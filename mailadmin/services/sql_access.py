"""A database user for the mail servers in SQL mode: it reads the ``mailsrv_*`` views, nothing else.

`grant` creates the user (or rotates its password) and writes, under
``<config_dir>/sql-access/``:

- ``access.json`` (0644): backend, host, port, database and user name - no secret; the SQL
  renderer reads it;
- ``dovecot-connect.conf.ext`` (0640 root:dovecot): Dovecot's ``connect =`` line with the
  password, included by the release's ``dovecot-sql*.conf.ext`` (Dovecot 2.3);
- ``dovecot24-connect.conf.ext`` (0640 root:dovecot): the same connection in Dovecot 2.4's
  syntax (a ``pgsql``/``mysql`` block), ``!include``d by a 2.4 release's dovecot.conf;
- PostgreSQL: ``postfix.pgpass`` (0600 postfix): libpq's password file, named in the
  Postfix maps' connection URI (libpq ignores a group-readable password file);
- MariaDB: ``postfix/*.cf`` (0640 root:postfix): the Postfix tables themselves, password
  included (Postfix always passes the client library a password, so an option file cannot
  supply it); the release's main.cf refers to them. Run `grant` again after an upgrade that
  changes the lookups.

Releases never hold the password: they are recorded as revisions and shown as diffs.

Per backend:

- PostgreSQL: a LOGIN role with CONNECT on the database, USAGE on the schema and SELECT on
  the views only. The views run with their owner's rights, so the role reads the mail data
  through them but cannot select from any table (``panel_users`` included).
- MariaDB: ``'<user>'@'127.0.0.1'`` with SELECT on the views only (SQL SECURITY DEFINER).
- SQLite has no users. The mail servers open the panel's database file itself, so Dovecot
  (its auth worker runs as root) and Postfix (user ``postfix``) must be able to read it:
  `grant` makes the file and its ``-wal``/``-shm`` readable by others and every parent
  folder traversable. Postfix cannot write it (root owns it, 0644) but CAN read every table,
  panel password hashes included: use PostgreSQL or MariaDB where that matters.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import re
import secrets
from pathlib import Path

from sqlalchemy import Engine, text

from ..errors import ValidationError
from ..mailstack.render.sql import (
    ACCESS_FILE,
    DOVECOT24_CONNECT,
    DOVECOT_CONNECT,
    POSTFIX_PGPASS,
    POSTFIX_QUERIES,
    SqlAccess,
    access_dir,
    check_password,
    dovecot24_connect_block,
    dovecot_connect_line,
    load_access,
    mysql_tables_dir,
    postfix_cf,
)

#: The views of migrations 0004, 0007 and 0015; the only objects the mail servers' user may read.
VIEWS = (
    "mailsrv_users",
    "mailsrv_domains",
    "mailsrv_addresses",
    "mailsrv_aliases",
    "mailsrv_recipient_access",
    "mailsrv_app_passwords",
    "mailsrv_app_passwords_only",
    "mailsrv_domain_nodes",
)
_USER_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def new_password() -> str:
    """43 characters of [A-Za-z0-9_-]: safe in libpq strings, my.cnf and Dovecot settings."""
    return check_password(secrets.token_urlsafe(32))


def default_user(engine: Engine) -> str:
    """Database users are per server (PostgreSQL: per cluster): name it after the database."""
    db = engine.url.database or "mailadmin"
    base = re.sub(r"[^a-z0-9_]", "_", Path(db).stem.lower()) if engine.url.get_backend_name(
    ) == "sqlite" else re.sub(r"[^a-z0-9_]", "_", db.lower())
    return (base[:50] + "_mailsrv").lstrip("_0123456789") or "mailsrv"


def _backend(engine: Engine) -> str:
    name = engine.url.get_backend_name()
    if name in ("mysql", "mariadb"):
        return "mysql"
    if name in ("sqlite", "postgresql"):
        return name
    raise ValidationError(f"SQL mode does not support the {name!r} database backend")


def _ids(name: str) -> tuple[int, int] | None:
    try:
        return pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid
    except KeyError:
        return None


def _gid(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _write_secret(path: Path, content: str, *, owner: int, group: int, mode: int) -> None:
    """Create with no access for anyone, set owner and mode, then write (never readable
    by others in between); replaced atomically."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if os.geteuid() == 0:
            os.fchown(fd, owner, group)
        os.fchmod(fd, mode)
        os.write(fd, content.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _grant_postgresql(engine: Engine, user: str, password: str) -> None:
    db = engine.url.database
    with engine.begin() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :u"),
                              {"u": user}).first()
        verb = "ALTER" if exists else "CREATE"
        # identifiers and password are from safe alphabets (checked above); DDL takes no binds
        conn.execute(text(f'{verb} ROLE "{user}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                          f"NOINHERIT PASSWORD '{password}'"))
        conn.execute(text(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{user}"'))
        conn.execute(text(f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "{user}"'))
        conn.execute(text(f'REVOKE CREATE ON SCHEMA public FROM "{user}"'))
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{db}" TO "{user}"'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{user}"'))
        for view in VIEWS:
            conn.execute(text(f'GRANT SELECT ON "{view}" TO "{user}"'))


def _grant_mysql(engine: Engine, user: str, password: str) -> None:
    db = engine.url.database
    account = f"'{user}'@'127.0.0.1'"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{password}'"))
        conn.execute(text(f"ALTER USER {account} IDENTIFIED BY '{password}'"))
        conn.execute(text(f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account}"))
        for view in VIEWS:
            conn.execute(text(f"GRANT SELECT ON `{db}`.`{view}` TO {account}"))


def _sqlite_readable(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if p.exists():
            p.chmod(p.stat().st_mode | 0o044)
    for folder in path.parents:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)


def grant(engine: Engine, config_dir: str | Path, *, user: str | None = None,
          host: str | None = None) -> SqlAccess:
    """Create or refresh the mail servers' database user and write its access files.

    `engine` is the panel's own engine (it needs the rights to create users). `host` is where
    the mail servers reach the database (default: the panel's host, which must be loopback).
    Running it again rotates the password.
    """
    backend = _backend(engine)
    folder = access_dir(config_dir)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    root_dovecot = (0, _gid("dovecot") or 0)
    if backend == "sqlite":
        db_path = Path(engine.url.database or "").absolute()
        if not db_path.is_file():
            raise ValidationError(f"no SQLite database file at {db_path}")
        access = SqlAccess("sqlite", path=str(db_path)).validated()
        _sqlite_readable(db_path)
        password = ""
    else:
        user = user or default_user(engine)
        if not _USER_RE.fullmatch(user):
            raise ValidationError(f"database user name must match {_USER_RE.pattern}")
        host = host or engine.url.host or "127.0.0.1"
        if host not in LOOPBACK:
            raise ValidationError("the mail servers reach the database on loopback only")
        if host == "localhost" or host == "::1":
            host = "127.0.0.1"
        default_port = 5432 if backend == "postgresql" else 3306
        access = SqlAccess(backend, host=host, port=engine.url.port or default_port,
                           dbname=engine.url.database or "", user=user).validated()
        password = new_password()
        if backend == "postgresql":
            _grant_postgresql(engine, user, password)
            pf = _ids("postfix") or (0, 0)
            _write_secret(folder / POSTFIX_PGPASS,
                          f"{access.host}:{access.port}:{access.dbname}:{user}:{password}\n",
                          owner=pf[0], group=pf[1], mode=0o600)
        else:
            _grant_mysql(engine, user, password)
            tables = mysql_tables_dir(config_dir)
            tables.mkdir(exist_ok=True)
            tables.chmod(0o755)
            for name, query in POSTFIX_QUERIES.items():
                _write_secret(tables / f"{name}.cf",
                              postfix_cf(access, query, str(folder), password),
                              owner=0, group=_gid("postfix") or 0, mode=0o640)
    _write_secret(folder / DOVECOT_CONNECT,
                  f"# written by mailadmin sql-access grant\n"
                  f"{dovecot_connect_line(access, password)}",
                  owner=root_dovecot[0], group=root_dovecot[1], mode=0o640)
    # Dovecot 2.4 reads the connection in its own syntax (!included by its dovecot.conf)
    _write_secret(folder / DOVECOT24_CONNECT,
                  f"# written by mailadmin sql-access grant\n"
                  f"{dovecot24_connect_block(access, password)}",
                  owner=root_dovecot[0], group=root_dovecot[1], mode=0o640)
    _write_secret(folder / ACCESS_FILE, access.as_json(), owner=0, group=0, mode=0o644)
    return access


@dataclasses.dataclass(frozen=True)
class AccessFile:
    path: str
    mode: str
    owner: str
    group: str


def _describe(path: Path) -> AccessFile:
    st = path.stat()
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return AccessFile(str(path), oct(st.st_mode & 0o777), owner, group)


def show(config_dir: str | Path) -> tuple[SqlAccess, list[AccessFile]]:
    """What `grant` set up (never the password)."""
    access = load_access(config_dir)
    folder = access_dir(config_dir)
    files = [_describe(p) for p in sorted(folder.rglob("*"))
             if p.is_file() and not p.name.startswith(".")]
    if access.backend == "sqlite":
        files += [_describe(Path(p)) for p in (access.path, f"{access.path}-wal",
                                               f"{access.path}-shm") if Path(p).exists()]
    return access, files
