"""Render, apply, list, roll back and compare the mail servers' configuration.

Every function takes the caller's Session and Actor and only flushes. An apply reads the
database (snapshot), writes and validates a release with the real tools and switches to it
(see `mailadmin.mailstack.apply`), then records a ConfigRevision: ``applied`` with the tools'
output, or ``failed`` with exactly what they said. A failure is *returned*, not raised, so the
caller's commit keeps the failed revision (the CLI then exits non-zero, the page says why).

Coalescing: `services.changes` stamps ``ServerSettings.config_changed_at`` whenever mail data
changes. An apply stores in ``config_applied_at`` the ``config_changed_at`` it read *before*
taking its snapshot (a watermark): the servers have every change up to that moment, and a
change committed while the apply ran leaves ``changed_at > applied_at``, so it is not lost.
The apply watcher (`mailadmin.workers.apply_watcher`) applies when changes are pending and none
came for a quiet spell; one apply then covers a whole burst of changes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
import time
import typing as t
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, defer

from ..errors import Conflict, MailadminError, NotFound, ValidationError
from ..lab.sandbox import sandbox_settings
from ..mailstack import (
    ApplyError,
    StackSettings,
    apply_files,
    build_snapshot,
    current_release,
    incremental_release,
    render_release,
    rollback,
    settings_from_server_settings,
    write_render,
)
from ..mailstack.apply import Tools, diff_files, ensure_log_dir
from ..mailstack.doveadm import ensure_secret as ensure_doveadm_secret
from ..mailstack.snapshot import StackSnapshot
from ..mailstack.version import detect_dovecot_version
from ..models import MAX_ROW_ID, AuditEvent, ConfigRevision, MailNode, ServerSettings
from ..server_settings_table import RENDERED
from . import placement
from .audit import record_event
from .context import Actor
from .pagination import Page, clamp
from .scope import require_admin
from .server import get_server_settings

log = logging.getLogger(__name__)

#: The steps `apply_config` reports to its `progress` callback, in order.
APPLY_STEPS = ("snapshot", "render", "write", "validate", "switch", "record")
#: The apply watcher's defaults (`workers.apply_watcher`): it applies once no change came for
#: the quiet spell, checking every interval. With an apply's own few seconds they give the
#: typical wait people are told.
AUTO_APPLY_QUIET_SECONDS = 5.0
AUTO_APPLY_INTERVAL_SECONDS = 2.0
TYPICAL_AUTO_APPLY_SECONDS = 10
#: Revisions that keep their files (for rollback and diffs); older ones keep only their
#: checksum and output. A release at 100,000 mailboxes is ~32 MB of text.
KEEP_FILES = 20

Progress = Callable[[str], None]


class ConfigStatus(t.NamedTuple):
    """When mail data last changed, up to when the servers have it, and whether they are current.

    ``caught_up`` is False while changes wait for an apply, and after a rollback (the servers
    then run an older configuration than the database describes).
    """

    changed_at: dt.datetime | None
    applied_at: dt.datetime | None
    caught_up: bool


@dataclasses.dataclass(frozen=True)
class ApplyReport:
    revision: ConfigRevision
    #: True when the rendered files were already in force: no new release, no reload.
    already_applied: bool
    timings: Mapping[str, float]


def _who(actor: Actor) -> str:
    return actor.name if actor.source is None else f"{actor.name} ({actor.channel})"


def _stack_settings(session: Session) -> StackSettings:
    return settings_from_server_settings(get_server_settings(session))


def _changed_at_now(session: Session) -> dt.datetime | None:
    """config_changed_at as committed now (not a value cached earlier in this session)."""
    return session.scalar(
        select(ServerSettings.config_changed_at).where(ServerSettings.id == 1)
        .execution_options(populate_existing=True)
    )


def render_to(session: Session, actor: Actor, out_dir: str | Path, *,
              node: str | None = None) -> dict[str, str]:
    """Write the configuration for the database as it is now into `out_dir` for inspection
    (as mail node `node` renders it, when given).

    Nothing is validated, compiled or switched; nothing live changes.
    """
    require_admin(actor, "can apply the mail server configuration")
    settings = _stack_settings(session)
    if node is not None:
        settings = dataclasses.replace(settings, node_name=node)
    snapshot = build_snapshot(session, settings)
    return write_render(snapshot, out_dir)


def _record(
    session: Session,
    actor: Actor,
    *,
    state: str,
    checksum: str,
    files: Mapping[str, str],
    output: str,
    settings: StackSettings,
    rollback_of: int | None = None,
) -> ConfigRevision:
    now = actor.now()
    if state == "applied":
        # the revision in force until now is replaced (or, for a rollback, rolled back)
        session.execute(
            update(ConfigRevision)
            .where(ConfigRevision.state == "applied")
            .values(state="rolled_back" if rollback_of is not None else "superseded")
            .execution_options(synchronize_session="fetch")
        )
    revision = ConfigRevision(
        created_at=now,
        created_by=_who(actor),
        mode=settings.mode,
        dovecot_version=settings.dovecot_version,
        state=state,
        checksum=checksum,
        files=json.dumps(dict(files), sort_keys=True),
        validation_output=output,
        applied_at=now if state == "applied" else None,
        rollback_of_id=rollback_of,
    )
    if state == "applied" and rollback_of is None:
        _first_success_turns_on_automatic_apply(session, actor)
    session.add(revision)
    session.flush()
    _prune_files(session)
    action = "config.rollback" if rollback_of is not None else "config.apply"
    record_event(
        session, actor, action, object_type="config", object_id=revision.id,
        object_label=checksum[:12] or "(not rendered)",
        after={"state": state, "rollback_of": rollback_of},
    )
    return revision


def _first_success_turns_on_automatic_apply(session: Session, actor: Actor) -> None:
    """Automatic apply is on once the server has applied successfully once: until then a
    broken setup (paths, tools) would fail over and over in the background. An admin who has
    set it either way keeps that choice."""
    if session.scalar(select(ConfigRevision.id).where(ConfigRevision.state != "failed")
                      .limit(1)) is not None:
        return
    chosen = session.scalar(
        select(AuditEvent.id).where(AuditEvent.action == "settings.set",
                                    AuditEvent.object_label == "apply_automatically").limit(1))
    row = get_server_settings(session)
    if chosen is not None or row.apply_automatically:
        return
    row.apply_automatically = True
    record_event(session, actor, "settings.set", object_type="settings", object_id=1,
                 object_label="apply_automatically", before={"apply_automatically": False},
                 after={"apply_automatically": True, "why": "first successful apply"})


def _prune_files(session: Session) -> None:
    oldest_kept = session.scalar(
        select(ConfigRevision.id).order_by(ConfigRevision.id.desc()).offset(KEEP_FILES - 1)
        .limit(1)
    )
    if oldest_kept is not None:
        session.execute(
            update(ConfigRevision)
            .where(ConfigRevision.id < oldest_kept, ConfigRevision.state != "applied",
                   ConfigRevision.files != "{}")
            .values(files="{}")
            .execution_options(synchronize_session=False)
        )


def apply_config_report(
    session: Session,
    actor: Actor,
    *,
    progress: Progress | None = None,
    tools: Tools | None = None,
    doveadm_address: str | None = None,
    settings: StackSettings | None = None,
) -> ApplyReport:
    """Render the database, apply it to the servers and record the outcome (admin only).

    A refusal by the real tools (or a render error) is recorded as a ``failed`` revision and
    returned; the files in force stay byte-for-byte as they were. `settings` replaces the
    server settings' (a mail node renders for itself: `services.nodes.apply_on_node`);
    `doveadm_address` (one of several mail nodes: its own address) adds the doveadm server
    the other nodes reach.
    """
    require_admin(actor, "can apply the mail server configuration")
    if settings is None and placement.domains_on_nodes(session):
        # one set of files for every domain would serve the other nodes' mailboxes here
        raise Conflict(
            "Domains live on several mail nodes: each node's runner ('mailadmin node run') "
            "applies that node's own configuration; nothing applied here.")
    step = progress or (lambda _name: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    step("snapshot")
    row = get_server_settings(session)
    watermark = _changed_at_now(session)
    started = actor.now()
    settings = settings or settings_from_server_settings(row)
    if doveadm_address is not None:
        settings = dataclasses.replace(settings, doveadm_address=doveadm_address)
    in_force = session.scalars(
        select(ConfigRevision).options(defer(ConfigRevision.files))
        .where(ConfigRevision.state == "applied").order_by(ConfigRevision.id.desc()).limit(1)
    ).first()
    # The release in force holds the data as of config_applied_at when the last apply made
    # it (not a rollback, nothing switched by hand): then only the domains changed since are
    # read and rendered (`mailstack.incremental`); anything else is a full render. With
    # several nodes the revisions and config_applied_at are shared by all of them, so they
    # do not say what this node's release holds: a full render.
    one_node = (session.scalar(select(func.count(MailNode.id))) or 0) <= 1
    since = (row.config_applied_at if one_node and in_force is not None
             and in_force.rollback_of_id is None
             and in_force.checksum == current_release(settings.config_dir) else None)
    incremental = None
    try:
        incremental = incremental_release(session, settings, since)
        snapshot = None if incremental is not None else build_snapshot(session, settings)
        timings["snapshot"] = time.perf_counter() - t0
        step("render")
        if incremental is not None:
            checksum, files = incremental.checksum, incremental.files
        else:
            assert snapshot is not None
            checksum, files = render_release(snapshot)
    except MailadminError as exc:
        step("record")
        revision = _record(session, actor, state="failed", checksum="", files={},
                           output=f"render failed: {exc.message}", settings=settings)
        return ApplyReport(revision, False, timings)
    timings["render"] = time.perf_counter() - t0 - timings.get("snapshot", 0.0)
    if (in_force is not None and in_force.checksum == checksum
            and current_release(settings.config_dir) == checksum):
        step("record")
        if in_force.rollback_of_id is not None:
            # the database now says what the rolled-back files say: record that the servers
            # are current again (no new release, nothing reloaded)
            in_force = _record(session, actor, state="applied", checksum=checksum,
                               files=files, settings=settings,
                               output="already in force (after a rollback); nothing reloaded")
        row.config_applied_at = watermark or started
        session.flush()
        return ApplyReport(in_force, True, timings)

    def on_stage(name: str) -> None:
        if name in APPLY_STEPS:
            step(name)

    t1 = time.perf_counter()
    try:
        ensure_log_dir(settings.log_dir)
        if settings.doveadm_address is not None:
            try:
                ensure_doveadm_secret(settings)
            except OSError as exc:
                raise ApplyError("write", "cannot write the doveadm password file: "
                                 f"{exc.strerror or exc}") from None
        result = apply_files(settings.config_dir, checksum, files, tools=tools,
                             progress=on_stage,
                             base=incremental.base if incremental else None,
                             unchanged=incremental.unchanged if incremental else ())
    except ApplyError as exc:
        step("record")
        revision = _record(session, actor, state="failed", checksum=checksum, files=files,
                           output=str(exc), settings=settings)
        return ApplyReport(revision, False, timings)
    timings.update(result.timings)
    timings["apply"] = time.perf_counter() - t1
    step("record")
    output = result.validation_output
    if incremental is not None:
        redone = sorted(incremental.domains)
        output = (f"incremental render: {', '.join(redone[:20]) or 'no domain'}"
                  + (f" and {len(redone) - 20} more" if len(redone) > 20 else "")
                  + f"\n{output}")
    if not result.changed:
        output = f"already in force on disk; recorded\n{output}"
    revision = _record(session, actor, state="applied", checksum=checksum, files=files,
                       output=output, settings=settings)
    row.config_applied_at = watermark or started
    session.flush()
    return ApplyReport(revision, False, timings)


def apply_config(
    session: Session,
    actor: Actor,
    *,
    progress: Progress | None = None,
    tools: Tools | None = None,
) -> ConfigRevision:
    """`apply_config_report` without the report: the revision in force or the failed one."""
    return apply_config_report(session, actor, progress=progress, tools=tools).revision


def list_revisions(
    session: Session, actor: Actor, page: int = 1, per_page: int = 20
) -> Page[ConfigRevision]:
    """Newest first, without the (large) stored files."""
    require_admin(actor, "can apply the mail server configuration")
    page, per_page = clamp(page, per_page)
    total = session.scalar(select(func.count()).select_from(ConfigRevision)) or 0
    items = list(session.scalars(
        select(ConfigRevision).options(defer(ConfigRevision.files))
        .order_by(ConfigRevision.id.desc()).limit(per_page).offset((page - 1) * per_page)
    ))
    return Page(items=items, page=page, per_page=per_page, total=total)


def get_revision(session: Session, actor: Actor, revision_id: int) -> ConfigRevision:
    require_admin(actor, "can apply the mail server configuration")
    revision = session.get(ConfigRevision, revision_id) if 0 < revision_id <= MAX_ROW_ID else None
    if revision is None:
        raise NotFound(f"There is no configuration revision {revision_id}.", field="revision")
    return revision


def previous_revision_id(session: Session, revision: ConfigRevision) -> int | None:
    """The newest earlier revision that has files (the one to diff against)."""
    return session.scalar(
        select(ConfigRevision.id)
        .where(ConfigRevision.id < revision.id, ConfigRevision.checksum != "")
        .order_by(ConfigRevision.id.desc()).limit(1)
    )


def in_force_revision(session: Session) -> ConfigRevision | None:
    """The revision whose files the servers run (the newest applied one)."""
    return session.scalars(
        select(ConfigRevision).options(defer(ConfigRevision.files))
        .where(ConfigRevision.state == "applied").order_by(ConfigRevision.id.desc()).limit(1)
    ).first()


def _files(revision: ConfigRevision) -> dict[str, str]:
    data = json.loads(revision.files or "{}")
    assert isinstance(data, dict)
    return {str(k): str(v) for k, v in data.items()}


def _release_root(files: Mapping[str, str], checksum: str) -> str:
    """The folder a release's files name themselves by (``<config_dir>/releases/<sum>``)."""
    if checksum:
        pattern = re.compile(r"/[A-Za-z0-9._/-]*?/releases/" + re.escape(checksum))
        for text in files.values():
            match = pattern.search(text)
            if match:
                return match.group(0)
    return f"/releases/{checksum or '-'}"


#: A Dovecot password hash as the renderer writes it, and any "password=" setting.
_HASH_IN_TEXT = re.compile(r"\{([A-Z0-9-]{1,32})\}[A-Za-z0-9./$=,+-]{1,512}")
_PASSWORD_SETTING = re.compile(r"(password\s*=\s*)\S+", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """Hide password hashes (and password settings) in a diff or a file listing.

    A hash becomes ``{SCHEME}<hidden 1a2b3c4d>``: the fingerprint (of the hash, salt
    included) still shows which lines changed, and reveals nothing to guess passwords with.
    """
    def hidden(m: re.Match[str]) -> str:
        mark = hashlib.sha256(m.group(0).encode()).hexdigest()[:8]
        return f"{{{m.group(1)}}}<hidden {mark}>"

    return _PASSWORD_SETTING.sub(r"\1<hidden>", _HASH_IN_TEXT.sub(hidden, text))


def diff_revisions(
    session: Session, actor: Actor, a: int, b: int, *, show_secrets: bool = False
) -> str:
    """Unified diff from revision `a` to revision `b` (release folders shown as <release>);
    password hashes masked unless `show_secrets`."""
    require_admin(actor, "can apply the mail server configuration")
    old, new = get_revision(session, actor, a), get_revision(session, actor, b)
    old_files, new_files = _files(old), _files(new)
    diff = diff_files(
        old_files, new_files,
        old_root=_release_root(old_files, old.checksum),
        new_root=_release_root(new_files, new.checksum),
        old_label=f"r{old.id}", new_label=f"r{new.id}",
    )
    return diff if show_secrets else mask_secrets(diff)


def diff_pending(session: Session, actor: Actor, *, show_secrets: bool = False) -> str:
    """What an apply would change: the revision in force against the database now
    (password hashes masked unless `show_secrets`)."""
    require_admin(actor, "can apply the mail server configuration")
    in_force = session.scalars(
        select(ConfigRevision).where(ConfigRevision.state == "applied")
        .order_by(ConfigRevision.id.desc()).limit(1)
    ).first()
    checksum, files = render_release(build_snapshot(session, _stack_settings(session)))
    old_files = _files(in_force) if in_force is not None else {}
    diff = diff_files(
        old_files, files,
        old_root=_release_root(old_files, in_force.checksum if in_force else ""),
        new_root=_release_root(files, checksum),
        old_label=f"r{in_force.id}" if in_force else "none", new_label="pending",
    )
    return diff if show_secrets else mask_secrets(diff)


def rollback_to(
    session: Session,
    actor: Actor,
    revision_id: int,
    *,
    progress: Progress | None = None,
    tools: Tools | None = None,
) -> ConfigRevision:
    """Re-apply the files stored with an earlier revision (re-validated by the real tools).

    Recorded as a new revision whose ``rollback_of_id`` is `revision_id`; the revision in
    force becomes ``rolled_back``. The database is not changed, so the servers now lag behind
    it (`config_status` says so) until the next apply; the watcher does not undo a rollback,
    but the next change's apply includes everything again.
    """
    require_admin(actor, "can apply the mail server configuration")
    step = progress or (lambda _name: None)
    target = get_revision(session, actor, revision_id)
    files = _files(target)
    if target.state == "failed" or not target.checksum:
        raise ValidationError(
            f"Revision {revision_id} never passed validation; roll back to an applied one.",
            field="revision",
        )
    if not files:
        raise ValidationError(
            f"Revision {revision_id} is older than the newest {KEEP_FILES}; its files are no "
            "longer kept.", field="revision")
    settings = _stack_settings(session)
    expected = f"{settings.config_dir}/releases/{target.checksum}"
    if _release_root(files, target.checksum) != expected:
        raise ValidationError(
            f"Revision {revision_id} was made for another configuration folder "
            f"({_release_root(files, target.checksum)}); it cannot be rolled back to here.",
            field="revision",
        )
    if current_release(settings.config_dir) == target.checksum:
        raise ValidationError(f"Revision {revision_id}'s files are already in force.",
                              field="revision")

    def on_stage(name: str) -> None:
        if name in APPLY_STEPS:
            step(name)

    try:
        result = rollback(settings.config_dir, target.checksum, files=files, tools=tools,
                          progress=on_stage)
    except ApplyError as exc:
        step("record")
        return _record(session, actor, state="failed", checksum=target.checksum, files=files,
                       output=str(exc), settings=settings, rollback_of=target.id)
    step("record")
    return _record(session, actor, state="applied", checksum=target.checksum, files=files,
                   output=result.validation_output, settings=settings, rollback_of=target.id)


def config_status(session: Session) -> ConfigStatus:
    """(changed_at, applied_at, caught_up) for the panel's "servers up to date" indicator."""
    row = session.get(ServerSettings, 1)
    changed = row.config_changed_at if row is not None else None
    applied = row.config_applied_at if row is not None else None
    in_force_rollback = session.scalar(
        select(ConfigRevision.rollback_of_id).where(ConfigRevision.state == "applied")
        .order_by(ConfigRevision.id.desc()).limit(1)
    )
    pending = changes_pending(changed, applied)
    return ConfigStatus(changed, applied, not pending and in_force_rollback is None)


def changes_pending(changed: dt.datetime | None, applied: dt.datetime | None) -> bool:
    """Whether a change was made after the last apply's watermark (see the module docstring)."""
    return changed is not None and (applied is None or changed > applied)


LiveWord = t.Literal["live", "waiting", "delayed"]


@dataclasses.dataclass(frozen=True)
class LiveState:
    """Whether a committed change is in force on the mail servers, for the person who made it.

    ``live``: the servers have it. ``waiting``: an apply will bring it, automatically within
    about ``expected_seconds`` or, with ``automatic`` off, when the server admin applies.
    ``delayed``: the last apply after the change failed; the admin sees why on the dashboard.
    """

    state: LiveWord
    automatic: bool
    #: SQL mode: the servers read the database at each lookup, so data is live at commit.
    sql_mode: bool
    expected_seconds: int | None = None


def change_live_state(
    session: Session, changed_at: dt.datetime, *, settings_changed: bool = False
) -> LiveState:
    """Whether the change committed at `changed_at` (`changes.committed_change`) is in force.

    Anyone who made a change may ask about it: the answer says only whether the servers have
    caught up since then, nothing about what changed or for whom.
    """
    row = get_server_settings(session)
    automatic = bool(row.apply_automatically)
    sql_mode = row.stack_mode == "sql"
    if sql_mode and not settings_changed:
        return LiveState("live", automatic, sql_mode)
    applied = row.config_applied_at
    in_force = in_force_revision(session)
    rolled_back = in_force is not None and in_force.rollback_of_id is not None
    if applied is not None and applied >= changed_at and not rolled_back:
        return LiveState("live", automatic, sql_mode)
    newest = session.scalars(
        select(ConfigRevision).options(defer(ConfigRevision.files))
        .order_by(ConfigRevision.id.desc()).limit(1)
    ).first()
    if newest is not None and newest.state == "failed" and newest.created_at >= changed_at:
        return LiveState("delayed", automatic, sql_mode)
    return LiveState("waiting", automatic, sql_mode,
                     TYPICAL_AUTO_APPLY_SECONDS if automatic else None)


#: Audit actions that change what the mail servers are told (listed as pending changes).
_CONFIG_ACTIONS = ("mailbox.", "domain.", "forwarder.", "autoresponder.", "customer.suspend",
                   "customer.resume", "customer.delete", "reseller.suspend", "reseller.resume")
_NOT_CONFIG_ACTIONS = frozenset({"mailbox.usage_recalculate", "domain.self_service"})
PENDING_LISTED = 10


@dataclasses.dataclass(frozen=True)
class ApplyOverview:
    """The admin dashboard's view of the mail servers: what waits, how the last apply went."""

    status: ConfigStatus
    automatic: bool
    sql_mode: bool
    #: The newest revision (applied, failed or a rollback), without its files.
    last: ConfigRevision | None
    #: The newest audited changes made after the servers' watermark (at most PENDING_LISTED).
    pending: tuple[AuditEvent, ...]
    pending_count: int


def _is_config_event(event: AuditEvent) -> bool:
    if event.action == "settings.set":
        return event.object_label in RENDERED
    return (event.action.startswith(_CONFIG_ACTIONS)
            and event.action not in _NOT_CONFIG_ACTIONS)


def apply_overview(session: Session, actor: Actor) -> ApplyOverview:
    """Pending changes and the last apply's result, for the server admin (admin only)."""
    require_admin(actor, "can apply the mail server configuration")
    row = get_server_settings(session)
    status = config_status(session)
    last = session.scalars(
        select(ConfigRevision).options(defer(ConfigRevision.files))
        .order_by(ConfigRevision.id.desc()).limit(1)
    ).first()
    pending: list[AuditEvent] = []
    count = 0
    if not status.caught_up and status.changed_at is not None:
        query = select(AuditEvent).order_by(AuditEvent.id.desc())
        if status.applied_at is not None:
            query = query.where(AuditEvent.at > status.applied_at)
        # the audit trail past the watermark is short (an apply follows changes within
        # seconds, or the admin has a list to work through); cap it all the same
        for event in session.scalars(query.limit(500)):
            if _is_config_event(event):
                count += 1
                if len(pending) < PENDING_LISTED:
                    pending.append(event)
    return ApplyOverview(status, bool(row.apply_automatically), row.stack_mode == "sql", last,
                         tuple(pending), count)


# --------------------------------------------------------------------------- sandbox


def sandbox_snapshot(
    session: Session, actor: Actor, directory: str | Path, port_base: int
) -> StackSnapshot:
    """The database as it is now, rendered for a private sandbox under `directory`.

    Loopback, high ports (`port_base` + the standard port) and a scratch folder; the message
    size limit, the mail owner, the stack mode (files or SQL) and the Dovecot version come from
    the server settings, so the sandbox runs what production would.
    """
    require_admin(actor, "can apply the mail server configuration")
    return build_snapshot(session, sandbox_stack_settings(session, directory, port_base))


def sandbox_stack_settings(session: Session, directory: str | Path, port_base: int,
                           **overrides: object) -> StackSettings:
    """`sandbox_settings` for `directory` with what production would run from the server
    settings (mail owner, message size limit, mode, Dovecot version); `overrides` last (a
    sandboxed mail node's listen address and name)."""
    row = get_server_settings(session)
    version = row.dovecot_version
    if version == "auto":
        version = detect_dovecot_version()
    values: dict[str, object] = {
        "vmail_uid": row.vmail_uid or 5000, "vmail_gid": row.vmail_gid or 5000,
        "message_size_limit": row.message_size_limit or 50 * 1024 * 1024,
        "mode": row.stack_mode, "dovecot_version": version,
    }
    values.update(overrides)
    return sandbox_settings(directory, port_base, **values)  # type: ignore[arg-type]
