"""The form crawler: every form of the panel, every field filled with a valid value, no 5xx.

For each role (server admin, reseller, customer, mailbox user) the crawler visits every GET
route of `app.url_map` (URL variables filled with the seeded world's real names and ids; a rule
whose variables fit none of them is skipped, the combinations that answer 404 too), parses each
<form> of each page with an HTML parser, fills every field by its type and name (not by a list
of known forms), posts it with the page's CSRF token and checks that the answer is not a 5xx.

Each submission starts from the same world: the database is restored from a copy taken after
seeding, so a form that deletes or suspends something cannot hide the forms after it.

A missing optional dependency (the e-mail validator WTForms' `Email()` needs) or a field no
test ever filled shows up here as a 500 naming the page, the form and the values sent.
"""

from __future__ import annotations

import itertools
import os
import re
import sqlite3
import typing as t
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from bs4 import BeautifulSoup, Tag
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.datastructures import MultiDict

from mailadmin.db import transaction
from mailadmin.models import PanelUser
from mailadmin.services import (
    app_passwords,
    autoresponders,
    domains,
    forwarders,
    help,
    mailboxes,
    packages,
    resellers,
    server,
    stack,
    tokens,
)
from mailadmin.services.context import Actor
from mailadmin.services.packages import PackageSpec
from mailadmin.services.resellers import AllocationSpec

from .dnsserver import LocalDns
from .web import submit

GiB = 1024**3
PASSWORD = "correct horse 9"
#: A password every strength rule of the panel accepts.
STRONG = "Crawl-3r-Horse-battery-77!"
BOX_PASSWORD = "Tr0ub4dor&3-horse"

#: "acting" is the reseller acting as its customer alice: the customer's pages, seller's rights.
ROLES = ("customer", "mailbox", "reseller", "acting", "admin")
#: Fields naming someone of the seeded world (a free-text field has nothing on the page to copy).
WORLD_NAMES = {"customer": "alice", "reseller": "rita", "owner": "rita"}


# --- the world --------------------------------------------------------------------------------


def _actor(factory: sessionmaker[Session], name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="panel", source="127.0.0.1")


def seed(factory: sessionmaker[Session], make_user: t.Any,
         scratch: Path, dns_resolver: str) -> dict[str, list[str]]:
    """A reseller with a package and a customer with two domains, mailboxes (one with an
    autoresponder, one without), a forwarder and API tokens. Returns the values each kind of
    URL variable can take. The server's folders are under `scratch`: the crawler presses
    "apply", which must not touch /etc or /var of the machine running the tests."""
    make_user("root", "admin")
    root = _actor(factory, "root")
    with transaction(factory) as s:
        row = server.get_server_settings(s)
        for name in ("config_output_dir", "mail_root", "run_dir", "state_dir", "queue_dir",
                     "log_dir", "dkim_key_dir"):
            setattr(row, name, str(scratch / name))
        # "check again" (deliverability) asks DNS: only the test's own server on loopback
        row.dns_resolvers = dns_resolver
    with transaction(factory) as s:
        resellers.create_reseller(s, root, "rita", PASSWORD, AllocationSpec(
            max_customers=5, max_domains=10, max_mailboxes=20, max_total_quota=20 * GiB),
            contact_email="rita@provider.example")
    rita = _actor(factory, "rita")
    with transaction(factory) as s:
        plan = packages.create_package(s, rita, "Plan", PackageSpec(
            max_domains=3, max_mailboxes=5, max_forwarders=5, max_quota_per_mailbox=2 * GiB,
            max_total_quota=5 * GiB))
        spare = packages.create_package(s, rita, "Spare", PackageSpec(
            max_domains=1, max_mailboxes=2, max_forwarders=2, max_total_quota=GiB))
        plan_id, spare_id = plan.id, spare.id
    with transaction(factory) as s:
        resellers.create_customer(s, rita, "alice", PASSWORD, package_id=plan_id,
                                  contact_email="alice@provider.example")
    alice = _actor(factory, "alice")
    with transaction(factory) as s:
        domains.add_domain(s, alice, "alice.example")
        domains.add_domain(s, alice, "spare.example")
        domains.set_self_service(s, alice, "alice.example", allow_forwarding=True,
                                 allow_autoresponder=True)
        mailboxes.create_mailbox(s, alice, "info@alice.example", BOX_PASSWORD, quota=GiB)
        mailboxes.create_mailbox(s, alice, "plain@alice.example", BOX_PASSWORD, quota=GiB)
        forwarders.set_forwarder(s, alice, "sales@alice.example",
                                 ["info@alice.example", "boss@elsewhere.example"])
        autoresponders.set_autoresponder(s, alice, "info@alice.example", subject="Away",
                                         body="Back soon")
        # so that the app-password pages have a revoke form to fill
        app_passwords.add_app_password(s, alice, "info@alice.example", "phone", ["imap"])
    with transaction(factory) as s:
        # A revision (failed or applied, whatever the machine allows) for the revision pages.
        revision_id = stack.apply_config_report(s, root).revision.id
    with transaction(factory) as s:
        # The help centre: the shipped articles, one the admin wrote and one of rita's own.
        help.sync_shipped_articles(s)
        shipped_id = help.editable_articles(s, root)[0].id
        admin_article = help.create_article(s, root, help.ArticleInput(
            slug="house-rules", title="House rules", body="Be **kind**."))
        rita_article = help.create_article(s, rita, help.ArticleInput(
            slug="rita-support", title="Rita's support hours", audience="customer",
            body="Weekdays."))
    token_ids = []
    for holder in ("root", "rita", "alice"):
        with transaction(factory) as s:
            token, _ = tokens.create_api_token(s, _actor(factory, holder), "script")
            token_ids.append(str(token.id))
    return {
        "name": ["rita", "alice", "alice.example"],
        "address": ["info@alice.example", "plain@alice.example", "sales@alice.example"],
        "package_id": [str(plan_id), str(spare_id)],
        "token_id": token_ids,
        "revision_id": [str(revision_id)],
        "slug": ["pop-vs-imap", "house-rules", "rita-support"],
        "article_id": [str(shipped_id), str(admin_article.id), str(rita_article.id)],
        # an import job that does not exist (or is someone else's) is not found
        "job_id": ["99999"],
    }


SIGN_IN = {
    "admin": ("/login", {"username": "root", "password": PASSWORD}),
    "reseller": ("/login", {"username": "rita", "password": PASSWORD}),
    "acting": ("/login", {"username": "rita", "password": PASSWORD}),
    "customer": ("/login", {"username": "alice", "password": PASSWORD}),
    "mailbox": ("/me/login", {"address": "info@alice.example", "password": BOX_PASSWORD}),
}


# --- filling a form ---------------------------------------------------------------------------


@dataclass
class Form:
    page: str
    index: int
    method: str
    action: str
    fields: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        return f"form #{self.index} of {self.page} ({self.method} {self.action})"


_CONFIRM = re.compile(r"\bType\s+[“\"']?(?P<value>[^\s“”\"']+?)[”\"']?\s+to confirm", re.I)


def _text_of(form: Tag, element: Tag) -> str:
    """The label and help text of a field, lower case: what a person reads to fill it."""
    parts = [element.get("name", ""), element.get("placeholder", "") or ""]
    element_id = element.get("id")
    if element_id:
        label = form.find("label", attrs={"for": element_id})
        if label:
            parts.append(label.get_text(" "))
    for help_id in str(element.get("aria-describedby", "")).split():
        help_element = form.find(id=help_id)
        if help_element:
            parts.append(help_element.get_text(" "))
    return " ".join(str(p) for p in parts).lower()


def _typed_confirmation(form: Tag, element: Tag) -> str | None:
    """The value a "Type X to confirm" field asks for, from the text around it on the page."""
    for text in (_text_of(form, element), form.get_text(" ")):
        match = _CONFIRM.search(text)
        if match:
            return match.group("value").rstrip(".")
    return None


def _text_value(form: Tag, element: Tag, kind: str) -> str:
    """A valid value for a text-like field, chosen by its type, name and label."""
    name = str(element.get("name", "")).lower()
    about = _text_of(form, element)
    if kind == "email" or "email" in name or "destination" in name or name == "address":
        return "crawler@alice.example" if name == "address" else "someone@elsewhere.example"
    if "yyyy-mm-dd" in about:
        return "2031-02-03" if "until" in name or "end" in name else "2031-02-01"
    if name in ("customer", "reseller", "owner"):
        return WORLD_NAMES[name]
    if name.endswith("_roles"):
        return "admin reseller"
    if kind == "number":
        low = element.get("min")
        return str(max(int(low), 1) if low else 1)
    if kind == "datetime-local":
        return "2031-02-03T10:00" if "end" in name or "until" in about else "2031-02-01T10:00"
    if kind == "date":
        return "2031-02-01"
    if "confirm" in name:
        expected = _typed_confirmation(form, element)
        if expected:
            return expected
    if "quota" in name or "size" in name or re.search(r"\b\d+[kmgt]\b", about):
        return "1G"
    if name.endswith(("_dir", "_file", "_path")) or "absolute path" in about:
        return f"/var/lib/crawled/{name}"
    if "port" in name:
        return "10143"
    if "host" in name or "domain" in name or "domain" in about:
        return "crawled.example"
    if "local_part" in name:
        return "crawled"
    if kind == "url" or "url" in name:
        return "https://webmail.crawled.example/"
    if "subject" in name:
        return "Out of office"
    if "text" in name or "body" in name or "message" in about:
        return "550 5.1.1 <info@alice.example>: Recipient address rejected: User unknown"
    return "crawled"


def fill(page: str, index: int, form: Tag, password: str = PASSWORD) -> Form:
    """Every field with a valid value: what the page put there already (an edit form shows the
    current, valid state), else a value chosen by the field's type, name and label. Passwords
    are always typed: the current one is `password`, a new one `STRONG` (twice)."""
    method = str(form.get("method", "get")).lower()
    action = urljoin(page, str(form.get("action") or page))
    filled = Form(page=page, index=index, method=method, action=action)
    radios_done: set[str] = set()
    elements = list(form.find_all(["input", "select", "textarea"]))
    if form.get("id"):
        # Fields outside the form that belong to it (form="id"), such as a list's row
        # checkboxes for a bulk action.
        root = form
        while root.parent is not None:
            root = root.parent
        elements += [e for e in root.find_all(["input", "select", "textarea"],
                                              attrs={"form": form["id"]}) if e not in elements]
    for element in elements:
        name = element.get("name")
        if not name or element.has_attr("disabled"):
            continue
        if element.name == "select":
            options = [o for o in element.find_all("option") if o.get("value", o.text).strip()]
            if options:
                filled.fields.append((name, options[0].get("value", options[0].text)))
            continue
        if element.name == "textarea":
            current = element.get_text()
            filled.fields.append((name, current if current.strip()
                                  else _text_value(form, element, "textarea")))
            continue
        kind = str(element.get("type", "text")).lower()
        if kind in ("submit", "button", "image", "reset"):
            continue
        if kind == "hidden":
            filled.fields.append((name, str(element.get("value", ""))))
        elif kind == "checkbox":
            filled.fields.append((name, str(element.get("value", "y"))))
        elif kind == "radio":
            if name not in radios_done:
                radios_done.add(name)
                filled.fields.append((name, str(element.get("value", "on"))))
        elif kind == "password":
            # A current password is the signed-in user's; a new one (and its repetition) strong.
            about = _text_of(form, element)
            filled.fields.append((name, password if "current" in about else STRONG))
        elif kind == "file":
            continue
        elif str(element.get("value", "")).strip():
            filled.fields.append((name, str(element["value"])))
        else:
            filled.fields.append((name, _text_value(form, element, kind)))
    submit_button = form.find(["button", "input"], attrs={"type": "submit", "name": True})
    if submit_button is not None:
        filled.fields.append((submit_button["name"], str(submit_button.get("value", ""))))
    return filled


def forms_of(page: str, html: str, password: str = PASSWORD) -> list[Form]:
    soup = BeautifulSoup(html, "html.parser")
    return [fill(page, i, form, password) for i, form in enumerate(soup.find_all("form"))]


# --- the crawl --------------------------------------------------------------------------------


def get_pages(app: Flask, values: dict[str, list[str]]) -> list[str]:
    """Every GET URL of the panel, each URL variable filled with each fitting value."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()) or rule.endpoint == "static":
            continue
        arguments = sorted(rule.arguments)
        if any(a not in values for a in arguments):  # pragma: no cover - a new kind of id
            raise AssertionError(f"{rule.rule}: the crawler has no value for {arguments}")
        for combination in itertools.product(*(values[a] for a in arguments)):
            with app.test_request_context():
                from flask import url_for

                urls.append(url_for(rule.endpoint, **dict(zip(arguments, combination,
                                                              strict=True))))
    return sorted(set(urls))


class World:
    def __init__(self, app: Flask, database: Path, template: Path) -> None:
        self.app, self.database, self.template = app, database, template

    def restore(self) -> None:
        self.app.extensions["mailadmin"].engine.dispose()
        with sqlite3.connect(self.template) as source, sqlite3.connect(self.database) as target:
            source.backup(target)

    def client(self, role: str) -> t.Any:
        client = self.app.test_client()
        url, data = SIGN_IN[role]
        response = submit(client, url, data)
        assert response.status_code == 302, (role, response.get_data(as_text=True)[-2000:])
        if role == "acting":
            acting = submit(client, "/customers/alice/act", {}, page="/customers/alice")
            assert acting.status_code == 302, acting.get_data(as_text=True)[-2000:]
        return client


@pytest.fixture
def dns(tmp_path: Path) -> t.Iterator[LocalDns]:
    """A loopback DNS server the seeded settings send every lookup to (never the machine's)."""
    server = LocalDns(tmp_path, zones=("test", "example"))
    server.serve()
    yield server
    server.stop()


@pytest.fixture
def world(app: Flask, session_factory: sessionmaker[Session], make_user: t.Any,
          sqlite_engine: t.Any, tmp_path: Path,
          dns: LocalDns) -> tuple[World, dict[str, list[str]]]:
    values = seed(session_factory, make_user, tmp_path / "server", dns.resolver)
    database = Path(str(sqlite_engine.url.database))
    sqlite_engine.dispose()
    template = tmp_path / "world.db"
    with sqlite3.connect(database) as source, sqlite3.connect(template) as target:
        source.backup(target)
    return World(app, database, template), values


def _same_site(url: str) -> bool:
    return not urlsplit(url).netloc or urlsplit(url).netloc == "localhost"


def test_every_form_of_every_role_takes_valid_values_without_a_server_error(
    world: tuple[World, dict[str, list[str]]],
) -> None:
    crawl, values = world
    failures: list[str] = []
    submitted: dict[str, list[tuple[str, int]]] = {role: [] for role in ROLES}
    for role in ROLES:
        crawl.restore()
        client = crawl.client(role)
        password = SIGN_IN[role][1]["password"]
        pages: dict[str, list[Form]] = {}
        seen: set[tuple[str, str, tuple[str, ...]]] = set()
        for url in get_pages(crawl.app, values):
            response = client.get(url)
            if response.status_code >= 500:
                failures.append(f"{role}: GET {url} answered {response.status_code}")
            if os.environ.get("CRAWLER_REPORT"):
                print("VISIT", role, response.status_code, url)
            if response.status_code != 200 or response.mimetype != "text/html":
                continue
            html = response.get_data(as_text=True)
            # Labels and descriptions point at ids: two the same send them to the wrong field.
            # (Hidden inputs, the CSRF token in each form, have no label.)
            ids = [e["id"] for e in BeautifulSoup(html, "html.parser").find_all(id=True)
                   if not (e.name == "input" and e.get("type") == "hidden")]
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                failures.append(f"{role}: GET {url} has the same id twice: {twice}")
            found = []
            for form in forms_of(url, html, password):
                # The same form on many pages (signing out, a search box) is tried once.
                key = (form.method, form.action, tuple(sorted(n for n, _ in form.fields)))
                if key not in seen:
                    seen.add(key)
                    found.append(form)
            if found:
                pages[url] = found
        for url, found in pages.items():
            for original in found:
                if not _same_site(original.action):
                    continue
                # From the same world each time, on a fresh page (a fresh CSRF token).
                crawl.restore()
                client = crawl.client(role)
                page = client.get(url)
                form = forms_of(url, page.get_data(as_text=True), password)[original.index]
                data = MultiDict(form.fields)
                try:
                    if form.method == "post":
                        response = client.post(form.action, data=data)
                    else:
                        response = client.get(form.action, query_string=data)
                except Exception as exc:  # the test client re-raises what would be a 500
                    failures.append(f"{role}: {form.describe()} with {form.fields} raised "
                                    f"{exc!r}")
                    continue
                submitted[role].append((f"{form.method.upper()} {form.action}",
                                        response.status_code))
                if os.environ.get("CRAWLER_REPORT") and response.status_code >= 400:
                    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
                    errors = [e.get_text(" ", strip=True) for e in
                              soup.select(".invalid-feedback, .alert-danger")]
                    print("REFUSED", role, form.describe(), form.fields, errors)
                if response.status_code >= 500:
                    failures.append(f"{role}: {form.describe()} with {form.fields} answered "
                                    f"{response.status_code}")
    if os.environ.get("CRAWLER_REPORT"):
        for role in ROLES:
            for action, status in submitted[role]:
                print(role, status, action)
    assert not failures, "\n".join(failures)
    # The crawl reached the forms of every role (a sign-in that silently failed would not).
    for role in ROLES:
        assert len(submitted[role]) >= 5, (role, submitted[role])
    # Creating a reseller and a customer with a contact address (the 500 of issue 15) works.
    posted = {(role, action): status for role in ROLES for action, status in submitted[role]}
    assert posted["admin", "POST /resellers/"] == 302, posted
    assert posted["admin", "POST /customers/"] == 302, posted
    assert posted["reseller", "POST /customers/"] == 302, posted
    # Acting as alice, the reseller creates her mailboxes like she would.
    assert posted["acting", "POST /mailboxes/new"] == 302, posted


def test_the_crawler_fills_fields_by_type_and_name() -> None:
    html = """
    <form method="post" action="/x">
      <input type="hidden" name="csrf_token" value="tok">
      <label for="e">Contact address</label><input id="e" type="email" name="contact_email">
      <input type="number" name="max_mailboxes" min="0">
      <input type="password" name="password"><input type="password" name="confirm">
      <select name="package"><option value="">Choose</option><option value="7">Plan</option></select>
      <input type="checkbox" name="imap" value="y">
      <label for="c">Type info@a.example to confirm</label><input id="c" name="confirm_address">
      <textarea name="destinations"></textarea>
      <input type="text" name="quota">
      <button type="submit" name="suspend" value="1">Suspend</button>
    </form>"""
    (form,) = forms_of("/page", html)
    data = dict(form.fields)
    assert form.method == "post" and form.action == "/x"
    assert data["csrf_token"] == "tok"
    assert data["contact_email"] == "someone@elsewhere.example"
    assert data["max_mailboxes"] == "1"
    assert data["password"] == data["confirm"] == STRONG
    assert data["package"] == "7"
    assert data["imap"] == "y"
    assert data["confirm_address"] == "info@a.example"
    assert "@" in data["destinations"]
    assert data["quota"] == "1G"
    assert data["suspend"] == "1"
