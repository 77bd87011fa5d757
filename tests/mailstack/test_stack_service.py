"""services.stack against real servers started from what `apply_config` wrote.

Server settings point the generated config at a scratch folder and loopback high ports; the
data is made through the mail services; every check is a real IMAP / SMTP conversation.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import typing as t

import pytest
from sqlalchemy import func, select

from mailadmin.errors import PermissionDenied, ValidationError
from mailadmin.mailstack import current_release
from mailadmin.models import ConfigRevision, Domain, Mailbox, PanelUser, Role, ServerSettings
from mailadmin.services import mailboxes, resellers
from mailadmin.services import stack as stack_service
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings
from mailadmin.workers import apply_watcher

from .conftest import SERVICE_PASSWORD, ServiceStack, eventually

pytestmark = pytest.mark.mailstack
OP = Actor.operator()



def svc_box(session: t.Any, local_part: str) -> Mailbox:
    """A mailbox of the fixture's own domain (other tests import more domains into it)."""
    return session.scalars(select(Mailbox).join(Domain).where(
        Mailbox.local_part == local_part, Domain.name == "svc.test")).one()

def revision_count(svc: ServiceStack) -> int:
    with svc.factory() as s:
        return s.scalar(select(func.count()).select_from(ConfigRevision)) or 0


def status(svc: ServiceStack) -> stack_service.ConfigStatus:
    with svc.factory() as s:
        return stack_service.config_status(s)


def rcpt(svc: ServiceStack, address: str) -> tuple[int, bytes]:
    s = svc.smtp()
    s.mail("someone@remote.test")
    code, text = s.rcpt(address)
    s.quit()
    return code, text


def test_apply_records_revision_and_servers_follow(service_stack: ServiceStack) -> None:
    svc = service_stack
    svc.apply()  # start from "caught up"
    assert status(svc).caught_up
    with svc.unit() as s:
        mailboxes.create_mailbox(s, OP, "newbie@svc.test", SERVICE_PASSWORD)
    st = status(svc)
    assert not st.caught_up and st.changed_at is not None and st.applied_at is not None
    assert st.changed_at > st.applied_at
    t0 = time.monotonic()
    report = svc.apply()
    rev = report.revision
    assert rev.state == "applied" and not report.already_applied
    assert rev.created_by.startswith("operator") and rev.applied_at is not None
    assert "doveconf -n: ok" in (rev.validation_output or "")
    # main.cf and master.cf are the release in force's, which postfix check passed
    assert "postfix check: main.cf and master.cf as in the release in force" in (
        rev.validation_output or "")
    assert "doveadm reload: ok" in (rev.validation_output or "")
    # only the domain of the new mailbox was read and rendered
    assert "incremental render: svc.test" in (rev.validation_output or "")
    assert current_release(svc.settings.config_dir) == rev.checksum
    assert status(svc).caught_up
    assert eventually(lambda: svc.imap_login("newbie@svc.test", SERVICE_PASSWORD)[0])
    print(f"create mailbox -> apply -> IMAP login: {time.monotonic() - t0:.2f}s")
    with svc.factory() as s:
        states = dict(s.execute(select(ConfigRevision.id, ConfigRevision.state)).all())
        assert list(states.values()).count("applied") == 1 and states[rev.id] == "applied"
        assert "superseded" in states.values()
        files = json.loads(s.get(ConfigRevision, rev.id).files)  # type: ignore[union-attr]
    assert "newbie@svc.test:" in files["dovecot/users"]


def test_unchanged_checksum_is_already_applied(service_stack: ServiceStack) -> None:
    svc = service_stack
    first = svc.apply()
    count = revision_count(svc)
    link = current_release(svc.settings.config_dir)
    again = svc.apply()
    assert again.already_applied and again.revision.id == first.revision.id
    assert revision_count(svc) == count
    assert current_release(svc.settings.config_dir) == link


def test_only_the_admin_applies(service_stack: ServiceStack) -> None:
    with service_stack.unit() as s:
        customer = s.scalars(select(PanelUser).where(PanelUser.username == "svc-cust")).one()
        with pytest.raises(PermissionDenied):
            stack_service.apply_config(s, Actor.for_user(customer, channel="cli"))
        with pytest.raises(PermissionDenied):
            stack_service.list_revisions(s, Actor.for_user(customer, channel="cli"))


def test_suspended_customer_mailboxes_refused_and_restored(service_stack: ServiceStack) -> None:
    svc = service_stack
    svc.apply()
    assert svc.imap_login("sam@susp.test", SERVICE_PASSWORD)[0]
    assert rcpt(svc, "sue@susp.test")[0] == 250
    with svc.unit() as s:
        resellers.set_customer_suspended(s, OP, "svc-susp", True)
    assert not status(svc).caught_up  # suspending a customer is a config change
    t0 = time.monotonic()
    assert svc.apply().revision.state == "applied"
    assert eventually(lambda: not svc.imap_login("sam@susp.test", SERVICE_PASSWORD)[0])
    code, text = rcpt(svc, "sue@susp.test")
    assert code == 550 and b"suspended and does not accept mail" in text, text
    sub, code, _ = svc.submission("sam@susp.test", SERVICE_PASSWORD)
    sub.close()
    assert code == 535  # login suspended covers submission too
    suspended_for = time.monotonic() - t0
    # the mailboxes' own flags are untouched
    with svc.factory() as s:
        flags = s.execute(select(Mailbox.suspend_login, Mailbox.suspend_incoming,
                                 Mailbox.suspend_outgoing).where(
            Mailbox.local_part.in_(["sam", "sue"]))).all()
    assert all(not any(row) for row in flags), flags
    # neighbours of another customer are unaffected
    assert svc.imap_login("anna@svc.test", SERVICE_PASSWORD)[0]
    with svc.unit() as s:
        resellers.set_customer_suspended(s, OP, "svc-susp", False)
    t1 = time.monotonic()
    svc.apply()
    assert eventually(lambda: svc.imap_login("sam@susp.test", SERVICE_PASSWORD)[0])
    assert rcpt(svc, "sue@susp.test")[0] == 250
    print(f"customer suspension followed in {suspended_for:.2f}s, "
          f"resume in {time.monotonic() - t1:.2f}s")


def test_rollback_and_diff(service_stack: ServiceStack) -> None:
    svc = service_stack
    good = svc.apply().revision
    with svc.unit() as s:
        box = svc_box(s, "ben")
        box.imap = False
    bad = svc.apply().revision
    assert bad.id != good.id and bad.state == "applied"
    assert eventually(lambda: not svc.imap_login("ben@svc.test", SERVICE_PASSWORD)[0])
    with svc.factory() as s:
        diff = stack_service.diff_revisions(s, OP, good.id, bad.id)
        pending = stack_service.diff_pending(s, OP)
    changed = [line for line in diff.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ["+ben@svc.test:::::::nodelay"], diff
    assert pending == ""  # the database is what is in force

    with svc.unit() as s:
        back = stack_service.rollback_to(s, OP, good.id)
    assert back.state == "applied" and back.rollback_of_id == good.id
    assert back.checksum == good.checksum
    assert current_release(svc.settings.config_dir) == good.checksum
    assert eventually(lambda: svc.imap_login("ben@svc.test", SERVICE_PASSWORD)[0])
    with svc.factory() as s:
        assert s.get(ConfigRevision, bad.id).state == "rolled_back"  # type: ignore[union-attr]
        # the servers now run an older config than the database says
        assert not stack_service.config_status(s).caught_up
        assert "+ben@svc.test:::::::nodelay" in stack_service.diff_pending(s, OP)
        with pytest.raises(ValidationError, match="already in force"):
            stack_service.rollback_to(s, OP, good.id)
    with svc.unit() as s:
        svc_box(s, "ben").imap = True
    assert svc.apply().revision.checksum == good.checksum
    assert status(svc).caught_up


def test_change_tracking_marks_only_config_changes(service_stack: ServiceStack) -> None:
    svc = service_stack

    def changed_at() -> dt.datetime | None:
        with svc.factory() as s:
            return s.scalar(select(ServerSettings.config_changed_at))

    before = changed_at()
    with svc.unit() as s:  # usage figures are not configuration
        box = svc_box(s, "anna")
        box.usage_bytes = (box.usage_bytes or 0) + 1
    with svc.unit() as s:  # that edit went behind the services' back: the counters follow it
        from mailadmin.services import counters

        counters.recount(s, OP)
    with svc.unit() as s:  # a panel reseller is not mail data
        s.add(PanelUser(username="svc-reseller-x", role=Role.RESELLER.value, password_hash="x"))
    assert changed_at() == before
    with svc.unit() as s:  # a rolled-back change marks nothing
        svc_box(s, "anna").pop3 = False
        s.flush()
        s.rollback()
    assert changed_at() == before
    for change in (
        lambda s: setattr(svc_box(s, "anna"), "quota", 5 * 1024**3),
        lambda s: setattr(get_server_settings(s), "message_size_limit", 3 * 1024 * 1024),
    ):
        time.sleep(0.01)
        mark = changed_at()
        with svc.unit() as s:
            change(s)
        assert (changed_at() or mark) > mark  # type: ignore[operator]
    with svc.unit() as s:
        svc_box(s, "anna").quota = 0
        get_server_settings(s).message_size_limit = 1024 * 1024


def test_watcher_applies_once_after_a_burst(service_stack: ServiceStack) -> None:
    svc = service_stack
    svc.apply()
    count = revision_count(svc)
    applied: list[stack_service.ApplyReport] = []
    stop = threading.Event()
    watcher = threading.Thread(target=apply_watcher.watch, args=(svc.factory,), kwargs={
        "quiet_seconds": 1.0, "interval": 0.05, "stop": stop, "on_apply": applied.append})
    watcher.start()
    try:
        burst = [f"burst{i}@svc.test" for i in range(5)]
        t0 = time.monotonic()
        for address in burst:  # five commits, 0.3 s apart: one burst
            with svc.unit() as s:
                mailboxes.create_mailbox(s, OP, address, SERVICE_PASSWORD)
            time.sleep(0.3)
        last_change = time.monotonic()
        assert eventually(lambda: status(svc).caught_up, timeout=15)
        caught_up_after = time.monotonic() - t0
        time.sleep(1.5)  # room for a (wrong) second apply
    finally:
        stop.set()
        watcher.join(10)
    assert len(applied) == 1, [r.revision.id for r in applied]
    assert revision_count(svc) == count + 1
    rev = applied[0].revision
    assert rev.state == "applied" and rev.created_by.startswith("auto-apply")
    with svc.factory() as s:
        users = json.loads(s.get(ConfigRevision, rev.id).files)["dovecot/users"]  # type: ignore[union-attr]
    assert all(f"{a}:" in users for a in burst)
    assert time.monotonic() - last_change > 1.0
    assert eventually(lambda: svc.imap_login("burst4@svc.test", SERVICE_PASSWORD)[0])
    print(f"burst of 5 changes over 1.5 s: one apply, caught up {caught_up_after:.2f}s "
          "after the first change")


def test_serve_auto_apply_thread_obeys_the_setting(service_stack: ServiceStack) -> None:
    """The thread `mailadmin serve` starts applies only while apply_automatically is on."""
    svc = service_stack
    # switched off by the admin (the first successful apply turns it on otherwise)
    svc.set_settings(apply_automatically="false")
    svc.apply()
    thread, stop = apply_watcher.start_auto_apply(svc.factory, quiet_seconds=0.3,
                                                  interval=0.05)
    try:
        with svc.unit() as s:
            mailboxes.create_mailbox(s, OP, "auto@svc.test", SERVICE_PASSWORD)
        time.sleep(1.0)
        assert not status(svc).caught_up  # off: nothing applied
        svc.set_settings(apply_automatically="true")
        t0 = time.monotonic()
        assert eventually(lambda: status(svc).caught_up, timeout=15)
        print(f"auto-apply after switching it on: {time.monotonic() - t0:.2f}s")
        assert eventually(lambda: svc.imap_login("auto@svc.test", SERVICE_PASSWORD)[0])
    finally:
        stop.set()
        thread.join(10)
        svc.set_settings(apply_automatically="false")
    assert not thread.is_alive()


def test_old_revisions_drop_their_files(service_stack: ServiceStack,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    svc = service_stack
    monkeypatch.setattr(stack_service, "KEEP_FILES", 2)
    first = svc.apply().revision
    for quota in (7 * 1024**3, 0):
        with svc.unit() as s:
            svc_box(s, "ben").quota = quota
        assert svc.apply().revision.state == "applied"
    with svc.factory() as s:
        rows = s.execute(select(ConfigRevision.id, ConfigRevision.state, ConfigRevision.files)
                         .order_by(ConfigRevision.id.desc())).all()
        kept = [r.id for r in rows if r.files != "{}"]
        assert kept == [r.id for r in rows[:2]], kept
        assert first.id not in kept
        with pytest.raises(ValidationError, match="no longer kept"):
            stack_service.rollback_to(s, OP, first.id)
