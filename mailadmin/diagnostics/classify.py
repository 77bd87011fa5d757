"""Decide, per failed recipient, which catalogue family and Sisimai reason apply.

The decision is made from evidence, not from the first phrase that matches:
for every recipient block the classifier first extracts

* the enhanced status code (a specific one quoted in the reply beats a DSN's
  generic ``X.0.0``),
* the SMTP reply code,
* the SMTP stage the reply answered (connect/HELO, MAIL, RCPT, DATA), read in
  every notation servers print (``in reply to RCPT TO command``, ``>>> RCPT
  To:``, ``SMTP:RCPT``, ``[RCPT_TO]``, ``after end of data`` ...),
* the diagnostic text, the remote host and whether a local delivery agent
  (``X-Unix``, procmail, maildrop, Dovecot LDA) wrote it,

and then runs ordered reason tests over them (:func:`_decide_reason`):
not-a-bounce kinds, local delivery agents, sender-address statuses, the
documented reply codes of the remote host, phrase rules checked against the
stage and status class, exact status codes, RFC 3463 class fallbacks, and the
stage/reply code last.

Every phrase and table entry has an id and can be switched off
(``classify(data, disabled=...)``), which is how the benchmark measures
accuracy on a source of bounces without the phrases only that source uses.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

from ..names import domain_of
from .catalogue import Catalogue, Rule, load_catalogue, lowered
from .normalise import normalise, unwrap
from .parse import Block, Parsed, parse

log = logging.getLogger(__name__)

# Only failures count: a transcript's "250 2.1.5 Ok" before the error is not it.
# "#5.1.0" (Exchange, qmail) and "[#4.1.9]" carry a status too.
_STATUS = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY = re.compile(
    r"(?:(?<![\w.:/=#-])|(?<=(?:Code|CODE) :)|(?<=(?:Code|CODE):))([45][0-5]\d)(?=[ ,-]|$)",
    re.MULTILINE)
_REMOTE = (
    re.compile(r"(?i)\bhost\s+([A-Za-z0-9.-]+\.[A-Za-z]{2,})\s*\[[0-9a-fA-F.:]+\]"),
    re.compile(r"(?i)\brelay=([A-Za-z0-9.-]+\.[A-Za-z]{2,})\["),
    re.compile(r"(?i)\b([A-Za-z0-9.-]+\.[A-Za-z]{2,}) \[[0-9a-fA-F.:]+\] did not like"),
    re.compile(
        r"(?i)remote (?:system|server|mta|host):\s*(?:dns;\s*)?([A-Za-z0-9.-]+\.[A-Za-z]{2,})"
    ),
    re.compile(r"(?i)\bhost:\s*([A-Za-z0-9.-]+\.[A-Za-z]{2,})"),
    re.compile(r"(?i)while talking to\s+([A-Za-z0-9.-]+\.[A-Za-z]{2,})"),
    re.compile(r"(?i)\bConnected to\s+[0-9.]+\s+but"),
)

# The SMTP stage a reply answered, in every notation met in bounces, logs and
# client errors. Written as a few alternations that share their lead-in (a
# preposition, a transcript arrow, a bracketed token), because one scan of
# such a pattern is several times cheaper than one scan per notation; each
# named group ends in the stage it stands for (``r1_RCPT``).
_STAGE_SOURCE = (
    # "in reply to RCPT TO command", "after end of data", "did not like our MAIL FROM"
    r"(?:in reply to|after|did not like our|reply to|for|answered|failed|response to)\s+"
    r"(?:the\s+)?(?:(?P<p_RCPT>RCPT(?:\s+TO)?\b|recipient\b)|(?P<p_MAIL>MAIL(?:\s+FROM)?\b)|"
    r"(?P<p_DATA>(?:end of |final )?(?:DATA|TEXT)\b)|"
    r"(?P<p_CONN>initial connection|connection greeting|greeting|banner|(?:HELO|EHLO|LHLO)\b))"
    # Sendmail / Courier / PHPMailer transcripts: ">>> RCPT To:<...>", "C: MAIL FROM"
    r"|(?:>>>?|->|\bIn:|\bC:|\bSENT:)\s*(?:(?P<a_RCPT>RCPT\s+TO)|(?P<a_MAIL>MAIL\s+FROM)|"
    r"(?P<a_DATA>DATA\b)|(?P<a_CONN>(?:HELO|EHLO)\b))"
    # "SMTP:RCPT", "[RCPT_TO]", nodemailer's command: 'RCPT TO'
    r"|(?:\bSMTP:|\[|command:\s*'?)(?:(?P<t_RCPT>RCPT(?:_?TO\]|\s+TO|\b))|"
    r"(?P<t_MAIL>MAIL(?:_?FROM\]|\s+FROM|\b))|(?P<t_DATA>(?:END_OF_)?DATA\b)|"
    r"(?P<t_CONN>(?:HELO|EHLO|CONN(?:ECT)?)\b))"
    # Exim "RCPT TO:<...>:" and whole phrases
    r"|(?P<w_RCPT>RCPT\s+TO\s*(?::\s*<|response|command failed)|does not like recipient|"
    r"\bEENVELOPE\b|all (?:recipients|RCPT commands) were rejected|SMTPRecipientsRefused)"
    r"|(?P<w_MAIL>but sender was rejected|SMTPSenderRefused)"
    r"|(?P<w_DATA>failed after I sent the message|DATA END command failed|SMTPDataError|"
    r"\bEMESSAGE\b)"
    r"|(?P<w_CONN>refused to talk to me|rejected (?:our|the) (?:connection|greeting|EHLO|HELO)|"
    r"but greeting failed|but my name was rejected|SMTPConnectError|SMTPHeloError)"
)

def _lower_source(source: str) -> str:
    # Case folding on every character is the costliest part of this scan, so
    # the pattern is written in lower case and run over lower-cased text; the
    # group names keep their case.
    # Bounces wrap long replies anywhere ("refused to\n    talk to me"), so a
    # space in a notation matches any run of whitespace.
    return re.sub(r"\(\?P<\w+>|[^(]+|\(", lambda m: m.group(0) if m.group(0).startswith("(?P<")
                  else m.group(0).lower().replace(" ", r"\s+"), source)


_STAGE = re.compile(_lower_source(_STAGE_SOURCE), re.MULTILINE)
#: Characters of a whole notice searched for a stage when its recipient block names none.
_STAGE_WINDOW = 8_000

# Local delivery agents: their word is final (no remote filter is involved).
_LOCAL_AGENT = re.compile(
    r"(?i)\b(procmail|maildrop:|dovecot-lda|deliver(?:mail)?:|mail\.local|"
    r"local delivery (?:agent|failed)|pipe to \||x-unix;)"
)
# Reasons a refusal at connect or HELO time turns into Sisimai's "blocked": the
# server refused the sending host, whatever generic words it used.
_CONN_GENERIC = frozenset({"rejected", "systemerror", "onhold", "undefined", "securityerror",
                           "exceedlimit", "policyviolation", "userunknown", "filtered"})
# Generic reasons: a specific status code of its own class outranks them.
_GENERIC = frozenset({"rejected", "systemerror", "onhold", "undefined", "securityerror",
                      "syntaxerror"})
# DSN statuses that outrank a phrase found outside the recipient's own
# Diagnostic-Code (X.4.7: delivery time expired).
_OUTRANKS_CONTEXT = frozenset({"4.4.7", "5.4.7"})
_SOFT_REASONS = frozenset({"expired", "greylisted", "toomanyconn", "speeding", "systemfull"})

# The IANA registry of enhanced status codes (RFC 3463, 4954, 5248, 7372,
# 7505, 8689 ...): what each specific code means, as a standard defines it.
# It is the fallback behind the catalogue's [status] table (which holds the
# project's own and vendors' readings and can be switched off entry by entry);
# being a published standard rather than phrasing fitted to samples, it is
# never switched off.
_IANA: dict[str, tuple[str, str]] = {
    "1.1": ("user_unknown", "userunknown"),
    "1.2": ("domain_unknown", "hostunknown"),
    "1.3": ("user_unknown", "userunknown"),
    "1.6": ("user_unknown", "hasmoved"),
    "1.7": ("policy_rejected", "rejected"),
    "1.8": ("policy_rejected", "rejected"),
    "1.10": ("domain_unknown", "notaccept"),
    "2.1": ("account_suspended", "suspend"),
    "2.2": ("quota_full", "mailboxfull"),
    "2.3": ("size_exceeded", "exceedlimit"),
    "3.1": ("temp_failure", "systemfull"),
    "3.2": ("domain_unknown", "notaccept"),
    "3.4": ("size_exceeded", "mesgtoobig"),
    "3.5": ("temp_failure", "systemerror"),
    "4.1": ("delivery_timeout", "networkerror"),
    "4.2": ("delivery_timeout", "networkerror"),
    "4.3": ("temp_failure", "systemerror"),
    "4.4": ("domain_unknown", "hostunknown"),
    "4.5": ("temp_failure", "systemfull"),
    "4.6": ("delivery_timeout", "networkerror"),
    "4.7": ("delivery_timeout", "expired"),
    "5.1": ("rcpt_before_data", "syntaxerror"),
    "5.2": ("other", "syntaxerror"),
    "5.3": ("rate_limited", "toomanyconn"),
    "5.4": ("other", "syntaxerror"),
    "6.0": ("spam_content", "contenterror"),
    "6.1": ("spam_content", "contenterror"),
    "6.7": ("policy_rejected", "notcompliantrfc"),
    "6.8": ("policy_rejected", "notcompliantrfc"),
    "7.1": ("policy_rejected", "rejected"),
    "7.8": ("auth_failed", "securityerror"),
    "7.10": ("starttls_required", "failedstarttls"),
    "7.11": ("starttls_required", "failedstarttls"),
    "7.13": ("account_suspended", "suspend"),
    "7.17": ("user_unknown", "hasmoved"),
    "7.20": ("spf_dmarc", "authfailure"),
    "7.21": ("spf_dmarc", "authfailure"),
    "7.22": ("spf_dmarc", "authfailure"),
    "7.23": ("spf_dmarc", "authfailure"),
    "7.24": ("spf_dmarc", "authfailure"),
    "7.25": ("rbl_blocked", "requireptr"),
    "7.26": ("spf_dmarc", "authfailure"),
    "7.27": ("policy_rejected", "rejected"),
    "7.29": ("spf_dmarc", "authfailure"),
    "7.30": ("starttls_required", "failedstarttls"),
}

# Reply codes whose meaning RFC 5321 (and RFC 4954 for AUTH) defines without
# ambiguity: the fallback behind the catalogue's [replycode] table, a standard
# like the registry above and so never switched off.
_RFC5321: dict[str, tuple[str, str]] = {
    "452": ("temp_failure", "systemfull"),      # insufficient system storage
    "503": ("rcpt_before_data", "syntaxerror"),  # bad sequence of commands
    "530": ("starttls_required", "securityerror"),  # authentication required
    "535": ("auth_failed", "securityerror"),     # authentication credentials invalid
    "552": ("quota_full", "mailboxfull"),        # exceeded storage allocation
}

# RFC 3463 separates a limit of the recipient's mailbox (X.2.3) from one of the
# receiving system (X.3.4); a phrase that only says "too big" takes the status's
# side.
_SIZE_BY_STATUS = {"2.3": "exceedlimit", "3.4": "mesgtoobig"}

# RFC 3463 class fallbacks: subject (the middle digit) and a few details.
_CLASS_FALLBACK: dict[str, tuple[str, str]] = {
    "1": ("user_unknown", "userunknown"),
    "2": ("quota_full", "mailboxfull"),
    "3": ("temp_failure", "systemerror"),
    "4": ("delivery_timeout", "networkerror"),
    "5": ("other", "syntaxerror"),
    "6": ("spam_content", "contenterror"),
    "7": ("policy_rejected", "securityerror"),
}


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
    #: The SMTP stage the failing reply answered: CONN, MAIL, RCPT, DATA or "".
    stage: str = ""

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
            "stage": self.stage,
        }


@dataclass(frozen=True)
class Evidence:
    """What one recipient block says, extracted once before any decision."""

    status: str
    reply: str
    stage: str | None
    diagnostic: str
    text: str
    remote_host: str | None
    local: bool


def _line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return " ".join(text[start : len(text) if end < 0 else end].split())[:300]


def _first_match(rules: tuple[Rule, ...], text: str) -> tuple[Rule, int] | None:
    low = lowered(text)
    for rule in rules:
        match = rule.pattern.search(low)
        if match:
            return rule, match.start()
    return None


_Hit = tuple[Rule, int] | None
_Memo = dict[tuple[int, str], _Hit]


def _search(cat: Catalogue, tiers: tuple[tuple[str, float], ...], without_503: bool,
            memo: _Memo) -> tuple[_Hit, str, float]:
    """Find the deciding rule: in the recipient's diagnostic, its block, then everything."""
    # The reply that caused a 503 is the answer (the earliest failing reply);
    # a 503 standing alone is the answer only when nothing else is found.
    rule_sets = [cat.rules]
    if without_503:
        # The second pass needs only the 503 rules: the others found nothing.
        rule_sets = list(_split_503(cat))
    for rules in rule_sets:
        for text, confidence in tiers:
            if text.strip():
                # Blocks share the whole text (and DSN blocks often the same
                # diagnostic): scan each text once per call, not once per block.
                key = (id(rules), text)
                if key not in memo:
                    memo[key] = _first_match(rules, text)
                hit = memo[key]
                if hit is not None:
                    return hit, text, confidence
    return None, "", 0.0


_BY_503: dict[int, tuple[tuple[Rule, ...], tuple[Rule, ...]]] = {}


def _split_503(cat: Catalogue) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
    """The rules without the 503 family, and the 503 family alone."""
    split = _BY_503.get(id(cat.rules))
    if split is None:
        split = (tuple(r for r in cat.rules if r.family != "rcpt_before_data"),
                 tuple(r for r in cat.rules if r.family == "rcpt_before_data"))
        _BY_503[id(cat.rules)] = split
    return split


def _status_in(text: str) -> str:
    match = _STATUS.search(text)
    return match.group(0) if match else ""


def _reply_in(text: str) -> str:
    match = _REPLY.search(text)
    return match.group(1) if match else ""


_STAGE_HINT = re.compile(r"(?i)RCPT|MAIL|DATA|TEXT|HELO|EHLO|LHLO|connect|greeting|banner|"
                         r"recipient|talk\s+to\s+me|my\s+name|sent\s+the\s+message|ENVELOPE|"
                         r"EMESSAGE|Refused")


@lru_cache(maxsize=512)
def stage_of(text: str) -> str | None:
    """The SMTP stage the first failing reply in ``text`` answered (CONN, MAIL, RCPT, DATA).

    In a transcript (``>>> MAIL FROM`` ... ``>>> RCPT TO`` ... ``<<< 554``) that is the
    last command named before the reply; in a notice that names the stage after the reply
    ("550 ... (in reply to RCPT TO command)"), the first one named.
    """
    # Most texts name no stage at all: a cheap scan for the words every
    # notation contains spares the full alternation on them.
    if not _STAGE_HINT.search(text):
        return None
    low = text.lower()
    match = _STAGE.search(low)
    if match is None:
        return None
    failing = _REPLY.search(text)
    if failing is not None and failing.start() > match.end():
        for later in _STAGE.finditer(low, match.end(), failing.start()):
            match = later
    return match.lastgroup[2:] if match.lastgroup else None


def _remote_host(block: Block, whole: str) -> str | None:
    if block.remote_host:
        return block.remote_host.split()[0].strip("[];").lower() or None
    for pattern in _REMOTE:
        if pattern.groups == 0:
            continue
        match = pattern.search(block.text) or pattern.search(whole)
        if match:
            return match.group(1).lower()
    return None


def _best_status(block: Block, diagnostic: str, text: str) -> str:
    """The enhanced status: a specific one inside the reply beats a DSN's generic X.0.0."""
    quoted = _status_in(diagnostic) or _status_in(text)
    dsn = block.status or ""
    if not dsn:
        return quoted
    if quoted and dsn.endswith(".0.0") and quoted[0] == dsn[0] and not quoted.endswith(".0.0"):
        return quoted
    in_reply = _status_in(diagnostic)
    if dsn[2:] == "4.7" and in_reply and not in_reply.endswith(".0") and in_reply != dsn:
        # X.4.7 only says the sending MTA gave up; the status the remote server
        # answered on its last attempt names why.
        return in_reply
    return dsn


def _evidence(parsed: Parsed, block: Block) -> Evidence:
    diagnostic = unwrap(block.diagnostic or "")
    text = unwrap(block.text)
    status = _best_status(block, diagnostic, text)
    reply = _reply_in(diagnostic) or _reply_in(text)
    stage = stage_of(text) or stage_of(diagnostic)
    if stage is None and parsed.kind != "text":
        stage = stage_of(parsed.text[:_STAGE_WINDOW])
    # Only a delivery report speaks for a local delivery agent; a pasted POP3
    # error ("Unable to lock maildrop: ...") is the mail server's own.
    local = block.diag_type == "x-unix" or (
        parsed.kind == "bounce" and bool(_LOCAL_AGENT.search(diagnostic or text[:2000])))
    return Evidence(status, reply, stage, diagnostic, text, _remote_host(block, parsed.text),
                    local)


def _host_lookup(cat: Catalogue, host: str | None, recipient: str | None,
                 codes: Iterable[str], text: str) -> tuple[str, str, str] | None:
    """A documented reply code of a big receiver, keyed by its host names.

    The provider's own error code in the reply text (Orange's ``OFR_506``) is
    more specific than the SMTP codes, so it is looked up first.
    """
    names = [n for n in (host, domain_of(recipient) if recipient else None) if n]
    if not names or not cat.hosts:
        return None
    wanted = [c for c in codes if c]
    for table in cat.hosts:
        if not any(table.hosts.search(name) for name in names):
            continue
        if table.token is not None and table.own:
            match = table.token.search(text)
            own = next((g for g in match.groups() if g), None) if match else None
            for entry_id, entry_code, family, reason in table.own:
                if entry_code == own:
                    return family, reason, entry_id
        for code in wanted:
            for entry_id, entry_code, family, reason in table.codes:
                if entry_code == code:
                    return family, reason, entry_id
    return None


def _code_lookup(cat: Catalogue, status: str, reply: str) -> tuple[str, str, str] | None:
    if reply == "503" and status[2:3] in {"", "5"}:
        # "Bad sequence of commands": the protocol status X.5.x says no more.
        family, reason = cat.replycode.get(reply) or _RFC5321[reply]
        return family, reason, "reply:503" if reply in cat.replycode else "rfc5321:503"
    if status in cat.status:
        family, reason = cat.status[status]
        return family, reason, f"status:{status}"
    if status[2:] == "4.1" and reply[:1] == "5":
        # X.4.1 is "no answer from host", yet the host answered with a
        # permanent refusal: the status was reused, the reply code says more.
        status = ""
    registered = _IANA.get(status[2:]) if status else None
    if registered is not None:
        return registered[0], registered[1], f"iana:{status}"
    if status and status[2] in _CLASS_FALLBACK and not status.endswith(".0"):
        # RFC 3463: the subject digit says what kind of thing failed.
        family, reason = _CLASS_FALLBACK[status[2]]
        if status[2] == "4" and status.split(".")[2] == "7":
            family, reason = "delivery_timeout", "expired"
        return family, reason, f"class:{status[:3]}"
    if reply in cat.replycode:
        family, reason = cat.replycode[reply]
        return family, reason, f"reply:{reply}"
    if reply in _RFC5321:
        family, reason = _RFC5321[reply]
        return family, reason, f"rfc5321:{reply}"
    return None


def _not_a_bounce(parsed: Parsed, block: Block, reason: str) -> Finding:
    line = _line_at(block.text, 0) if block.text else ""
    return Finding("not_a_bounce", reason, line, "", block.status or "", block.recipient,
                   block.remote_host, None, 0.9, parsed.kind)


def _decide(cat: Catalogue, parsed: Parsed, block: Block, whole: str, memo: _Memo) -> Finding:
    if parsed.kind in {"feedback", "vacation", "delivered"}:
        return _not_a_bounce(parsed, block, parsed.kind)
    if block.action in {"delivered", "relayed", "expanded"}:
        return _not_a_bounce(parsed, block, "delivered")
    ev = _evidence(parsed, block)
    finding = _decide_reason(cat, parsed, block, ev, whole, memo)
    finding = replace(finding, stage=ev.stage or "")
    if ev.stage == "CONN" and finding.reason in _CONN_GENERIC:
        # Refused at the greeting or to HELO/EHLO: the sending host was blocked.
        return replace(finding, family="rbl_blocked", reason="blocked")
    return finding


def _decide_reason(cat: Catalogue, parsed: Parsed, block: Block, ev: Evidence, whole: str,
                   memo: _Memo) -> Finding:
    tiers = ((ev.diagnostic, 0.9), (ev.text, 0.8), (whole, 0.6))
    hit, source, confidence = _search(cat, tiers, True, memo)
    status, reply = ev.status, ev.reply
    line = _line_at(source, hit[1]) if hit is not None else ""
    if not reply and line:
        reply = _reply_in(line)
    if not status and line:
        status = _status_in(line)
    remote = ev.remote_host

    def found(family: str, reason: str, rule_id: str, conf: float, at: str = "") -> Finding:
        where = at or line or _line_at(ev.text, max(ev.text.find(status or reply), 0))
        return Finding(family, reason, where, reply, status, block.recipient, remote,
                       _hard(status, reply, reason), conf, rule_id)

    # 1. Status codes about the sender's own address outrank every phrase.
    if status in cat.decisive:
        coded = _code_lookup(cat, status, reply)
        if coded is not None:
            return found(*coded, 0.7)
    # 2. A local delivery agent (pipe, procmail, maildrop, LDA) decides alone.
    if ev.local:
        if hit is not None and hit[0].reason in {"mailboxfull", "userunknown"} and (
                confidence >= 0.8):
            return found(hit[0].family, hit[0].reason, hit[0].id, confidence)
        coded = _code_lookup(cat, status, "") if status[2:3] in {"1", "2"} else None
        if coded is not None and not status.endswith(".0"):
            # The agent itself gave an address or mailbox status (Postfix's virtual
            # agent: "5.2.2" for a mailbox file over its size limit).
            return found(*coded, 0.7)
        return found("other", "mailererror", "local-agent", 0.7)
    # 3. The documented reply codes of the remote host (big receivers).
    hosted = _host_lookup(cat, remote, block.recipient, (status, reply),
                          ev.diagnostic or ev.text)
    if hosted is not None and (hit is None or hit[0].reason in _GENERIC or confidence < 0.8):
        return found(*hosted, 0.8)
    if hit is not None and status in _OUTRANKS_CONTEXT and confidence < 0.8:
        # The DSN says the delivery time expired; a connection error quoted
        # elsewhere in the notice (outside this recipient's block) was only
        # the last attempt.
        hit = None
    # 4. Phrase rules, checked against the stage and the status class.
    if hit is not None:
        rule = hit[0]
        family, reason = rule.family, rule.reason
        coded = _code_lookup(cat, status, reply) if status else None
        if (reason in _GENERIC and coded is not None and coded[1] not in _GENERIC
                and coded[2].startswith(("status:", "iana:")) and not status.endswith(".0")):
            # "550 5.2.2 rejected": the specific status names the cause.
            return found(*coded, 0.6)
        if rule.soft_family and (status or reply).startswith("4"):
            family = rule.soft_family
        if rule.userunknown:
            reason = _userunknown_stage(status, ev.stage)
        if reason in _SIZE_BY_STATUS.values() and status[2:] in _SIZE_BY_STATUS:
            reason = _SIZE_BY_STATUS[status[2:]]
        if parsed.mail and rule.in_bounce:
            family, reason = rule.in_bounce
        return found(family, reason, rule.id, confidence)
    # 5. Status code, RFC 3463 class, stage and reply code.
    coded = _code_lookup(cat, status, reply)
    if coded is not None:
        family, reason, rule_id = coded
        if reason in {"userunknown"} and ev.stage == "MAIL":
            reason = "rejected"
        return found(family, reason, rule_id, 0.5,
                     _line_at(ev.text, max(ev.text.find(status or reply), 0)))
    if parsed.mail and (status or reply).startswith("4") and block.action != "delayed":
        # A temporary failure in a notice that gave up: the retry time ran out.
        return found("delivery_timeout", "expired", "soft-final", 0.4,
                     _line_at(ev.text, max(ev.text.find(status or reply), 0)))
    # A bounce that names the recipient but gives no recognisable reason:
    # Sisimai calls that "onhold", not unknown.
    onhold = parsed.kind == "bounce" and bool(block.recipient) and parsed.mail
    return Finding("other", "onhold" if onhold else "undefined",
                   _line_at(ev.text, 0) if ev.text else "", reply, status,
                   block.recipient, remote, _hard(status, reply, ""), 0.1, "none")


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


def classify(data: str | bytes, disabled: frozenset[str] = frozenset()) -> list[Finding]:
    """Diagnose a bounce, transcript, log line, client error or reply line.

    Returns one :class:`Finding` per failed recipient, or an empty list when
    nothing in the input is recognised. Never raises: any input, however
    malformed, is parsed within fixed size limits. ``disabled`` names phrase
    and table ids to switch off (see :meth:`Catalogue.without`).
    """
    try:
        cat = load_catalogue().without(disabled)
        parsed = parse(data)
        if parsed.kind == "text":
            parsed = normalise(parsed)
        whole = unwrap(parsed.text)
        memo: _Memo = {}
        findings = [_decide(cat, parsed, block, whole, memo) for block in parsed.blocks]
        # An unrecognised text with no recipient is "nothing found", not a finding.
        return [f for f in findings if f.reason != "undefined" or f.recipient]
    except Exception:  # a diagnosis tool must answer "not recognised", not crash
        log.exception("diagnostics: classifier failed on input of %d bytes", len(data or ""))
        return []


def matching_ids(data: str | bytes) -> set[str]:
    """Every phrase and table id that matches ``data`` (for leave-one-source-out scoring).

    A phrase matches when its regular expression finds anything in a text the
    classifier scans; a table entry matches when its code is the status or reply
    code extracted for a recipient (and, for host tables, the host is named).
    """
    cat = load_catalogue()
    parsed = parse(data)
    if parsed.kind == "text":
        parsed = normalise(parsed)
    texts = {unwrap(parsed.text)}
    ids: set[str] = set()
    codes: set[str] = set()
    names: list[str] = []
    for block in parsed.blocks:
        ev = _evidence(parsed, block)
        texts.update((ev.diagnostic, ev.text))
        codes.update(c for c in (ev.status, ev.reply) if c)
        names += [n for n in (ev.remote_host,
                              domain_of(block.recipient) if block.recipient else None) if n]
    low_texts = [lowered(t) for t in texts if t]
    for rule in cat.rules:
        for pid, compiled in _phrase_patterns(rule):
            if any(compiled.search(t) for t in low_texts):
                ids.add(pid)
    ids.update(f"status:{c}" for c in codes if c in cat.status)
    ids.update(f"reply:{c}" for c in codes if c in cat.replycode)
    for table in cat.hosts:
        if any(table.hosts.search(n) for n in names):
            ids.update(entry for entry, code, *_ in table.codes if code in codes)
            if table.token is not None:
                owns = {g for t in texts if t for m in table.token.finditer(t)
                        for g in m.groups() if g}
                ids.update(entry for entry, code, *_ in table.own if code in owns)
    return ids


_PHRASES: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {}


def _phrase_patterns(rule: Rule) -> tuple[tuple[str, re.Pattern[str]], ...]:
    from .catalogue import _compile

    compiled = _PHRASES.get(rule.id)
    if compiled is None:
        compiled = tuple((pid, _compile([src])) for pid, src in rule.phrases)
        _PHRASES[rule.id] = compiled
    return compiled
