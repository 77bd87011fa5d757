"""Ports that are not offered (issue 15): a client-facing or listening port set to 0 (or
"off", or nothing) is left out of the generated listeners, of what mail programs are told and
of the live login test. The real servers are checked in tests/mailstack/test_ports_off_stack.py.
"""

from __future__ import annotations

import dataclasses
import plistlib
import typing as t
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailadmin import clientsetup
from mailadmin.db import transaction
from mailadmin.diagnostics.live import targets_from_settings
from mailadmin.errors import InvalidFields, ValidationError
from mailadmin.mailstack import StackPorts, StackSettings, StackSnapshot, render_release
from mailadmin.models import ServerSettings
from mailadmin.names import UnsafeName
from mailadmin.protocols import Protocol
from mailadmin.server_settings_table import PORTS_OR_OFF
from mailadmin.services import server_settings as settings_service
from mailadmin.services.context import Actor

from .test_selfservice import mail_app, mailbox_sign_in  # noqa: F401  (a fixture)

SETTINGS = StackSettings(
    hostname="mail.example.net", postmaster_address="postmaster@example.net",
    config_dir="/etc/mailadmin/stack", run_dir="/run/mailadmin", state_dir="/var/lib/mailadmin",
    queue_dir="/var/spool/postfix", mail_root="/var/vmail", log_dir=None,
)


@dataclasses.dataclass
class Hosts:
    imap_host: str = "mail.example.net"
    pop3_host: str = "mail.example.net"
    smtp_host: str = "mail.example.net"
    imap_port: int = 993
    pop3_port: int = 995
    submission_port: int = 587
    imap_starttls_port: int = 143
    pop3_starttls_port: int = 110
    smtps_port: int = 465


def setup(hosts: Hosts) -> clientsetup.ClientSetup:
    return clientsetup.build_setup(hosts, address="anna@example.org", domain="example.org",
                                   imap=True, pop3=True, smtp=True)


def test_the_client_ports_and_the_client_listeners_can_be_switched_off() -> None:
    assert {
        "imap_port", "pop3_port", "submission_port", "imap_starttls_port",
        "pop3_starttls_port", "smtps_port", "imap_listen_port", "pop3_listen_port",
        "submission_listen_port"} == PORTS_OR_OFF


@pytest.mark.parametrize("typed", ["0", "", "off", " OFF ", "none"])
def test_off_is_stored_as_zero(typed: str) -> None:
    for name in PORTS_OR_OFF:
        assert settings_service.SPECS[name].parse(typed) == 0


@pytest.mark.parametrize("typed", ["-1", "65536", "25x", "maybe"])
def test_anything_else_must_still_be_a_port(typed: str) -> None:
    with pytest.raises(ValidationError, match="0 \\(or leave it empty\\) for not offered"):
        settings_service.SPECS["smtps_port"].parse(typed)


def test_the_incoming_mail_port_cannot_be_switched_off() -> None:
    with pytest.raises(ValidationError):
        settings_service.SPECS["smtp_listen_port"].parse("0")


def test_every_refused_field_is_named_at_once(session: Session) -> None:
    with pytest.raises(InvalidFields) as refused:
        settings_service.update_settings(session, Actor.operator(), {
            "smtps_port": "70000", "imap_host": "imap.example.org", "vmail_uid": "x",
            "message_size_limit": "10K"})
    assert set(refused.value.errors) == {"smtps_port", "vmail_uid", "message_size_limit"}
    assert "3 fields" in refused.value.message


def test_render_leaves_a_switched_off_listener_out() -> None:
    ports = dataclasses.replace(StackPorts(), pop3=0, submission=0)
    _, files = render_release(StackSnapshot(dataclasses.replace(SETTINGS, ports=ports),
                                            (), (), (), ()))
    master = files["postfix/master.cf"]
    assert "syslog_name=postfix/submission" not in master
    assert "submission is not offered" in master
    dovecot = files["dovecot/dovecot.conf"]
    pop3 = dovecot[dovecot.index("inet_listener pop3 {"):]
    assert pop3[:pop3.index("}")].split()[-1] == "0"  # port = 0: no POP3 listener
    imap = dovecot[dovecot.index("inet_listener imap {"):]
    assert "port = 143" in imap[:imap.index("}")]


def test_the_incoming_mail_listener_stays() -> None:
    ports = dataclasses.replace(StackPorts(), smtp=0)
    with pytest.raises(UnsafeName):
        render_release(StackSnapshot(dataclasses.replace(SETTINGS, ports=ports), (), (), (), ()))


def test_a_switched_off_port_is_not_told_and_the_other_port_takes_its_place() -> None:
    got = setup(Hosts(submission_port=0, imap_port=0, pop3_port=0, pop3_starttls_port=0))
    assert [(e.protocol, e.port, e.security) for e in got.endpoints] == [
        (Protocol.IMAP, 143, "STARTTLS"), (Protocol.SMTP, 465, "SSL")]
    assert got.alternates == ()
    assert not got.offers(Protocol.POP3)


def test_autoconfig_autodiscover_and_apple_profile_omit_a_port_that_is_off() -> None:
    got = setup(Hosts(smtps_port=0, pop3_port=0, pop3_starttls_port=0))
    thunderbird = ET.fromstring(clientsetup.thunderbird_autoconfig(got))  # noqa: S314
    servers = [(s.get("type"), s.findtext("port"))
               for s in thunderbird.iter() if s.tag in ("incomingServer", "outgoingServer")]
    assert ("smtp", "465") not in servers and not any(t == "pop3" for t, _ in servers)
    assert ("smtp", "587") in servers and ("imap", "993") in servers
    outlook = clientsetup.outlook_autodiscover(got, "anna@example.org").decode()
    assert "<Type>POP3</Type>" not in outlook and "<Port>465</Port>" not in outlook
    profile = plistlib.loads(clientsetup.apple_mobileconfig(got) or b"")
    account = profile["PayloadContent"][0]
    assert account["OutgoingMailServerPortNumber"] == 587
    assert account["EmailAccountType"] == "EmailTypeIMAP"


def test_no_port_at_all_means_the_protocol_is_not_offered() -> None:
    got = setup(Hosts(submission_port=0, smtps_port=0))
    assert got.outgoing is None
    profile = plistlib.loads(clientsetup.apple_mobileconfig(got) or b"")
    assert "OutgoingMailServerPortNumber" not in profile["PayloadContent"][0]


def test_the_live_login_test_leaves_switched_off_ports_out() -> None:
    row = ServerSettings(id=1, smtp_host="h", imap_host="h", pop3_host="h", imap_port=993,
                         imap_starttls_port=143, pop3_port=0, pop3_starttls_port=0,
                         submission_port=0, smtps_port=465)
    assert [(t.protocol, t.port, t.tls) for t in targets_from_settings(row)] == [
        ("smtps", 465, "implicit"), ("imap", 993, "implicit")]
    row.imap_port = 0
    assert ("imap", 143, "starttls") in [(t.protocol, t.port, t.tls)
                                         for t in targets_from_settings(row)]


def test_the_device_page_leaves_a_switched_off_port_out(
    mail_app: t.Any, session_factory: sessionmaker[Session],  # noqa: F811
) -> None:
    with transaction(session_factory) as s:
        settings_service.update_settings(s, Actor.operator(), {
            "smtps_port": "0", "pop3_port": "off", "pop3_starttls_port": ""})
    client = mail_app.test_client()
    assert mailbox_sign_in(client, "anna@example.org").status_code == 302
    page = client.get("/me/devices").get_data(as_text=True)
    assert 'data-protocol="IMAP"' in page and 'data-protocol="SMTP"' in page
    assert 'data-protocol="POP3"' not in page and 'data-alternate-protocol="POP3"' not in page
    assert ">465<" not in page and ">587<" in page
