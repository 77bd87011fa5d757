# ruff: noqa: S608  - queries built from constants and validated settings only, never from data
"""SQL mode for Dovecot 2.4 + Postfix, registered as ``RENDERERS[("sql", "2.4")]``.

The combination of `render_sql` (SQL mode, Dovecot 2.3) and `render_24` (files mode,
Dovecot 2.4):

- Postfix: `render_sql`'s files, byte for byte (the same ``mailsrv_*`` views of migration
  0004, the same ``*.cf`` tables, the same MariaDB tables outside the release);
- Dovecot: `render_24`'s configuration with its passwd-file passdb/userdb and deny lists
  replaced by SQL ones in 2.4 syntax (../shared/dovecot24-lab.md section 3/4): the SQL
  connection is set in dovecot.conf itself (``sql_driver``, ``sqlite_path``, or a
  ``pgsql``/``mysql`` block), there is no ``dovecot-sql.conf.ext``; the queries use only
  ``%{...}`` variables (2.3's ``%n``/``%d``/``%s`` pass ``doveconf -n`` but silently match no
  user at run time); the deny passdb is not named "sql", so its query setting is written
  ``sql_query``; the per-user quota is the userdb field ``quota_storage_size`` (a bare
  number is bytes, ``unlimited`` is no limit).

Credentials never enter a release: for PostgreSQL and MariaDB, dovecot.conf ``!include``s
``<config_dir>/sql-access/dovecot24-connect.conf.ext`` (0640 root:dovecot), which
`mailadmin sql-access grant` writes with the connection block in 2.4 syntax
(`dovecot24_connect_block`). SQLite has no credentials: the path is in dovecot.conf.

Variables sit only as whole quoted values (``'%{user | domain}'``), never inside a longer
literal: Dovecot 2.4.6 turns them into bind parameters. The home folder is therefore built
from the view's columns, with the dialect's own string concatenation.
"""

from __future__ import annotations

import re

from . import names
from .render import RENDERERS, Files, RenderError, _settings_context
from .render_24 import DOVECOT_24_CONF
from .render_sql import SqlAccess, access_dir, check_password, load_access, render_sql_23
from .snapshot import StackSettings, StackSnapshot
from .templates import ENV

#: written by `mailadmin sql-access grant` next to the 2.3 ``dovecot-connect.conf.ext``
DOVECOT24_CONNECT = "dovecot24-connect.conf.ext"

_DRIVER = {"sqlite": "sqlite", "postgresql": "pgsql", "mysql": "mysql"}

#: Dovecot 2.4 expands these SQL-escaped; auth_username_format has lower-cased the user.
WHERE_USER_24 = "local_part = '%{user | username}' AND domain = '%{user | domain}'"


def _concat(backend: str, *parts: str) -> str:
    if backend == "mysql":  # || is OR in MariaDB's default sql_mode
        return f"CONCAT({', '.join(parts)})"
    return " || ".join(parts)


def dovecot_queries_24(settings: StackSettings, backend: str) -> dict[str, str]:
    """passdb / deny passdb / userdb / iterate queries on the ``mailsrv_users`` view."""
    if backend not in _DRIVER:
        raise RenderError(f"unknown SQL backend {backend!r}")
    uid, gid = settings.vmail_uid, settings.vmail_gid
    for value in (uid, gid):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2**31:
            raise RenderError(f"invalid vmail uid/gid {value!r}")
    mail_root = names.path(settings.mail_root)
    if "'" in mail_root:
        raise RenderError(f"unsafe mail root {mail_root!r}")
    home = _concat(backend, f"'{mail_root}/'", "domain", "'/'", "local_part")
    # The view's quota_rule is 2.3's "*:storage=<bytes>B" ("*:storage=0" = unlimited); 2.4
    # wants quota_storage_size, where a bare number means bytes.
    quota = ("CASE WHEN quota_rule = '*:storage=0' THEN 'unlimited' "
             "ELSE substr(quota_rule, 11, length(quota_rule) - 11) END")
    if settings.reveal_deny_reason:
        reason = (", CASE WHEN login_ok = 0 THEN 'Login is suspended for this account' "
                  "ELSE 'This protocol is disabled for this account' END AS reason")
    else:
        reason = ""
    return {
        "password_query": f"SELECT password FROM mailsrv_users WHERE {WHERE_USER_24}",
        "user_query": (f"SELECT {home} AS home, {uid} AS uid, {gid} AS gid, "
                       f"{quota} AS quota_storage_size FROM mailsrv_users "
                       f"WHERE {WHERE_USER_24}"),
        "iterate_query": "SELECT address AS user FROM mailsrv_users",
        # a returned row refuses %{protocol} (imap, pop3, smtp = Postfix SASL) before the
        # password is checked; nodelay = no auth penalty for a refused protocol
        "deny_query": (
            f"SELECT NULL AS password, 'Y' AS nopassword, 'Y' AS nodelay{reason} "
            f"FROM mailsrv_users WHERE {WHERE_USER_24} AND (login_ok = 0 OR "
            "(CASE '%{protocol}' WHEN 'imap' THEN imap_ok WHEN 'pop3' THEN pop3_ok "
            "WHEN 'smtp' THEN smtp_ok ELSE 1 END) = 0)"
        ),
    }


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


def _sql_value(query: str) -> str:
    """A query as one setting line (they are built on one line; refuse anything else)."""
    if "\n" in query or "\r" in query or "\\" in query:
        raise RenderError("an SQL query must be one line")
    return query


_FILES_AUTH = re.compile(
    r"# Per-protocol access: .*?\nuserdb passwd-file \{\n.*?\n\}\n", re.S
)


def render_dovecot_sql_24(settings: StackSettings, access: SqlAccess, root: str) -> str:
    ctx = _settings_context(settings, root)
    conf = ENV.from_string(DOVECOT_24_CONF).render(ctx)
    secrets_dir = str(access_dir(settings.config_dir))
    names.path(secrets_dir)
    queries = {k: _sql_value(v) for k, v in dovecot_queries_24(settings, access.backend).items()}
    lines = [
        "# SQL mode: every lookup reads the panel's read-only mailsrv_* views, so a change in",
        "# the panel is seen by the next lookup. The deny passdb answers first: a row refuses",
        "# that protocol before the password is checked.",
        f"sql_driver = {_DRIVER[access.backend]}",
    ]
    if access.backend == "sqlite":
        lines += [f"sqlite_path = {names.path(access.path)}", "sqlite_readonly = yes"]
    else:
        lines.append("# the connection, password included, lives outside the release")
        lines.append(f"!include {secrets_dir}/{DOVECOT24_CONNECT}")
    lines += [
        "passdb sql-deny {",
        "  driver = sql",
        "  deny = yes",
        f"  sql_query = {queries['deny_query']}",
        "}",
        "passdb sql {",
        f"  query = {queries['password_query']}",
        "}",
        "userdb sql {",
        f"  query = {queries['user_query']}",
        f"  iterate_query = {queries['iterate_query']}",
        "}",
    ]
    conf, n = _FILES_AUTH.subn(lambda _m: "\n".join(lines) + "\n", conf)
    if n != 1:
        raise RenderError("the Dovecot 2.4 template changed: cannot place the SQL passdb")
    old_head = "# Dovecot 2.4, files mode."
    old_quota = "quota_storage_size from the passwd-file"
    if conf.count(old_head) != 1 or conf.count(old_quota) != 1:
        raise RenderError("the Dovecot 2.4 template changed: cannot mark it SQL mode")
    conf = conf.replace(old_head, "# Dovecot 2.4, SQL mode.", 1)
    conf = conf.replace(old_quota, "quota_storage_size from the SQL userdb", 1)
    return conf


def render_sql_24(snapshot: StackSnapshot, root: str) -> Files:
    """Postfix and Sieve files from `render_sql_23`; Dovecot's configuration in 2.4 syntax."""
    settings = snapshot.settings
    access = load_access(settings.config_dir)
    files = {rel: text for rel, text in render_sql_23(snapshot, root).items()
             if not (rel.startswith("dovecot/") and rel.endswith((".conf", ".conf.ext")))}
    files["dovecot/dovecot.conf"] = render_dovecot_sql_24(settings, access, root)
    return dict(sorted(files.items()))


RENDERERS[("sql", "2.4")] = render_sql_24
