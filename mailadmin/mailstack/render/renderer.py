"""One renderer for every dialect, the registry (dialect -> renderer), and releases."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from types import MappingProxyType

from ..snapshot import StackSettings, StackSnapshot
from .common import RELEASE_PLACEHOLDER, Files, RenderError, settings_context
from .dialect import FILES_23, FILES_24, SQL_23, SQL_24, Dialect
from .dovecot import (
    DENY_PROTOCOLS,
    app_password_slots,
    dovecot_app_passwords,
    dovecot_deny,
    dovecot_users,
)
from .opendkim import milter_address, opendkim_files
from .postfix import hash_tables, postfix_maps, sql_mode_maps
from .routing import listen_context, routing
from .sieve import sieve_files
from .sql import sql_context
from .templates import render_template

Renderer = Callable[[StackSnapshot, str], Files]


@dataclasses.dataclass(frozen=True)
class DialectRenderer:
    """Renders every file of a release for one dialect; `root` is the release folder.

    Every file refers to its siblings by absolute path under `root`
    (``<config_dir>/releases/<checksum>``), so a release is self-contained: validating it in
    place checks exactly what will run, and flipping the ``current`` link plus a reload
    switches both servers to it as a unit.
    """

    dialect: Dialect

    def __call__(self, snapshot: StackSnapshot, root: str) -> Files:
        d = self.dialect
        ctx = settings_context(snapshot.settings, root)
        route = routing(snapshot)
        sql = sql_context(snapshot.settings, d, root, source_ip=route.own_address) \
            if d.sql else None
        if sql is not None and route.remote and not sql.transport_table:
            raise RenderError("mail nodes in SQL mode need SQLite or PostgreSQL (MariaDB's "
                              "Postfix tables do not know the node yet)")
        ctx.update(listen_context(route, str(ctx["listen"])))
        ctx.update(
            settings_digest=settings_digest(snapshot.settings),
            v24=d.v24,
            mode_label="SQL" if d.sql else "files",
            sql=sql,
            tables=sql.tables if sql else hash_tables(root),
            app_password_slots=list(app_password_slots()),
            dkim_milter=milter_address(snapshot.settings.dkim_milter_port)
            if snapshot.dkim_keys else None,
        )
        files: Files = {
            "dovecot/dovecot.conf": render_template("dovecot.conf", ctx),
            "postfix/main.cf": render_template("main.cf", ctx),
            "postfix/master.cf": render_template("master.cf", ctx),
        }
        files.update(sieve_files(snapshot))
        files.update(opendkim_files(snapshot, root))
        if sql is None:
            files["dovecot/users"] = dovecot_users(snapshot, root, d.version)
            for protocol in DENY_PROTOCOLS:
                files[f"dovecot/deny.{protocol}"] = dovecot_deny(snapshot, protocol)
            files.update(dovecot_app_passwords(snapshot, d.version))
            files.update(postfix_maps(snapshot))
        else:
            if not d.v24:  # 2.4 has the queries in dovecot.conf itself
                queries = dict(sql.queries)
                deny = {"password_query": queries.pop("deny_query")}
                for rel, q in (("dovecot-sql.conf.ext", queries),
                               ("dovecot-sql-deny.conf.ext", deny)):
                    files[f"dovecot/{rel}"] = render_template(
                        "dovecot-sql.conf.ext", {**ctx, "queries": q})
                for slot, query in sql.app_queries.items():
                    files[f"dovecot/dovecot-sql-app-password-{slot}.conf.ext"] = render_template(
                        "dovecot-sql.conf.ext", {**ctx, "queries": {"password_query": query}})
            files.update(sql.postfix_files)
            files.update(sql_mode_maps())
        return dict(sorted(files.items()))


#: The way the data files are laid out (bumped when it changes): part of `settings_digest`,
#: so an incremental render never splices into a release laid out differently.
LAYOUT = "keyed files grouped by domain, 1"


def settings_digest(settings: StackSettings) -> str:
    """Names the settings and layout a files-mode release was rendered with (a comment in
    dovecot.conf): equal digests let the incremental render reuse the release's data files,
    some of which depend on settings no governing file shows (mail_root, reveal_deny_reason)."""
    # the version as the dialect reads it ("2.3.19.1" renders as "2.3" does)
    settings = dataclasses.replace(settings, dovecot_version=dialect_of(settings).version)
    return hashlib.sha256(f"{LAYOUT}\0{settings!r}".encode()).hexdigest()[:32]


#: Every dialect and its renderer, listed here and nowhere else.
RENDERERS: Mapping[Dialect, Renderer] = MappingProxyType({
    FILES_23: DialectRenderer(FILES_23),
    FILES_24: DialectRenderer(FILES_24),
    SQL_23: DialectRenderer(SQL_23),
    SQL_24: DialectRenderer(SQL_24),
})


def dialect_of(settings: StackSettings) -> Dialect:
    return Dialect.of(settings.mode, settings.dovecot_version)


def renderer_for(settings: StackSettings) -> Renderer:
    dialect = dialect_of(settings)
    try:
        return RENDERERS[dialect]
    except KeyError:
        raise RenderError(
            f"no renderer for {dialect}; available: {sorted(map(str, RENDERERS))}"
        ) from None


def render(snapshot: StackSnapshot, root: str) -> Files:
    """Render every file for a release written to the folder `root`."""
    return renderer_for(snapshot.settings)(snapshot, root)


def checksum(files: Mapping[str, str]) -> str:
    """SHA-256 over the whole file set (paths and contents, in path order)."""
    h = hashlib.sha256()
    for path in sorted(files):
        data = files[path].encode()
        h.update(f"{path}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def render_release(snapshot: StackSnapshot) -> tuple[str, Files]:
    """(checksum, files) for ``<config_dir>/releases/<checksum>``.

    The files name their own folder, so the checksum is taken over a render with a
    placeholder for the folder name, which is then replaced by the checksum: one render,
    and equal checksums mean byte-equal files once written.
    """
    base = f"{snapshot.settings.config_dir}/releases"
    draft = renderer_for(snapshot.settings)(snapshot, f"{base}/{RELEASE_PLACEHOLDER}")
    digest = checksum(draft)
    files = {rel: text.replace(RELEASE_PLACEHOLDER, digest) for rel, text in draft.items()}
    if any("\x00" in text for text in files.values()):
        raise RenderError("a NUL character reached a rendered file")
    return digest, files
