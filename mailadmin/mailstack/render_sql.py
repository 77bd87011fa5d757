# ruff: noqa: S608  - queries built from constants and validated settings only, never from data
"""SQL mode for Dovecot 2.3 + Postfix: the servers look mail data up in the panel's database.

Registered as ``RENDERERS[("sql", "2.3")]``. Nothing about mailboxes, forwarders or domains
is in the rendered files: Dovecot's passdb/userdb and every Postfix map query the read-only
views of migration 0004 (``mailsrv_*``), so a change committed in the panel is what the next
lookup sees, without re-rendering or reloading. Each lookup is one equality query on
``(local_part, domain)`` or on ``domain`` that the tables' unique indexes answer.

What still needs an apply in SQL mode: server settings (paths, ports, TLS, message size) and
autoresponder texts (Sieve scripts are files; Dovecot runs ``<release>/dovecot/sieve/%u.sieve``
for every user and ignores a missing one).

Credentials never enter a release (releases are stored as revisions and shown as diffs):
`mailadmin sql-access grant` writes them to ``<config_dir>/sql-access/`` with modes only the
mail services can read, and the release refers to those files. This module reads only the
non-secret ``access.json`` there (backend, host, port, database, user name).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path

from . import names
from .render import (
    DISCARD_DOMAIN,
    HEADER,
    POSTFIX_HASH_MAPS,
    RENDERERS,
    SUSPENDED_OUTGOING_REPLY,
    Files,
    RenderError,
    _settings_context,
    sieve_path,
    sieve_vacation,
)
from .snapshot import StackSettings, StackSnapshot
from .templates import ENV

ACCESS_DIR = "sql-access"
ACCESS_FILE = "access.json"
#: included by the release's dovecot-sql*.conf.ext: ``connect = ...`` (0640 root:dovecot)
DOVECOT_CONNECT = "dovecot-connect.conf.ext"
#: libpq password file for Postfix (0600 postfix: libpq ignores group-readable ones)
POSTFIX_PGPASS = "postfix.pgpass"
BACKENDS = ("sqlite", "postgresql", "mysql")
_DB_NAME_RE = re.compile(r"[A-Za-z0-9_]{1,63}")
_HOST_RE = re.compile(r"[A-Za-z0-9.-]{1,253}")


@dataclasses.dataclass(frozen=True)
class SqlAccess:
    """Where and as whom the mail servers connect (no password: see the module doc)."""

    backend: str
    #: SQLite: the database file; otherwise empty.
    path: str = ""
    host: str = ""
    port: int = 0
    dbname: str = ""
    user: str = ""

    def validated(self) -> SqlAccess:
        if self.backend not in BACKENDS:
            raise RenderError(f"unknown SQL backend {self.backend!r}")
        if self.backend == "sqlite":
            names.path(self.path)
            return self
        if not _HOST_RE.fullmatch(self.host):
            raise RenderError(f"unsafe database host {self.host!r}")
        names.port(self.port)
        for value in (self.dbname, self.user):
            if not _DB_NAME_RE.fullmatch(value):
                raise RenderError(f"unsafe database or user name {value!r}")
        return self

    def as_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"


def access_dir(config_dir: str | Path) -> Path:
    return Path(config_dir) / ACCESS_DIR


def load_access(config_dir: str | Path) -> SqlAccess:
    path = access_dir(config_dir) / ACCESS_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise RenderError(
            f"SQL mode needs database access for the mail servers: run "
            f"`mailadmin sql-access grant` first ({path} is missing)"
        ) from None
    fields = {f.name for f in dataclasses.fields(SqlAccess)}
    return SqlAccess(**{k: v for k, v in raw.items() if k in fields}).validated()


# --------------------------------------------------------------------------- queries

#: Dovecot expands %n / %d / %s SQL-escaped (and auth_username_format lower-cases them).
WHERE_USER = "local_part = '%n' AND domain = '%d'"


def dovecot_queries(settings: StackSettings) -> dict[str, str]:
    uid, gid = settings.vmail_uid, settings.vmail_gid
    home = f"{names.path(settings.mail_root)}/%d/%n"
    if settings.reveal_deny_reason:
        reason = (", CASE WHEN login_ok = 0 THEN 'Login is suspended for this account' "
                  "ELSE 'This protocol is disabled for this account' END AS reason")
    else:
        reason = ""
    return {
        "password_query": f"SELECT password FROM mailsrv_users WHERE {WHERE_USER}",
        "user_query": (f"SELECT '{home}' AS home, {uid} AS uid, {gid} AS gid, "
                       f"quota_rule FROM mailsrv_users WHERE {WHERE_USER}"),
        "iterate_query": "SELECT address AS user FROM mailsrv_users",
        # deny passdb: a returned row refuses service %s (imap, pop3, smtp = Postfix SASL)
        # before the password is checked; nodelay = no per-IP auth penalty.
        "deny_query": (
            f"SELECT NULL AS password, 'Y' AS nopassword, 'Y' AS nodelay{reason} "
            f"FROM mailsrv_users WHERE {WHERE_USER} AND (login_ok = 0 OR "
            "(CASE '%s' WHEN 'imap' THEN imap_ok WHEN 'pop3' THEN pop3_ok "
            "WHEN 'smtp' THEN smtp_ok ELSE 1 END) = 0)"
        ),
    }


#: Postfix expands %s (whole key), %u (local part) and %d (domain), SQL-quoted; a query
#: using %u or %d is not run for a key without them (e.g. a bare domain).
WHERE_ADDRESS = "local_part = '%u' AND domain = '%d'"

POSTFIX_QUERIES: dict[str, str] = {
    "domains": "SELECT 'OK' FROM mailsrv_domains WHERE domain = '%s'",
    "mailboxes": f"SELECT 'OK' FROM mailsrv_users WHERE {WHERE_ADDRESS}",
    "aliases": f"SELECT target FROM mailsrv_aliases WHERE {WHERE_ADDRESS}",
    # after "aliases": every known address of a catch-all domain has an alias row there
    "catchall": ("SELECT catchall_target FROM mailsrv_domains WHERE domain = '%d' "
                 "AND catchall_target IS NOT NULL"),
    "recipient_access": (
        f"SELECT reply FROM mailsrv_recipient_access WHERE {WHERE_ADDRESS} "
        "UNION ALL SELECT catchall_reply FROM mailsrv_domains WHERE domain = '%d' "
        "AND catchall_reply IS NOT NULL AND NOT EXISTS (SELECT 1 FROM mailsrv_addresses "
        f"WHERE {WHERE_ADDRESS})"
    ),
    "sender_login": f"SELECT address FROM mailsrv_users WHERE {WHERE_ADDRESS}",
    "sasl_access": (f"SELECT '{SUSPENDED_OUTGOING_REPLY}' FROM mailsrv_users "
                    f"WHERE {WHERE_ADDRESS} AND send_ok = 0"),
}

_POSTFIX_TYPE = {"sqlite": "sqlite", "postgresql": "pgsql", "mysql": "mysql"}
_DOVECOT_DRIVER = {"sqlite": "sqlite", "postgresql": "pgsql", "mysql": "mysql"}


def dovecot_connect_line(access: SqlAccess, password: str) -> str:
    """The ``connect =`` line (written by sql-access into the 0640 root:dovecot file)."""
    if access.backend == "sqlite":
        return f"connect = {access.path}\n"
    password = check_password(password)
    return (f"connect = host={access.host} port={access.port} dbname={access.dbname} "
            f"user={access.user} password={password}\n")


_PASSWORD_RE = re.compile(r"[A-Za-z0-9_-]{20,128}")


def check_password(value: str) -> str:
    """Generated passwords only (safe in a libpq string, a my.cnf and a Dovecot setting)."""
    if not _PASSWORD_RE.fullmatch(value):
        raise RenderError("database password must be 20-128 characters of [A-Za-z0-9_-]")
    return value


def postfix_cf(access: SqlAccess, query: str, secrets_dir: str, password: str = "") -> str:
    """A Postfix SQL table. PostgreSQL: libpq reads the password from a passfile outside the
    release. MariaDB: Postfix always hands the client library a password (empty unless set
    here), so these files carry it and live outside the release (`mysql_tables_dir`)."""
    lines = [f"# {HEADER}"]
    if access.backend == "sqlite":
        lines.append(f"dbpath = {access.path}")
    elif access.backend == "postgresql":
        lines.append(f"hosts = postgresql://{access.user}@{access.host}:{access.port}/"
                     f"{access.dbname}?passfile={secrets_dir}/{POSTFIX_PGPASS}")
        lines.append(f"dbname = {access.dbname}")
        lines.append(f"user = {access.user}")
    else:
        lines.append(f"hosts = inet:{access.host}:{access.port}")
        lines.append(f"dbname = {access.dbname}")
        lines.append(f"user = {access.user}")
        lines.append(f"password = {check_password(password)}")
    lines.append(f"query = {query}")
    return "\n".join(lines) + "\n"


def mysql_tables_dir(config_dir: str | Path) -> Path:
    """MariaDB: the Postfix tables (with the password), written by `sql-access grant`."""
    return access_dir(config_dir) / "postfix"


def _dovecot_sql_ext(access: SqlAccess, secrets_dir: str, queries: Mapping[str, str]) -> str:
    body = [f"# {HEADER}", f"driver = {_DOVECOT_DRIVER[access.backend]}"]
    if access.backend == "sqlite":
        body.append(f"connect = {access.path}")
    else:
        body.append(f"!include {secrets_dir}/{DOVECOT_CONNECT}")
    body += [f"{k} = {v}" for k, v in queries.items()]
    return "\n".join(body) + "\n"


_FILES_AUTH_BLOCK = re.compile(
    r"passdb \{\n  driver = passwd-file\n  deny = yes\n.*?\nuserdb \{\n.*?\n\}\n", re.S
)


def render_sql_23(snapshot: StackSnapshot, root: str) -> Files:
    settings = snapshot.settings
    access = load_access(settings.config_dir)
    secrets_dir = str(access_dir(settings.config_dir))
    names.path(secrets_dir)
    ctx = _settings_context(settings, root)
    pf = f"{root}/postfix"
    queries = dovecot_queries(settings)
    deny_query = queries.pop("deny_query")

    conf = ENV.get_template("dovecot-2.3.conf").render(ctx)
    auth = (
        "passdb {\n  driver = sql\n  deny = yes\n"
        f"  args = {root}/dovecot/dovecot-sql-deny.conf.ext\n}}\n"
        f"passdb {{\n  driver = sql\n  args = {root}/dovecot/dovecot-sql.conf.ext\n}}\n"
        f"userdb {{\n  driver = sql\n  args = {root}/dovecot/dovecot-sql.conf.ext\n}}\n"
    )
    conf, n = _FILES_AUTH_BLOCK.subn(lambda _m: auth, conf)
    if n != 1:
        raise RenderError("the Dovecot 2.3 template changed: cannot place the SQL passdb")
    conf = conf.replace("# Dovecot 2.3, files mode.", "# Dovecot 2.3, SQL mode.", 1)
    # autoresponders: one script per address, Pigeonhole skips a sieve_before that is missing
    conf = conf.replace(
        "plugin {\n",
        f"plugin {{\n  sieve_before = {sieve_path(root, '%u')}\n", 1,
    )
    files: Files = {
        "dovecot/dovecot.conf": conf,
        "dovecot/dovecot-sql.conf.ext": _dovecot_sql_ext(access, secrets_dir, queries),
        "dovecot/dovecot-sql-deny.conf.ext": _dovecot_sql_ext(
            access, secrets_dir, {"password_query": deny_query}),
    }
    mailbox_addresses = {m.address for m in snapshot.mailboxes}
    for a in snapshot.autoresponders:
        if a.address not in mailbox_addresses:
            raise RenderError(f"autoresponder for unknown mailbox {a.address!r}")
        files[sieve_path("", names.address(a.address)).lstrip("/")] = sieve_vacation(a)

    kind = _POSTFIX_TYPE[access.backend]
    if access.backend == "mysql":
        tables = mysql_tables_dir(settings.config_dir)
        missing = [n for n in POSTFIX_QUERIES if not (tables / f"{n}.cf").exists()]
        if missing:
            raise RenderError(f"run `mailadmin sql-access grant`: {tables} lacks {missing}")
        tables_dir = str(tables)
    else:
        tables_dir = f"{pf}/sql"
        for name, query in POSTFIX_QUERIES.items():
            files[f"postfix/sql/{name}.cf"] = postfix_cf(access, query, secrets_dir)

    def table(name: str) -> str:
        return f"{kind}:{tables_dir}/{name}.cf"

    main = ENV.get_template("main.cf").render(ctx)
    replacements = {
        f"virtual_mailbox_domains = hash:{pf}/vdomains":
            f"virtual_mailbox_domains = {table('domains')}",
        f"virtual_mailbox_maps = hash:{pf}/vmailbox":
            f"virtual_mailbox_maps = {table('mailboxes')}",
        f"virtual_alias_maps = hash:{pf}/valias":
            f"virtual_alias_maps = {table('aliases')}, {table('catchall')}",
        f"smtpd_sender_login_maps = hash:{pf}/sender_login":
            f"smtpd_sender_login_maps = {table('sender_login')}",
        f"check_recipient_access hash:{pf}/recipient_access":
            f"check_recipient_access {table('recipient_access')}",
        f"check_sasl_access hash:{pf}/sasl_access":
            f"check_sasl_access {table('sasl_access')}",
    }
    for old, new in replacements.items():
        if main.count(old) != 1:
            raise RenderError(f"the Postfix template changed: cannot find {old!r}")
        main = main.replace(old, new)
    files["postfix/main.cf"] = main
    files["postfix/master.cf"] = ENV.get_template("master.cf").render(ctx)
    # apply compiles every hash map; in SQL mode only the transport map has entries
    for rel in POSTFIX_HASH_MAPS:
        files[rel] = f"# {HEADER}\n# SQL mode: looked up in the database (postfix/sql/)\n"
    files["postfix/transport"] = (
        f"# {HEADER}\n{DISCARD_DOMAIN} discard:discarded by the default address\n")
    return dict(sorted(files.items()))


RENDERERS[("sql", "2.3")] = render_sql_23
