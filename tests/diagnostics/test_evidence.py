"""The evidence the classifier decides from, and the switches that measure it.

Every example is synthetic (example.* names, documentation IP ranges), written
the way the servers and client libraries named in each case print them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailadmin.diagnostics import Finding, classify, load_catalogue
from mailadmin.diagnostics.classify import (
    _CLASS_FALLBACK,
    _IANA,
    _RFC5321,
    matching_ids,
    stage_of,
)
from mailadmin.diagnostics.normalise import cause_reply


def only(text: str | bytes, disabled: frozenset[str] = frozenset()) -> Finding:
    findings = classify(text, disabled)
    assert len(findings) == 1, findings
    return findings[0]


def dsn(status: str, diagnostic: str, remote: str = "mx.example.net",
        recipient: str = "bob@example.net") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
        "To: ann@example.org\nSubject: Undelivered Mail Returned to Sender\n"
        'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; '
        'boundary="B"\n\n--B\nContent-Type: text/plain\n\nThe mail system\n\n'
        "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: failed\nStatus: {status}\n"
        f"Remote-MTA: dns; {remote}\nDiagnostic-Code: {diagnostic}\n\n--B--\n"
    ).encode()


@pytest.mark.parametrize(
    ("text", "stage"),
    [
        ("550 5.1.1 <b@example.net>: User unknown (in reply to RCPT TO command)", "RCPT"),
        ("SMTP error from remote mail server after RCPT TO:<b@example.net>: 550 no", "RCPT"),
        (">>> RCPT To:<b@example.net>\n<<< 550 5.1.1 No such user", "RCPT"),
        ("Diagnostic: SMTP:RCPT 550 refused", "RCPT"),
        ("[RCPT_TO] 550 refused", "RCPT"),
        ("SMTP error from remote mail server after MAIL FROM:<a@example.org>: 550 no", "MAIL"),
        ("550 5.7.1 refused (in reply to end of DATA command)", "DATA"),
        ("SMTP error from remote mail server after end of data: 550 spam", "DATA"),
        ("SMTP error from remote mail server after initial connection: 554 go away", "CONN"),
        ("Connected to 192.0.2.1 but greeting failed.", "CONN"),
        ("{ code: 'EENVELOPE', responseCode: 550, command: 'RCPT TO' }", "RCPT"),
        ("550 5.7.1 refused", None),
    ],
)
def test_stage_in_every_notation(text: str, stage: str | None) -> None:
    assert stage_of(text) == stage


def test_specific_status_in_the_reply_beats_a_generic_dsn_status() -> None:
    finding = only(dsn("5.0.0", "smtp; 550 5.2.2 <bob@example.net>: rejected"))
    assert (finding.status, finding.reason) == ("5.2.2", "mailboxfull")


@pytest.mark.parametrize(
    ("stage_text", "reason"),
    [
        ("in reply to RCPT TO command", "userunknown"),
        ("in reply to MAIL FROM command", "rejected"),
        ("in reply to end of DATA command", "filtered"),
    ],
)
def test_no_such_user_depends_on_the_stage(stage_text: str, reason: str) -> None:
    assert only(dsn("5.0.0", f"smtp; 550 No such user here ({stage_text})")).reason == reason


def test_rfc3463_class_fallback_instead_of_550_rejected() -> None:
    # No phrase known: the status's subject digit (X.3 mail system) decides.
    assert only(dsn("5.3.9", "smtp; 550 5.3.9 zzz")).reason == "systemerror"
    assert only(dsn("5.3.2", "smtp; 521 5.3.2 zzz")).reason == "notaccept"


def test_local_delivery_agent_is_decisive() -> None:
    finding = only(dsn("5.0.0", "X-Unix; procmail: Quota exceeded while writing"))
    assert finding.reason == "mailboxfull"
    assert only(dsn("5.0.0", "X-Unix; exit status 75")).reason == "mailererror"


def test_host_table_of_a_big_receiver() -> None:
    text = dsn("5.7.606", "smtp; 550 5.7.606 zzz", remote="mx1.mail.protection.outlook.com")
    finding = only(text)
    assert (finding.family, finding.reason, finding.rule) == (
        "rbl_blocked", "blocked", "host-microsoft:5.7.606")
    # The same code from an unknown host falls back to the RFC 3463 class.
    assert only(dsn("5.7.606", "smtp; 550 5.7.606 zzz")).rule != "host-microsoft:5.7.606"


@pytest.mark.parametrize(
    ("text", "family"),
    [
        # Python smtplib
        ("smtplib.SMTPRecipientsRefused: {'b@example.net': (550, b'5.7.1 <b@example.net>: "
         "Relay access denied')}", "relay_denied"),
        ("smtplib.SMTPAuthenticationError: (535, b'5.7.8 Error: authentication failed: "
         "UGFzc3dvcmQ6')", "auth_failed"),
        # PHPMailer
        ("SMTP ERROR: RCPT TO command failed: 550 5.1.1 <b@example.net>: Recipient address "
         "rejected: User unknown in virtual mailbox table", "user_unknown"),
        # nodemailer
        ("Error: Can't send mail - all recipients were rejected: 552 5.2.2 <b@example.net>: "
         "Mailbox full { code: 'EENVELOPE', responseCode: 552, command: 'RCPT TO' }", "quota_full"),
        # .NET SmtpException: the preface is the library's, the reply is the server's
        ("System.Net.Mail.SmtpException: Mailbox unavailable. The server response was: 5.7.1 "
         "Unable to relay", "relay_denied"),
        # Thunderbird
        ("Sending of the message failed. An error occurred while sending mail. The mail server "
         "responded: 5.3.4 Message size exceeds fixed limit. Please check the message and try "
         "again.", "size_exceeded"),
        # Dovecot and Postfix log lines
        ("dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): "
         "user=<a@example.org>, method=PLAIN, rip=192.0.2.5", "auth_failed"),
        ("postfix/submission/smtpd[123]: warning: unknown[192.0.2.5]: SASL LOGIN authentication "
         "failed: authentication failure", "auth_failed"),
    ],
)
def test_client_library_errors_are_normalised(text: str, family: str) -> None:
    assert only(text).family == family


def test_earliest_failing_reply_is_the_cause() -> None:
    transcript = ("<< 220 mx.example.net ESMTP\n>> MAIL FROM:<a@example.org>\n<< 250 OK\n"
                  ">> RCPT TO:<b@example.net>\n<< 550 5.7.1 Relay access denied\n>> DATA\n"
                  "<< 503 5.5.1 Error: need RCPT command\n")
    assert cause_reply(transcript) == "550 5.7.1 Relay access denied"
    assert only(transcript).family == "relay_denied"
    # A 503 standing alone is its own answer.
    assert only("503 5.5.1 Error: need RCPT command").family == "rcpt_before_data"


def test_rule_ids_are_unique_and_switchable() -> None:
    cat = load_catalogue()
    ids = cat.all_ids()
    assert len(ids) == len(set(ids))
    text = "554 5.7.1 <b@example.net>: Relay access denied"
    hits = matching_ids(text)
    relay = {i for i in hits if i.startswith("relay-denied:")}
    assert relay, hits
    assert only(text).reason == "norelaying"
    # Without the relay phrases the decision falls back to the code tables.
    assert only(text, frozenset(relay)).reason != "norelaying"
    assert cat.without(frozenset(relay)) is cat.without(frozenset(relay))
    assert cat.without(frozenset()) is cat


def test_plain_diagnose_path_does_not_import_sqlalchemy() -> None:
    # The CLI side (mailadmin/cli/diagnose.py) has its own test; this one holds
    # the diagnostics package's plain path to the same rule.
    code = ("import sys\nimport mailadmin.diagnostics.present, mailadmin.diagnostics.normalise\n"
            "from mailadmin.diagnostics import classify\nclassify(b'550 5.1.1 user unknown')\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in {'sqlalchemy', 'alembic', "
            "'flask'}]\nassert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# The reasons of Sisimai's vocabulary (the corpus README lists them) with one
# synthetic input each that must produce it.
VOCABULARY: dict[str, str | bytes] = {
    "userunknown": "550 5.1.1 <b@example.net>: User unknown (in reply to RCPT TO command)",
    "mailboxfull": "552 5.2.2 <b@example.net>: Mailbox full",
    "expired": dsn("4.4.7", "smtp; 421 4.4.7 delivery time expired"),
    "filtered": dsn("5.0.0", "smtp; 550 No such user here (in reply to end of DATA command)"),
    "rejected": "553 5.1.8 <a@nowhere.example>: Sender address rejected: Domain not found",
    "blocked": "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using "
               "zen.spamhaus.org",
    "hostunknown": "Host or domain name not found. Name service error for name=example.invalid",
    "authfailure": "550 5.7.26 Unauthenticated email is not accepted: DMARC policy",
    "networkerror": "connect to mx.example.net[192.0.2.9]:25: No route to host",
    "policyviolation": "554 5.7.9 Message not accepted for policy reasons",
    "notcompliantrfc": "550 5.7.1 Message contains duplicate From headers and is not RFC 5322 "
                       "compliant",
    "requireptr": "550 5.7.25 The IP address sending this message does not have a PTR record",
    "suspend": "550 5.2.1 <b@example.net>: mailbox is disabled",
    "spamdetected": "554 5.7.1 Message rejected as spam by Content Filtering",
    "notaccept": "556 5.1.10 example.net does not accept mail (null MX)",
    "systemerror": "451 4.3.0 Temporary lookup failure",
    "securityerror": "535 5.7.8 Error: authentication failed",
    "norelaying": "554 5.7.1 <b@example.net>: Relay access denied",
    "toomanyconn": "421 4.7.0 mx.example.net Error: too many connections from 192.0.2.7",
    "mesgtoobig": "552 5.3.4 Error: message file too big",
    "exceedlimit": "550 5.2.3 RESOLVER.RST.RecipSizeLimit; message length exceeds limit",
    "hasmoved": "550 5.1.6 <b@example.net>: recipient has moved",
    "mailererror": dsn("5.0.0", "X-Unix; exit status 1"),
    "speeding": "450 4.2.1 The user you are trying to contact is receiving mail at a rate that "
                "prevents additional messages from being delivered",
    "suppressed": "Amazon SES did not send the message to b@example.net because the address is "
                  "on the account-level suppression list",
    "syntaxerror": "503 valid RCPT command must precede DATA",
    "systemfull": "452 4.3.1 Insufficient system storage",
    "virusdetected": "554 5.7.1 Message rejected: virus found in attachment",
    "contenterror": "554 5.6.0 Message content error: improper use of 8-bit data",
    "badreputation": "451 4.7.650 The mail server has been rate limited due to IP reputation",
    "failedstarttls": dsn("5.7.0", "smtp; 530 5.7.0 Must issue a STARTTLS command first"),
    "onhold": dsn("5.0.0", ""),
    "feedback": (b"From: abuse@example.net\nTo: ann@example.org\nSubject: report\n"
                 b"MIME-Version: 1.0\nContent-Type: multipart/report; "
                 b'report-type=feedback-report; boundary="B"\n\n--B\nContent-Type: text/plain\n\n'
                 b"complaint\n--B\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n"
                 b"\n--B--\n"),
    "vacation": (b"From: bob@example.net\nTo: ann@example.org\nSubject: Out of office\n"
                 b"Auto-Submitted: auto-replied\n\nI am away until Monday.\n"),
    "delivered": dsn("2.0.0", "smtp; 250 2.0.0 OK").replace(b"Action: failed",
                                                          b"Action: delivered"),
    # A notice that names the recipient but no reply, status or words at all.
    "undefined": "to=<b@example.net>, relay=none, status=bounced (the weather is fine)",
}


def test_the_vocabulary_walk_covers_every_reason_the_corpus_names(corpus: Path) -> None:
    # Every reason the corpus README lists as Sisimai's vocabulary, and every reason its
    # labels use, has an input above that must produce it (and so a cause and fix).
    readme = (corpus / "bounces" / "README.md").read_text("utf-8")
    listed = re.search(r"vocabulary of the Sisimai project \(([^)]*)\)", readme)
    assert listed is not None, "the README no longer lists the vocabulary"
    named = set(re.findall(r"[a-z]+", listed.group(1)))
    labels = (corpus / "bounces" / "labels.jsonl").read_text("utf-8").splitlines()
    named |= {json.loads(line)["reason"] for line in labels if line.strip()}
    assert len(named) > 20
    assert named <= set(VOCABULARY), sorted(named - set(VOCABULARY))


@pytest.mark.parametrize("reason", sorted(VOCABULARY))
def test_every_reason_is_producible_and_explained(reason: str) -> None:
    findings = classify(VOCABULARY[reason])
    assert findings, reason
    assert findings[0].reason == reason
    entry = load_catalogue().reasons.get(reason)
    assert entry is not None and entry.cause and entry.fix


def test_catalogue_explains_every_reason_it_can_produce() -> None:
    cat = load_catalogue()
    produced = {r.reason for r in cat.rules} | {v[1] for v in cat.status.values()}
    produced |= {c[3] for t in cat.hosts for c in t.codes + t.own}
    produced |= {r.in_bounce[1] for r in cat.rules if r.in_bounce}
    produced |= {v[1] for v in cat.replycode.values()}
    produced |= {v[1] for table in (_IANA, _RFC5321, _CLASS_FALLBACK) for v in table.values()}
    assert produced <= set(cat.reasons), produced - set(cat.reasons)


@pytest.mark.parametrize(
    ("line", "family"),
    [
        ("postfix/smtpd[99]: NOQUEUE: reject: RCPT from unknown[192.0.2.5]: 554 5.7.1 "
         "<a@example.org>: Sender address rejected: outgoing mail suspended", "account_suspended"),
        ("dovecot: lmtp(b@example.org): Error: msgid=<1@example.org>: save failed to INBOX: "
         "Quota exceeded (mailbox for user is full)", "quota_full"),
    ],
)
def test_log_lines_are_classified_like_replies(line: str, family: str) -> None:
    assert only(line).family == family
