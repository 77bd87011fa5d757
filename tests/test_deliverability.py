"""The DNS health check and the records we recommend, against a real DNS server (dnsmasq on
a loopback port): each defect gets its verdict and the line that fixes it, a domain that
publishes what we recommend is all ok; the MTA-STS policy, the JSON API, the CLI and the
page; and no tenant sees another's domain."""

from __future__ import annotations

import json
import re
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.cli import main
from mailadmin.db import transaction
from mailadmin.dnshealth import RECORDS
from mailadmin.errors import NotFound, ValidationError
from mailadmin.models import Domain, PanelUser
from mailadmin.services import deliverability, dkim_keys, domains, server_settings, tokens
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings

from .dnsserver import LocalDns, zone_records
from .web import sign_in

HOST = "mx.hoster.test"
SERVER_IP = "192.0.2.25"
PTR_NAME = "25.2.0.192.in-addr.arpa"
DOMAINS = ("good.test", "nospf.test", "twospf.test", "spfother.test", "nodkim.test",
           "dmarcreject.test", "mxelsewhere.test", "stshost.test")


@pytest.fixture
def dns(tmp_path: Path) -> Iterator[LocalDns]:
    server = LocalDns(tmp_path, zones=("test", "in-addr.arpa"))
    server.serve()
    yield server
    server.stop()


def run(factory: sessionmaker[Session], fn: t.Callable[..., t.Any], *args: t.Any,
        **kw: t.Any) -> t.Any:
    with transaction(factory) as s:
        return fn(s, *args, **kw)


@pytest.fixture
def world(session_factory: sessionmaker[Session], make_user: t.Any, tmp_path: Path,
          dns: LocalDns) -> dict[str, Actor]:
    make_user("rita", "reseller")
    make_user("rob", "reseller")
    make_user("alice", "customer", reseller="rita")
    make_user("carl", "customer", reseller="rob")
    actors = {"operator": Actor.operator()}
    with session_factory() as s:
        for name in ("rita", "rob", "alice", "carl"):
            user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
            actors[name] = Actor.for_user(user, channel="panel", source="127.0.0.1")
    with transaction(session_factory) as s:
        server_settings.update_settings(s, actors["operator"], {
            "mail_hostname": HOST, "smtp_host": HOST, "imap_host": HOST, "pop3_host": HOST,
            "mail_server_addresses": SERVER_IP, "dns_resolvers": dns.resolver,
            "dkim_key_dir": str(tmp_path / "dkim")})
        for name in DOMAINS:
            domains.add_domain(s, actors["alice"], name)
            dkim_keys.rotate_key(s, actors["alice"], name)
        domains.add_domain(s, actors["carl"], "carl.test")
    return actors


def recommended_zone(factory: sessionmaker[Session], actor: Actor, domain: str) -> list[str]:
    return [r.line for r in run(factory, deliverability.dns_health, actor, domain).records]


def without(lines: list[str], pattern: str) -> list[str]:
    return [line for line in lines if not re.search(pattern, line)]


def serve(dns: LocalDns, lines: list[str], ptr: str = HOST) -> None:
    txt, mx, extra = zone_records("\n".join(lines))
    extra += [f"host-record={HOST},{SERVER_IP}", f"ptr-record={PTR_NAME},{ptr}",
              "host-record=mx.elsewhere.test,198.51.100.7"]
    dns.serve(txt=txt, mx=mx, extra=extra)


def verdicts(factory: sessionmaker[Session], actor: Actor,
             domain: str) -> dict[str, deliverability.Verdict]:
    health = run(factory, deliverability.dns_health, actor, domain, refresh=True)
    return {v.record: v for v in health.verdicts}


def test_each_defect_gets_its_verdict_and_the_line_that_fixes_it(
        world: dict[str, Actor], session_factory: sessionmaker[Session], dns: LocalDns) -> None:
    alice = world["alice"]
    zones = {d: recommended_zone(session_factory, alice, d) for d in DOMAINS}
    good = zones["good.test"]
    assert [line.split()[3] for line in good] == [
        "MX", "TXT", "TXT", "TXT", "CNAME", "CNAME", "SRV", "SRV", "SRV", "TXT", "CNAME", "TXT"]
    assert good[0] == f"good.test. 3600 IN MX 10 {HOST}."
    assert good[1] == f'good.test. 3600 IN TXT "v=spf1 mx ip4:{SERVER_IP} ~all"'
    assert good[3] == ('_dmarc.good.test. 3600 IN TXT "v=DMARC1; p=none; '
                       'rua=mailto:postmaster@good.test; fo=1"')
    assert f"_submission._tcp.good.test. 3600 IN SRV 0 1 587 {HOST}." in good
    assert '_smtp._tls.good.test. 3600 IN TXT "v=TLSRPTv1; rua=mailto:postmaster@good.test"' \
        in good
    spf_re, dkim_re, dmarc_re = r"IN TXT \"v=spf1", r"_domainkey", r"^_dmarc\."
    published = [
        *good,
        *without(zones["nospf.test"], spf_re),
        *zones["twospf.test"], 'twospf.test. 3600 IN TXT "v=spf1 include:_spf.mailer.test ~all"',
        *without(zones["spfother.test"], spf_re),
        'spfother.test. 3600 IN TXT "v=spf1 ip4:198.51.100.1 -all"',
        *without(zones["nodkim.test"], dkim_re),
        *without(without(zones["dmarcreject.test"], dkim_re), dmarc_re),
        '_dmarc.dmarcreject.test. 3600 IN TXT "v=DMARC1; p=reject"',
        *without(zones["mxelsewhere.test"], r"IN MX"),
        "mxelsewhere.test. 3600 IN MX 10 mx.elsewhere.test.",
        *without(zones["stshost.test"], r"^mta-sts\."),
    ]
    serve(dns, published)

    found = verdicts(session_factory, alice, "good.test")
    assert list(found) == list(RECORDS)
    assert {r: v.status for r, v in found.items()} == dict.fromkeys(RECORDS, "ok"), found
    # the DKIM key turned active because DNS serves it
    assert [k.state for k in run(session_factory, dkim_keys.list_keys, alice, "good.test")] \
        == ["active"]

    def check(domain: str, record: str, status: str, fix_pattern: str | None,
              words: str) -> None:
        v = verdicts(session_factory, alice, domain)[record]
        assert v.status == status, (domain, v)
        assert words in v.message, v.message
        if fix_pattern is not None:
            fixes = [line for line in zones[domain] if re.search(fix_pattern, line)]
            assert fixes and list(v.recommended) == fixes, v.recommended

    check("nospf.test", "spf", "missing", spf_re, "No SPF record")
    check("twospf.test", "spf", "conflicting", spf_re, "Two or more SPF records")
    check("spfother.test", "spf", "wrong", spf_re, "does not name this server")
    check("nodkim.test", "dkim", "missing", dkim_re, "does not publish the DKIM key")
    check("dmarcreject.test", "dmarc", "wrong", dmarc_re, "DKIM is not published")
    check("dmarcreject.test", "dkim", "missing", dkim_re, "does not publish")
    check("mxelsewhere.test", "mx", "wrong", r"IN MX", "mx.elsewhere.test")
    check("stshost.test", "mta-sts", "missing", r"mta-sts\.", "cannot fetch the policy")
    # the other records of the defect domains are fine
    assert verdicts(session_factory, alice, "nospf.test")["dkim"].status == "ok"
    assert verdicts(session_factory, alice, "mxelsewhere.test")["spf"].status == "ok"

    # the server's reverse DNS names another host: every domain sees it
    serve(dns, published, ptr="static-25.isp.test")
    time.sleep(deliverability.RECHECK_SECONDS)
    ptr = verdicts(session_factory, alice, "good.test")["ptr"]
    assert ptr.status == "wrong" and ptr.published == ("static-25.isp.test",)
    assert ptr.recommended == (f"{PTR_NAME}. 3600 IN PTR {HOST}.",)


def test_results_are_cached_with_their_time_and_rechecked_on_request(
        world: dict[str, Actor], session_factory: sessionmaker[Session], dns: LocalDns) -> None:
    alice = world["alice"]
    health = run(session_factory, deliverability.dns_health, alice, "good.test")
    assert health.checked_at is None and health.verdicts == ()  # a page view sends no query
    first = run(session_factory, deliverability.dns_health, alice, "good.test", refresh=True)
    assert first.checked_at is not None and first.verdicts[0].status == "missing"
    serve(dns, recommended_zone(session_factory, alice, "good.test"))
    # pressed again at once: the last check is shown, DNS is not asked again
    again = run(session_factory, deliverability.dns_health, alice, "good.test", refresh=True)
    assert again.checked_at == first.checked_at
    time.sleep(deliverability.RECHECK_SECONDS)
    later = run(session_factory, deliverability.dns_health, alice, "good.test", refresh=True)
    assert later.checked_at > first.checked_at and later.all_ok
    assert run(session_factory, deliverability.dns_health, alice, "good.test").all_ok


def test_tenants_see_only_their_domains(world: dict[str, Actor],
                                        session_factory: sessionmaker[Session]) -> None:
    for intruder, domain in (("carl", "good.test"), ("rob", "good.test"), ("alice", "carl.test"),
                             ("rita", "carl.test")):
        for refresh in (False, True):
            with pytest.raises(NotFound):
                run(session_factory, deliverability.dns_health, world[intruder], domain,
                    refresh=refresh)
    assert run(session_factory, deliverability.dns_health, world["rita"], "good.test")
    assert run(session_factory, deliverability.dns_health, world["operator"], "carl.test")


def test_server_addresses_setting_is_validated(world: dict[str, Actor],
                                               session_factory: sessionmaker[Session]) -> None:
    for bad in ("mx.hoster.test", "192.0.2.300", "0.0.0.0", "192.0.2.1/24"):  # noqa: S104
        with pytest.raises(ValidationError):
            run(session_factory, server_settings.set_setting, world["operator"],
                "mail_server_addresses", bad)
    run(session_factory, server_settings.set_setting, world["operator"],
        "mail_server_addresses", "192.0.2.25, 2001:db8::25")
    with session_factory() as s:
        assert get_server_settings(s).mail_server_addresses == "192.0.2.25 2001:db8::25"


def test_mta_sts_policy_is_served_for_hosted_domains(
        world: dict[str, Actor], app: t.Any, client: t.Any) -> None:
    answer = client.get("/.well-known/mta-sts.txt", headers={"Host": "mta-sts.good.test"})
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    fields = dict(line.split(": ", 1) for line in answer.get_data(as_text=True).splitlines())
    assert fields["version"] == "STSv1" and fields["mx"] == HOST
    assert fields["mode"] in ("testing", "enforce") and int(fields["max_age"]) > 0
    for host in ("mta-sts.unknown.test", "good.test", "mta-sts.carl", "www.good.test"):
        assert client.get("/.well-known/mta-sts.txt", headers={"Host": host}).status_code == 404
    # a claimed domain that is not verified yet gets no policy vouching for it
    assert client.get("/.well-known/mta-sts.txt",
                      headers={"Host": "mta-sts.carl.test"}).status_code == 200
    with app.extensions["mailadmin"].session_factory() as s, s.begin():
        s.scalars(select(Domain).where(Domain.name == "carl.test")).one().pending = True
    assert client.get("/.well-known/mta-sts.txt",
                      headers={"Host": "mta-sts.carl.test"}).status_code == 404


def test_cli_dns_check_json(world: dict[str, Actor], sqlite_engine: Engine, tmp_path: Path,
                            session_factory: sessionmaker[Session], dns: LocalDns) -> None:
    serve(dns, recommended_zone(session_factory, world["alice"], "good.test"))
    runner = CliRunner()
    env = {"MAILADMIN_DATABASE_URL": str(sqlite_engine.url)}
    result = runner.invoke(main, ["--instance", str(tmp_path / "i"), "dns", "check",
                                  "good.test", "--json"], env=env)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["record"] for r in rows] == list(RECORDS)
    assert all(r["status"] == "ok" and r["published"] and "recommended" in r for r in rows)
    bad = runner.invoke(main, ["--instance", str(tmp_path / "i"), "dns", "check",
                               "nospf.test", "--json"], env=env)
    assert bad.exit_code == 1
    spf = next(r for r in json.loads(bad.output) if r["record"] == "spf")
    assert spf["status"] == "missing" and spf["recommended"][0].startswith("nospf.test. 3600 IN TXT")
    other = runner.invoke(main, ["--instance", str(tmp_path / "i"), "--as", "carl", "dns",
                                 "check", "good.test", "--json"], env=env)
    assert other.exit_code == 1 and json.loads(other.output)["error"]["code"] == "not_found"


def test_api_and_page(world: dict[str, Actor], app: t.Any, client: t.Any, dns: LocalDns,
                      session_factory: sessionmaker[Session]) -> None:
    from panel.api import bp

    if "api" not in app.blueprints:
        app.register_blueprint(bp)
    with transaction(session_factory) as s:
        _, token = tokens.create_api_token(s, world["alice"], "t", ["read", "write"])
    auth = {"Authorization": f"Bearer {token}"}
    serve(dns, recommended_zone(session_factory, world["alice"], "good.test"))
    cached = client.get("/api/v1/domains/good.test/dns", headers=auth)
    assert cached.status_code == 200 and cached.json["records"] == []
    assert cached.json["zone"][0] == f"good.test. 3600 IN MX 10 {HOST}."
    checked = client.post("/api/v1/domains/good.test/dns/check", headers=auth)
    assert checked.status_code == 200, checked.json
    assert [r["status"] for r in checked.json["records"]] == ["ok"] * len(RECORDS)
    assert checked.json["dkim_keys"][0]["state"] == "active"
    assert client.get("/api/v1/domains/carl.test/dns", headers=auth).status_code == 404
    assert client.post("/api/v1/domains/carl.test/dns/check", headers=auth).status_code == 404

    sign_in(client, "alice", "correct horse 9")
    page = client.get("/domains/good.test/deliverability")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('data-status="ok"') == len(RECORDS)
    assert f"good.test. 3600 IN MX 10 {HOST}." in html
    assert client.get("/domains/carl.test/deliverability").status_code == 404
    # forms without their CSRF token change nothing
    assert client.post("/domains/carl.test/deliverability/check").status_code in (400, 404)


def test_the_diagnosis_link_builder(app: t.Any) -> None:
    from panel.deliverability import HEALTH_FAMILIES, health_url

    with app.test_request_context():
        assert health_url("good.test") == "/domains/good.test/deliverability"
    from mailadmin.diagnostics.catalogue import load_catalogue

    assert HEALTH_FAMILIES.issubset(load_catalogue().families)
