"""Pure renderers: StackSnapshot -> {relative path: file text}, for four dialects.

A `Dialect` is (mode, Dovecot major.minor): ``files`` or ``sql``, ``2.3`` or ``2.4``. One
renderer (`renderer.DialectRenderer`) serves all four: the settings context, the Postfix maps,
the passwd-file and deny lists and the Sieve scripts are built once (`common`, `postfix`,
`dovecot`, `sieve`, `sql`), and each output file has one Jinja template in ``templates/``
with blocks for the version and the mode. `RENDERERS` lists the dialects explicitly.

Modules: `dialect` (the value), `common` (errors, header, settings context), `dovecot`,
`postfix`, `sieve`, `sql` (SQL access and queries), `templates` (the Jinja environment),
`renderer` (the renderer, the registry, releases and checksums), `incremental` (a release
from the one in force and a partial render of the changed domains, byte-identical to a full
render). Names are checked with
`mailadmin.names.safe_local_part` / `safe_domain` / `safe_address` (shared with the services)
and other values with `mailadmin.mailstack.names`.
"""

from __future__ import annotations

from .common import (
    DISCARD_ADDRESS,
    DISCARD_DOMAIN,
    HEADER,
    SUSPENDED_INCOMING_REPLY,
    SUSPENDED_OUTGOING_REPLY,
    Files,
    RenderError,
)
from .dialect import ALL as DIALECTS
from .dialect import FILES_23, FILES_24, SQL_23, SQL_24, Dialect
from .dovecot import dovecot_deny, dovecot_users
from .postfix import POSTFIX_HASH_MAPS, postfix_maps
from .renderer import (
    RENDERERS,
    DialectRenderer,
    Renderer,
    checksum,
    dialect_of,
    render,
    render_release,
    renderer_for,
)
from .sieve import sieve_path, sieve_vacation

__all__ = [
    "DIALECTS",
    "DISCARD_ADDRESS",
    "DISCARD_DOMAIN",
    "FILES_23",
    "FILES_24",
    "HEADER",
    "POSTFIX_HASH_MAPS",
    "RENDERERS",
    "SQL_23",
    "SQL_24",
    "SUSPENDED_INCOMING_REPLY",
    "SUSPENDED_OUTGOING_REPLY",
    "Dialect",
    "DialectRenderer",
    "Files",
    "RenderError",
    "Renderer",
    "checksum",
    "dialect_of",
    "dovecot_deny",
    "dovecot_users",
    "postfix_maps",
    "render",
    "render_release",
    "renderer_for",
    "sieve_path",
    "sieve_vacation",
]
