from __future__ import annotations

import dataclasses

import pytest

from mailadmin.diagnostics import CLIENTS, Finding, classify, family, load_catalogue


def only(text: str | bytes) -> Finding:
    findings = classify(text)
    assert len(findings) == 1, findings
    return findings[0]


@pytest.mark.parametrize(
    ("text", "family_name", "reason"),
    [
        ("503 valid RCPT command must precede DATA", "rcpt_before_data", "syntaxerror"),
        # The earliest failing reply is the cause (corpus README): Exim's 503 quotes the
        # refused RCPT's reply, and that names what the customer must fix.
        ("503-All RCPT commands were rejected with this error:\n503-503 sender verify failed\n"
         "503 Valid RCPT command must precede DATA", "sender_verify_failed", "rejected"),
        ("550-Verification failed for <info@example.org>\n550-Unrouteable address\n"
         "550 Sender verify failed", "sender_verify_failed", "rejected"),
        ("554 5.7.1 <bob@example.net>: Relay access denied", "relay_denied", "norelaying"),
        ("535 Authentication failed", "auth_failed", "securityerror"),
        ("535 5.7.8 Error: authentication failed: UGFzc3dvcmQ6", "auth_failed", "securityerror"),
        ("530 5.7.0 Must issue a STARTTLS command first", "starttls_required", "securityerror"),
        ("* NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) "
         "connections.", "starttls_required", "securityerror"),
        ("SSL routines:ssl3_get_record:wrong version number", "tls_mismatch", "securityerror"),
        ("550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual "
         "mailbox table (in reply to RCPT TO command)", "user_unknown", "userunknown"),
        ("552 5.2.2 <a@example.com>: Quota exceeded (mailbox for user is full)",
         "quota_full", "mailboxfull"),
        ("-ERR [IN-USE] Unable to lock maildrop: Mailbox is locked by POP server",
         "mailbox_locked", "systemerror"),
        ("450 4.2.0 <a@example.com>: Recipient address rejected: Greylisted, see "
         "http://postgrey.schweikert.ch/help/example.com.html", "greylisted", "blocked"),
        ("554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
         "rbl_blocked", "blocked"),
        ("550 5.7.26 This mail has been blocked because the sender is unauthenticated. "
         "Gmail requires all senders to authenticate with either SPF or DKIM.",
         "spf_dmarc", "authfailure"),
        ("553 5.7.1 <x@example.org>: Sender address rejected: not owned by user y@example.org",
         "sender_not_owned", "rejected"),
        ("552 5.3.4 Error: message file too big", "size_exceeded", "mesgtoobig"),
        ("421 4.7.0 example.com Error: too many connections from 192.0.2.7",
         "rate_limited", "toomanyconn"),
        ("451 4.3.0 Temporary lookup failure", "temp_failure", "systemerror"),
        ("554 5.7.1 Message rejected as spam by Content Filtering", "spam_content", "spamdetected"),
        ("Host or domain name not found. Name service error for name=example.invalid type=A: "
         "Host not found", "domain_unknown", "hostunknown"),
        ("connect to mx.example.net[192.0.2.9]:25: Connection timed out", "delivery_timeout",
         "expired"),
        ("Domain example.com has an outgoing mail hold. Message will be reattempted later",
         "account_suspended", "suspend"),
        ("504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
         "policy_rejected", "rejected"),
        ("450 4.1.8 <a@nowhere.invalid>: Sender address rejected: Domain not found",
         "policy_rejected", "rejected"),
        ("454 4.7.0 TLS not available due to local problem", "temp_failure", "systemerror"),
        ("451 4.7.1 Please try again later", "greylisted", "blocked"),
        ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
         "Tenant.", "protocol_disabled", "securityerror"),
    ],
)
def test_single_replies(text: str, family_name: str, reason: str) -> None:
    finding = only(text)
    assert (finding.family, finding.reason) == (family_name, reason)
    assert finding.line


def test_503_explains_the_earlier_rejection() -> None:
    finding = only("503 valid RCPT command must precede DATA")
    entry = family(finding.family)
    assert finding.replycode == "503"
    assert "RCPT" in entry.cause and "authentication" in entry.fix.lower()
    assert set(entry.clients) == set(CLIENTS)


def test_verification_failed_is_not_user_unknown() -> None:
    # Exim's callout text mentions "No Such User Here" about the *sender*.
    text = ("SMTP error from remote mail server after RCPT TO:<a@example.net>: 550-Verification "
            "failed for <me@example.org>\n550-No Such User Here\n550 Sender verify failed")
    finding = only(text)
    assert finding.family == "sender_verify_failed"
    assert finding.line.startswith("SMTP error") or "Verification failed" in finding.line


def test_relay_denied_reply_fields() -> None:
    finding = only("554 5.7.1 <bob@example.net>: Relay access denied")
    assert finding.replycode == "554"
    assert finding.status == "5.7.1"
    assert finding.hard is True
    assert finding.line == "554 5.7.1 <bob@example.net>: Relay access denied"


def test_535_authentication_failed_fields() -> None:
    finding = only("535 Authentication failed")
    assert (finding.replycode, finding.status, finding.hard) == ("535", "", True)


def test_soft_failure_from_4xx() -> None:
    assert only("451 4.3.0 Temporary lookup failure").hard is False


def test_postfix_log_line_names_recipient_and_host() -> None:
    line = ("Jun 22 18:45:53 mx postfix/smtp[2322]: 76CE5660089: to=<ann@example.com>, "
            "relay=mx.example.com[192.0.2.4]:25, delay=1, dsn=5.1.1, status=bounced (host "
            "mx.example.com[192.0.2.4] said: 550 5.1.1 <ann@example.com>: Recipient address "
            "rejected: User unknown (in reply to RCPT TO command))")
    finding = only(line)
    assert finding.recipient == "ann@example.com"
    assert finding.remote_host == "mx.example.com"
    assert finding.reason == "userunknown"


DSN = b"""From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: sender@example.org
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system at host mx.example.org.

<ann@example.com>: host mx.example.com[192.0.2.4] said: 550 5.1.1 <ann@example.com>:
    Recipient address rejected: User unknown (in reply to RCPT TO command)
<bob@example.net>: host mx.example.net[192.0.2.5] said: 552 5.2.2 <bob@example.net>:
    mailbox full (in reply to RCPT TO command)

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; ann@example.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 5.1.1 <ann@example.com>: Recipient address rejected:
    User unknown

Final-Recipient: rfc822; bob@example.net
Action: failed
Status: 5.2.2
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 552 5.2.2 <bob@example.net>: mailbox full

--B
Content-Type: message/rfc822

From: sender@example.org
To: ann@example.com, bob@example.net
Subject: hello

spam spam virus quota
--B--
"""


def test_rfc3464_dsn_gives_one_finding_per_recipient() -> None:
    findings = classify(DSN)
    assert [(f.recipient, f.family, f.reason, f.status, f.replycode) for f in findings] == [
        ("ann@example.com", "user_unknown", "userunknown", "5.1.1", "550"),
        ("bob@example.net", "quota_full", "mailboxfull", "5.2.2", "552"),
    ]
    assert findings[0].remote_host == "mx.example.com"


def test_auto_reply_is_not_a_bounce() -> None:
    mail = (b"From: ann@example.com\nTo: bob@example.org\nSubject: Out of Office: hello\n"
            b"Auto-Submitted: auto-replied\n\nI am away until Monday.\n")
    finding = only(mail)
    assert (finding.family, finding.reason) == ("not_a_bounce", "vacation")


def test_feedback_report_is_not_a_bounce() -> None:
    mail = (b"From: fbl@example.net\nTo: abuse@example.org\nSubject: FW: report\n"
            b"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report; "
            b"boundary=X\n\n--X\nContent-Type: text/plain\n\nAn abuse report\n--X\n"
            b"Content-Type: message/feedback-report\n\nFeedback-Type: abuse\n--X--\n")
    assert only(mail).reason == "feedback"


@pytest.mark.parametrize("text", ["", "   ", "hello world", "\x00\x01\x02", b"\xff\xfe\x00"])
def test_nothing_recognised_gives_no_finding(text: str | bytes) -> None:
    assert classify(text) == []


def test_finding_is_frozen() -> None:
    finding = only("535 Authentication failed")
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.family = "other"  # type: ignore[misc]


def test_catalogue_is_complete() -> None:
    cat = load_catalogue()
    required = {
        "rcpt_before_data", "sender_verify_failed", "relay_denied", "user_unknown",
        "domain_unknown", "quota_full", "auth_failed", "starttls_required", "tls_mismatch",
        "protocol_disabled", "account_suspended", "sender_not_owned", "spf_dmarc",
        "rbl_blocked", "spam_content", "size_exceeded", "rate_limited", "greylisted",
        "temp_failure", "delivery_timeout", "mailbox_locked", "policy_rejected",
        "not_a_bounce", "other",
    }
    assert required <= set(cat.families)
    for entry in cat.families.values():
        assert entry.title and entry.cause and entry.fix
        if entry.client_side:
            assert set(entry.clients) == set(CLIENTS), entry.name
