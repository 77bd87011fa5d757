"""Change tracking: note when the data the mail servers read has changed.

`install(factory)` registers listeners on a sessionmaker (``mailadmin.db`` does it for every
factory it makes). Whenever a flush adds, changes or deletes something the generated
configuration depends on - a Domain, Mailbox, Forwarder, ForwarderDestination,
Autoresponder or AppPassword, a mail node's name or address, a customer's ``is_suspended``,
or a server setting the renderer uses - the transaction sets
``ServerSettings.config_changed_at`` to the time of its commit.

The row is touched in ``before_commit`` (or in the commit's own final flush), not at the
first flush: the single settings row is then locked only for the moment of the commit, so
two panel requests do not queue behind each other for their whole transactions, and the
lock is always taken last (no deadlocks against row locks taken earlier). A reader that sees
the new ``config_changed_at`` therefore also sees the data it stands for, which is what lets
an apply record exactly up to which change the servers are current (see services.stack).

Bulk ``UPDATE``/``DELETE`` statements bypass flushes; the services do not use them on these
tables, and `mark_changed` is there for code that does.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from collections.abc import Iterable

from sqlalchemy import event, inspect, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..models import (
    AppPassword,
    Autoresponder,
    DkimKey,
    Domain,
    Forwarder,
    ForwarderDestination,
    Mailbox,
    MailNode,
    PanelUser,
    Role,
    ServerSettings,
    utcnow,
)
from ..server_settings_table import RENDERED

#: Columns whose change alters the rendered configuration (None: every change counts).
TRACKED: dict[type, frozenset[str] | None] = {
    Domain: frozenset({"name", "owner_id", "catchall_action", "catchall_reject_reason",
                       "catchall_target", "pending", "node_id"}),
    # every node's files name the others (proxy hosts, LMTP routes, trusted addresses); a
    # runner's check-in and apply bookkeeping on its row is no change
    MailNode: frozenset({"name", "address"}),
    Mailbox: frozenset({"domain_id", "local_part", "password_hash", "quota", "imap", "pop3",
                        "smtp", "suspend_login", "suspend_incoming", "suspend_outgoing",
                        "app_passwords_only"}),
    Forwarder: frozenset({"domain_id", "local_part", "keep_copy"}),
    ForwarderDestination: None,
    Autoresponder: None,
    AppPassword: None,
    # an active key is in OpenDKIM's tables; a new key signs only once it turns active
    DkimKey: frozenset({"state", "selector", "domain_id"}),
}
#: Server settings that reach the generated files (the settings table's rendered rows).
RENDERED_SETTINGS = RENDERED
_PENDING = "mailadmin.config_changed"
#: The PostgreSQL channel a change is announced on (LISTEN/NOTIFY).
NOTIFY_CHANNEL = "mailadmin_config"
_COMMITTING = "mailadmin.committing"
#: The config_changed_at this session's commits wrote, and whether a rendered server setting
#: was among the changes (read by the entry point after its commit, `committed_change`).
_STAMPED = "mailadmin.stamped"
_SETTINGS_CHANGED = "mailadmin.settings_changed"


class CommittedChange(t.NamedTuple):
    """What a committed transaction changed for the mail servers (see `committed_change`)."""

    #: The config_changed_at the commit wrote: the servers have the change once an apply's
    #: watermark (config_applied_at) reaches it.
    stamp: dt.datetime
    #: A server setting the renderer uses changed, which needs an apply even in SQL mode.
    settings: bool


def _changed_columns(obj: object, columns: frozenset[str]) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in columns)


def _affects_config(obj: object, *, dirty: bool, new: bool = False) -> bool:
    if isinstance(obj, PanelUser):
        if obj.role != Role.CUSTOMER.value or new:
            return False  # a new customer has no mail yet
        # a deleted customer takes its domains with it
        return not dirty or _changed_columns(obj, frozenset({"is_suspended"}))
    if isinstance(obj, ServerSettings):
        return dirty and _changed_columns(obj, RENDERED_SETTINGS)
    for cls, columns in TRACKED.items():
        if isinstance(obj, cls):
            return not dirty or columns is None or _changed_columns(obj, columns)
    return False


def flush_changes_config(session: Session) -> bool:
    """Whether the pending flush touches anything the mail servers' configuration uses."""
    if any(_affects_config(o, dirty=False, new=True) for o in session.new):
        return True
    if any(_affects_config(o, dirty=False) for o in session.deleted):
        return True
    return any(_affects_config(o, dirty=True) for o in session.dirty
               if session.is_modified(o, include_collections=False))


#: The smallest step between two stamps: equal stamps would hide a change from the
#: watermark comparison (``changed_at > applied_at``), and clocks can repeat a value.
_TICK = dt.timedelta(microseconds=1)


def _touch(session: Session) -> None:
    with session.no_autoflush:
        # Lock the row before taking the time (FOR UPDATE; SQLite's write lock serialises
        # anyway): a commit waiting here stamps after the one it waited for, so the stamps
        # follow the commit order and an apply's watermark never covers a change that was not
        # yet committed when the apply read the data.
        previous = session.scalar(
            select(ServerSettings.config_changed_at).where(ServerSettings.id == 1)
            .with_for_update())
        settings = session.get(ServerSettings, 1)
        if settings is None:
            settings = ServerSettings(id=1)
            session.add(settings)
        stamp = utcnow()
        if previous is not None and stamp <= previous:
            stamp = previous + _TICK
        settings.config_changed_at = stamp
    session.info[_STAMPED] = stamp
    session.info[_COMMIT_STAMP] = stamp
    if session.get_bind().dialect.name == "postgresql":
        # delivered at commit (never for a rollback) to every `mailadmin node run` listening,
        # so a node applies at once instead of at its next poll
        session.connection().exec_driver_sql(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')")


#: Domain ids and customer ids whose mail changed in this transaction, stamped with the
#: commit's config_changed_at by the commit's own flush (`_after_flush`).
_DOMAINS = "mailadmin.changed_domains"
_OWNERS = "mailadmin.changed_owners"
_COMMIT_STAMP = "mailadmin.commit_stamp"
#: Some change could not be traced to its domain: the commit stamps every domain.
_ALL = -1


def _loaded(obj: object, name: str) -> set[int]:
    """The value of a foreign key column as loaded and as changed in this flush (a row moved
    to another domain counts for both); {_ALL} when it is not loaded (never a lazy load)."""
    state = inspect(obj)
    values: set[int] = set()
    if name in state.dict and state.dict[name] is not None:
        values.add(state.dict[name])
    hist = state.attrs[name].history
    values.update(v for v in (*hist.deleted, *hist.unchanged) if v is not None)
    return values or {_ALL}


def _collect_domains(session: Session) -> None:
    """After a flush: note the domains (or customers) whose rendered mail it changed."""
    domains: set[int] = session.info.setdefault(_DOMAINS, set())
    owners: set[int] = session.info.setdefault(_OWNERS, set())
    mailbox_ids: set[int] = set()
    forwarder_ids: set[int] = set()
    changed = ([o for o in session.new if _affects_config(o, dirty=False, new=True)]
               + [o for o in session.deleted if _affects_config(o, dirty=False)]
               + [o for o in session.dirty if session.is_modified(o, include_collections=False)
                  and _affects_config(o, dirty=True)])
    for obj in changed:
        if isinstance(obj, Domain):
            domains.update(_loaded(obj, "id"))
        elif isinstance(obj, Mailbox | Forwarder | DkimKey):
            domains.update(_loaded(obj, "domain_id"))
        elif isinstance(obj, Autoresponder | AppPassword):
            mailbox_ids.update(_loaded(obj, "mailbox_id"))
        elif isinstance(obj, ForwarderDestination):
            forwarder_ids.update(_loaded(obj, "forwarder_id"))
        elif isinstance(obj, PanelUser):
            owners.update(_loaded(obj, "id"))
    for ids, table in ((mailbox_ids, Mailbox), (forwarder_ids, Forwarder)):
        if _ALL in ids:
            domains.add(_ALL)
        elif ids:
            # a parent deleted in the same flush is gone here, and stamped as itself
            domains.update(session.connection().execute(
                select(table.domain_id).where(table.id.in_(sorted(ids)))).scalars())


def _stamp_domains(session: Session, stamp: dt.datetime) -> None:
    domains: set[int] = session.info.pop(_DOMAINS, set())
    owners: set[int] = session.info.pop(_OWNERS, set())
    if not domains and not owners:
        return
    stmt = update(Domain).values(config_changed_at=stamp)
    if _ALL not in domains and _ALL not in owners:
        stmt = stmt.where(or_(Domain.id.in_(sorted(domains)),
                              Domain.owner_id.in_(sorted(owners))))
    session.connection().execute(stmt.execution_options(synchronize_session=False))


def _after_flush(session: Session, _context: t.Any) -> None:
    _collect_domains(session)
    stamp = session.info.get(_COMMIT_STAMP)
    if stamp is not None and session.info.get(_COMMITTING):
        _stamp_domains(session, stamp)


def committed_change(session: Session) -> CommittedChange | None:
    """What the session's last commit changed for the mail servers, once; None if nothing.

    The entry point calls it after its commit, to tell the person who made a change whether
    the change is already in force (`services.stack.change_live_state`).
    """
    stamp = session.info.pop(_STAMPED, None)
    settings = bool(session.info.pop(_SETTINGS_CHANGED, False))
    return None if stamp is None else CommittedChange(stamp, settings)


def mark_changed(session: Session, domain_ids: Iterable[int] | None = None) -> None:
    """Record a change by hand (for code that changes mail data with bulk statements): the
    commit stamps the domains `domain_ids`, or every domain when None (the next apply then
    renders everything)."""
    session.info[_PENDING] = True
    session.info.setdefault(_DOMAINS, set()).update(
        {_ALL} if domain_ids is None else domain_ids)


def _before_flush(session: Session, _context: t.Any, _instances: t.Any) -> None:
    if any(isinstance(o, ServerSettings) and _affects_config(o, dirty=True)
           for o in session.dirty):
        session.info[_SETTINGS_CHANGED] = True
    if flush_changes_config(session):
        if session.info.get(_COMMITTING):
            _touch(session)  # the commit's own flush: write it together with the data
        else:
            session.info[_PENDING] = True


def _before_commit(session: Session) -> None:
    session.info[_COMMITTING] = True
    if session.info.pop(_PENDING, False):
        _touch(session)  # written by the flush that commit() runs next


def _reset(session: Session, *_args: t.Any) -> None:
    session.info.pop(_COMMITTING, None)
    session.info.pop(_COMMIT_STAMP, None)
    session.info.pop(_DOMAINS, None)
    session.info.pop(_OWNERS, None)


def _after_rollback(session: Session) -> None:
    session.info.pop(_COMMITTING, None)
    session.info.pop(_COMMIT_STAMP, None)
    session.info.pop(_DOMAINS, None)
    session.info.pop(_OWNERS, None)
    session.info.pop(_PENDING, None)
    session.info.pop(_STAMPED, None)
    session.info.pop(_SETTINGS_CHANGED, None)


def install(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Track configuration changes on every session `factory` makes."""
    if not event.contains(factory, "before_flush", _before_flush):
        event.listen(factory, "before_flush", _before_flush)
        event.listen(factory, "after_flush", _after_flush)
        event.listen(factory, "before_commit", _before_commit)
        event.listen(factory, "after_commit", _reset)
        event.listen(factory, "after_rollback", _after_rollback)
    return factory
