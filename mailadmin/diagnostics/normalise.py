"""Turn a pasted client error, transcript or log into the server reply that caused it.

Customers paste what their program showed, not the server's reply: a Python
``smtplib`` exception tuple, a PHPMailer or nodemailer error, a .NET
``SmtpException``, Perl ``Net::SMTP`` output, an Outlook or Thunderbird dialog,
a Dovecot or Postfix log line. Each of these formats is rewritten to the reply
line it quotes, and in a transcript the *earliest failing reply* is the cause:
a ``503`` (or "no valid recipients") that follows a refused RCPT is only its
consequence. The chosen reply becomes the block's diagnostic, which the
classifier reads first.
"""

from __future__ import annotations

import re
from dataclasses import replace

from .parse import Block, Parsed

# Python smtplib: (550, b'5.1.1 <a@example.com>: Recipient address rejected')
# (also inside SMTPRecipientsRefused's {'addr': (code, b'...')} mapping).
_SMTPLIB = re.compile(r"\(\s*([45]\d\d)\s*,\s*b?(['\"])(.{0,2000}?)(?<!\\)\2\s*\)", re.S)
# Client wrappers that quote the server's words after a fixed preface; the
# preface (".NET: Mailbox unavailable.") is the library's, not the server's.
_QUOTED = re.compile(
    r"(?i)(?:the server response was|the (?:mail )?server responded|server response|"
    r"server error|server replied|remote server (?:said|replied|returned)|"
    r"SMTP server error|smtp error from remote (?:mail )?server[^:]{0,60}|"
    r"command failed|Detail|response)\s*:\s*['\"]?(.{3,600})"
)
# nodemailer: responseCode: 550 ... response: '550 5.1.1 ...'
_NODEMAILER = re.compile(r"(?i)\bresponse\s*:\s*'([45]\d\d[ -].{0,600}?)'")
# PHPMailer: "SMTP code: 550 Additional SMTP info: 5.7.1"
_PHPMAILER_CODE = re.compile(
    r"(?i)SMTP code:\s*([45]\d\d)(?:\s+Additional SMTP info:\s*([45]\.\d{1,3}\.\d{1,3}))?"
)
# A failing reply line in a transcript or log: at a line start, after a
# transcript arrow, a quote or "said:".
_FAILING_REPLY = re.compile(
    r"(?:^|<<<?\s*|<-\s*|S:\s*|Out:\s*|said:\s*|\]:\s*|: (?=\d{3}[ -]\D)|['\"(]|"
    r"\bgot code \"?|\bwith message \"?)"
    r"([45][0-5]\d)([ -])([^\n\"']{0,400})",
    re.M,
)
# A 503 (or its words) that only reports an earlier refusal.
_SEQUENCE = re.compile(
    r"(?i)\b503\b|valid RCPT command must precede|no valid recipients|need (?:a )?RCPT|"
    r"all RCPT commands were rejected|bad sequence"
)
_ESCAPES = re.compile(r"\\[rnt]")


# Multi-line SMTP replies repeat the code on every line ("550-5.7.1 ..."), which
# splits phrases; logs often flatten them onto one line. Joining them lets one
# pattern see "unusual rate of unsolicited mail" however it was wrapped.
_REPLY_LINE = re.compile(r"^[ \t]*([245]\d\d)([ -])(?:[245]\.\d{1,3}\.\d{1,3}[ \t]+)?(.*)$")
_INLINE_CONTINUED = re.compile(r"(?<=[\w,.;]) [245]\d\d-(?:[245]\.\d{1,3}\.\d{1,3} +)?")


# Header lines of a quoted original (trace, scanner and signature headers) never
# describe the failure, but their words ("X-Virus-Scanned", "spf=pass") look like one.
_TRACE_HEADER = re.compile(
    r"(?i)^[ \t>]*(x-[a-z0-9-]+|received|dkim-signature|arc-[a-z-]+|authentication-results|"
    r"received-spf|domainkey-signature|list-[a-z-]+)\s*:"
)


def unwrap(text: str) -> str:
    lines: list[str] = []
    continued: str | None = None
    for line in text.split("\n"):
        if _TRACE_HEADER.match(line):
            continue
        match = _REPLY_LINE.match(line)
        if match and continued == match.group(1) and lines:
            lines[-1] = f"{lines[-1].rstrip()} {match.group(3)}"
        else:
            lines.append(line)
        if match:
            continued = match.group(1) if match.group(2) == "-" else None
        elif continued is None or not line.strip():
            continued = None
    return _INLINE_CONTINUED.sub(" ", "\n".join(lines))


def _unescape(text: str) -> str:
    return " ".join(_ESCAPES.sub(" ", text).split())


def failing_replies(text: str) -> list[str]:
    """Failing reply lines of a paste, in the order they appear."""
    out: list[str] = []
    for match in _SMTPLIB.finditer(text):
        out.append(f"{match.group(1)} {_unescape(match.group(3))}")
    for match in _NODEMAILER.finditer(text):
        out.append(_unescape(match.group(1)))
    for match in _PHPMAILER_CODE.finditer(text):
        out.append(" ".join(g for g in match.groups() if g))
    if not out:
        for match in _FAILING_REPLY.finditer(unwrap(text)):
            out.append(_unescape(f"{match.group(1)} {match.group(3)}"))
    return out


def cause_reply(text: str) -> str | None:
    """The reply that caused the failure: the earliest one that is not a 503 sequel."""
    replies = failing_replies(text)
    if not replies:
        quoted = _QUOTED.search(text)
        return _unescape(quoted.group(1)) if quoted else None
    for reply in replies:
        if not _SEQUENCE.search(reply):
            return reply
    return replies[0]


def normalise(parsed: Parsed) -> Parsed:
    """Give each block of a pasted text the reply that caused it as its diagnostic."""
    blocks = []
    for block in parsed.blocks:
        if block.diagnostic:
            blocks.append(block)
            continue
        reply = cause_reply(block.text)
        if reply is None or reply.strip() == block.text.strip():
            blocks.append(block)
            continue
        blocks.append(replace(block, diagnostic=reply))
    return Parsed(parsed.kind, parsed.text, blocks, parsed.mail)


__all__ = ["Block", "cause_reply", "failing_replies", "normalise", "unwrap"]
