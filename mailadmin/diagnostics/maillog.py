"""The mail log: find Postfix and Dovecot lines for an address or a queue id and join them into
one message's story (received → queued → delivered / deferred / bounced, with the remote reply).

Log files live in ``ServerSettings.log_dir`` (``postfix.log`` and ``dovecot.log``, with rotated
``.1`` and gzip'd ``.N.gz`` / ``-DATE.gz`` files). With no log folder the servers log to syslog,
which on Debian 12 is the journal: then the lines come from ``journalctl -o json`` for the
Postfix and Dovecot units (`journalctl_source`), rebuilt into the same text as the files.
Postfix lines are joined by queue id; Dovecot's
LMTP lines join through the session id that Dovecot puts in its "250 2.0.0 <rcpt> SESSION Saved"
reply, which Postfix logs. Each failure is classified with :func:`classify`.

Scope: the server admin sees every story; anyone else sees only stories that touch one of its
own addresses, and in those, addresses hosted for other customers are masked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Domain, PanelUser, Role
from ..names import domain_of
from ..services.context import Actor
from ..services.selfservice import MailboxUser
from .classify import Finding, classify

MASKED = "(another account)"
LOG_NAMES = ("postfix.log", "dovecot.log")
#: Lines read per file at most (a huge log must not exhaust memory).
MAX_LINES_PER_FILE = 2_000_000
MAX_STORIES = 200
#: How far apart a failed LMTP delivery's Postfix line and Dovecot's lines may be.
LMTP_JOIN_SECONDS = 2

_SYSLOG = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) "
    r"(?P<prog>postfix[\w/.-]*)\[(?P<pid>\d+)\]: (?P<msg>.*)$")
_DOVECOT = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<svc>[a-z][\w-]*)"
    r"(?:\((?P<who>[^)]*)\))?(?:<(?P<pid>\d+)>)?(?:<(?P<sess>[^>]+)>)?: "
    r"(?P<level>[A-Z][a-z]+): (?P<msg>.*)$")
_QID = re.compile(r"^(?P<qid>[0-9A-F]{8,12}|[0-9B-DF-HJ-NP-TV-Zb-z]{12,20}): (?P<rest>.*)$")
_KV = re.compile(r"\b(from|to|orig_to|relay|status|sasl_username|size|nrcpt|delay|dsn|client|"
                 r"message-id)=(<[^>]*>|[^,\s]+)")
_STATUS_REPLY = re.compile(r"status=(\w+) \((?P<reply>.*)\)\s*$")
_SESSION_IN_REPLY = re.compile(r"250 2\.\d\.\d <[^>]+> (\S+) Saved")
_CHILD = re.compile(r"sender (?:non-)?delivery (?:status )?notification: ([0-9A-Za-z]+)")
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_LOGIN_USER = re.compile(r"\buser=<([^<>@\s]+@[^<>\s]+)>")
_AUTH_LOOKUP = re.compile(
    r"[\w-]+\((?P<user>[^,()<>]+@[^,()<>]+)(?:,[^,()<>]*)?(?:,<(?P<sess>[^>]+)>)?\)")
_LOGIN_SESSION = re.compile(r"\bsession=<([^<>]+)>")
_SASL_FAILED = re.compile(r"SASL \S+ authentication failed.*sasl_username=(\S+)")
_LOGIN_FAILED = re.compile(r"auth failed|Password mismatch|authentication failed", re.I)
QUEUE_ID = re.compile(r"^(?:[0-9A-F]{8,12}|[0-9B-DF-HJ-NP-TV-Zb-z]{12,20})$")


@dataclass(frozen=True)
class LogLine:
    at: dt.datetime
    source: str  # "postfix" or "dovecot"
    file: str
    text: str
    program: str
    queue_id: str | None = None
    session: str | None = None
    user: str | None = None


@dataclass
class Delivery:
    to: str
    orig_to: str | None
    relay: str | None
    status: str  # sent, deferred, bounced, expired, ...
    reply: str
    at: dt.datetime
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"to": self.to, "orig_to": self.orig_to, "relay": self.relay,
                "status": self.status, "reply": self.reply, "at": self.at.isoformat(),
                "findings": [f.as_dict() for f in self.findings]}


@dataclass
class Story:
    """One message: every line with its queue id (and Dovecot's lines for its deliveries)."""

    queue_id: str | None
    lines: list[LogLine] = field(default_factory=list)
    sender: str | None = None
    client: str | None = None
    sasl_username: str | None = None
    size: int | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    rejected: str | None = None  # NOQUEUE reject text (never queued)
    findings: list[Finding] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    removed: bool = False
    #: "message" (joined by queue id) or "login" (a Dovecot session or a SASL failure).
    kind: str = "message"

    @property
    def first(self) -> dt.datetime:
        return min(line.at for line in self.lines)

    @property
    def last(self) -> dt.datetime:
        return max(line.at for line in self.lines)

    @property
    def outcome(self) -> str:
        if self.kind == "login":
            if any(_LOGIN_FAILED.search(x.text) for x in self.lines):
                return "login failed"
            return "logged in" if any("Login: " in x.text for x in self.lines) else "login"
        if self.rejected is not None:
            return "rejected"
        statuses = {d.status for d in self.deliveries}
        for word in ("bounced", "expired", "deferred"):
            if word in statuses:
                return word
        if statuses and statuses <= {"sent"}:
            return "delivered"
        return "queued" if self.lines else "unknown"

    @property
    def steps(self) -> list[str]:
        out: list[str] = []
        if self.kind == "login":
            return ["login", self.outcome]
        if self.rejected is not None:
            return ["received", "rejected"]
        if self.client or self.sasl_username:
            out.append("received")
        if self.sender is not None:
            out.append("queued")
        for d in self.deliveries:
            out.append({"sent": "delivered"}.get(d.status, d.status))
        if self.removed:
            out.append("removed")
        return out

    def addresses(self) -> set[str]:
        found: set[str] = set()
        for line in self.lines:
            found.update(a.lower() for a in _ADDRESS.findall(line.text))
        return found

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "queue_id": self.queue_id,
            "outcome": self.outcome,
            "steps": self.steps,
            "sender": self.sender,
            "client": self.client,
            "sasl_username": self.sasl_username,
            "size": self.size,
            "rejected": self.rejected,
            "first": self.first.isoformat() if self.lines else None,
            "last": self.last.isoformat() if self.lines else None,
            "deliveries": [d.as_dict() for d in self.deliveries],
            "findings": [f.as_dict() for f in self.findings],
            "children": list(self.children),
            "lines": [{"at": x.at.isoformat(), "source": x.source, "file": x.file,
                       "text": x.text} for x in self.lines],
        }


# --------------------------------------------------------------------------- reading


def log_files(log_dir: str | Path) -> list[Path]:
    """Postfix and Dovecot logs, rotated ones first (oldest first), the live file last."""
    folder = Path(log_dir)
    files: list[Path] = []
    for name in LOG_NAMES:
        found = [p for p in folder.glob(name + "*") if p.is_file()]
        files.extend(sorted(found, key=lambda p: (p.name == name, p.stat().st_mtime, p.name)))
    return files


def _open_lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for count, line in enumerate(handle):
            if count >= MAX_LINES_PER_FILE:
                break
            yield line.rstrip("\n")


def _timestamp(text: str, now: dt.datetime) -> dt.datetime:
    parsed = dt.datetime.strptime(f"{now.year} {' '.join(text.split())}", "%Y %b %d %H:%M:%S")
    if parsed > now + dt.timedelta(days=1):  # a December line read in January
        parsed = parsed.replace(year=now.year - 1)
    return parsed


def parse_line(raw: str, file: str, now: dt.datetime) -> LogLine | None:
    m = _SYSLOG.match(raw)
    if m:
        qm = _QID.match(m.group("msg"))
        return LogLine(_timestamp(m.group("ts"), now), "postfix", file, raw, m.group("prog"),
                       queue_id=qm.group("qid") if qm else None)
    d = _DOVECOT.match(raw)
    if d:
        # "lmtp(user)<pid><session>", "auth: passwd-file(user,ip,<session>)",
        # "imap-login: Login: user=<user>, ..., session=<session>"
        who = d.group("who") or ""
        session = d.group("sess")
        user = who.split(",", 1)[0] if "@" in who.split(",", 1)[0] else None
        inner = re.search(r"<([^<>]+)>$", who)
        msg = d.group("msg")
        if inner and session is None:
            session = inner.group(1)
        auth = _AUTH_LOOKUP.match(msg)
        if auth:
            user = user or auth.group("user")
            session = session or auth.group("sess")
        login = _LOGIN_USER.search(msg)
        if login:
            user = user or login.group(1)
        login_session = _LOGIN_SESSION.search(msg)
        if login_session and session is None:
            session = login_session.group(1)
        return LogLine(_timestamp(d.group("ts"), now), "dovecot", file, raw, d.group("svc"),
                       session=session, user=user)
    return None


def read_lines(files: Iterable[Path], now: dt.datetime) -> list[LogLine]:
    out: list[LogLine] = []
    for path in files:
        try:
            for raw in _open_lines(path):
                line = parse_line(raw, path.name, now)
                if line is not None:
                    out.append(line)
        except OSError:
            continue
    return out


# --------------------------------------------------------------------------- the journal

#: The systemd units whose journal holds the mail servers' lines (Debian's own units).
JOURNAL_UNITS = ("postfix.service", "postfix@-.service", "dovecot.service")
#: How far back the journal is read when the search names no time span.
JOURNAL_LOOKBACK = dt.timedelta(days=7)
JOURNAL_TIMEOUT_SECONDS = 60
_JOURNAL_FIELDS = "MESSAGE,SYSLOG_IDENTIFIER,SYSLOG_PID,_PID,PRIORITY,_HOSTNAME"
#: Dovecot's level words for syslog priorities (its log files write them into each line).
_DOVECOT_LEVELS = {0: "Panic", 1: "Fatal", 2: "Fatal", 3: "Error", 4: "Warning", 5: "Info",
                   6: "Info", 7: "Debug"}

#: Reads the journal from a local time on: JSON lines as ``journalctl -o json`` writes them.
JournalSource = Callable[[dt.datetime], Iterable[str]]


class JournalUnavailable(Exception):
    """journalctl is missing or refused (no journal, no permission); the message says which."""


def journalctl_source(
    *, units: Sequence[str] = JOURNAL_UNITS, extra_args: Sequence[str] = (),
    timeout: float = JOURNAL_TIMEOUT_SECONDS,
) -> JournalSource:
    """The journal as journalctl gives it; `units` empty reads every unit, `extra_args` picks
    another journal (``--directory``, ``--file``, ``--namespace``)."""

    def read(since: dt.datetime) -> list[str]:
        command = ["journalctl", "-o", "json", "--no-pager", f"--output-fields={_JOURNAL_FIELDS}",
                   "--since", since.strftime("%Y-%m-%d %H:%M:%S"), *extra_args]
        for unit in units:
            command += ["-u", unit]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  check=False, errors="replace")
        except FileNotFoundError:
            raise JournalUnavailable("journalctl is not installed on this machine.") from None
        except subprocess.TimeoutExpired:
            raise JournalUnavailable(
                f"journalctl did not answer within {timeout:.0f} seconds.") from None
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["(no message)"])[0]
            raise JournalUnavailable(f"journalctl refused: {said}")
        return done.stdout.splitlines()[:MAX_LINES_PER_FILE]

    return read


def _journal_text(entry: dict[str, object]) -> str | None:
    """A journal entry as the line the server would have written to its log file."""
    message = entry.get("MESSAGE")
    if isinstance(message, list):  # journalctl writes non-UTF-8 text as a list of bytes
        message = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256).decode(
            "utf-8", "replace")
    ident = entry.get("SYSLOG_IDENTIFIER")
    stamp = entry.get("__REALTIME_TIMESTAMP")
    if not isinstance(message, str) or not isinstance(ident, str) or not isinstance(stamp, str):
        return None
    try:
        at = dt.datetime.fromtimestamp(int(stamp) / 1_000_000)  # local time, as syslog writes
    except (ValueError, OverflowError, OSError):
        return None
    when = at.strftime("%b %d %H:%M:%S")
    message = message.replace("\n", " ").replace("\r", " ")
    if ident.startswith("postfix"):
        pid = entry.get("SYSLOG_PID") or entry.get("_PID") or "0"
        host = entry.get("_HOSTNAME") or "localhost"
        return f"{when} {host} {ident}[{pid}]: {message}"
    if ident == "dovecot":
        # "imap-login: Login: ..." -> "imap-login: Info: Login: ...", as in dovecot.log
        service, sep, rest = message.partition(": ")
        if not sep:
            return None
        try:
            level = _DOVECOT_LEVELS.get(int(str(entry.get("PRIORITY", 6))), "Info")
        except ValueError:
            level = "Info"
        return f"{when} {service}: {level}: {rest}"
    return None


def journal_lines(entries: Iterable[str], now: dt.datetime) -> list[LogLine]:
    """Parse ``journalctl -o json`` output; other programs' entries are skipped."""
    out: list[LogLine] = []
    for raw in entries:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        text = _journal_text(entry) if isinstance(entry, dict) else None
        line = parse_line(text, "journal", now) if text is not None else None
        if line is not None:
            out.append(line)
    return out


# --------------------------------------------------------------------------- joining


def _kv(text: str) -> dict[str, str]:
    return {k: v.strip("<>") for k, v in _KV.findall(text)}


def build_stories(lines: Sequence[LogLine]) -> list[Story]:
    """Join Postfix lines by queue id, Dovecot LMTP lines by session; NOQUEUE lines alone."""
    by_qid: dict[str, Story] = {}
    singles: list[Story] = []
    by_session: dict[str, list[LogLine]] = {}
    by_user: dict[str, list[LogLine]] = {}
    for line in lines:
        if line.source == "dovecot" and line.session:
            by_session.setdefault(line.session, []).append(line)
            if line.program == "lmtp" and line.user:
                by_user.setdefault(line.user.lower(), []).append(line)
    for line in lines:
        if line.source != "postfix":
            continue
        if line.queue_id is None:
            sasl = _SASL_FAILED.search(line.text)
            if sasl:
                singles.append(Story(None, [line], sasl_username=sasl.group(1).rstrip(","),
                                     findings=classify(line.text.split(": ", 1)[-1]),
                                     kind="login"))
            if "NOQUEUE: reject:" in line.text:
                story = Story(None, [line])
                kv = _kv(line.text)
                story.sender = kv.get("from")
                reply = line.text.split("NOQUEUE: reject: ", 1)[1]
                story.rejected = reply
                story.findings = classify(reply.split(": ", 1)[-1])
                singles.append(story)
            continue
        story = by_qid.setdefault(line.queue_id, Story(line.queue_id))
        story.lines.append(line)
        rest = line.text.split(f"{line.queue_id}: ", 1)[1]
        kv = _kv(rest)
        if rest.startswith("client="):
            story.client = kv.get("client")
            story.sasl_username = kv.get("sasl_username")
        elif "from" in kv and ("nrcpt" in kv or "size" in kv):
            story.sender = kv["from"]
            if kv.get("size", "").isdigit():
                story.size = int(kv["size"])
        elif "to" in kv and "status" in kv:
            sm = _STATUS_REPLY.search(rest)
            reply = sm.group("reply") if sm else ""
            d = Delivery(kv["to"], kv.get("orig_to"), kv.get("relay"), kv["status"], reply,
                         line.at)
            if d.status != "sent":
                d.findings = [_with_dsn(f, d.status, kv.get("dsn", ""))
                              for f in classify(reply) or classify(rest)]
                story.findings.extend(d.findings)
            story.deliveries.append(d)
            session = _SESSION_IN_REPLY.search(reply)
            if not session and d.relay and "lmtp" in d.relay:
                # A failed LMTP delivery's reply carries no session id: take Dovecot's lines
                # for that recipient's LMTP session logged within a few seconds of it.
                story.lines.extend(
                    x for x in by_user.get(d.to.lower(), ())
                    if abs((x.at - d.at).total_seconds()) <= LMTP_JOIN_SECONDS)
            if session:
                sess = session.group(1)
                story.lines.extend(by_session.get(sess, []))
                base = sess.split(":", 1)[0]
                if base != sess:
                    story.lines.extend(x for x in by_session.get(base, []) if x.user == d.to)
        elif rest.startswith("removed"):
            story.removed = True
        child = _CHILD.search(rest)
        if child:
            story.children.append(child.group(1))
    joined = {id(x) for story in by_qid.values() for x in story.lines}
    logins: dict[str, Story] = {}
    for line in lines:
        if (line.source == "dovecot" and line.user and line.program != "lmtp"
                and id(line) not in joined):
            key = line.session or f"{line.user} {line.at.isoformat()}"
            logins.setdefault(key, Story(None, kind="login")).lines.append(line)
    stories = list(by_qid.values()) + singles + list(logins.values())
    for story in stories:
        seen: set[int] = set()
        unique = []
        for line in story.lines:
            if id(line) not in seen:
                seen.add(id(line))
                unique.append(line)
        story.lines = sorted(unique, key=lambda x: x.at)
    return stories


def _with_dsn(finding: Finding, status: str, dsn: str) -> Finding:
    """Postfix's own verdict wins: a deferral is soft, a bounce hard, whatever the text says."""
    hard = {"deferred": False, "bounced": True, "expired": True}.get(status, finding.hard)
    return dataclasses.replace(finding, hard=hard, status=finding.status or dsn)


# --------------------------------------------------------------------------- scope


Principal = Actor | MailboxUser


@dataclass(frozen=True)
class Scope:
    """Which hosted addresses are the principal's own (None: everything, the server admin)."""

    own_domains: frozenset[str] | None
    own_address: str | None
    hosted_domains: frozenset[str]

    def is_own(self, address: str) -> bool:
        address = address.lower()
        if self.own_domains is None:
            return True
        if self.own_address is not None:
            return address == self.own_address
        return domain_of(address) in self.own_domains

    def is_foreign(self, address: str) -> bool:
        return (domain_of(address.lower()) in self.hosted_domains
                and not self.is_own(address))


def scope_for(session: Session, principal: Principal) -> Scope:
    rows = session.execute(select(Domain.name, Domain.owner_id)).all()
    hosted = frozenset(name for name, _ in rows)
    if isinstance(principal, MailboxUser):
        return Scope(frozenset({domain_of(principal.address)}),
                     principal.address.lower(), hosted)
    if principal.role is Role.ADMIN:
        return Scope(None, None, hosted)
    if principal.role is Role.CUSTOMER:
        owners = {principal.customer_id}
    else:
        owners = set(session.scalars(select(PanelUser.id).where(
            PanelUser.parent_id == principal.user_id)))
    return Scope(frozenset(name for name, owner in rows if owner in owners), None, hosted)


def _mask(text: str, scope: Scope) -> str:
    return _ADDRESS.sub(lambda m: MASKED if scope.is_foreign(m.group(0)) else m.group(0), text)


def _visible(story: Story, scope: Scope) -> Story | None:
    """The story as the principal may see it, or None when it touches none of its addresses.

    A message the principal sent shows all of it but other customers' mailboxes (masked);
    a message it received shows only the lines about its own addresses and the neutral ones
    (connection, queueing, the sender), so other recipients stay hidden.
    """
    if scope.own_domains is None:
        return story
    if not any(scope.is_own(a) and not _remote(a, scope) for a in story.addresses()):
        return None
    sender = (story.sender or "").lower()
    sent_by_own = any(x and scope.is_own(x) and not _remote(x, scope)
                      for x in (story.sender, story.sasl_username))
    lines = []
    for line in story.lines:
        if line.user and not scope.is_own(line.user):
            continue  # another mailbox's session
        to = _kv(line.text).get("to")
        if to and scope.is_foreign(to):
            continue  # a delivery to another customer's mailbox is that customer's business
        others = {a.lower() for a in _ADDRESS.findall(line.text)} - {sender}
        if not sent_by_own and others and not any(scope.is_own(a) for a in others):
            continue  # about another recipient of a message this account received
        lines.append(LogLine(line.at, line.source, line.file, _mask(line.text, scope),
                             line.program, line.queue_id, line.session, line.user))
    masked = Story(story.queue_id, lines, sender=_mask_opt(story.sender, scope),
                   client=story.client, sasl_username=_mask_opt(story.sasl_username, scope),
                   size=story.size, rejected=_mask_opt(story.rejected, scope),
                   findings=story.findings if story.rejected is not None else [],
                   children=story.children if sent_by_own else [], removed=story.removed,
                   kind=story.kind)
    for d in story.deliveries:
        own = scope.is_own(d.to) or bool(d.orig_to and scope.is_own(d.orig_to))
        if scope.is_foreign(d.to) or not (own or sent_by_own):
            continue
        masked.deliveries.append(Delivery(
            _mask(d.to, scope), _mask_opt(d.orig_to, scope), d.relay, d.status,
            _mask(d.reply, scope), d.at, d.findings))
        masked.findings.extend(d.findings)
    return masked


def _remote(address: str, scope: Scope) -> bool:
    return domain_of(address.lower()) not in scope.hosted_domains


def _mask_opt(value: str | None, scope: Scope) -> str | None:
    return None if value is None else _mask(value, scope)


# --------------------------------------------------------------------------- search


@dataclass
class LogSearch:
    query: str
    stories: list[Story]
    note: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"query": self.query, "note": self.note,
                "stories": [s.as_dict() for s in self.stories]}


def parse_since(text: str | None) -> dt.timedelta | None:
    """"24h", "30m", "7d", "90s" (or None) as a time span."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d{1,6})\s*([smhdw]?)\s*", text.lower())
    if not m:
        raise ValueError(f"cannot read the time span {text!r}: use e.g. 30m, 24h or 7d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks", "": "hours"}
    return dt.timedelta(**{unit[m.group(2)]: int(m.group(1))})


def search_log(session: Session, principal: Principal, query: str, *,
               log_dir: str | Path | None = None, since: dt.timedelta | None = None,
               now: dt.datetime | None = None,
               journal: JournalSource | None = None) -> LogSearch:
    """The stories for an address or a queue id that the principal may see, newest last.

    Read from the log folder, or, when the servers log to syslog (no log folder), from the
    journal (`journal`, by default journalctl for the Postfix and Dovecot units).
    """
    from ..services.server import get_server_settings

    now = now or dt.datetime.now()  # syslog timestamps are local time
    query = query.strip()
    folder = log_dir if log_dir is not None else get_server_settings(session).log_dir
    scope = scope_for(session, principal)
    is_qid = bool(QUEUE_ID.match(query)) and "@" not in query
    wanted = query.lower()
    if not is_qid and "@" in wanted and scope.own_domains is not None and not scope.is_own(
            wanted):
        return LogSearch(query, [], f"{query} is not hosted in your account.")
    if folder:
        lines = read_lines(log_files(folder), now)
    else:
        reader = journal or journalctl_source()
        try:
            lines = journal_lines(reader(now - (since or JOURNAL_LOOKBACK)), now)
        except JournalUnavailable as exc:
            return LogSearch(query, [], "The servers log to syslog, and the journal could not "
                             f"be read: {exc} Set a log folder in the server settings, or let "
                             "the panel's user read the journal (group systemd-journal).")
    stories = build_stories(lines)
    hits: list[Story] = []
    for story in stories:
        if is_qid:
            if story.queue_id != query:
                continue
        elif wanted not in story.addresses():
            continue
        if since is not None and story.lines and story.last < now - since:
            continue
        visible = _visible(story, scope)
        if visible is not None and visible.lines:
            hits.append(visible)
    hits.sort(key=lambda s: s.first)
    note = None if hits else "No log lines found for it" + (
        f" in the last {since}." if since else ".")
    return LogSearch(query, hits[-MAX_STORIES:], note)
