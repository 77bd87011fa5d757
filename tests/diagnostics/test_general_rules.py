"""Table tests for general parsing rules: SMTP stage, DSN fields, forwarded reports.

Every example is synthetic (example.* names, documentation IP ranges), written
the way the mail servers named in each case print them.
"""

from __future__ import annotations

import pytest

from mailadmin.diagnostics import Finding, classify


def only(text: str | bytes) -> Finding:
    findings = classify(text)
    assert len(findings) == 1, findings
    return findings[0]


def exim_bounce(recipient: str, detail: str) -> bytes:
    return (
        "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\n"
        "To: ann@example.org\n"
        "Subject: Mail delivery failed: returning message to sender\n\n"
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        f"  {recipient}\n{detail}\n"
    ).encode()


def dsn(status: str, diagnostic: str, text: str = "", subject: str = "Undelivered Mail") -> bytes:
    diag = f"Diagnostic-Code: {diagnostic}\n" if diagnostic else ""
    return (
        "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
        "To: ann@example.org\n"
        f"Subject: {subject}\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        f"--B\nContent-Type: text/plain\n\n{text or 'The mail system'}\n\n"
        "--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.org\n\n"
        "Final-Recipient: rfc822; bob@example.net\n"
        f"Action: failed\nStatus: {status}\n{diag}\n--B--\n"
    ).encode()


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        # Refused at the greeting or to HELO/EHLO, in generic words: the host was blocked.
        ("    host mx.example.net [192.0.2.7]\n"
         "    SMTP error from remote mail server after initial connection:\n"
         "    550 Access denied", "blocked"),
        ("    SMTP error from remote mail server after initial connection:\n"
         "    host mx.example.net [192.0.2.7]:\n    554 mx.example.net : go away", "blocked"),
        ("    SMTP error from remote mail server after EHLO mx.example.org:\n"
         "    host mx.example.net [192.0.2.7]: 550 Not allowed", "blocked"),
        # The same generic words answered to RCPT TO stay a rejection.
        ("    SMTP error from remote mail server after RCPT TO:<bob@example.net>:\n"
         "    host mx.example.net [192.0.2.7]: 550 Not allowed", "rejected"),
        # Postfix check_recipient_access: the recipient itself is refused at RCPT.
        ("    SMTP error from remote mail server after RCPT TO:<bob@example.net>:\n"
         "    host mx.example.net [192.0.2.7]: 554 5.7.1 <bob@example.net>:\n"
         "    Recipient address rejected: Access denied", "userunknown"),
    ],
)
def test_smtp_stage_decides(detail: str, reason: str) -> None:
    finding = only(exim_bounce("bob@example.net", detail))
    assert (finding.recipient, finding.reason) == ("bob@example.net", reason)


def test_refusal_at_connect_is_an_ip_block_family() -> None:
    detail = ("    SMTP error from remote mail server after initial connection:\n"
              "    host mx.example.net [192.0.2.7]: 554 Service denied")
    assert only(exim_bounce("bob@example.net", detail)).family == "rbl_blocked"


def test_transcript_success_replies_are_not_the_status() -> None:
    mail = (
        b"From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
        b"To: postmaster@example.org\n"
        b"Subject: Postfix SMTP server: errors from localhost[127.0.0.1]\n\n"
        b"Transcript of session follows.\n\n"
        b" Out: 220 mx.example.org ESMTP\n In:  EHLO client.example.org\n"
        b" Out: 250 mx.example.org\n In:  MAIL FROM:<ann@example.org>\n Out: 250 2.1.0 Ok\n"
        b" In:  RCPT TO:<bob@example.org>\n Out: 250 2.1.5 Ok\n In:  DATA\n"
        b" Out: 354 End data with <CR><LF>.<CR><LF>\n"
        b" Out: 451 4.3.0 Error: queue file write error\n In:  QUIT\n Out: 221 2.0.0 Bye\n"
    )
    finding = only(mail)
    assert finding.recipient == "bob@example.org"
    assert (finding.status, finding.replycode) == ("4.3.0", "451")
    assert (finding.family, finding.reason, finding.hard) == ("temp_failure", "systemerror", False)


@pytest.mark.parametrize(
    ("status", "diagnostic", "text", "reason"),
    [
        # A local delivery program (pipe, procmail) failed: Sisimai's mailererror.
        ("4.3.0", "x-unix; temporary failure", "", "mailererror"),
        ("5.0.0", "X-Unix; exit status 1", "", "mailererror"),
        # The same words in an SMTP reply are the remote system's problem.
        ("4.3.0", "smtp; 451 4.3.0 temporary failure", "", "systemerror"),
        # X.4.7 "delivery time expired" outranks the last connection error quoted.
        ("4.4.7", "", "bob... Deferred: Connection refused by mx.example.net.\n"
         "Message could not be delivered for 5 days", "expired"),
        # ... but not the recipient's own Diagnostic-Code.
        ("4.4.7", "smtp; 452 4.3.1 Insufficient system storage", "", "systemfull"),
        # A failed recipient with no recognisable reason is "on hold", not unknown.
        ("5.0.0", "", "bob@example.net\n(no further details)", "onhold"),
    ],
)
def test_dsn_fields(status: str, diagnostic: str, text: str, reason: str) -> None:
    finding = only(dsn(status, diagnostic, text))
    assert (finding.recipient, finding.reason) == ("bob@example.net", reason)


def test_report_with_no_recipient_and_no_reason_is_not_recognised() -> None:
    mail = (b"From: MAILER-DAEMON@mx.example.org\nTo: ann@example.org\n"
            b"Subject: Undelivered Mail Returned to Sender\n\n--- Delivery report unavailable ---\n")
    assert classify(mail) == []


def test_pasted_text_without_reason_stays_unrecognised() -> None:
    finding = only("to=<bob@example.net> something odd happened")
    assert (finding.recipient, finding.reason) == ("bob@example.net", "undefined")


@pytest.mark.parametrize(
    "text",
    [
        "Unable to deliver message to <bob@example.net> (and other recipients in the same "
        "domain). Please check if address is correct.",
        "Reason:  Unable to deliver message to <bob@example.net> (and other recipients in the "
        "same\ndomain).",
    ],
)
def test_interscan_undeliverable_is_user_unknown(text: str) -> None:
    mail = ("From: postmaster@gw.example.net (\"InterScan Notification\")\n"
            "To: ann@example.org\nSubject: Mail could not be delivered\n\n"
            f"****** Message from InterScan Messaging Security Suite ******\n\n{text}\n").encode()
    finding = only(mail)
    assert (finding.recipient, finding.reason) == ("bob@example.net", "userunknown")


def test_forwarded_delivery_report_is_read() -> None:
    inner = dsn("5.1.1", "smtp; 550 5.1.1 No such mailbox", subject="Returned mail: User unknown")
    mail = (
        b"From: MAILER-DAEMON@gw.example.org\nTo: ann@example.org\n"
        b"Subject: Returned mail: User unknown\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="OUT"\n\n'
        b"--OUT\nContent-Type: text/plain\n\n"
        b"----- The following addresses had permanent delivery errors -----\n\n"
        b"--OUT\nContent-Type: message/rfc822\n\n" + inner + b"\n--OUT--\n"
    )
    finding = only(mail)
    assert (finding.recipient, finding.status, finding.reason) == (
        "bob@example.net", "5.1.1", "userunknown")


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ("Subject: unsubscribe\nX-Apple-Unsubscribe: true\nAuto-Submitted: auto-replied\n",
         "Apple Mail sent this email to unsubscribe from the message."),
        ("Subject: Unsubscribe\n", "Please remove me from this list."),
    ],
)
def test_unsubscribe_request_is_feedback(headers: str, body: str) -> None:
    mail = f"From: ann@example.com\nTo: list-unsubscribe@example.org\n{headers}\n{body}\n"
    finding = only(mail.encode())
    assert (finding.family, finding.reason) == ("not_a_bounce", "feedback")


def postfix_notice(recipient: str, said: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
        "To: ann@example.org\nSubject: Undelivered Mail Returned to Sender\n\n"
        "This is the mail system at host mx.example.org.\n\n"
        f"<{recipient}>: {said}\n"
    ).encode()


@pytest.mark.parametrize(
    ("text", "reason", "stage"),
    [
        # A stage notation wrapped over two lines still names the stage.
        (postfix_notice("bob@example.net", "host mx.example.net[192.0.2.7] refused to\n"
                        "    talk to me: 550 5.5.0 service refused"), "blocked", "CONN"),
        # In a transcript the failing reply answered the command just before it.
        (">>> MAIL FROM:<ann@example.org>\n<<< 250 2.1.0 Ok\n>>> RCPT TO:<bob@example.net>\n"
         "<<< 550 5.7.1 <bob@example.net>: Relay access denied\n>>> DATA\n"
         "<<< 554 5.5.1 Error: no valid recipients\n", "norelaying", "RCPT"),
        # Exim's 503 names the RCPT stage after the refusal it repeats.
        ("550-Verification failed for <x@example.org>\n550 Sender verification failed\n"
         "503-All RCPT commands were rejected with this error:\n"
         "503 Valid RCPT command must precede DATA\n", "rejected", "RCPT"),
    ],
)
def test_stage_is_read_where_the_failing_reply_is(text: str | bytes, reason: str,
                                                  stage: str) -> None:
    finding = only(text)
    assert (finding.reason, finding.stage) == (reason, stage)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # The DSN's X.4.7 only says the sender gave up; the remote's last status says why.
        (dsn("4.4.7", "smtp; 452 4.4.5 Insufficient disk space; try again later"), "systemfull"),
        # A 503 whose status is only the protocol class is a sequence error (RFC 5321).
        (dsn("5.5.0", "smtp; 503 Improper sequence of commands"), "syntaxerror"),
        # X.2.3 is the recipient's own size limit, X.3.4 the system's.
        (dsn("5.2.3", "smtp; 550 5.2.3 message too large for this recipient"), "exceedlimit"),
        (dsn("5.3.4", "smtp; 552 5.3.4 message too large"), "mesgtoobig"),
        # A local delivery agent's own mailbox status beats "mailer error".
        (dsn("5.2.2", "x-unix; input/output error", "error writing message: File too large"),
         "mailboxfull"),
        # Quoted by a remote server in a bounce, "no valid recipients" is about the recipients.
        (dsn("5.0.0", "smtp; 550 Error: No valid recipients for this message"), "userunknown"),
        # Case does not matter to any phrase.
        (dsn("5.0.0", "smtp; 550 RELAY ACCESS DENIED"), "norelaying"),
    ],
)
def test_status_and_reply_rules(data: bytes, reason: str) -> None:
    assert only(data).reason == reason


def test_provider_error_code_decides_for_its_host() -> None:
    # Orange documents its own codes ("OFR_506": refused as spam), whatever the
    # enhanced status (5.2.0, a mailbox status) suggests.
    data = exim_bounce("bob@orange.fr", "    SMTP error from remote mail server after end of "
                       "data:\n    host smtp.orange.fr [192.0.2.1]: 550 5.2.0 Mail rejete. "
                       "Mail rejected. OFR_506 [506]")
    assert only(data).reason == "spamdetected"
    # The same words from another host are not read with Orange's table.
    other = exim_bounce("bob@example.net", "    SMTP error from remote mail server after end "
                        "of data:\n    host mx.example.net [192.0.2.1]: 550 5.2.0 Mail rejected. "
                        "OFR_506 [506]")
    assert only(other).reason != "spamdetected"


def test_alias_parent_does_not_split_the_recipient_block() -> None:
    data = exim_bounce("bob@example.net", "    (generated from ann.alias@example.org)\n"
                       "    SMTP error from remote mail server after RCPT TO:<bob@example.net>:\n"
                       "    host mx.example.net [192.0.2.7]: 550 5.1.1 User unknown")
    finding = only(data)
    assert (finding.recipient, finding.reason) == ("bob@example.net", "userunknown")


def test_no_answer_status_beside_a_refusal_defers_to_the_reply_code() -> None:
    # X.4.1 means "no answer from host", yet the host answered 550: without the
    # catalogue's own reading of 5.4.1 the reply code decides, not the network class.
    data = dsn("5.4.1", "smtp; 550 5.4.1 Access denied")
    findings = classify(data, frozenset({"status:5.4.1"}))
    assert [f.reason for f in findings] == ["rejected"]
