"""Automatic configuration answers, parsed back as the mail programs parse them."""

from __future__ import annotations

import plistlib
import typing as t
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailadmin import clientsetup
from mailadmin.db import transaction
from mailadmin.services.server import get_server_settings

from .test_selfservice import (
    PASSWORD,
    mailbox_sign_in,
    register_blueprints,
    seed_mail,
    set_flags,
)

NS = {"r": clientsetup.AUTODISCOVER_RESPONSE_NS, "o": clientsetup.AUTODISCOVER_OUTLOOK_NS}


@dataclass
class Hosts:
    imap_host: str = "imap.example.net"
    pop3_host: str = "pop.example.net"
    smtp_host: str = "smtp.example.net"
    imap_port: int = 993
    pop3_port: int = 995
    submission_port: int = 587


def setup_for(imap: bool, pop3: bool, smtp: bool, hosts: Hosts | None = None,
              address: str | None = "anna@example.org") -> clientsetup.ClientSetup:
    return clientsetup.build_setup(hosts or Hosts(), address=address, domain="example.org",
                                   imap=imap, pop3=pop3, smtp=smtp)


# --- parsing as the clients do ----------------------------------------------------------------


def thunderbird_servers(xml: bytes) -> dict[str, dict[str, str]]:
    """Thunderbird's reading: clientConfig v1.1 > emailProvider > incoming/outgoingServer."""
    root = ET.fromstring(xml)  # noqa: S314  (our own output)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id")
    assert provider.findtext("domain") and provider.findtext("displayName")
    servers: dict[str, dict[str, str]] = {}
    for element in [*provider.findall("incomingServer"), *provider.findall("outgoingServer")]:
        fields = {child.tag: child.text or "" for child in element}
        assert set(fields) >= {"hostname", "port", "socketType", "authentication", "username"}
        assert fields["socketType"] in {"SSL", "STARTTLS", "plain"}
        servers[element.get("type", "")] = fields
    return servers


def autodiscover_protocols(xml: bytes) -> dict[str, dict[str, str]]:
    root = ET.fromstring(xml)  # noqa: S314  (our own output)
    assert root.tag == f"{{{clientsetup.AUTODISCOVER_RESPONSE_NS}}}Autodiscover"
    account = root.find("o:Response/o:Account", NS)
    assert account is not None
    assert account.findtext("o:AccountType", namespaces=NS) == "email"
    assert account.findtext("o:Action", namespaces=NS) == "settings"
    result = {}
    for protocol in account.findall("o:Protocol", NS):
        fields = {child.tag.split("}")[1]: child.text or "" for child in protocol}
        result[fields["Type"]] = fields
    return result


def profile_account(data: bytes) -> dict[str, t.Any]:
    profile = plistlib.loads(data)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    [account] = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    return t.cast(dict[str, t.Any], account)


# --- the pure documents -----------------------------------------------------------------------


def test_pop3_off_is_offered_no_pop3_in_any_format() -> None:
    setup = setup_for(imap=True, pop3=False, smtp=True)
    servers = thunderbird_servers(clientsetup.thunderbird_autoconfig(setup))
    assert set(servers) == {"imap", "smtp"}
    assert servers["imap"] == {"hostname": "imap.example.net", "port": "993", "socketType": "SSL",
                               "authentication": "password-cleartext",
                               "username": "%EMAILADDRESS%"}
    assert servers["smtp"]["port"] == "587" and servers["smtp"]["socketType"] == "STARTTLS"
    protocols = autodiscover_protocols(clientsetup.outlook_autodiscover(setup, "anna@example.org"))
    assert set(protocols) == {"IMAP", "SMTP"}
    assert protocols["IMAP"]["LoginName"] == "anna@example.org"
    assert protocols["IMAP"]["Encryption"] == "SSL" and protocols["SMTP"]["Encryption"] == "TLS"
    profile = clientsetup.apple_mobileconfig(setup)
    assert profile is not None
    account = profile_account(profile)
    assert account["EmailAccountType"] == "EmailTypeIMAP"
    assert account["IncomingMailServerHostName"] == "imap.example.net"
    assert account["IncomingMailServerPortNumber"] == 993
    assert account["OutgoingMailServerPortNumber"] == 587
    assert b"pop.example.net" not in profile


def test_only_pop3_is_offered_pop3_only_in_every_format() -> None:
    setup = setup_for(imap=False, pop3=True, smtp=False)
    servers = thunderbird_servers(clientsetup.thunderbird_autoconfig(setup))
    assert set(servers) == {"pop3"}
    assert servers["pop3"]["hostname"] == "pop.example.net" and servers["pop3"]["port"] == "995"
    assert set(autodiscover_protocols(
        clientsetup.outlook_autodiscover(setup, "anna@example.org"))) == {"POP3"}
    profile = clientsetup.apple_mobileconfig(setup)
    assert profile is not None
    account = profile_account(profile)
    assert account["EmailAccountType"] == "EmailTypePOP"
    assert account["IncomingMailServerPortNumber"] == 995
    assert not any(key.startswith("Outgoing") for key in account)


def test_ports_decide_the_security() -> None:
    setup = setup_for(True, True, True, Hosts(imap_port=143, pop3_port=110, submission_port=465))
    servers = thunderbird_servers(clientsetup.thunderbird_autoconfig(setup))
    assert {k: (v["port"], v["socketType"]) for k, v in servers.items()} == {
        "imap": ("143", "STARTTLS"), "pop3": ("110", "STARTTLS"), "smtp": ("465", "SSL")}


def test_profile_identifiers_are_stable_so_a_new_download_replaces_the_old() -> None:
    first = plistlib.loads(t.cast(bytes, clientsetup.apple_mobileconfig(setup_for(1, 1, 1))))
    again = plistlib.loads(t.cast(bytes, clientsetup.apple_mobileconfig(setup_for(1, 0, 1))))
    assert first["PayloadUUID"] == again["PayloadUUID"]
    assert first["PayloadIdentifier"] == "org.example.profile.anna@example.org"
    other = plistlib.loads(t.cast(bytes, clientsetup.apple_mobileconfig(
        setup_for(1, 1, 1, address="bob@example.org"))))
    assert other["PayloadUUID"] != first["PayloadUUID"]


def test_no_incoming_protocol_means_no_profile() -> None:
    assert clientsetup.apple_mobileconfig(setup_for(False, False, True)) is None


def test_hostile_text_stays_text() -> None:
    hosts = Hosts(imap_host='imap"<x>&amp;.example', smtp_host="s</hostname><evil/>")
    setup = setup_for(True, False, True, hosts)
    servers = thunderbird_servers(clientsetup.thunderbird_autoconfig(setup))
    assert servers["imap"]["hostname"] == 'imap"<x>&amp;.example'
    assert servers["smtp"]["hostname"] == "s</hostname><evil/>"
    protocols = autodiscover_protocols(
        clientsetup.outlook_autodiscover(setup, "a<b>@example.org"))
    assert protocols["SMTP"]["LoginName"] == "a<b>@example.org"
    account = profile_account(t.cast(bytes, clientsetup.apple_mobileconfig(setup)))
    assert account["IncomingMailServerHostName"] == 'imap"<x>&amp;.example'


REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>'
    f'<Autodiscover xmlns="{clientsetup.AUTODISCOVER_REQUEST_NS}"><Request>'
    "<EMailAddress>{address}</EMailAddress>"
    f"<AcceptableResponseSchema>{clientsetup.AUTODISCOVER_OUTLOOK_NS}</AcceptableResponseSchema>"
    "</Request></Autodiscover>"
)


def test_autodiscover_request_is_read_safely() -> None:
    parse = clientsetup.parse_autodiscover_request
    assert parse(REQUEST.format(address=" anna@example.org ").encode()) == "anna@example.org"
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        f'<Autodiscover xmlns="{clientsetup.AUTODISCOVER_REQUEST_NS}"><Request>'
        "<EMailAddress>&lol2;</EMailAddress></Request></Autodiscover>"
    )
    assert parse(bomb.encode()) is None
    external = (
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>"
    )
    assert parse(external.encode()) is None
    assert parse(b"<Autodiscover><Request>") is None
    assert parse(b"not xml at all") is None
    assert parse(b"<Autodiscover><Request><EMailAddress></EMailAddress></Request></Autodiscover>") is None
    assert parse(REQUEST.format(address="a" * 9000 + "@example.org").encode()) is None


def test_advice_fits_the_mailbox() -> None:
    assert clientsetup.advice_for(setup_for(True, True, True)).recommended == "IMAP"
    pop = clientsetup.advice_for(setup_for(False, True, True))
    assert pop.recommended == "POP3" and pop.warning and "other devices" in pop.warning
    assert clientsetup.advice_for(setup_for(False, False, True)).recommended is None
    guides = clientsetup.client_guides(setup_for(True, False, True))
    assert [g.name for g in guides] == ["Outlook", "Thunderbird",
                                        "iPhone, iPad and Mac (Apple Mail)",
                                        "Android (Gmail app and others)"]
    steps = " ".join(step for g in guides for step in g.steps)
    assert "imap.example.net" in steps and "smtp.example.net" in steps
    assert "pop.example.net" not in steps and "POP3 server" not in steps


# --- the endpoints ----------------------------------------------------------------------------


@pytest.fixture
def public(app: t.Any, session_factory: sessionmaker[Session], make_user: t.Any) -> t.Any:
    register_blueprints(app)
    seed_mail(session_factory, make_user)
    with transaction(session_factory) as s:
        settings = get_server_settings(s)
        settings.imap_host, settings.pop3_host, settings.smtp_host = (
            "imap.host.example", "pop.host.example", "smtp.host.example")
    return app.test_client()


@pytest.mark.parametrize("path", ["/mail/config-v1.1.xml",
                                  "/.well-known/autoconfig/mail/config-v1.1.xml"])
def test_thunderbird_endpoints_offer_only_allowed_protocols(public: t.Any, path: str) -> None:
    response = public.get(path, query_string={"emailaddress": "nopop@example.org"})
    assert response.status_code == 200
    assert response.content_type.startswith("text/xml")
    assert response.headers["Cache-Control"] == "no-store"
    servers = thunderbird_servers(response.data)
    assert set(servers) == {"imap", "smtp"}
    assert servers["imap"]["hostname"] == "imap.host.example"
    pop_only = thunderbird_servers(
        public.get(path, query_string={"emailaddress": "poponly@example.org"}).data)
    assert set(pop_only) == {"pop3"}


def test_unknown_addresses_get_the_generic_answer(
    public: t.Any, session_factory: sessionmaker[Session]
) -> None:
    def answer(address: str) -> bytes:
        data: bytes = public.get("/mail/config-v1.1.xml",
                                 query_string={"emailaddress": address}).data
        return data

    unknown_here = answer("ghost@example.org")
    assert set(thunderbird_servers(unknown_here)) == {"imap", "pop3", "smtp"}
    # A hosted mailbox with every protocol gets exactly what an unknown address gets.
    assert answer("anna@example.org") == unknown_here
    # A domain not hosted here: the same servers, only the provider domain differs.
    elsewhere = answer("ghost@not-hosted.example")
    assert thunderbird_servers(elsewhere) == thunderbird_servers(unknown_here)
    # A suspended mailbox is not told apart either.
    set_flags(session_factory, "nopop@example.org", suspend_login=True)
    assert answer("nopop@example.org") == unknown_here
    # Rubbish is not an error.
    assert set(thunderbird_servers(answer("<script>"))) == {"imap", "pop3", "smtp"}
    assert public.get("/mail/config-v1.1.xml").status_code == 200


def test_autodiscover_post_and_get(public: t.Any) -> None:
    response = public.post("/autodiscover/autodiscover.xml",
                           data=REQUEST.format(address="nopop@example.org"),
                           content_type="text/xml")
    assert response.status_code == 200
    protocols = autodiscover_protocols(response.data)
    assert set(protocols) == {"IMAP", "SMTP"}
    assert protocols["IMAP"]["Server"] == "imap.host.example"
    assert protocols["SMTP"]["LoginName"] == "nopop@example.org"
    upper = public.post("/Autodiscover/Autodiscover.xml",
                        data=REQUEST.format(address="poponly@example.org"),
                        content_type="text/xml")
    assert set(autodiscover_protocols(upper.data)) == {"POP3"}
    got = public.get("/autodiscover/autodiscover.xml",
                     query_string={"emailaddress": "ghost@example.org"})
    generic = autodiscover_protocols(got.data)
    assert set(generic) == {"IMAP", "POP3", "SMTP"}
    assert generic["IMAP"]["LoginName"] == "ghost@example.org"


def test_autodiscover_refuses_a_bad_request_with_its_error_schema(public: t.Any) -> None:
    response = public.post("/autodiscover/autodiscover.xml", data=b"<nonsense",
                           content_type="text/xml")
    root = ET.fromstring(response.data)  # noqa: S314  (our own output)
    assert root.findtext("r:Response/r:Error/r:ErrorCode", namespaces=NS) == "600"


CONTROL_ADDRESSES = ["anna\x00@example.org", "anna@example.org\r\nX-Evil: 1", "a\x1b[31m@example.org",
                     "anna@exa\x7fmple.org", "anna\x85@example.org", "anna@example.org\uffff"]


@pytest.mark.parametrize("address", CONTROL_ADDRESSES)
def test_autoconfig_refuses_addresses_with_control_characters(
    public: t.Any, address: str
) -> None:
    for path in ("/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"):
        response = public.get(path, query_string={"emailaddress": address})
        assert response.status_code == 400
        assert "control character" in response.get_data(as_text=True)


@pytest.mark.parametrize("address", CONTROL_ADDRESSES)
def test_autodiscover_refuses_addresses_with_control_characters(
    public: t.Any, address: str
) -> None:
    got = public.get("/autodiscover/autodiscover.xml", query_string={"emailaddress": address})
    assert got.status_code == 400
    root = ET.fromstring(got.data)  # noqa: S314  (our own output: well-formed even so)
    assert root.findtext("r:Response/r:Error/r:ErrorCode", namespaces=NS) == "600"
    # In a posted request, as a character reference where XML allows one (a raw control
    # character or a reference to one XML forbids makes the body unreadable: also 600).
    escaped = "".join(ch if ch.isprintable() else f"&#{ord(ch)};" for ch in address)
    posted = public.post("/autodiscover/autodiscover.xml",
                         data=REQUEST.format(address=escaped), content_type="text/xml")
    root = ET.fromstring(posted.data)  # noqa: S314
    assert root.findtext("r:Response/r:Error/r:ErrorCode", namespaces=NS) == "600"
    assert address.encode() not in posted.data


def test_the_xml_writer_never_writes_a_control_character() -> None:
    setup = setup_for(True, True, True)
    with pytest.raises(ValueError, match="U\\+0001"):
        clientsetup.outlook_autodiscover(setup, "a\x01@example.org")


def test_public_lookups_are_rate_limited(public: t.Any) -> None:
    public.application.config["MAILBOX_CLIENTSETUP_MAX_LOOKUPS"] = 3
    statuses = [public.get("/mail/config-v1.1.xml",
                           query_string={"emailaddress": f"u{i}@example.org"}).status_code
                for i in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = public.post("/autodiscover/autodiscover.xml",
                          data=REQUEST.format(address="anna@example.org"),
                          content_type="text/xml")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0


def test_mobileconfig_for_the_signed_in_mailbox_only(public: t.Any) -> None:
    anonymous = public.get("/me/device.mobileconfig")
    assert anonymous.status_code == 302 and "/me/login" in anonymous.headers["Location"]
    assert mailbox_sign_in(public, "poponly@example.org", PASSWORD).status_code == 302
    response = public.get("/me/device.mobileconfig")
    assert response.status_code == 200
    assert response.content_type == "application/x-apple-aspen-config"
    assert "poponly-at-example.org.mobileconfig" in response.headers["Content-Disposition"]
    account = profile_account(response.data)
    assert account["EmailAccountType"] == "EmailTypePOP"
    assert account["EmailAddress"] == "poponly@example.org"
    assert account["IncomingMailServerHostName"] == "pop.host.example"


def test_alternative_ports_follow_the_protocols_allowed() -> None:
    """IMAP 993 / 143 STARTTLS, POP3 995 / 110, SMTP 587 / 465: only for allowed protocols."""
    from types import SimpleNamespace

    from mailadmin.clientsetup import build_setup, thunderbird_autoconfig

    hosts = SimpleNamespace(
        imap_host="mail.example.net", pop3_host="mail.example.net", smtp_host="mail.example.net",
        imap_port=993, pop3_port=995, submission_port=587,
        imap_starttls_port=143, pop3_starttls_port=110, smtps_port=465,
    )
    setup = build_setup(hosts, address="a@example.org", domain="example.org",
                        imap=True, pop3=False, smtp=True)
    assert {(e.protocol, e.port, e.security) for e in setup.alternates} == {
        ("imap", 143, "STARTTLS"), ("smtp", 465, "SSL")}
    xml = thunderbird_autoconfig(setup).decode()
    assert xml.index("<port>993</port>") < xml.index("<port>143</port>")
    assert "<port>110</port>" not in xml and "<port>995</port>" not in xml
