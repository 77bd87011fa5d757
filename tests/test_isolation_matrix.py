"""The isolation matrix: every panel route and every API operation, tried by every role on the
objects of another tenant, must be refused (403 or 404) with nothing changed in the database.

The matrix is generated, not listed by hand: the routes come from `app.url_map` (every rule and
method) and the API operations from `/api/v1/openapi.json` (every path and method). Each one must
be classified in `PAGES` or `OPERATIONS` below; a new route without a classification fails
`test_every_route_is_classified`, naming it, so it cannot be forgotten.

World: root (server admin); reseller A "rita" sells to "alice"; reseller B "rob" sells to
"carl"; each customer has a domain, a mailbox, a forwarder, an autoresponder and an API token;
each reseller a package. Attackers and the tenant each attacks:

    alice (customer of A)  -> carl's and rob's objects (tenant B)
    rita (reseller A)      -> carl's and rob's objects (tenant B)
    carl (customer of B)   -> alice's and rita's objects (tenant A)
    rob (reseller B)       -> alice's and rita's objects (tenant A)
    info@carl.example      -> a mailbox user of B's customer: alice's objects, and every panel page
    anonymous              -> tenant A's objects

URL variables are filled with the victim tenant's real objects and with guessed ones (a name or
id that does not exist). Forms are posted with real CSRF tokens (so a refusal is authorisation,
not CSRF) and with data that would be accepted on the attacker's own objects. Before and after,
every row of every tenant table is dumped and compared.

Kinds of route:
  object  - names an object in the URL: 403 or 404 for every signed-in role; anonymous is sent
            to sign in (pages) or gets 401 (API); a mailbox user gets 403, or is sent to its own
            /me pages or its sign-in page.
  own     - no object in the URL, acts on the caller's own account or lists the caller's own
            objects: must not show the victim's objects, and form posts naming the victim's
            objects in their fields must be refused (403, 404 or 422, the refusal beside the
            field).
  admin   - the server admin's own pages (settings, mail server configuration): 403 or 404 for
            every other role, as for `object`.
  public  - meant for everyone (sign-in pages, static files, mail client set-up, the OpenAPI
            document); not attacked here.
"""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
from flask import Flask
from sqlalchemy import MetaData, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.models import ApiToken, Package
from mailadmin.services import (
    app_passwords,
    autoresponders,
    forwarders,
    help,
    import_jobs,
    tokens,
)

from .factories import actor, make_customer, make_package, make_reseller
from .web import csrf_token, sign_in

GiB = 1024**3
PASSWORD = "correct horse 9"
BOX_PASSWORD = "Tr0ub4dor&3-horse"
NEW_PASSWORD = "Another-horse-77!"
API = "/api/v1"

# --- classification ---------------------------------------------------------------------------

PUBLIC = "public"
OBJECT = "object"
OWN = "own"
ADMIN = "admin"


@dataclass(frozen=True)
class Route:
    kind: str
    #: Form fields (pages) or JSON body (API); "{var}" is filled from the victim's objects.
    data: dict[str, t.Any] = field(default_factory=dict)


#: Every panel endpoint (API operations are in `OPERATIONS`). Placeholders: {customer}, {reseller},
#: {domain}, {address}, {forwarder}, {package}.
PAGES: dict[str, Route] = {
    # public
    "static": Route(PUBLIC),
    "auth.login": Route(PUBLIC),
    "self.login": Route(PUBLIC),
    "home.index": Route(PUBLIC),
    "clientsetup.thunderbird": Route(PUBLIC),
    "clientsetup.autodiscover": Route(PUBLIC),
    "deliverability.mta_sts_policy": Route(PUBLIC),
    # own account and own lists
    "auth.logout": Route(OWN),
    "account.sign_out_everywhere": Route(OWN),
    "self.sign_out_everywhere": Route(OWN),
    "home.dashboard": Route(OWN),
    "home.webmail": Route(OWN),
    "account.password": Route(OWN, {"current_password": "wrong-password", "password": "x"}),
    "tokens.index": Route(OWN),
    "tokens.create": Route(OWN, {"name": "", "access": "read"}),
    "audit.index": Route(OWN),
    "audit.export": Route(OWN),
    "diagnostics.index": Route(OWN, {"text": "", "address": "{address}"}),
    "domains.index": Route(OWN, {"name": "stolen.example", "customer": "{customer}"}),
    "mail.mailboxes_index": Route(OWN),
    "mail.autoresponders_index": Route(OWN),
    "mail.mailboxes_bulk": Route(OWN, {"action": "suspend", "addresses": "{address}",
                                       "confirm": "y"}),
    "mail.usage_refresh": Route(OWN),
    "preferences.time_zone": Route(OWN),
    "preferences.password_rules": Route(PUBLIC),
    "mail.mailbox_new": Route(OWN, {"local_part": "new", "domain": "{domain}",
                                    "password": BOX_PASSWORD, "confirm": BOX_PASSWORD}),
    "mail.forwarders_index": Route(OWN),
    "mail.forwarder_edit": Route(OWN, {"local_part": "sales", "domain": "{domain}",
                                       "destinations": "thief@elsewhere.example"}),
    "mail.forwarder_new": Route(OWN, {"local_part": "sales", "domain": "{domain}",
                                      "destinations": "thief@elsewhere.example"}),
    "customers.index": Route(OWN, {"username": "stolen", "password": NEW_PASSWORD,
                                   "package": "{package}"}),
    "customers.acting": Route(OWN),
    "customers.stop_acting": Route(OWN),
    "packages.index": Route(OWN, {"name": "", "default_quota": "1G"}),
    "resellers.index": Route(OWN, {"username": "", "password": ""}),
    "admin.settings": Route(ADMIN, {"imap_host": "evil.example"}),
    "admin.apply_now": Route(ADMIN),
    "admin.config_status": Route(ADMIN),
    # is-it-live notice: about the caller's own last change only
    "live.status": Route(OWN),
    "admin.mail_nodes": Route(ADMIN),
    "admin.revisions": Route(ADMIN),
    "admin.revision_diff": Route(ADMIN),
    "admin.rollback": Route(ADMIN),
    "diagnostics.mail_log": Route(OWN),
    "diagnostics.login_test": Route(OBJECT, {"password": BOX_PASSWORD}),
    "self.overview": Route(OWN),
    "self.password": Route(OWN, {"current_password": "wrong-password",
                                 "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}),
    "self.autoresponder": Route(OWN, {"subject": "", "body": ""}),
    "self.autoresponder_clear": Route(OWN, {"confirm": ""}),
    "self.forwarding": Route(OWN, {"destinations": ""}),
    "self.forwarding_clear": Route(OWN, {"confirm": ""}),
    "self.devices": Route(OWN),
    # two-factor sign-in: the code step is part of signing in; the set-up pages act only for
    # the signed-in account (the other kind of account gets 403)
    "twofactor.code": Route(PUBLIC),
    **{f"twofactor.{kind}_{page}": Route(OWN, {"code": ""})
       for kind in ("panel", "mailbox")
       for page in ("settings", "start", "confirm", "disable", "recovery_codes", "verify")},
    # the help centre: everyone reads the server's articles; a reseller's own are its tenants'
    "help.index": Route(OWN),
    "help.manage": Route(OWN),
    # Taking the victim reseller's slug: refused as taken, nothing created.
    "help.new_article": Route(OWN, {"slug": "{slug}", "title": "Stolen", "body": "Mine now",
                                    "audience": "customer", "save": "1"}),
    "help.article": Route(OBJECT),
    "help.vote": Route(OBJECT, {"helpful": "yes"}),
    "help.edit_article": Route(OBJECT, {"slug": "{slug}", "title": "Stolen", "body": "Mine",
                                        "audience": "customer", "save": "1"}),
    "help.article_action": Route(OBJECT),
    "self_app_passwords.own": Route(OWN, {"label": "", "imap": "y"}),
    "self_app_passwords.own_only": Route(OWN),
    "self_app_passwords.own_revoke": Route(OBJECT),
    "app_passwords.mailbox": Route(OBJECT, {"label": "stolen", "imap": "y"}),
    "app_passwords.mailbox_only": Route(OBJECT, {"app_passwords_only": "y"}),
    "app_passwords.mailbox_revoke": Route(OBJECT),
    "clientsetup.mobileconfig": Route(OWN),
    # objects named in the URL
    "customers.detail": Route(OBJECT),
    "customers.act": Route(OBJECT),
    "customers.delete": Route(OBJECT, {"confirm": "{customer}"}),
    "customers.change_package": Route(OBJECT, {"package": "{package}"}),
    "customers.resume": Route(OBJECT),
    "customers.suspend": Route(OBJECT),
    "domains.detail": Route(OBJECT),
    "domains.catchall": Route(OBJECT, {"action": "discard"}),
    "domains.defaults": Route(OBJECT, {"quota": "1G", "imap": "y", "pop3": "y", "smtp": "y"}),
    "domains.remove": Route(OBJECT, {"confirm": "{domain}"}),
    "domains.verify": Route(OBJECT),
    "domains.approve": Route(OBJECT),
    "deliverability.page": Route(OBJECT),
    "deliverability.check": Route(OBJECT),
    "deliverability.new_key": Route(OBJECT, {"algorithm": "rsa"}),
    "domains.self_service": Route(OBJECT, {"allow_forwarding": "y",
                                           "allow_autoresponder": "y"}),
    "transfer.export_csv": Route(OWN),
    "transfer.import_csv": Route(OWN, {"dry_run": "y"}),
    "transfer.import_status": Route(OBJECT),
    "mail.forwarder_delete": Route(OBJECT, {"confirm": "y"}),
    "mail.mailbox_detail": Route(OBJECT),
    "mail.mailbox_devices": Route(OBJECT),
    "mail.mailbox_autoresponder": Route(OBJECT, {"subject": "Away", "body": "Gone",
                                                 "interval_days": "1", "enabled": "y"}),
    "mail.mailbox_delete": Route(OBJECT, {"confirm": "{address}"}),
    "mail.mailbox_recalculate": Route(OBJECT),
    "resolver.index": Route(OWN),
    "mail.mailbox_password": Route(OBJECT, {"password": NEW_PASSWORD,
                                            "confirm": NEW_PASSWORD}),
    "mail.mailbox_settings": Route(OBJECT, {"quota": "1G", "imap": "y"}),
    "mail.mailbox_suspensions": Route(OBJECT, {"login": "y", "incoming": "y",
                                               "outgoing": "y"}),
    "packages.edit_package": Route(OBJECT, {"name": "Mine", "default_quota": "1G",
                                            "max_mailboxes": "1"}),
    "packages.delete_package": Route(OBJECT),
    "resellers.edit": Route(OBJECT, {"max_customers": "100", "max_mailboxes": "100"}),
    "resellers.suspension": Route(OBJECT, {"suspend": "1"}),
    "tokens.revoke": Route(OBJECT),
}

#: Every API operation, keyed "METHOD /path" as in the OpenAPI document.
OPERATIONS: dict[str, Route] = {
    "GET /openapi.json": Route(PUBLIC),
    "GET /domains": Route(OWN),
    "POST /domains": Route(OWN, {"name": "stolen.example", "customer": "{customer}"}),
    "GET /mailboxes": Route(OWN),
    "POST /mailboxes": Route(OWN, {"address": "new@{domain}", "password": BOX_PASSWORD}),
    "GET /forwarders": Route(OWN),
    "POST /diagnose": Route(OWN, {"text": "550 5.1.1 <{address}>: user unknown"}),
    "DELETE /domains/{name}": Route(OBJECT),
    "GET /domains/{name}": Route(OBJECT),
    "POST /domains/{name}/verify": Route(OBJECT),
    "POST /domains/{name}/approve": Route(OBJECT),
    "GET /domains/{name}/dns": Route(OBJECT),
    "POST /domains/{name}/dns/check": Route(OBJECT),
    "PUT /domains/{name}/catchall": Route(OBJECT, {"action": "discard"}),
    "PUT /domains/{name}/defaults": Route(OBJECT, {"quota": 1024, "imap": True, "pop3": True,
                                                   "smtp": True}),
    "GET /mailboxes/{address}": Route(OBJECT),
    "PATCH /mailboxes/{address}": Route(OBJECT, {"imap": False}),
    "DELETE /mailboxes/{address}": Route(OBJECT, {"confirm": "{address}"}),
    "PUT /mailboxes/{address}/password": Route(OBJECT, {"password": NEW_PASSWORD}),
    "POST /mailboxes/{address}/suspend": Route(OBJECT, {"login": True}),
    "POST /mailboxes/{address}/resume": Route(OBJECT, {"login": True}),
    "PUT /mailboxes/{address}/autoresponder": Route(OBJECT, {"subject": "Away",
                                                            "body": "Gone"}),
    "DELETE /mailboxes/{address}/autoresponder": Route(OBJECT),
    "PUT /forwarders/{address}": Route(OBJECT, {"destinations": ["thief@elsewhere.example"]}),
    "DELETE /forwarders/{address}": Route(OBJECT),
    "POST /forwarders/{address}/destinations": Route(OBJECT, {
        "destinations": ["thief@elsewhere.example"]}),
    "POST /mailboxes/{address}/usage/recalculate": Route(OBJECT),
    "GET /resolve/{address}": Route(OBJECT),
    "GET /help": Route(OWN),
    "GET /help/{slug}": Route(OBJECT),
    "GET /mailboxes/{address}/app-passwords": Route(OBJECT),
    "POST /mailboxes/{address}/app-passwords": Route(OBJECT, {"label": "stolen",
                                                             "protocols": ["imap"]}),
    "DELETE /mailboxes/{address}/app-passwords/{app_password_id}": Route(OBJECT),
    "PUT /mailboxes/{address}/app-passwords-only": Route(OBJECT, {"enabled": True}),
}

# --- the world --------------------------------------------------------------------------------

TENANT_A = {"customer": "alice", "reseller": "rita", "domain": "alice.example",
            "address": "info@alice.example", "forwarder": "sales@alice.example"}
TENANT_B = {"customer": "carl", "reseller": "rob", "domain": "carl.example",
            "address": "info@carl.example", "forwarder": "sales@carl.example"}
GUESSED = {"customer": "nobody", "reseller": "noseller", "domain": "guessed.example",
           "address": "guess@guessed.example", "forwarder": "guess@guessed.example",
           "package": "99999", "token": "99999", "revision": "99999",
           "slug": "guessed-article", "article_id": "99999", "app_password_id": "99999"}
#: Who attacks which tenant; the mailbox user is info@carl.example (B's customer).
ATTACKERS = {"alice": TENANT_B, "rita": TENANT_B, "carl": TENANT_A, "rob": TENANT_A,
             "mailbox": TENANT_A, "anonymous": TENANT_A}
#: Text that, in an attacker's answer, would show the victim's objects.
MARKERS = {"alice": ("carl", "rob"), "rita": ("carl", "rob"), "carl": ("alice", "rita"),
           "rob": ("alice", "rita"), "mailbox": ("alice", "rita"),
           "anonymous": ("alice", "rita", "carl", "rob")}
#: Columns that signing in and using a token legitimately touch.
VOLATILE = {"last_login_at", "last_used_at"}


def build_world(factory: sessionmaker[Session], make_user: t.Any) -> dict[str, t.Any]:
    make_user("root", "admin")
    root = actor(factory, "root")
    with transaction(factory) as s:
        help.sync_shipped_articles(s)  # as the first help page would, before the dump
    ids: dict[str, t.Any] = {}
    for tenant in (TENANT_A, TENANT_B):
        seller_name, name = tenant["reseller"], tenant["customer"]
        seller = make_reseller(factory, root, seller_name)
        plan = make_package(factory, seller)
        tenant_ids = {"package": str(plan)}
        customer = make_customer(factory, seller, name, plan, domain=tenant["domain"],
                                 addresses=[tenant["address"]])
        with transaction(factory) as s:
            forwarders.set_forwarder(s, customer, tenant["forwarder"], [tenant["address"]])
            autoresponders.set_autoresponder(s, customer, tenant["address"], subject="Away",
                                             body="Back soon")
            app_password = app_passwords.add_app_password(s, customer, tenant["address"],
                                                          "phone", ["imap"])
            tenant_ids["app_password_id"] = str(app_password.row.id)
        secrets = {}
        for holder in (seller_name, name):
            with transaction(factory) as s:
                token, secrets[holder] = tokens.create_api_token(s, actor(factory, holder), "t")
                if holder == name:
                    tenant_ids["token"] = str(token.id)
        # a finished CSV import of the customer's, whose status page is the customer's only
        with transaction(factory) as s:
            job = import_jobs.start_import_job(s, actor(factory, name), 0, True)
            import_jobs.finish_import_job(s, job.id)
            tenant_ids["import_job"] = str(job.id)
        with transaction(factory) as s:
            # The reseller's own help article, for its customers only.
            article = help.create_article(s, seller, help.ArticleInput(
                slug=f"{seller_name}-guide", title=f"Guide by {seller_name}",
                audience="customer", body=f"Ask {seller_name} for help."))
            tenant_ids.update(slug=article.slug, article_id=str(article.id))
        ids[name] = tenant_ids
        ids["secrets"] = {**ids.get("secrets", {}), **secrets}
    return ids


def dump(factory: sessionmaker[Session]) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table but the sign-in bookkeeping (throttle, sessions, known places),
    without sign-in and token-use times, and without the records of API calls (which every
    call, refused or not, adds)."""
    with factory() as s:
        meta = MetaData()
        names = [n for n in inspect(s.get_bind()).get_table_names()
                 if n not in ("login_throttles", "login_sessions", "known_sign_ins",
                              "alembic_version")]
        meta.reflect(bind=s.get_bind(), only=names)
        out = {}
        for name, table in meta.tables.items():
            columns = [c for c in table.columns if c.name not in VOLATILE]
            query = select(*columns)
            if name == "audit_events":
                query = query.where(table.c.action != "api.call")
            out[name] = sorted(tuple(map(str, row)) for row in s.execute(query))
        return out


# --- generating the requests ------------------------------------------------------------------


def fill(value: t.Any, objects: dict[str, str]) -> t.Any:
    if isinstance(value, str):
        return value.format(**objects)
    if isinstance(value, list):
        return [fill(v, objects) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, objects) for k, v in value.items()}
    return value


def url_values(endpoint: str, arguments: t.Iterable[str],
               objects: dict[str, str]) -> dict[str, str]:
    """The victim's object for each URL variable of a rule."""
    values = {}
    for argument in arguments:
        if argument == "name":
            kind = endpoint.split(".")[0]
            values[argument] = objects[{"customers": "customer", "domains": "domain",
                                        "deliverability": "domain",
                                        "resellers": "reseller"}[kind]]
        elif argument == "address":
            values[argument] = objects["forwarder" if "forwarder" in endpoint else "address"]
        elif argument == "package_id":
            values[argument] = objects["package"]
        elif argument == "token_id":
            values[argument] = objects["token"]
        elif argument == "app_password_id":
            values[argument] = objects["app_password_id"]
        elif argument == "revision_id":
            values[argument] = objects.get("revision", "1")
        elif argument == "job_id":
            values[argument] = objects.get("import_job", "99999")
        elif argument in ("slug", "article_id"):
            values[argument] = objects[argument]
        elif argument == "action":
            values[argument] = "hide"
        else:  # pragma: no cover - a new kind of variable must be taught here
            raise AssertionError(f"{endpoint}: no victim value for <{argument}>")
    return values


def panel_rules(app: Flask) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(endpoint, method, rule, variables) for every panel rule and method (not the API's)."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, rule.rule, tuple(sorted(rule.arguments))))
    # Signing out last, so that every other route is tried while signed in.
    return sorted(found, key=lambda route: (route[0] in SIGN_OUTS, route))


def api_operations(app: Flask) -> list[tuple[str, str, str]]:
    """(key, method, path template) for every operation of the OpenAPI document."""
    response = app.test_client().get(f"{API}/openapi.json")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    document = response.get_json()
    found = []
    for full_path, item in document["paths"].items():
        path = full_path.removeprefix(API)
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                found.append((f"{method.upper()} {path}", method.upper(), path))
    return sorted(found)


def candidates(tenant: dict[str, str], ids: dict[str, t.Any]) -> list[dict[str, str]]:
    """The victim tenant's real objects, then guessed ones."""
    return [{**tenant, **ids[tenant["customer"]]}, {**GUESSED}]


# --- clients ----------------------------------------------------------------------------------


@dataclass
class Attacker:
    name: str
    client: t.Any
    csrf: str | None
    token: str | None


def attacker(app: Flask, name: str, ids: dict[str, t.Any]) -> Attacker:
    client = app.test_client()
    if name == "anonymous":
        page = client.get("/login").get_data(as_text=True)
        return Attacker(name, client, csrf_token(page), None)
    if name == "mailbox":
        page = client.get("/me/login").get_data(as_text=True)
        signed = client.post("/me/login", data={"address": "info@carl.example",
                                                "password": BOX_PASSWORD,
                                                "csrf_token": csrf_token(page)})
        assert signed.status_code == 302, signed.status_code
        token = csrf_token(client.get("/me/password").get_data(as_text=True))
        return Attacker(name, client, token, None)
    assert sign_in(client, name, PASSWORD).status_code == 302
    token = csrf_token(client.get("/account/password").get_data(as_text=True))
    return Attacker(name, client, token, ids["secrets"][name])


def own_attempts_removed(body: str) -> str:
    """The attacker's audit log rightly lists its own refused API calls, which name the victim's
    objects it typed in; leave those rows (HTML or CSV) out of the leak check."""
    body = re.sub(r"<tr[^>]*>(?:(?!</tr>).)*api\.call(?:(?!</tr>).)*</tr>", "", body,
                  flags=re.DOTALL)
    return "\n".join(line for line in body.splitlines() if ",api.call," not in line)


def sent_to_sign_in(response: t.Any) -> bool:
    return response.status_code == 302 and re.search(r"/(me/)?login", response.location or "")


def sent_to_own_pages(response: t.Any) -> bool:
    return response.status_code == 302 and "/me" in (response.location or "")


def page_answer_ok(who: str, endpoint: str, method: str, r: t.Any) -> tuple[bool, bool]:
    """Whether a page's answer to `who` is a refusal, and whether to check it for leaks."""
    route = PAGES[endpoint]
    status = r.status_code
    if who == "anonymous":
        open_to_all = endpoint in OPEN_PAGES and status == 200
        return status in (401, 403, 404) or bool(sent_to_sign_in(r)) or open_to_all, True
    if endpoint in KNOWN_DEVIATIONS:
        # Refused with nothing changed, but as a redirect: see KNOWN_DEVIATIONS.
        return status in (403, 404) or (
            status == 302 and r.location.endswith(KNOWN_DEVIATIONS[endpoint])), True
    mailbox_sent_away = who == "mailbox" and bool(sent_to_sign_in(r) or sent_to_own_pages(r))
    if route.kind in (OBJECT, ADMIN):
        return status in (403, 404) or mailbox_sent_away, True
    if method == "POST" and endpoint in ANALYSIS:
        return status in (200, 403), False
    if method == "POST" and endpoint in SIGN_OUTS:
        # The sign-outs come last and end the session, so the next one is refused for want
        # of a session (and its CSRF token).
        return status in (302, 400, 403, 404, 422), True
    if method == "POST" and endpoint in SELF_POSTS:
        return status in (302, 403, 404, 422), True
    if method == "POST":
        return status in (403, 404, 422) or mailbox_sent_away, True
    return status in (200, 302, 403, 404), True


def api_answer_ok(has_token: bool, key: str, method: str, r: t.Any) -> tuple[bool, bool]:
    """Whether an API answer is a refusal (or a harmless own list), and whether to leak-check."""
    status = r.status_code
    if not has_token:
        return status == 401, True
    if OPERATIONS[key].kind == OBJECT:
        return status in (403, 404), True
    if method == "GET":
        return status == 200, True
    if key in ANALYSIS:
        return status == 200, False
    return status in (403, 404, 422), False


# --- tests ------------------------------------------------------------------------------------


@pytest.fixture
def matrix(app: Flask, session_factory: sessionmaker[Session], make_user: t.Any) -> t.Any:
    ids = build_world(session_factory, make_user)
    return app, ids


def test_every_route_is_classified(app: Flask) -> None:
    """A new page or API operation fails here until it is put in the matrix."""
    endpoints = {endpoint for endpoint, *_ in panel_rules(app)}
    unclassified = sorted(endpoints - set(PAGES))
    assert not unclassified, f"classify these routes in PAGES: {unclassified}"
    stale = sorted(set(PAGES) - endpoints)
    assert not stale, f"PAGES names routes that no longer exist: {stale}"
    operations = {key for key, *_ in api_operations(app)}
    unclassified = sorted(operations - set(OPERATIONS))
    assert not unclassified, f"classify these API operations in OPERATIONS: {unclassified}"
    assert not sorted(set(OPERATIONS) - operations), "OPERATIONS names operations that no longer exist"
    # Every rule with a variable attacks an object; every object route has a variable.
    for endpoint, _, rule, variables in panel_rules(app):
        if variables and endpoint not in ("static",):
            assert PAGES[endpoint].kind in (OBJECT, ADMIN), rule
        if PAGES[endpoint].kind == OBJECT:
            assert variables, rule
    # And the API blueprint's Flask rules are exactly the document's operations.
    flask_api = {
        f"{m} {r.rule.removeprefix(API)}".replace("<", "{").replace(">", "}")
        for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")
        for m in (r.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert flask_api == operations


def test_every_role_is_refused_on_every_route_of_another_tenant(
    matrix: t.Any, session_factory: sessionmaker[Session]
) -> None:
    app, ids = matrix
    attackers = {name: attacker(app, name, ids) for name in ATTACKERS}
    before = dump(session_factory)
    failures: list[str] = []
    tried = 0

    def check(who: Attacker, label: str, response: t.Any, ok: bool,
              leak_check: bool = True) -> None:
        nonlocal tried
        tried += 1
        if not ok:
            failures.append(f"{who.name} {label}: {response.status_code} "
                            f"{response.location or ''}")
            return
        if leak_check and response.status_code == 200 and response.mimetype != "text/css":
            body = own_attempts_removed(response.get_data(as_text=True))
            for marker in MARKERS[who.name]:
                if re.search(rf"\b{re.escape(marker)}\b", body):
                    failures.append(f"{who.name} {label}: shows {marker!r}")

    for who in attackers.values():
        victims = candidates(ATTACKERS[who.name], ids)
        # --- pages
        for endpoint, method, _rule, variables in panel_rules(app):
            route = PAGES[endpoint]
            if route.kind == PUBLIC:
                continue
            if who.name == "mailbox" and method == "POST" and endpoint in MAILBOX_OWN_POSTS:
                continue  # see MAILBOX_OWN_POSTS
            if method == "POST" and endpoint in OWN_PREFERENCES:
                continue  # see OWN_PREFERENCES
            if method == "POST" and OWN_SET_UP_STARTS.get(endpoint, "") == (
                    "mailbox" if who.name == "mailbox" else "panel"):
                continue  # see OWN_SET_UP_STARTS
            for objects in victims if variables else victims[:1]:
                with app.test_request_context():
                    from flask import url_for

                    url = url_for(endpoint, **url_values(endpoint, variables, objects))
                if method == "POST":
                    data = {**fill(route.data, objects), "csrf_token": who.csrf}
                    response = who.client.post(url, data=data)
                else:
                    response = who.client.get(url)
                ok, leaks = page_answer_ok(who.name, endpoint, method, response)
                check(who, f"{method} {url}", response, ok, leaks)
        # --- API
        for key, method, path in api_operations(app):
            route = OPERATIONS[key]
            if route.kind == PUBLIC:
                continue
            variables = tuple(re.findall(r"{(\w+)}", path))
            for objects in victims if variables else victims[:1]:
                values = {v: quote(objects["forwarder" if "forwarders" in path else v]
                                   if v != "name" else objects["domain"], safe="@")
                          for v in variables}
                url = API + path.format(**values)
                headers = {"Authorization": f"Bearer {who.token}"} if who.token else {}
                body = fill(route.data, objects)
                response = who.client.open(
                    url, method=method, headers=headers,
                    data=json.dumps(body) if body else None,
                    content_type="application/json" if body else None)
                ok, leaks = api_answer_ok(who.token is not None, key, method, response)
                check(who, f"{method} {url}", response, ok, leaks)
    assert not failures, "\n".join(failures)
    assert tried > 400, tried
    assert dump(session_factory) == before


#: Own-kind pages that anonymous visitors may read too (the help centre's list and search; the
#: is-it-live notice, which has nothing to say to them):
#: answered 200 to them, and still leak-checked for every attacker, anonymous included.
OPEN_PAGES = {"help.index", "live.status"}
#: Operations that only analyse the text they are sent and change nothing (the diagnosis of a
#: bounce): answered 200, and not leak-checked because they echo the addresses in the text.
ANALYSIS = {"POST /diagnose", "diagnostics.index"}
#: Routes that refuse another tenant's object without a 403/404: endpoint -> where they
#: redirect instead. The database is still compared, so nothing may change; and
#: `test_known_deviations_still_deviate` fails once one is fixed, so it is taken off this list.
KNOWN_DEVIATIONS: dict[str, str] = {}
#: A mailbox user's own settings forms: they take no object, in the URL or a field, and change
#: only the signed-in mailbox (tests/test_selfservice.py covers them); posting them would change
#: the attacker's own mailbox, which is not an attack on another tenant. Panel users posting
#: them are still tried (and refused).
MAILBOX_OWN_POSTS = {"self.autoresponder", "self.autoresponder_clear", "self.forwarding",
                     "self.forwarding_clear"}
#: Starting one's own two-factor set-up takes nothing but the CSRF token and makes a new
#: secret for the caller's own account only (tests/test_twofactor_web.py covers it): not an
#: attack on another tenant. The other kind of account posting it is still tried (and refused).
OWN_SET_UP_STARTS = {"twofactor.panel_start": "panel", "twofactor.mailbox_start": "mailbox"}
#: Posts that act on the caller's own session and may answer with a redirect (nothing of
#: another tenant is involved): signing out, leaving "act as".
SIGN_OUTS = {"auth.logout", "account.sign_out_everywhere", "self.sign_out_everywhere"}
#: "Read usage now" reads the caller's own mailboxes (no object named anywhere) and answers
#: with a redirect back to the list.
SELF_POSTS = SIGN_OUTS | {"customers.stop_acting", "mail.usage_refresh"}
#: Preferences of the caller's own account (its time zone): no object in the URL or a field;
#: posting one would change the attacker's own row, which is not an attack on another tenant
#: (tests/test_time_zones_and_autoresponders.py covers them).
OWN_PREFERENCES = {"preferences.time_zone"}


def test_the_tokens_and_packages_of_the_world_exist(matrix: t.Any,
                                                    session_factory: t.Any) -> None:
    """The ids substituted above are real objects of the victim tenants."""
    _, ids = matrix
    with session_factory() as s:
        for customer in ("alice", "carl"):
            assert s.get(Package, int(ids[customer]["package"])) is not None
            assert s.get(ApiToken, int(ids[customer]["token"])) is not None


def test_revoking_a_foreign_token_is_not_found(matrix: t.Any) -> None:
    app, ids = matrix
    carl = attacker(app, "carl", ids)
    response = carl.client.post(f"/account/tokens/{ids['alice']['token']}/revoke",
                                data={"csrf_token": carl.csrf})
    assert response.status_code in (403, 404)
