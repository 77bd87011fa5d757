"""Decide, per failed recipient, which catalogue family and Sisimai reason apply."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

from .catalogue import Catalogue, Rule, load_catalogue
from .parse import Block, Parsed, parse

log = logging.getLogger(__name__)

# Only failures count: a transcript's "250 2.1.5 Ok" before the error is not it.
_STATUS = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY = re.compile(r"(?<![\w.:/=#-])([45][0-5]\d)(?=[ -]|$)", re.MULTILINE)
_REMOTE = (
    re.compile(r"(?i)\bhost\s+([A-Za-z0-9.-]+\.[A-Za-z]{2,})\s*\[[0-9a-fA-F.:]+\]"),
    re.compile(r"(?i)\brelay=([A-Za-z0-9.-]+\.[A-Za-z]{2,})\["),
    re.compile(r"(?i)\b([A-Za-z0-9.-]+\.[A-Za-z]{2,}) \[[0-9a-fA-F.:]+\] did not like"),
    re.compile(
        r"(?i)remote (?:system|server|mta|host):\s*(?:dns;\s*)?([A-Za-z0-9.-]+\.[A-Za-z]{2,})"
    ),
)
# The SMTP command a reply answered decides between Sisimai's userunknown (at
# RCPT), rejected (at MAIL: the sender was refused) and filtered (after DATA).
_COMMAND = (
    (re.compile(r"(?i)(in reply to|after|did not like our|answered|failed|reply to)\s+(the )?"
                r"(RCPT( TO)?|recipient)\b|does not like recipient|RCPT TO:<|RCPT TO response"),
     "RCPT"),
    (re.compile(r"(?i)(in reply to|after|did not like our|reply to)\s+(the )?MAIL( FROM)?\b"),
     "MAIL"),
    (re.compile(r"(?i)(in reply to|after|did not like our)\s+(the )?(end of |final )?DATA\b|"
                r"failed after I sent the message|after end of data"), "DATA"),
    # Refused before any envelope command: at the greeting, or to HELO/EHLO.
    (re.compile(r"(?i)(in reply to|after|did not like our|reply to)\s+(the )?"
                r"(initial connection|connection greeting|greeting|banner|(HELO|EHLO|LHLO)\b)|"
                r"refused to talk to me|rejected (our|the) (connection|greeting|EHLO|HELO)"),
     "CONN"),
)
# Reasons a refusal at connect or HELO time turns into Sisimai's "blocked": the
# server refused the sending host, whatever generic words it used.
_CONN_GENERIC = frozenset({"rejected", "systemerror", "onhold", "undefined", "securityerror",
                           "exceedlimit"})
# DSN statuses that outrank a phrase found outside the recipient's own
# Diagnostic-Code (X.4.7: delivery time expired).
_OUTRANKS_CONTEXT = frozenset({"4.4.7", "5.4.7"})
# Diagnostic-Code types of a local delivery program rather than an SMTP reply.
_LOCAL_DIAGNOSTIC = frozenset({"x-unix"})
_SOFT_REASONS = frozenset({"expired", "greylisted", "toomanyconn", "speeding", "systemfull"})


@dataclass(frozen=True)
class Finding:
    """What went wrong for one recipient (or for the whole text when none is named)."""

    family: str
    reason: str
    line: str
    replycode: str
    status: str
    recipient: str | None
    remote_host: str | None
    hard: bool | None
    confidence: float
    rule: str

    def as_dict(self) -> dict[str, object]:
        return {
            "family": self.family,
            "reason": self.reason,
            "line": self.line,
            "replycode": self.replycode,
            "status": self.status,
            "recipient": self.recipient,
            "remote_host": self.remote_host,
            "hard": self.hard,
            "confidence": self.confidence,
            "rule": self.rule,
        }


def _line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return " ".join(text[start : len(text) if end < 0 else end].split())[:300]


def _first_match(rules: tuple[Rule, ...], text: str) -> tuple[Rule, int] | None:
    for rule in rules:
        match = rule.pattern.search(text)
        if match:
            return rule, match.start()
    return None


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


def _unwrap(text: str) -> str:
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


_Hit = tuple[Rule, int] | None
_Memo = dict[tuple[int, str], _Hit]


def _search(cat: Catalogue, parsed: Parsed, block: Block, whole: str,
            memo: _Memo) -> tuple[_Hit, str, float]:
    """Find the deciding rule: in the recipient's diagnostic, its block, then everything."""
    tiers = (
        (_unwrap(block.diagnostic or ""), 0.9),
        (_unwrap(block.text), 0.8),
        (whole, 0.6),
    )
    # In a bounce the per-recipient reply that caused a 503 is the answer; a
    # pasted session or log keeps the 503 as what the customer must fix.
    rule_sets = [cat.rules]
    if parsed.kind == "bounce":
        rule_sets = [tuple(r for r in cat.rules if r.family != "rcpt_before_data"), cat.rules]
    for rules in rule_sets:
        for text, confidence in tiers:
            if text.strip():
                # Blocks share the whole text (and DSN blocks often the same
                # diagnostic): scan each text once per call, not once per block.
                key = (len(rules), text)
                if key not in memo:
                    memo[key] = _first_match(rules, text)
                hit = memo[key]
                if hit is not None:
                    return hit, text, confidence
    return None, "", 0.0


def _status_in(text: str) -> str:
    match = _STATUS.search(text)
    return match.group(0) if match else ""


def _reply_in(text: str) -> str:
    match = _REPLY.search(text)
    return match.group(1) if match else ""


def _command(text: str) -> str | None:
    found = [(m.start(), name) for pattern, name in _COMMAND if (m := pattern.search(text))]
    return min(found)[1] if found else None


def _remote_host(block: Block, whole: str) -> str | None:
    if block.remote_host:
        return block.remote_host.split()[0].strip("[];")
    for pattern in _REMOTE:
        match = pattern.search(block.text) or pattern.search(whole)
        if match:
            return match.group(1).lower()
    return None


def _code_lookup(cat: Catalogue, status: str, reply: str) -> tuple[str, str, str] | None:
    if status in cat.status:
        family, reason = cat.status[status]
        return family, reason, f"status:{status}"
    if reply in cat.replycode:
        family, reason = cat.replycode[reply]
        return family, reason, f"reply:{reply}"
    return None


def _not_a_bounce(parsed: Parsed, block: Block, reason: str) -> Finding:
    line = _line_at(block.text, 0) if block.text else ""
    return Finding("not_a_bounce", reason, line, "", block.status or "", block.recipient,
                   block.remote_host, None, 0.9, parsed.kind)


def _decide(cat: Catalogue, parsed: Parsed, block: Block, whole: str, memo: _Memo) -> Finding:
    finding = _decide_reason(cat, parsed, block, whole, memo)
    if finding.family == "not_a_bounce":
        return finding
    command = _command(block.text) or _command(parsed.text)
    if command == "CONN" and finding.reason in _CONN_GENERIC:
        # Refused at the greeting or to HELO/EHLO: the sending host was blocked.
        return replace(finding, family="rbl_blocked", reason="blocked")
    return finding


def _decide_reason(cat: Catalogue, parsed: Parsed, block: Block, whole: str,
                   memo: _Memo) -> Finding:
    if parsed.kind in {"feedback", "vacation", "delivered"}:
        return _not_a_bounce(parsed, block, parsed.kind)
    if block.action in {"delivered", "relayed", "expanded"}:
        return _not_a_bounce(parsed, block, "delivered")
    text = block.text
    hit, source, confidence = _search(cat, parsed, block, whole, memo)
    status = block.status or ""
    line = ""
    if hit is not None:
        line = _line_at(source, hit[1])
    reply = _reply_in(block.diagnostic or "") or _reply_in(line) or _reply_in(text)
    status = status or _status_in(line) or _status_in(text)
    if hit is not None and status in cat.decisive:
        hit = None
    if hit is not None and status in _OUTRANKS_CONTEXT and confidence < 0.9:
        # The DSN says the delivery time expired; a connection error quoted
        # elsewhere in the notice was only the last attempt.
        hit = None
    local = block.diag_type in _LOCAL_DIAGNOSTIC
    mailer = ("other", "mailererror", f"diagnostic:{block.diag_type}")
    if hit is None or (local and hit[0].reason == "systemerror"):
        # "x-unix; temporary failure": the local delivery program (a pipe,
        # procmail, a script) failed, not the mail system.
        coded = mailer if hit is not None else _code_lookup(cat, status, reply)
        if local and coded is None:
            coded = mailer
        if coded is None:
            # A bounce that names the recipient but gives no recognisable
            # reason: Sisimai calls that "onhold" (decided later), not unknown.
            onhold = parsed.kind == "bounce" and bool(block.recipient) and parsed.mail
            return Finding("other", "onhold" if onhold else "undefined",
                           _line_at(text, 0) if text else "", reply, status,
                           block.recipient, _remote_host(block, parsed.text),
                           _hard(status, reply, ""),
                           0.1, "none")
        family, reason, rule_id = coded
        line = _line_at(text, max(text.find(status or reply), 0))
        return Finding(family, reason, line, reply, status, block.recipient,
                       _remote_host(block, parsed.text), _hard(status, reply, reason), 0.5, rule_id)
    rule, _ = hit
    family, reason = rule.family, rule.reason
    soft = (status or reply).startswith("4")
    if rule.soft_family and soft:
        family = rule.soft_family
    if rule.userunknown:
        reason = _userunknown_stage(status, _command(text) or _command(parsed.text))
    return Finding(family, reason, line, reply, status, block.recipient,
                   _remote_host(block, parsed.text), _hard(status, reply, reason), confidence,
                   rule.id)


def _userunknown_stage(status: str, command: str | None) -> str:
    # A 5.1.x status, or the reply to RCPT TO, says the address itself was
    # refused. Otherwise Sisimai names a "no such user" answered to MAIL FROM
    # "rejected" (the sender was refused), and one answered after DATA or at an
    # unknown stage "filtered" (a filter speaking for the recipient).
    # Sendmail reports a bare 550 to RCPT TO as X.5.0 (protocol status).
    if status[2:4] in {"1.", "5."} or command == "RCPT":
        return "userunknown"
    if command == "MAIL":
        return "rejected"
    return "filtered"


def _hard(status: str, reply: str, reason: str) -> bool | None:
    code = status or reply
    if code[:1] == "5":
        return True
    if code[:1] == "4":
        return False
    if reason in _SOFT_REASONS:
        return False
    return True if reason else None


def classify(data: str | bytes) -> list[Finding]:
    """Diagnose a bounce, transcript, log line, client error or reply line.

    Returns one :class:`Finding` per failed recipient, or an empty list when
    nothing in the input is recognised. Never raises: any input, however
    malformed, is parsed within fixed size limits.
    """
    try:
        cat = load_catalogue()
        parsed = parse(data)
        whole = _unwrap(parsed.text)
        memo: _Memo = {}
        findings = [_decide(cat, parsed, block, whole, memo) for block in parsed.blocks]
        # An unrecognised text with no recipient is "nothing found", not a finding.
        return [f for f in findings if f.reason != "undefined" or f.recipient]
    except Exception:  # a diagnosis tool must answer "not recognised", not crash
        log.exception("diagnostics: classifier failed on input of %d bytes", len(data or ""))
        return []
