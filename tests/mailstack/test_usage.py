"""Usage read back from the real Dovecot: fill a mailbox over LMTP, refresh, and see the usage
and the time it was read on the panel's pages (real CSRF sign-in) and in the API; recalculate
after mail was put into the Maildir behind Dovecot's back; warnings over 80 % and 95 %."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import smtplib
import subprocess
import typing as t
from pathlib import Path

import pytest
from sqlalchemy import select

from mailadmin.models import Mailbox, Role
from mailadmin.services import accounts, mailboxes, tokens
from mailadmin.services import usage as usage_service
from mailadmin.services.context import Actor

from ..web import sign_in, submit
from .conftest import SERVICE_PASSWORD, ServiceStack

pytestmark = pytest.mark.mailstack
OP = Actor.operator()
ADMIN = "usage-admin"
ADMIN_PASSWORD = "correct horse 9"


def lmtp_deliver(svc: ServiceStack, address: str, size: int, subject: str) -> None:
    """Deliver straight to Dovecot's LMTP listener (loopback), as Postfix does."""
    body = ("x" * 76 + "\r\n") * (size // 78)
    message = f"From: filler@remote.test\r\nTo: {address}\r\nSubject: {subject}\r\n\r\n{body}"
    with smtplib.LMTP("127.0.0.1", svc.ports.lmtp, timeout=15) as lmtp:
        refused = lmtp.sendmail("filler@remote.test", [address], message)
    assert not refused


def dovecot_says(svc: ServiceStack, address: str) -> tuple[int, int]:
    """(KiB, messages) from the real doveadm's plain-text output, parsed independently."""
    conf = Path(svc.settings.config_dir) / "current" / "dovecot" / "dovecot.conf"
    out = subprocess.run(["doveadm", "-c", str(conf), "quota", "get", "-u", address],
                         capture_output=True, text=True, check=True).stdout
    storage = re.search(r"^User quota\s+STORAGE\s+(\d+)", out, re.M)
    messages = re.search(r"^User quota\s+MESSAGE\s+(\d+)", out, re.M)
    assert storage and messages, out
    return int(storage.group(1)), int(messages.group(1))


def stored(svc: ServiceStack, address: str) -> Mailbox:
    with svc.factory() as s:
        box = s.scalars(select(Mailbox).where(Mailbox.local_part == address.split("@")[0])
                        .where(Mailbox.domain.has(name=address.split("@")[1]))).one()
        s.expunge(box)
        return box


def shown(value: dt.datetime | None) -> str:
    """What the panel's |datetime filter prints."""
    assert value is not None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def row_of(html: str, address: str) -> str:
    match = re.search(rf'<tr data-address="{re.escape(address)}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {address}"
    return match.group(1)


@pytest.fixture(scope="module")
def admin(service_stack: ServiceStack) -> str:
    with service_stack.unit() as s:
        if accounts.find_user(s, ADMIN) is None:
            accounts.create_panel_user(s, OP, ADMIN, ADMIN_PASSWORD, Role.ADMIN)
    return ADMIN


@pytest.fixture
def web(service_stack: ServiceStack, admin: str) -> t.Any:
    from panel import create_app

    app = create_app({"INSTANCE_PATH": str(service_stack.instance),
                      "DATABASE_URL": service_stack.url, "TESTING": True})
    client = app.test_client()
    assert sign_in(client, admin, ADMIN_PASSWORD).status_code == 302
    return client


@pytest.fixture
def api(service_stack: ServiceStack, admin: str) -> t.Any:
    from panel import create_app

    app = create_app({"INSTANCE_PATH": str(service_stack.instance),
                      "DATABASE_URL": service_stack.url, "TESTING": True})
    with service_stack.unit() as s:
        user = accounts.find_user(s, admin)
        assert user is not None
        _, text = tokens.create_api_token(s, Actor.for_user(user, "panel"), "usage test",
                                          [tokens.READ, tokens.WRITE])
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {text}"
    return client


def make_mailbox(svc: ServiceStack, address: str, quota: str | None = None) -> None:
    from mailadmin.sizes import parse_size

    with svc.unit() as s:
        mailboxes.create_mailbox(s, OP, address, SERVICE_PASSWORD,
                                 quota=parse_size(quota) if quota else None)
    report = svc.apply()
    assert report.revision.state == "applied", report.revision.validation_output


def test_lmtp_fill_is_read_back_and_shown_with_its_time(service_stack: ServiceStack, web: t.Any,
                                                        api: t.Any) -> None:
    svc = service_stack
    address = "fill@svc.test"
    make_mailbox(svc, address)
    before = stored(svc, address)
    assert before.usage_bytes is None and before.usage_read_at is None
    for i in range(3):
        lmtp_deliver(svc, address, 20_000, f"filler {i}")
    kib, count = dovecot_says(svc, address)
    assert count == 3 and kib >= 3 * 19

    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = svc.cli("usage", "refresh")
    assert result.exit_code == 0, result.output
    assert "mailbox(es) read at" in result.output
    box = stored(svc, address)
    assert box.usage_messages == 3 and box.usage_bytes == kib * 1024
    assert box.usage_read_at is not None
    assert box.usage_read_at.replace(tzinfo=dt.UTC) >= started

    # the mailbox list: size, message count and when it was read
    html = web.get("/mailboxes?domain=svc.test").get_data(as_text=True)
    row = row_of(html, address)
    assert "3 messages" in row and f"read {shown(box.usage_read_at)}" in row
    assert 'data-testid="usage-warning"' not in row  # far below 80 % of 1 GiB
    # the mailbox page
    page = web.get(f"/mailboxes/{address}").get_data(as_text=True)
    assert "in 3 messages" in page
    assert f"read from the mail server {shown(box.usage_read_at)}" in page

    # the API: one mailbox and the list both carry the usage and the time it was read
    one = api.get(f"/api/v1/mailboxes/{address}")
    assert one.status_code == 200, one.get_data(as_text=True)
    data = one.get_json()
    assert data["usage_bytes"] == kib * 1024 and data["usage_messages"] == 3
    read_at = dt.datetime.fromisoformat(data["usage_read_at"])
    assert read_at.replace(tzinfo=None) == box.usage_read_at.replace(tzinfo=None)
    listed = api.get("/api/v1/mailboxes?domain=svc.test&search=fill").get_json()["items"]
    assert [(m["usage_messages"], m["usage_read_at"]) for m in listed] == [
        (3, data["usage_read_at"])]

    # sums per domain and per customer
    shown_sums = svc.cli("usage", "show", "--domain", "svc.test", "--json")
    assert shown_sums.exit_code == 0, shown_sums.output
    sums = json.loads(shown_sums.output)
    (domain_sum,) = sums["domains"]
    assert domain_sum["name"] == "svc.test" and domain_sum["usage_messages"] >= 3
    assert domain_sum["usage_bytes"] >= kib * 1024
    assert [c["name"] for c in sums["customers"]] == ["svc-cust"]
    assert {m["address"] for m in sums["mailboxes"]} >= {address}


def test_recalculate_counts_mail_dovecot_did_not_see(service_stack: ServiceStack, web: t.Any,
                                                     api: t.Any) -> None:
    svc = service_stack
    address = "recalc@svc.test"
    make_mailbox(svc, address)
    lmtp_deliver(svc, address, 5_000, "delivered")
    with svc.unit() as s:
        usage_service.refresh_usage(s, OP, address=address)
    first = stored(svc, address)
    assert first.usage_messages == 1
    # a message put into the Maildir behind Dovecot's back (a restore, a migration)
    new = Path(svc.settings.mail_root) / "svc.test" / "recalc" / "Maildir" / "new"
    dropped = new / "1700000000.M1P1.restored"
    dropped.write_text("Subject: restored\r\n\r\n" + "z" * 30_000 + "\r\n")
    os.chown(dropped, svc.settings.vmail_uid, svc.settings.vmail_gid)
    assert dovecot_says(svc, address)[1] == 1  # Dovecot's quota does not know it yet

    # the Recalculate button on the mailbox page (real CSRF token from the page)
    done = submit(web, f"/mailboxes/{address}/usage/recalculate", {},
                  page=f"/mailboxes/{address}", follow=True)
    assert done.status_code == 200
    html = done.get_data(as_text=True)
    assert "Usage recalculated: 2 message(s)" in html
    kib, count = dovecot_says(svc, address)
    assert count == 2 and kib >= 30
    after = stored(svc, address)
    assert after.usage_messages == 2 and after.usage_bytes == kib * 1024
    assert after.usage_read_at is not None and first.usage_read_at is not None
    assert after.usage_read_at >= first.usage_read_at
    assert "in 2 messages" in html
    # without the CSRF token nothing happens
    assert web.post(f"/mailboxes/{address}/usage/recalculate").status_code == 400

    # the API operation and the CLI command do the same
    again = api.post(f"/api/v1/mailboxes/{address}/usage/recalculate")
    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.get_json()["usage_messages"] == 2
    cli = svc.cli("usage", "recalc", address, "--json")
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output)["usage_messages"] == 2
    # a mailbox not applied yet: a clear refusal, nothing stored
    with svc.unit() as s:
        mailboxes.create_mailbox(s, OP, "unapplied@svc.test", SERVICE_PASSWORD)
    missing = api.post("/api/v1/mailboxes/unapplied@svc.test/usage/recalculate")
    assert missing.status_code == 404
    assert "apply" in missing.get_json()["error"]["message"]
    svc.apply()


def test_warnings_over_80_and_95_percent(service_stack: ServiceStack, web: t.Any) -> None:
    svc = service_stack
    make_mailbox(svc, "warn@svc.test", quota="100K")
    make_mailbox(svc, "full@svc.test", quota="100K")
    lmtp_deliver(svc, "warn@svc.test", 85_000, "most of it")
    lmtp_deliver(svc, "full@svc.test", 97_500, "nearly all of it")
    result = svc.cli("usage", "refresh")
    assert result.exit_code == 0, result.output
    warn, full = stored(svc, "warn@svc.test"), stored(svc, "full@svc.test")
    assert warn.usage_bytes is not None and full.usage_bytes is not None
    warn_pct = round(100 * warn.usage_bytes / warn.quota)
    full_pct = min(100, round(100 * full.usage_bytes / full.quota))
    assert 80 <= warn_pct < 95 and full_pct >= 95, (warn_pct, full_pct)
    assert usage_service.usage_level(warn_pct) == "warning"
    assert usage_service.usage_level(full_pct) == "critical"

    html = web.get("/mailboxes?domain=svc.test&per_page=200").get_data(as_text=True)
    assert 'data-level="warning"' in row_of(html, "warn@svc.test")
    assert f"is {warn_pct}% full" in row_of(html, "warn@svc.test")
    assert 'data-level="critical"' in row_of(html, "full@svc.test")
    assert "data-level" not in row_of(html, "anna@svc.test")
    detail = web.get("/mailboxes/warn@svc.test").get_data(as_text=True)
    assert 'data-level="warning"' in detail

    # the mailbox user's own page warns too
    from panel import create_app

    me = create_app({"INSTANCE_PATH": str(svc.instance), "DATABASE_URL": svc.url,
                     "TESTING": True}).test_client()
    signed_in = submit(me, "/me/login", {"address": "full@svc.test",
                                         "password": SERVICE_PASSWORD})
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)
    overview = me.get("/me/").get_data(as_text=True)
    assert 'data-level="critical"' in overview and "Your mailbox is" in overview
    assert f"read from the mail server {shown(full.usage_read_at)}".lower() in overview.lower()
    # Dovecot's own percentages (of the limit it enforces, 100 KiB) agree with the warnings
    for address, low, high in (("warn@svc.test", 80, 95), ("full@svc.test", 95, 101)):
        conf = Path(svc.settings.config_dir) / "current" / "dovecot" / "dovecot.conf"
        out = subprocess.run(["doveadm", "-c", str(conf), "quota", "get", "-u", address],
                             capture_output=True, text=True, check=True).stdout
        match = re.search(r"^User quota\s+STORAGE\s+\d+\s+(\d+)\s+(\d+)", out, re.M)
        assert match and match.group(1) == "100", out
        assert low <= int(match.group(2)) < high, out


def test_customer_refresh_reads_only_its_own_domains(service_stack: ServiceStack) -> None:
    """`--as svc-cust usage refresh` asks Dovecot for svc.test (one '*@svc.test' call) and
    stores nothing for another customer's mailboxes."""
    svc = service_stack
    svc.apply()
    lmtp_deliver(svc, "sam@susp.test", 3_000, "for another customer")
    lmtp_deliver(svc, "ben@svc.test", 3_000, "for svc-cust")
    with svc.factory() as s:
        s.execute(Mailbox.__table__.update().values(usage_read_at=None, usage_bytes=None,
                                                    usage_messages=None))
        # a hand edit behind the services' back: the domains' counters follow it
        from mailadmin.services import counters
        from mailadmin.services.context import Actor

        counters.recount(s, Actor.operator())
        s.commit()
    result = svc.cli("--as", "svc-cust", "usage", "refresh", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    with svc.factory() as s:
        read = {f"{m.local_part}@{m.domain.name}": m.usage_messages
                for m in s.scalars(select(Mailbox)) if m.usage_read_at is not None}
    assert read and all(a.endswith("@svc.test") for a in read), read
    assert read["ben@svc.test"] == dovecot_says(svc, "ben@svc.test")[1] >= 1
    assert stored(svc, "sam@susp.test").usage_read_at is None
    assert report["updated"] == len(read)
    # another customer's mailbox is not found for this customer
    refused = svc.cli("--as", "svc-cust", "usage", "recalc", "sam@susp.test")
    assert refused.exit_code == 1 and "no domain" in refused.output.lower()


def test_customer_reads_usage_now_from_the_mailbox_list(service_stack: ServiceStack) -> None:
    """The "Read usage now" button of the mailbox list, pressed by the customer: the real
    Dovecot's figures for the customer's mailboxes only, shown per mailbox and per domain."""
    from panel import create_app

    svc = service_stack
    address = "button@svc.test"
    make_mailbox(svc, address)
    lmtp_deliver(svc, address, 12_000, "for the button")
    kib, count = dovecot_says(svc, address)
    app = create_app({"INSTANCE_PATH": str(svc.instance), "DATABASE_URL": svc.url,
                      "TESTING": True})
    customer = app.test_client()
    assert sign_in(customer, "svc-cust", "correct horse 9").status_code == 302
    done = submit(customer, "/mailboxes/usage/refresh", {"next": "/mailboxes?sort=usage&desc=1"},
                  page="/mailboxes", follow=True)
    html = done.get_data(as_text=True)
    assert done.status_code == 200
    assert re.search(r"Usage read for \d+ mailbox", html), html[-3000:]
    assert "doveadm" not in html
    box = stored(svc, address)
    assert box.usage_messages == count and box.usage_bytes == kib * 1024
    row = row_of(html, address)
    assert f"read {shown(box.usage_read_at)}" in row
    assert 'data-domain="svc.test"' in html and 'data-domain="susp.test"' not in html
    # Another customer's mailboxes were not read by this customer's button.
    assert stored(svc, "sam@susp.test").usage_read_at is None or \
        stored(svc, "sam@susp.test").usage_read_at != box.usage_read_at
    # The bar of svc.test comes from its counters, which the refresh moved by exactly what
    # the real Dovecot reported: they equal a fresh sum of the stored rows, and so does the bar.
    from mailadmin.models import Domain
    from mailadmin.services import counters
    from mailadmin.sizes import format_size

    with svc.factory() as s:
        assert "svc.test" not in counters.differences(s)
        used = sum(m.usage_bytes or 0 for m in s.scalars(
            select(Mailbox).join(Domain).where(Domain.name == "svc.test")))
    bar = re.search(r'data-domain="svc\.test">(.*?)</li>', html, re.S)
    assert bar and used >= kib * 1024 and f": {format_size(used)}" in bar.group(1), bar
