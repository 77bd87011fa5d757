"""Is it live? (issue 15) After a change the pages say whether the mail servers have it or it
waits; the admin dashboard lists pending changes and the last apply's result, in the tools'
own words on failure; automatic apply switches on with the first successful apply.

Applies here run the real doveconf/postconf/postfix check on a scratch folder (as the form
crawler does); the password that then works in the real Dovecot is in
tests/browser/test_mailbox_password_reaches_dovecot.py.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import typing as t
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.lab.sandbox import ensure_vmail_user, prepare_dirs
from mailadmin.mailstack import settings_from_server_settings
from mailadmin.models import AuditEvent, ServerSettings
from mailadmin.services import server_settings as settings_service
from mailadmin.services import stack as stack_service
from mailadmin.services.changes import committed_change
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings

from .test_selfservice import (  # noqa: F401  (mail_app is a fixture used below)
    NEW_PASSWORD,
    PASSWORD,
    mail_app,
    mailbox_sign_in,
)
from .web import csrf_token, sign_in, submit

OP = Actor.operator()


@pytest.fixture
def scratch() -> t.Iterator[Path]:
    """A short folder for the servers' paths (run_dir may have 60 characters at most)."""
    folder = Path(tempfile.mkdtemp(prefix="live-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def scratch_folders(factory: sessionmaker[Session], scratch: Path) -> None:
    with transaction(factory) as s:
        row = get_server_settings(s)
        for name in ("config_output_dir", "mail_root", "run_dir", "state_dir", "queue_dir",
                     "log_dir"):
            setattr(row, name, str(scratch / name))
        settings = settings_from_server_settings(row)
    ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
    prepare_dirs(settings)


def apply(factory: sessionmaker[Session]) -> t.Any:
    with transaction(factory) as s:
        revision = stack_service.apply_config(s, OP)
        return revision.state, revision.validation_output


def live_state(factory: sessionmaker[Session], at: dt.datetime, **kw: t.Any) -> str:
    with factory() as s:
        return stack_service.change_live_state(s, at, **kw).state


def change_something(factory: sessionmaker[Session]) -> dt.datetime:
    """A committed change the mail servers read; its stamp as the entry point sees it."""
    with factory() as s, s.begin():
        row = get_server_settings(s)
        row.message_size_limit = (row.message_size_limit or 0) + 1024 * 1024
    change = committed_change(s)
    assert change is not None and change.settings
    return change.stamp


def test_a_commit_that_changes_nothing_for_the_servers_has_no_stamp(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as s, s.begin():
        get_server_settings(s).min_password_length = 12  # not rendered
    assert committed_change(s) is None


def test_waiting_until_an_apply_then_live(
    session_factory: sessionmaker[Session], scratch: Path,
) -> None:
    scratch_folders(session_factory, scratch)
    at = change_something(session_factory)
    assert live_state(session_factory, at) == "waiting"
    state, output = apply(session_factory)
    assert state == "applied", output
    assert live_state(session_factory, at) == "live"
    later = change_something(session_factory)
    assert live_state(session_factory, later) == "waiting"


def test_a_failed_apply_after_the_change_is_delayed(
    session_factory: sessionmaker[Session], scratch: Path,
) -> None:
    scratch_folders(session_factory, scratch)
    with transaction(session_factory) as s:
        settings_service.update_settings(s, OP, {
            "tls_cert_file": str(scratch / "missing-cert.pem"),
            "tls_key_file": str(scratch / "missing-key.pem")})
    at = change_something(session_factory)
    state, output = apply(session_factory)
    assert state == "failed"
    assert "missing-cert.pem" in output  # the tool's own words
    assert live_state(session_factory, at) == "delayed"


def test_sql_mode_is_live_at_commit_but_not_for_server_settings(
    session_factory: sessionmaker[Session],
) -> None:
    with transaction(session_factory) as s:
        get_server_settings(s).stack_mode = "sql"
    at = dt.datetime.now(dt.UTC)
    assert live_state(session_factory, at) == "live"
    assert live_state(session_factory, at, settings_changed=True) == "waiting"


def test_the_wait_said_depends_on_automatic_apply(
    session_factory: sessionmaker[Session],
) -> None:
    at = dt.datetime.now(dt.UTC)
    with session_factory() as s:
        manual = stack_service.change_live_state(s, at)
    assert (manual.state, manual.automatic, manual.expected_seconds) == ("waiting", False, None)
    with transaction(session_factory) as s:
        settings_service.set_setting(s, OP, "apply_automatically", "true")
    with session_factory() as s:
        automatic = stack_service.change_live_state(s, at)
    assert automatic.expected_seconds == stack_service.TYPICAL_AUTO_APPLY_SECONDS


def test_the_first_successful_apply_switches_automatic_apply_on(
    session_factory: sessionmaker[Session], scratch: Path,
) -> None:
    scratch_folders(session_factory, scratch)
    with session_factory() as s:
        assert get_server_settings(s).apply_automatically is False
    assert apply(session_factory)[0] == "applied"
    with session_factory() as s:
        assert get_server_settings(s).apply_automatically is True
        event = s.scalars(select(AuditEvent).where(
            AuditEvent.object_label == "apply_automatically")).one()
        assert json.loads(event.after or "{}")["why"] == "first successful apply"


def test_an_admins_choice_stays(session_factory: sessionmaker[Session], scratch: Path) -> None:
    scratch_folders(session_factory, scratch)
    with transaction(session_factory) as s:
        settings_service.set_setting(s, OP, "apply_automatically", "true")
        settings_service.set_setting(s, OP, "apply_automatically", "false")
    assert apply(session_factory)[0] == "applied"
    with session_factory() as s:
        assert get_server_settings(s).apply_automatically is False


def test_a_failed_first_apply_does_not_switch_it_on(
    session_factory: sessionmaker[Session], scratch: Path,
) -> None:
    scratch_folders(session_factory, scratch)
    with transaction(session_factory) as s:
        settings_service.update_settings(s, OP, {
            "tls_cert_file": str(scratch / "nope.pem"), "tls_key_file": str(scratch / "k.pem")})
    assert apply(session_factory)[0] == "failed"
    with session_factory() as s:
        assert get_server_settings(s).apply_automatically is False


# --------------------------------------------------------------------------- pages


@pytest.fixture
def web(mail_app: t.Any) -> t.Any:  # noqa: F811
    return mail_app.test_client()


def test_after_a_password_change_the_page_says_waiting(web: t.Any) -> None:
    assert mailbox_sign_in(web, "anna@example.org").status_code == 302
    assert web.get("/live-status").get_json() == {"state": "none", "message": None}
    answer = submit(web, "/me/password", {"current_password": PASSWORD,
                                          "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert answer.status_code == 302
    page = web.get("/me/").get_data(as_text=True)
    assert 'id="live-status"' in page and "data-state=\"waiting\"" in page
    assert "Until then your mail programs still use the old password" in page
    status = web.get("/live-status").get_json()
    assert status["state"] == "waiting"
    assert "when the server admin next applies changes" in status["message"]


def test_sql_mode_says_the_password_works_now_and_then_forgets(
    web: t.Any, session_factory: sessionmaker[Session],
) -> None:
    with transaction(session_factory) as s:
        get_server_settings(s).stack_mode = "sql"
    mailbox_sign_in(web, "anna@example.org")
    submit(web, "/me/password", {"current_password": PASSWORD, "password": NEW_PASSWORD,
                                 "confirm": NEW_PASSWORD})
    page = web.get("/me/").get_data(as_text=True)
    assert "Your new password works in your mail programs now." in page
    assert 'id="live-status"' not in web.get("/me/").get_data(as_text=True)


def test_a_refused_change_leaves_no_notice(web: t.Any) -> None:
    mailbox_sign_in(web, "anna@example.org")
    answer = submit(web, "/me/password", {"current_password": "wrong wrong 1",
                                          "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert answer.status_code in (401, 422)
    assert 'id="live-status"' not in web.get("/me/").get_data(as_text=True)


def test_a_stranger_learns_nothing(web: t.Any) -> None:
    answer = web.get("/live-status")
    assert answer.get_json() == {"state": "none", "message": None}
    assert answer.headers["Cache-Control"] == "no-store"


def test_the_admin_dashboard_shows_pending_changes_and_the_tools_words(
    web: t.Any, make_user: t.Any, session_factory: sessionmaker[Session], scratch: Path,
) -> None:
    make_user("root", "admin")
    scratch_folders(session_factory, scratch)
    assert sign_in(web, "root", "correct horse 9").status_code == 302
    page = web.get("/dashboard").get_data(as_text=True)
    assert 'data-testid="pending-changes"' in page and "mailbox.create" in page
    assert "Nothing has been applied yet." in page

    with transaction(session_factory) as s:
        settings_service.update_settings(s, OP, {
            "tls_cert_file": str(scratch / "gone.pem"), "tls_key_file": str(scratch / "k.pem")})
    failed = submit(web, "/admin/config/apply", {}, page="/admin/revisions", follow=True)
    assert "gone.pem" in failed.get_data(as_text=True)  # the flash quotes the tool
    page = web.get("/dashboard").get_data(as_text=True)
    assert 'data-testid="apply-output"' in page and "gone.pem" in page

    with transaction(session_factory) as s:
        settings_service.update_settings(s, OP, {"tls_cert_file": "", "tls_key_file": ""})
    submit(web, "/admin/config/apply", {}, page="/admin/revisions")
    page = web.get("/dashboard").get_data(as_text=True)
    assert "Up to date" in page and 'data-testid="pending-changes"' not in page
    with session_factory() as s:
        assert s.get(ServerSettings, 1).apply_automatically is True  # type: ignore[union-attr]


def test_other_roles_see_no_mail_server_box(web: t.Any) -> None:
    assert sign_in(web, "alice", "correct horse 9").status_code == 302
    assert 'data-testid="mail-servers"' not in web.get("/dashboard").get_data(as_text=True)


def test_a_customers_mailbox_password_change_waits_too(web: t.Any) -> None:
    assert sign_in(web, "alice", "correct horse 9").status_code == 302
    page = web.get("/mailboxes/anna@example.org").get_data(as_text=True)
    token = csrf_token(page)
    answer = web.post("/mailboxes/anna@example.org/password",
                      data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD,
                            "csrf_token": token})
    assert answer.status_code == 302
    page = web.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Until then mail programs still use the old password." in page
    assert "must use the new password now" not in page


def test_a_sign_in_that_upgrades_the_hash_announces_nothing(
    web: t.Any, session_factory: sessionmaker[Session],
) -> None:
    from passlib.hash import md5_crypt

    from .test_selfservice import set_flags

    set_flags(session_factory, "anna@example.org",
              password_hash="{MD5-CRYPT}" + md5_crypt.hash(PASSWORD))
    with session_factory() as s:
        before = s.get(ServerSettings, 1)
        changed_before = before.config_changed_at if before else None
    assert mailbox_sign_in(web, "anna@example.org").status_code == 302
    with session_factory() as s:
        row = s.get(ServerSettings, 1)
        assert row is not None and row.config_changed_at != changed_before  # it was a change
    assert 'id="live-status"' not in web.get("/me/").get_data(as_text=True)


def test_stamps_follow_the_commit_order(backend_url: str) -> None:
    """A commit that waited for another one's lock on the settings row stamps after it, so an
    apply's watermark can never cover a change that was not committed when it read the data
    (on PostgreSQL and MariaDB; SQLite lets one writer at a time and only needs the tick)."""
    import threading

    from sqlalchemy import update

    from mailadmin import migrate
    from mailadmin.db import make_engine, make_session_factory

    engine = make_engine(backend_url)
    try:
        migrate.upgrade(engine)
        factory = make_session_factory(engine)
        with transaction(factory) as s:
            get_server_settings(s)
        first = change_something(factory)
        assert change_something(factory) > first  # even if the clock repeats itself
        if engine.dialect.name == "sqlite":
            return
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
        blocker = factory()
        blocker.begin()
        blocker.execute(update(ServerSettings).where(ServerSettings.id == 1)
                        .values(config_changed_at=later))  # holds the row lock
        stamps: list[dt.datetime] = []
        waiting = threading.Thread(target=lambda: stamps.append(change_something(factory)))
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive(), "the second commit should wait for the row lock"
        blocker.commit()
        blocker.close()
        waiting.join(30)
        assert stamps and stamps[0] > later
        with factory() as s:
            row = s.get(ServerSettings, 1)
            assert row is not None and row.config_changed_at == stamps[0]
    finally:
        engine.dispose()


def test_only_the_admin_gets_the_apply_overview(
    session_factory: sessionmaker[Session], make_user: t.Any,
) -> None:
    from mailadmin.errors import PermissionDenied

    from .factories import actor

    make_user("rita", "reseller")
    make_user("carol", "customer")
    for name in ("rita", "carol"):
        with session_factory() as s, pytest.raises(PermissionDenied):
            stack_service.apply_overview(s, actor(session_factory, name))
    with session_factory() as s:
        assert stack_service.apply_overview(s, OP).last is None
