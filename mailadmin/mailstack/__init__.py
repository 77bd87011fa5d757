"""Generate, validate and apply the Dovecot + Postfix configuration.

The flow is snapshot (plain frozen data from the database) -> renderers (pure functions
returning ``{relative path: text}``) -> apply (stage, validate with the real tools, switch
atomically, reload). The lab sandbox (`mailadmin.lab`) runs a private Dovecot + Postfix from a
rendered release.

The servers must run from the ``current`` link, which apply flips::

    dovecot -c <config_dir>/current/dovecot/dovecot.conf
    postfix -c <config_dir>/current/postfix start

(On a packaged system, point the service units there. Postfix's set-gid tools - sendmail,
postqueue - also need that folder in ``alternate_config_directories`` of the default
main.cf.)
"""

from __future__ import annotations

from .apply import (
    ApplyError,
    ApplyResult,
    ReleaseInfo,
    apply_files,
    apply_snapshot,
    current_release,
    diff_releases,
    list_releases,
    rollback,
    write_render,
)
from .incremental import IncrementalRelease, incremental_release, render_release_incremental
from .names import UnsafeName
from .render import RENDERERS, render, render_release
from .snapshot import (
    AppPasswordSnap,
    AutoresponderSnap,
    DomainSnap,
    ForwarderSnap,
    MailboxSnap,
    StackPorts,
    StackSettings,
    StackSnapshot,
    build_snapshot,
    settings_from_server_settings,
)

__all__ = [
    "RENDERERS",
    "AppPasswordSnap",
    "ApplyError",
    "ApplyResult",
    "AutoresponderSnap",
    "DomainSnap",
    "ForwarderSnap",
    "IncrementalRelease",
    "MailboxSnap",
    "ReleaseInfo",
    "StackPorts",
    "StackSettings",
    "StackSnapshot",
    "UnsafeName",
    "apply_files",
    "apply_snapshot",
    "build_snapshot",
    "current_release",
    "diff_releases",
    "incremental_release",
    "list_releases",
    "render",
    "render_release",
    "render_release_incremental",
    "rollback",
    "settings_from_server_settings",
    "write_render",
]
