# ruff: noqa: S608  - queries built from constants and validated settings only, never from data
"""SQL mode: the servers look mail data up in the panel's database.

Nothing about mailboxes, forwarders or domains is in the rendered files: Dovecot's
passdb/userdb and every Postfix map query the read-only views of migration 0004
(``mailsrv_*``), so a change committed in the panel is what the next lookup sees, without
re-rendering or reloading. Each lookup is one equality query on ``(local_part, domain)`` or on
``domain`` that the tables' unique indexes answer.

What still needs an apply in SQL mode: server settings (paths, ports, TLS, message size) and
autoresponder texts (Sieve scripts are files; Dovecot runs ``<release>/dovecot/sieve/<user>.sieve``
for every user and ignores a missing one).

Credentials never enter a release (releases are stored as revisions and shown as diffs):
`mailadmin sql-access grant` writes them to ``<config_dir>/sql-access/`` with modes only the
mail services can read, and the release refers to those files. This module reads only the
non-secret ``access.json`` there (backend, host, port, database, user name).

Dovecot 2.4 differences (../shared/dovecot24-lab.md sections 3/4): the connection is set in
dovecot.conf itself (``sql_driver``, ``sqlite_path``, or a ``pgsql``/``mysql`` block in the
``!include``d secret file), there is no ``dovecot-sql.conf.ext``; the queries use only
``%{...}`` variables (2.3's ``%n``/``%d``/``%s`` pass ``doveconf -n`` but silently match no
user at run time); the per-user quota is the userdb field ``quota_storage_size``. Variables
sit only as whole quoted values (``'%{user | domain}'``), never inside a longer literal:
Dovecot 2.4.6 turns them into bind parameters, so the home folder is built from the view's
columns with the backend's own string concatenation.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

from .. import names
from ..snapshot import StackSettings
from .common import HEADER, SUSPENDED_OUTGOING_REPLY, RenderError, vmail_id
from .dialect import Dialect, Version
from .dovecot import app_password_slots

ACCESS_DIR = "sql-access"
ACCESS_FILE = "access.json"
#: included by the release's dovecot-sql*.conf.ext: ``connect = ...`` (0640 root:dovecot)
DOVECOT_CONNECT = "dovecot-connect.conf.ext"
#: the 2.4 connection block, ``!include``d by dovecot.conf (0640 root:dovecot)
DOVECOT24_CONNECT = "dovecot24-connect.conf.ext"
#: libpq password file for Postfix (0600 postfix: libpq ignores group-readable ones)
POSTFIX_PGPASS = "postfix.pgpass"
BACKENDS = ("sqlite", "postgresql", "mysql")
#: the backend's name as Dovecot's SQL driver and as Postfix's table type
DRIVER = {"sqlite": "sqlite", "postgresql": "pgsql", "mysql": "mysql"}
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


def mysql_tables_dir(config_dir: str | Path) -> Path:
    """MariaDB: the Postfix tables (with the password), written by `sql-access grant`."""
    return access_dir(config_dir) / "postfix"


# --------------------------------------------------------------------------- Dovecot queries

#: How each Dovecot version names the user's parts and the protocol in a query; both expand
#: them SQL-escaped, after auth_username_format has lower-cased the user.
_VARIABLES: dict[Version, dict[str, str]] = {
    "2.3": {"local_part": "%n", "domain": "%d", "protocol": "%s"},
    "2.4": {"local_part": "%{user | username}", "domain": "%{user | domain}",
            "protocol": "%{protocol}"},
}


def _concat(backend: str, *parts: str) -> str:
    if backend == "mysql":  # || is OR in MariaDB's default sql_mode
        return f"CONCAT({', '.join(parts)})"
    return " || ".join(parts)


def _one_line(query: str) -> str:
    """A query is written as one setting line (they are built on one line; refuse else)."""
    if "\n" in query or "\r" in query or "\\" in query:
        raise RenderError("an SQL query must be one line")
    return query


def dovecot_queries(settings: StackSettings, version: Version = "2.3",
                    backend: str = "sqlite", *, source_ip: str | None = None) -> dict[str, str]:
    """password / user / iterate / deny queries on the ``mailsrv_users`` view."""
    if backend not in DRIVER:
        raise RenderError(f"unknown SQL backend {backend!r}")
    v = _VARIABLES[version]
    uid, gid = vmail_id(settings.vmail_uid), vmail_id(settings.vmail_gid)
    mail_root = names.path(settings.mail_root)
    where = f"local_part = '{v['local_part']}' AND domain = '{v['domain']}'"
    where_o = where.replace(" AND domain", " AND o.domain")
    if version == "2.4":
        home = _concat(backend, f"'{mail_root}/'", "domain", "'/'", "local_part")
        # The view's quota_rule is 2.3's "*:storage=<bytes>B" ("*:storage=0" = unlimited);
        # 2.4 wants quota_storage_size, where a bare number means bytes.
        quota = ("CASE WHEN quota_rule = '*:storage=0' THEN 'unlimited' "
                 "ELSE substr(quota_rule, 11, length(quota_rule) - 11) END AS quota_storage_size")
    else:
        home = f"'{mail_root}/%d/%n'"
        quota = "quota_rule"
    if settings.reveal_deny_reason:
        reason = (", CASE WHEN login_ok = 0 THEN 'Login is suspended for this account' "
                  "ELSE 'This protocol is disabled for this account' END AS reason")
    else:
        reason = ""
    proxy, join, on = _proxy_columns(settings, version, source_ip)
    queries = {
        # no row for a mailbox set to "app passwords only": its app passwords come next
        "password_query": (f"SELECT password{proxy} FROM mailsrv_users{join} WHERE "
                           f"{on(where)} AND NOT EXISTS "
                           f"(SELECT 1 FROM mailsrv_app_passwords_only o WHERE o.{where_o})"),
        "user_query": (f"SELECT {home} AS home, {uid} AS uid, {gid} AS gid, "
                       f"{quota} FROM mailsrv_users WHERE {where}"),
        "iterate_query": "SELECT address AS user FROM mailsrv_users",
        # deny passdb: a returned row refuses the protocol (imap, pop3, smtp = Postfix SASL)
        # before the password is checked; nodelay = no per-IP auth penalty.
        "deny_query": (
            f"SELECT NULL AS password, 'Y' AS nopassword, 'Y' AS nodelay{reason} "
            f"FROM mailsrv_users WHERE {where} AND (login_ok = 0 OR "
            f"(CASE '{v['protocol']}' WHEN 'imap' THEN imap_ok WHEN 'pop3' THEN pop3_ok "
            "WHEN 'smtp' THEN smtp_ok ELSE 1 END) = 0)"
        ),
    }
    return {key: _one_line(q) for key, q in queries.items()}


def app_password_queries(settings: StackSettings, version: Version = "2.3", *,
                         source_ip: str | None = None) -> dict[int, str]:
    """slot -> the password query of that slot's passdb on ``mailsrv_app_passwords``: a row
    only when the app password may use the protocol logging in (its own switch and the
    mailbox's; any other service gets none)."""
    v = _VARIABLES[version]
    where = f"local_part = '{v['local_part']}' AND domain = '{v['domain']}'"
    protocol_ok = (f"(CASE '{v['protocol']}' WHEN 'imap' THEN imap_ok WHEN 'pop3' THEN pop3_ok "
                   "WHEN 'smtp' THEN smtp_ok ELSE 0 END) = 1")
    proxy, join, on = _proxy_columns(settings, version, source_ip)
    return {
        slot: _one_line(f"SELECT password{proxy} FROM mailsrv_app_passwords{join} "
                        f"WHERE {on(where)} AND slot = {slot} AND {protocol_ok}")
        for slot in app_password_slots()
    }


#: The client's local port in a query (the same ports on every node: IMAP to IMAP).
_LOCAL_PORT = {"2.3": "%{lport}", "2.4": "%{local_port}"}


def _proxy_columns(settings: StackSettings, version: Version,
                   source_ip: str | None) -> tuple[str, str, Callable[[str], str]]:
    """On a mail node (`StackSettings.node_name`): the passdb columns that proxy a login to
    the node holding the mailbox's domain (``mailsrv_domain_nodes``, migration 0015; NULL
    columns are no fields, so a local mailbox gets none), the join, and the WHERE clause
    with its columns qualified. Elsewhere nothing changes."""
    if settings.node_name is None:
        return "", "", lambda where: where
    node = names.node_name(settings.node_name)
    remote = f"r.node <> '{node}'"
    columns = (f", CASE WHEN {remote} THEN 'y' END AS proxy, "
               f"CASE WHEN {remote} THEN r.address END AS host, "
               f"CASE WHEN {remote} THEN '{_LOCAL_PORT[version]}' END AS port")
    if source_ip is not None:
        # from this node's address, which the owner trusts (login_trusted_networks)
        columns += f", CASE WHEN {remote} THEN '{names.ipv4_listen(source_ip)}' END AS source_ip"
    join = " t LEFT JOIN mailsrv_domain_nodes r ON r.domain = t.domain"

    def qualified(where: str) -> str:
        return where.replace("local_part =", "t.local_part =").replace(
            "domain =", "t.domain =")

    return columns, join, qualified


def transport_query(node: str, lmtp_port: int, backend: str) -> str:
    """Postfix's SQL transport table on a mail node: a domain another node holds goes to that
    node's LMTP over TCP (looked up live, as the other SQL tables)."""
    node = names.node_name(node)
    target = _concat(backend, "'lmtp:inet:['", "address", f"']:{names.port(lmtp_port)}'")
    return _one_line(f"SELECT {target} FROM mailsrv_domain_nodes WHERE domain = '%s' "
                     f"AND node <> '{node}'")


# --------------------------------------------------------------------------- Postfix tables

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


_PASSWORD_RE = re.compile(r"[A-Za-z0-9_-]{20,128}")


def check_password(value: str) -> str:
    """Generated passwords only (safe in a libpq string, a my.cnf and a Dovecot setting)."""
    if not _PASSWORD_RE.fullmatch(value):
        raise RenderError("database password must be 20-128 characters of [A-Za-z0-9_-]")
    return value


def dovecot_connect_line(access: SqlAccess, password: str) -> str:
    """The 2.3 ``connect =`` line (written by sql-access into the 0640 root:dovecot file)."""
    if access.backend == "sqlite":
        return f"connect = {access.path}\n"
    password = check_password(password)
    return (f"connect = host={access.host} port={access.port} dbname={access.dbname} "
            f"user={access.user} password={password}\n")


def dovecot24_connect_block(access: SqlAccess, password: str) -> str:
    """The 2.4 connection settings with the password (the ``!include``d secret file).

    Every value comes from a safe alphabet (`SqlAccess.validated`, `check_password`), so
    nothing can close the block or start a new setting.
    """
    access = access.validated()
    if access.backend == "sqlite":
        return f"sqlite_path = {access.path}\n"
    password = check_password(password)
    if access.backend == "postgresql":
        return (f"pgsql {access.host} {{\n  parameters {{\n    port = {access.port}\n"
                f"    dbname = {access.dbname}\n    user = {access.user}\n"
                f"    password = {password}\n  }}\n}}\n")
    return (f"mysql {access.host} {{\n  port = {access.port}\n  dbname = {access.dbname}\n"
            f"  user = {access.user}\n  password = {password}\n}}\n")


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


# --------------------------------------------------------------------------- the release


@dataclasses.dataclass(frozen=True)
class SqlContext:
    """What the SQL-mode templates need, computed once per render."""

    backend: str
    driver: str
    #: SQLite: the database file (no credentials)
    path: str
    #: the secret file with the connection, outside the release (not SQLite)
    connect_file: str
    queries: dict[str, str]
    #: slot -> the query of that app-password passdb (`app_password_queries`)
    app_queries: dict[int, str]
    #: main.cf setting -> ``type:/path/name.cf`` (`postfix.HASH_TABLES` in files mode)
    tables: dict[str, str]
    #: the Postfix tables written into the release (MariaDB's live outside it)
    postfix_files: dict[str, str]
    #: On a mail node: the SQL transport table after the hash map ("" elsewhere, and on
    #: MariaDB, whose tables `sql-access grant` writes without knowing the node).
    transport_table: str = ""


def sql_context(settings: StackSettings, dialect: Dialect, root: str, *,
                source_ip: str | None = None) -> SqlContext:
    """Reads ``access.json`` (and, for MariaDB, checks the tables `grant` wrote).
    `source_ip`: a mail node's own IPv4 address, which its proxied logins come from."""
    access = load_access(settings.config_dir)
    secrets_dir = names.path(str(access_dir(settings.config_dir)))
    kind = DRIVER[access.backend]
    postfix_files: dict[str, str] = {}
    if access.backend == "mysql":
        tables = mysql_tables_dir(settings.config_dir)
        missing = [n for n in POSTFIX_QUERIES if not (tables / f"{n}.cf").exists()]
        if missing:
            raise RenderError(f"run `mailadmin sql-access grant`: {tables} lacks {missing}")
        tables_dir = str(tables)
    else:
        tables_dir = f"{root}/postfix/sql"
        for name, query in POSTFIX_QUERIES.items():
            postfix_files[f"postfix/sql/{name}.cf"] = postfix_cf(access, query, secrets_dir)

    def table(name: str) -> str:
        return f"{kind}:{tables_dir}/{name}.cf"

    main_cf_tables = {name: table(name) for name in (
        "domains", "mailboxes", "recipient_access", "sender_login", "sasl_access")}
    main_cf_tables["aliases"] = f"{table('aliases')}, {table('catchall')}"
    transport_table = ""
    if settings.node_name is not None and access.backend != "mysql":
        postfix_files["postfix/sql/transport.cf"] = postfix_cf(
            access, transport_query(settings.node_name, settings.ports.lmtp, access.backend),
            secrets_dir)
        transport_table = table("transport")
    connect = DOVECOT24_CONNECT if dialect.v24 else DOVECOT_CONNECT
    return SqlContext(
        backend=access.backend,
        driver=DRIVER[access.backend],
        path=names.path(access.path) if access.backend == "sqlite" else "",
        connect_file=f"{secrets_dir}/{connect}",
        queries=dovecot_queries(settings, dialect.version, access.backend,
                                source_ip=source_ip),
        app_queries=app_password_queries(settings, dialect.version, source_ip=source_ip),
        tables=main_cf_tables,
        postfix_files=postfix_files,
        transport_table=transport_table,
    )
