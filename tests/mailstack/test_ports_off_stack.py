"""Ports that are not offered, against the real servers: with the POP3 and submission
listeners switched off (port 0) the applied configuration passes doveconf and postfix check,
nothing answers on those ports any more while IMAP and incoming SMTP still do, and what mail
programs are told (autoconfig, the live login test) leaves them out."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from mailadmin.diagnostics.live import run_live_test, targets_from_settings
from mailadmin.models import ServerSettings
from mailadmin.services.context import Actor

from .conftest import (  # noqa: F401  (service_stack is a fixture used below)
    SERVICE_PASSWORD,
    ServiceStack,
    eventually,
    fresh_ip,
    service_stack,
)

pytestmark = pytest.mark.mailstack
USER = "anna@svc.test"


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def pop3_and_submission_off(service_stack: ServiceStack) -> Iterator[ServiceStack]:  # noqa: F811
    svc = service_stack
    ports = svc.ports
    svc.set_settings(pop3_listen_port="0", submission_listen_port="off")
    report = svc.apply()
    assert report.revision.state == "applied", report.revision.validation_output
    try:
        yield svc
    finally:
        svc.set_settings(pop3_listen_port=str(ports.pop3),
                         submission_listen_port=str(ports.submission))
        assert svc.apply().revision.state == "applied"
        assert eventually(lambda: answers(ports.pop3) and answers(ports.submission))


def test_a_switched_off_listener_is_absent(pop3_and_submission_off: ServiceStack) -> None:
    svc = pop3_and_submission_off
    assert eventually(lambda: not answers(svc.ports.pop3) and not answers(svc.ports.submission))
    assert answers(svc.ports.imap) and answers(svc.ports.smtp)
    assert svc.imap_login(USER, SERVICE_PASSWORD)[0]
    config = svc.settings.config_dir
    with open(f"{config}/current/postfix/master.cf") as master:
        assert "postfix/submission" not in master.read()


def test_client_setup_and_live_test_leave_switched_off_ports_out(
    pop3_and_submission_off: ServiceStack,
) -> None:
    from panel import create_app

    svc = pop3_and_submission_off
    ports = svc.ports
    svc.set_settings(imap_host="127.0.0.1", pop3_host="127.0.0.1", smtp_host="127.0.0.1",
                     imap_port="0", imap_starttls_port=str(ports.imap), pop3_port="0",
                     pop3_starttls_port="", submission_port="0", smtps_port="0")
    try:
        app = create_app({"INSTANCE_PATH": str(svc.instance), "DATABASE_URL": svc.url,
                          "TESTING": True})
        answer = app.test_client().get(f"/mail/config-v1.1.xml?emailaddress={USER}")
        assert answer.status_code == 200
        root = ET.fromstring(answer.data)  # noqa: S314  (our own output)
        offered = [(s.get("type"), s.findtext("port")) for s in root.iter()
                   if s.tag in ("incomingServer", "outgoingServer")]
        assert offered == [("imap", str(ports.imap))]

        with svc.factory() as s:
            row = s.get(ServerSettings, 1)
            assert row is not None
            targets = targets_from_settings(row)
            report = run_live_test(s, Actor.operator(), USER, SERVICE_PASSWORD,
                                   targets=targets, source=fresh_ip)
            s.rollback()
        assert [r.target.protocol for r in report.results] == ["imap"]
        assert report.ok, report.as_dict()
    finally:
        svc.set_settings(imap_host="mail.example.net", pop3_host="mail.example.net",
                         smtp_host="mail.example.net", imap_port="993",
                         imap_starttls_port="143", pop3_port="995", pop3_starttls_port="110",
                         submission_port="587", smtps_port="465")
