"""Admin pages for people (issue 15): server settings grouped, choices as selects, sizes shown
and taken as "50M", every refused field marked at once with what was typed kept; audit and
revisions show sizes, lists, yes/no and times as people read them."""

from __future__ import annotations

import typing as t

from bs4 import BeautifulSoup
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.display import format_time, readable_value
from mailadmin.server_settings_table import GROUPS, TABLE, Check
from mailadmin.services import mailboxes
from mailadmin.services import server_settings as settings_service
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings

from .web import csrf_token, sign_in


def admin(app: t.Any, make_user: t.Any) -> t.Any:
    make_user("root", "admin")
    client = app.test_client()
    assert sign_in(client, "root", "correct horse 9").status_code == 302
    return client


def form_values(html: str) -> dict[str, str]:
    """What a browser would send for the page's form as it stands."""
    soup = BeautifulSoup(html, "html.parser")
    form = soup.find("form", attrs={"method": "post", "novalidate": True})
    assert form is not None
    values: dict[str, str] = {}
    for element in form.find_all(["input", "select", "textarea"]):
        name = element.get("name")
        if not name:
            continue
        if element.name == "select":
            chosen = element.find("option", selected=True) or element.find("option")
            values[name] = chosen.get("value")
        elif element.name == "textarea":
            values[name] = element.get_text()
        elif element.get("type") == "checkbox":
            if element.has_attr("checked"):
                values[name] = element.get("value", "y")
        else:
            values[name] = element.get("value", "")
    return values


def test_the_page_is_grouped_with_selects_and_readable_sizes(
    app: t.Any, make_user: t.Any,
) -> None:
    client = admin(app, make_user)
    soup = BeautifulSoup(client.get("/admin/settings").get_data(as_text=True), "html.parser")
    assert [legend.get_text(strip=True) for legend in soup.find_all("legend")] == list(GROUPS)
    for setting in TABLE:
        element = soup.find(id=setting.name)
        assert element is not None, setting.name
        if setting.check is Check.CHOICE:
            assert element.name == "select", setting.name
            assert [o.get("value") for o in element.find_all("option")] == list(setting.choices)
    assert soup.find(id="message_size_limit").get("value") == "50M"
    client_group = soup.find("legend", string=GROUPS[0]).find_parent("fieldset")
    assert client_group.find(id="smtps_port") is not None
    assert client_group.find(id="mail_root") is None


def test_a_size_is_taken_as_people_write_it(
    app: t.Any, make_user: t.Any, session_factory: sessionmaker[Session],
) -> None:
    client = admin(app, make_user)
    page = client.get("/admin/settings").get_data(as_text=True)
    values = {**form_values(page), "message_size_limit": "20M", "csrf_token": csrf_token(page)}
    assert client.post("/admin/settings", data=values).status_code == 302
    with session_factory() as s:
        assert get_server_settings(s).message_size_limit == 20 * 1024 * 1024
    again = client.get("/admin/settings").get_data(as_text=True)
    assert form_values(again)["message_size_limit"] == "20M"


def test_every_invalid_field_is_marked_at_once_and_typing_is_kept(
    app: t.Any, make_user: t.Any, session_factory: sessionmaker[Session],
) -> None:
    client = admin(app, make_user)
    page = client.get("/admin/settings").get_data(as_text=True)
    typed = {"imap_host": "imap.example.org", "smtps_port": "99999", "mail_root": "relative",
             "message_size_limit": "1K", "postmaster_address": "nobody"}
    answer = client.post("/admin/settings",
                         data={**form_values(page), **typed, "csrf_token": csrf_token(page)})
    assert answer.status_code == 422
    soup = BeautifulSoup(answer.get_data(as_text=True), "html.parser")
    marked = {e.get("id") for e in soup.select(".is-invalid")}
    assert marked == {"smtps_port", "mail_root", "message_size_limit", "postmaster_address"}
    assert "correct the 4 fields" in soup.find(attrs={"data-testid": "settings-errors"}).get_text()
    for name, value in typed.items():
        assert soup.find(id=name).get("value") == value
    for name in ("smtps_port", "mail_root"):
        assert soup.find(id=f"{name}-error") is not None
    with session_factory() as s:
        assert get_server_settings(s).imap_host == "mail.example.net"  # nothing saved


def test_a_port_can_be_switched_off_on_the_page(
    app: t.Any, make_user: t.Any, session_factory: sessionmaker[Session],
) -> None:
    client = admin(app, make_user)
    page = client.get("/admin/settings").get_data(as_text=True)
    values = {**form_values(page), "smtps_port": "", "pop3_listen_port": "off",
              "csrf_token": csrf_token(page)}
    assert client.post("/admin/settings", data=values).status_code == 302
    with session_factory() as s:
        row = get_server_settings(s)
        assert (row.smtps_port, row.pop3_listen_port) == (0, 0)


def test_readable_values() -> None:
    assert readable_value("quota", 2 * 1024**3) == "2 GiB"
    assert readable_value("quota", 0) == "unlimited"
    assert readable_value("message_size_limit", 50 * 1024**2) == "50 MiB"
    assert readable_value("keep_copy", False) == "no"
    assert readable_value("destinations", ["a@x.example", "b@y.example"]) == (
        "a@x.example, b@y.example")
    assert readable_value("destinations", []) == "(none)"
    assert readable_value("smtps_port", 0) == "off (not offered)"
    assert readable_value("smtps_port", 465) == "465"
    assert readable_value("starts_at", "2026-03-01 12:00:00+00:00") == "2026-03-01 12:00 UTC"
    assert readable_value("subject", None) == "—"
    assert format_time(None) == "never"


def test_the_audit_log_shows_values_as_people_read_them(
    app: t.Any, make_user: t.Any, session_factory: sessionmaker[Session],
) -> None:
    from .factories import actor, mail_account

    client = admin(app, make_user)
    make_user("alice")
    mail_account(session_factory, actor(session_factory, "alice", source=None), "a.example",
                 {"x@a.example": {"quota": 1024**3}}, "Tr0ub4dor&3-horse")
    with transaction(session_factory) as s:
        mailboxes.update_mailbox(s, Actor.operator(), "x@a.example", quota=2 * 1024**3,
                                 pop3=False)
        settings_service.set_setting(s, Actor.operator(), "message_size_limit", "20M")
    page = client.get("/audit/").get_data(as_text=True)
    assert "2 GiB" in page and "1 GiB" in page
    assert "20 MiB" in page and "50 MiB" in page
    assert "20971520" not in page and "2147483648" not in page
    soup = BeautifulSoup(page, "html.parser")
    update = next(row for row in soup.find_all("tr") if "mailbox.update" in row.get_text())
    assert "pop3:" in update.get_text() and "yes → no" in " ".join(update.get_text().split())
