"""Issue 7 against real Dovecot + Postfix: account checks, live login test, the mail log.

Runs its own sandbox (another port base, its own migrated SQLite database with a
ServerSettings row naming the log folder and the loopback ports), so it can create the
mailboxes, the bounce and the deferral it needs without touching the shared `stack` fixture.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import re
import shutil
import tempfile
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailadmin import migrate
from mailadmin.cli import main
from mailadmin.db import make_engine
from mailadmin.diagnostics import classify
from mailadmin.diagnostics.account import check_account
from mailadmin.diagnostics.live import run_live_test, targets_from_settings
from mailadmin.diagnostics.maillog import search_log
from mailadmin.lab.sandbox import (
    ensure_vmail_user,
    free_port_base,
    sandbox_apply,
    sandbox_settings,
    start_sandbox,
    stop_sandbox,
)
from mailadmin.mailstack import build_snapshot
from mailadmin.models import Domain, Mailbox, PanelUser, Role, ServerSettings
from mailadmin.services import accounts
from mailadmin.services.context import Actor
from mailadmin.sizes import format_size
from tests.web import sign_in, submit

from .conftest import (
    PASSWORD,
    Stack,
    dovecot_hash,
    eventually,
    fresh_ip,
    imap_connection,
    require_stack,
)

pytestmark = pytest.mark.mailstack

PANEL_PW = "customer pass 1234"
LEAK_PW = "Leak-Canary-pw-58213"
QUOTA = 2048


def _populate(s: Session, settings: t.Any) -> None:
    c1 = accounts.create_panel_user(s, Actor.operator(), "cust1", PANEL_PW, Role.CUSTOMER)
    c2 = accounts.create_panel_user(s, Actor.operator(), "cust2", PANEL_PW, Role.CUSTOMER)
    doms = {"example.test": Domain(name="example.test", owner_id=c1.id, catchall_action="reject"),
            "other.test": Domain(name="other.test", owner_id=c2.id, catchall_action="reject")}
    s.add_all(doms.values())
    s.flush()
    pw = dovecot_hash(PASSWORD)
    boxes: list[tuple[str, dict[str, t.Any]]] = [
        ("healthy@example.test", {}), ("live@example.test", {}), ("bob@example.test", {}),
        ("noimap@example.test", {"imap": False}), ("nosmtp@example.test", {"smtp": False}),
        ("suspended@example.test", {"suspend_login": True}),
        ("nosend@example.test", {"suspend_outgoing": True}),
        ("small@example.test", {"quota": QUOTA}), ("tiny@example.test", {"quota": QUOTA}),
        ("defer@example.test", {}), ("carol@other.test", {}),
        ("leak@example.test", {"password_hash": dovecot_hash(LEAK_PW)}),
    ]
    for addr, kw in boxes:
        local, _, dom = addr.partition("@")
        s.add(Mailbox(domain_id=doms[dom].id, local_part=local,
                      password_hash=kw.pop("password_hash", pw), **kw))
    ports = settings.ports
    s.add(ServerSettings(
        id=1, log_dir=settings.log_dir, smtp_host="127.0.0.1", imap_host="127.0.0.1",
        pop3_host="127.0.0.1", submission_port=ports.submission, smtps_port=0,
        imap_port=ports.imap, imap_starttls_port=ports.imap, pop3_port=ports.pop3,
        pop3_starttls_port=ports.pop3, mail_root=settings.mail_root))


@pytest.fixture(scope="module")
def diag() -> Iterator[Stack]:
    require_stack()
    directory = Path(tempfile.mkdtemp(prefix="mdg-", dir="/tmp"))
    directory.chmod(0o755)
    settings = sandbox_settings(directory, free_port_base(start=30000),
                                message_size_limit=1024 * 1024)
    ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
    engine = make_engine(f"sqlite:///{directory}/panel.sqlite")
    migrate.upgrade(engine)
    with Session(engine) as s:
        _populate(s, settings)
        s.commit()
        snapshot = build_snapshot(s, settings)
    sandbox_apply(snapshot)
    # defer@'s home is a plain file: Dovecot cannot create its Maildir, so LMTP answers 4xx
    # and Postfix defers the message (a real deferral with the server's reply).
    home = Path(settings.mail_root) / "example.test" / "defer"
    home.parent.mkdir(parents=True, exist_ok=True)
    os.chown(home.parent, settings.vmail_uid, settings.vmail_gid)
    home.write_text("not a folder\n")
    info = start_sandbox(directory, settings.ports.smtp - 25)
    try:
        yield Stack(info, settings, engine, directory / "log")
    finally:
        stop_sandbox(directory)
        engine.dispose()
        if os.environ.get("MAILSTACK_KEEP") is None:
            shutil.rmtree(directory, ignore_errors=True)


def _actor(s: Session, name: str) -> Actor:
    user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
    return Actor.for_user(user, channel="panel")


def _report(diag: Stack, reply: str, address: str | None, who: str = "cust1") -> t.Any:
    findings = classify(reply)
    assert findings, reply
    with diag.session() as s:
        return check_account(s, _actor(s, who), findings, address=address)


# --------------------------------------------------------------------------- account checks


def test_smtp_off_is_named_not_the_password(diag: Stack) -> None:
    ok, reply = diag.submission_login("nosmtp@example.test")
    assert not ok and reply.startswith("535"), reply
    report = _report(diag, reply, "nosmtp@example.test")
    assert "protocol_off" in report.causes and "password_wrong" not in report.causes
    assert "SMTP" in report.account_caused[0].title
    assert not report.account_fine


def test_login_suspended_is_named(diag: Stack) -> None:
    ok, reply = diag.imap_login("suspended@example.test")
    assert not ok and "AUTHENTICATIONFAILED" in reply, reply
    report = _report(diag, reply, "suspended@example.test")
    assert report.causes[0] == "login_suspended", report.causes
    assert "password_wrong" not in report.causes


def test_wrong_password_on_a_healthy_mailbox_says_the_account_is_fine(diag: Stack) -> None:
    for ok, reply in (diag.imap_login("healthy@example.test", "wrong"),
                      diag.submission_login("healthy@example.test", "wrong"),
                      diag.pop3_login("healthy@example.test", "wrong")):
        assert not ok
        report = _report(diag, reply, "healthy@example.test")
        assert report.causes == ("password_wrong",), (reply, report.causes)
        assert report.account_fine and "password is wrong" in report.summary.lower() + \
            report.checks[0].title.lower()


def _imap_usage(diag: Stack, user: str) -> int:
    with imap_connection(diag.ports.imap) as c:
        c.login(user, PASSWORD)
        _, data = c.getquotaroot("INBOX")
        c.logout()
    text = b" ".join(x for x in data[1] if isinstance(x, bytes)).decode()
    match = re.search(r"STORAGE (\d+) (\d+)", text)
    assert match, text
    return int(match.group(1)) * 1024


def test_over_quota_names_usage_and_when_read(diag: Stack) -> None:
    diag.send("someone@remote.test", ["small@example.test"], subject="fill", size=1100)
    assert diag.wait_for_subject("small@example.test", "fill")
    usage = _imap_usage(diag, "small@example.test")  # what a usage reader stores
    read_at = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
    with diag.session() as s:
        m = diag.mailbox(s, "small@example.test")
        m.usage_bytes, m.usage_read_at = usage, read_at
        s.commit()
    smtp = diag.smtp()
    smtp.mail("someone@remote.test", ["SIZE=5000"])
    code, text = smtp.rcpt("small@example.test")
    smtp.quit()
    reply = f"{code} {text.decode()}"
    assert code == 552, reply
    report = _report(diag, reply, None)
    check = report.account_caused[0]
    assert check.cause == "over_quota" and check.address == "small@example.test"
    assert "2026-01-02 03:04" in check.detail, check.detail
    assert f"{format_size(usage)} of {format_size(QUOTA)}" in check.detail, check.detail


def test_data_without_a_valid_rcpt_names_sending_suspended(diag: Stack) -> None:
    smtp, code, _ = diag.submission("nosend@example.test")
    assert code == 235
    smtp.mail("nosend@example.test")
    rcpt_code, _ = smtp.rcpt("bob@example.test")
    code, text = smtp.docmd("DATA")
    smtp.quit()
    # Postfix answers DATA after refused recipients with 554 5.5.1 "no valid recipients"
    assert rcpt_code == 550 and code in (503, 554) and b"5.5.1" in text, (rcpt_code, code, text)
    reply = f"{code} {text.decode()}"
    assert classify(reply)[0].family == "rcpt_before_data"
    report = _report(diag, reply, "nosend@example.test")
    assert "sending_suspended" in report.causes, report.causes
    # the same mistake from a healthy mailbox: the account is fine, the client is at fault
    smtp, code, _ = diag.submission("healthy@example.test")
    code, text = smtp.docmd("DATA")
    smtp.quit()
    report = _report(diag, f"{code} {text.decode()}", "healthy@example.test")
    assert report.account_fine and report.causes == ("account_fine",), report.causes


def test_customer_cannot_check_another_customers_address(diag: Stack) -> None:
    _ok, reply = diag.submission_login("carol@other.test", "wrong")
    report = _report(diag, reply, "carol@other.test", who="cust1")
    assert report.causes == ("not_in_your_account",)
    missing = _report(diag, reply, "nobody@nowhere.test", who="cust1")
    assert [c.detail for c in missing.checks] == [c.detail for c in report.checks]


# --------------------------------------------------------------------------- live login test


def _live(diag: Stack, address: str, password: str = PASSWORD) -> t.Any:
    with diag.session() as s:
        settings = s.get(ServerSettings, 1)
        assert settings is not None
        report = run_live_test(s, _actor(s, "cust1"), address, password,
                               targets=targets_from_settings(settings), source=fresh_ip)
        s.commit()
    return report


def test_live_login_test_passes_for_a_healthy_mailbox(diag: Stack) -> None:
    report = _live(diag, "live@example.test")
    assert report.ok, report.as_dict()
    by = {r.target.protocol: r for r in report.results}
    assert set(by) == {"submission", "imap", "pop3"}  # SMTPS is not configured here
    assert [s.name for s in by["submission"].steps] == [
        "connect", "greeting", "tls", "authenticate", "mail_from", "rcpt_to", "rset"]
    for r in report.results:
        assert any("no TLS offered" in n for n in r.notes)
    assert "C: RCPT TO:<live@example.test>" in by["submission"].transcript
    assert "C: RSET" in by["submission"].transcript
    time.sleep(0.5)
    assert diag.inbox_subjects("live@example.test") == []  # nothing was sent


def test_live_login_test_names_the_failing_step_for_imap_off(diag: Stack) -> None:
    report = _live(diag, "noimap@example.test")
    by = {r.target.protocol: r for r in report.results}
    assert not report.ok
    assert by["submission"].ok and by["pop3"].ok
    imap = by["imap"]
    assert imap.failed_step is not None and imap.failed_step.name == "authenticate"
    assert imap.account is not None and imap.account.causes[0] == "protocol_off"
    assert "IMAP" in imap.account.checks[0].title


def _panel(diag: Stack, tmp_path: Path) -> t.Any:
    from panel import create_app

    app = create_app({"INSTANCE_PATH": str(tmp_path / "instance"),
                      "DATABASE_URL": str(diag.engine.url), "TESTING": True})
    return app.test_client()


def test_password_is_in_none_of_page_logs_or_database(
        diag: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    client = _panel(diag, tmp_path)
    assert sign_in(client, "cust1", PANEL_PW).status_code == 302
    url = "/diagnose/login-test/leak@example.test"
    response = submit(client, url, {"password": LEAK_PW})
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert 'data-testid="login-report" data-ok="yes"' in html, html
    # the CLI too (JSON and text)
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(diag.engine.url))
    runner = CliRunner()
    cli_out = ""
    for extra in (["--json"], []):
        result = runner.invoke(main, ["--instance", str(tmp_path / "inst"), "test-login",
                                      "leak@example.test", "--password-stdin", *extra],
                               input=LEAK_PW + "\n")
        assert result.exit_code == 0, result.output
        cli_out += result.output
    assert "C: PASS ********" in cli_out
    # a customer cannot test another customer's mailbox
    assert client.get("/diagnose/login-test/carol@other.test").status_code == 404
    token = base64.b64encode(f"\0leak@example.test\0{LEAK_PW}".encode()).decode()
    forms = (LEAK_PW, token, LEAK_PW.encode().hex())
    logs = "".join(p.read_text(errors="replace") for p in diag.log_dir.iterdir())
    database = b"".join(p.read_bytes() for p in Path(diag.info.dir).glob("panel.sqlite*"))
    for secret in forms:
        assert secret not in html
        assert secret not in cli_out
        assert secret not in caplog.text
        assert secret not in logs
        assert secret.encode() not in database


# --------------------------------------------------------------------------- mail log


def _queue_id(diag: Stack, pattern: str) -> str:
    found = eventually(lambda: re.findall(pattern, diag.postfix_log()), timeout=15)
    assert found, pattern
    return str(found[-1])


def test_mail_log_joins_delivery_bounce_and_deferral(diag: Stack) -> None:
    tag = f"{time.monotonic()}"
    diag.send("someone@remote.test", ["healthy@example.test", "carol@other.test"],
              subject=f"both {tag}")
    # a bounce: bigger than tiny@'s quota and sent without SIZE, so LMTP refuses it at DATA
    smtp = diag.smtp()
    smtp.esmtp_features.pop("size", None)
    smtp.sendmail("someone@remote.test", ["tiny@example.test"],
                  f"Subject: big {tag}\r\n\r\n" + "x" * 4000)
    smtp.quit()
    diag.send("someone@remote.test", ["defer@example.test"], subject=f"defer {tag}")
    sent = _queue_id(diag, r"(\w+): to=<healthy@example\.test>.*status=sent")
    bounced = _queue_id(diag, r"(\w+): to=<tiny@example\.test>.*status=bounced")
    deferred = _queue_id(diag, r"(\w+): to=<defer@example\.test>.*status=deferred")
    with diag.session() as s:
        admin = Actor.operator()
        story = search_log(s, admin, sent).stories[0]
        assert story.outcome == "delivered"
        assert story.steps[:2] == ["received", "queued"] and "delivered" in story.steps
        assert any(x.source == "dovecot" and "saved mail to INBOX" in x.text
                   for x in story.lines), [x.text for x in story.lines]
        assert {d.to for d in story.deliveries} == {"healthy@example.test", "carol@other.test"}

        story = search_log(s, admin, bounced).stories[0]
        assert story.outcome == "bounced" and story.deliveries[0].reply.startswith("host")
        assert "552" in story.deliveries[0].reply
        assert [f.family for f in story.findings] == ["quota_full"]
        assert story.children  # the non-delivery notification's queue id
        assert any(x.source == "dovecot" and "save failed" in x.text for x in story.lines)

        story = search_log(s, admin, deferred).stories[0]
        assert story.outcome == "deferred" and story.deliveries[0].reply
        assert story.findings and story.findings[0].hard is False
        assert "451 4." in story.deliveries[0].reply
        assert any(x.source == "dovecot" and "lmtp(defer@example.test)" in x.text
                   for x in story.lines), [x.text for x in story.lines]

        # by address: the customer sees its own stories; ids are the same as above
        own = search_log(s, _actor(s, "cust1"), "tiny@example.test")
        assert bounced in {st.queue_id for st in own.stories}

        # scope: customer 2 sees nothing of customer 1's addresses or queue ids ...
        other = _actor(s, "cust2")
        result = search_log(s, other, "healthy@example.test")
        assert result.stories == [] and "not hosted in your account" in (result.note or "")
        assert search_log(s, other, bounced).stories == []
        # ... and in a message to both customers only its own lines, the other's address masked
        shared = search_log(s, other, sent).stories
        assert len(shared) == 1
        text = "\n".join(x.text for x in shared[0].lines)
        assert "carol@other.test" in text and "healthy@example.test" not in text
        assert "lmtp(healthy@example.test)" not in text
        assert {d.to for d in shared[0].deliveries} == {"carol@other.test"}


def test_mail_log_shows_a_real_failed_login(diag: Stack) -> None:
    assert not diag.imap_login("bob@example.test", "wrong")[0]
    assert not diag.submission_login("bob@example.test", "wrong")[0]

    def failed() -> list[t.Any]:
        with diag.session() as s:
            found = search_log(s, Actor.operator(), "bob@example.test").stories
        return [x for x in found if x.kind == "login" and x.outcome == "login failed"]

    stories = eventually(lambda: len(failed()) >= 2 and failed(), timeout=10)
    assert stories, "no failed login in the log"
    assert any(x.source == "dovecot" and "imap-login" in x.text
               for story in stories for x in story.lines)
    assert any(f.family == "auth_failed" for story in stories for f in story.findings)
    with diag.session() as s:
        assert search_log(s, _actor(s, "cust2"), "bob@example.test").stories == []


def test_mail_log_page_and_cli(diag: Stack, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    diag.send("someone@remote.test", ["bob@example.test"], subject="page")
    qid = _queue_id(diag, r"(\w+): to=<bob@example\.test>.*status=sent")
    client = _panel(diag, tmp_path)
    assert sign_in(client, "cust2", PANEL_PW).status_code == 302
    html = client.get(f"/diagnose/log?q={qid}").get_data(as_text=True)
    assert 'data-testid="story"' not in html and "bob@example.test" not in html
    client = _panel(diag, tmp_path / "b")
    assert sign_in(client, "cust1", PANEL_PW).status_code == 302
    html = client.get(f"/diagnose/log?q={qid}").get_data(as_text=True)
    assert f'data-queue-id="{qid}" data-outcome="delivered"' in html
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(diag.engine.url))
    runner = CliRunner()
    base = ["--instance", str(tmp_path / "inst")]
    result = runner.invoke(main, [*base, "log", qid, "--json", "--since", "1h"])
    assert result.exit_code == 0, result.output
    assert '"outcome": "delivered"' in result.output
    result = runner.invoke(main, [*base, "--as", "cust2", "log", "bob@example.test"])
    assert result.exit_code == 0 and "not hosted in your account" in result.output
    _ok, reply = diag.submission_login("nosmtp@example.test")
    result = runner.invoke(main, [*base, "diagnose", "--account", "nosmtp@example.test"],
                           input=reply)
    assert result.exit_code == 0, result.output
    assert "[protocol_off]" in result.output
