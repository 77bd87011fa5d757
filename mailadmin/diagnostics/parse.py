"""Turn whatever a customer pastes into per-recipient blocks of error text.

Handles RFC 3464 delivery status notifications, ARF feedback reports, RFC 3834
auto-replies, free-text bounces, SMTP transcripts, log lines and single replies.
Everything is bounded: input is truncated before parsing, MIME walking stops
after a fixed number of parts, and the text later scanned by regular
expressions is capped, so a 10 MB or binary paste costs the same as a small one.
"""

from __future__ import annotations

import email
import email.header
import email.message
import json
import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from ..names import split_loosely

#: Bytes of input looked at. The decisive part of a bounce is at its top; what
#: follows is usually the returned original message.
MAX_INPUT = 1_000_000
MAX_PARTS = 64
MAX_PART_TEXT = 100_000
#: Characters of text the rules scan, for the whole input and for one recipient.
MAX_TEXT = 64_000
MAX_BLOCK_TEXT = 8_000
MAX_RECIPIENTS = 50

ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+"
)
_HEADERISH = re.compile(
    r"(?im)^(?:received|return-path|from|subject|content-type|mime-version|date|message-id|"
    r"to|delivered-to|x-[a-z0-9-]+|auto-submitted|reply-to):[ \t]"
)
# Lines after which a bounce quotes the original message; nothing below them
# describes the failure, and the quoted headers would add false recipients.
_ORIGINAL = re.compile(
    r"(?im)^[ \t>]*(?:-{2,}.{0,5}(?:original message|this is a copy of the message|"
    r"below this line is a copy|message headers follow|unsent message below|"
    r"returned message|original message follows)|-{2,}\s*original message\s*-{2,}|"
    r"message headers follow\.?$|--- below this line is a copy|"
    r"-{3,} ?The header of the original message|"
    r"content-type: message/rfc822|original message headers:?$|"
    r"-+ ?(?:Original|Returned) (?:message|mail)\b.*$)"
)
_DSN_FIELD = re.compile(
    r"(?im)^(final-recipient|original-recipient|action|status|diagnostic-code|remote-mta|"
    r"x-actual-recipient|last-attempt-date|will-retry-until)[ \t]*:[ \t]*(.*(?:\n[ \t]+.*)*)"
)
_AUTOREPLY_SUBJECT = re.compile(
    r"(?i)^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|"
    r"away\b|vacation|abwesen|absence|autorespon|auto:)"
)
_BOUNCE_SUBJECT = re.compile(
    r"(?i)(undeliver|deliver(y|ed)? (status|failure|fail|report|notification)|returned mail|"
    r"failure notice|mail delivery|delivery has failed|non.?delivery|could not be delivered|"
    r"rejected|bounce|mail system error|warning|delayed)"
)
log = logging.getLogger(__name__)
_DAEMON = re.compile(r"(?i)mailer-daemon|postmaster|mail delivery|mail-daemon|mdaemon")


@dataclass
class Block:
    """The error text about one recipient (or about the whole paste)."""

    recipient: str | None = None
    text: str = ""
    status: str | None = None
    diagnostic: str | None = None
    remote_host: str | None = None
    action: str | None = None
    #: The type of the DSN Diagnostic-Code ("smtp", "x-unix", ...), lower case.
    diag_type: str | None = None


@dataclass
class Parsed:
    """Result of :func:`parse`: what kind of text it is, and its blocks."""

    kind: str  # "bounce", "feedback", "vacation" or "text"
    text: str
    blocks: list[Block] = field(default_factory=list)
    #: True when the input was a whole e-mail (a bounce message), not a paste.
    mail: bool = False


def to_text(data: str | bytes) -> str:
    if isinstance(data, bytes):
        data = data[:MAX_INPUT].decode("utf-8", "replace")
    return data[:MAX_INPUT].replace("\r\n", "\n")


def looks_like_mail(text: str) -> bool:
    head = text[:4000]
    if not head or not (head.startswith("From ") or re.match(r"[A-Za-z0-9-]+:", head)):
        return False
    return len(_HEADERISH.findall(head)) >= 2 and "\n\n" in text.replace("\r\n", "\n")


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # broken transfer encodings must not stop the diagnosis
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw[:MAX_PART_TEXT].replace("\r\n", "\n") if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload[: MAX_PART_TEXT * 4].decode(charset, "replace")
    except (LookupError, ValueError):
        text = payload[: MAX_PART_TEXT * 4].decode("utf-8", "replace")
    return text[:MAX_PART_TEXT].replace("\r\n", "\n")


def _strip_html(html: str) -> str:
    html = re.sub(r"(?is)<(script|style).*?</\1>", " ", html)
    html = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>", "\n", html)
    return re.sub(r"<[^>]{0,2000}>", " ", html).replace("&nbsp;", " ").replace("&lt;", "<").replace(
        "&gt;", ">"
    ).replace("&amp;", "&")


def _fields_to_block(fields: dict[str, str]) -> Block | None:
    def value(name: str) -> str:
        return " ".join(fields.get(name, "").split())

    recipient_field = value("final-recipient") or value("original-recipient")
    recipient = _first_address(recipient_field)
    if recipient is None and not value("status") and not value("diagnostic-code"):
        return None
    diag = value("diagnostic-code")
    diag_type = None
    if ";" in diag[:20]:
        kind, _, diag_text = diag.partition(";")
        if kind.strip().lower() in {"smtp", "x-postfix", "x-unix"}:
            diag_type = kind.strip().lower()
            diag = diag_text.strip()
    remote = value("remote-mta")
    remote = remote.partition(";")[2].strip() if ";" in remote else remote
    status = value("status")
    status_match = re.search(r"\b[245]\.\d{1,3}\.\d{1,3}\b", status)
    return Block(
        recipient=recipient,
        text=diag,
        status=status_match.group(0) if status_match else None,
        diagnostic=diag or None,
        remote_host=remote or None,
        action=value("action").lower() or None,
        diag_type=diag_type,
    )


def _dsn_blocks_from_text(text: str) -> list[Block]:
    """Parse DSN fields printed as text (inline or from a broken MIME part)."""
    blocks: list[Block] = []
    current: dict[str, str] = {}
    for match in _DSN_FIELD.finditer(text[:MAX_TEXT]):
        name = match.group(1).lower()
        if name in {"final-recipient", "original-recipient"} and "final-recipient" in current and (
            name == "final-recipient"
        ):
            block = _fields_to_block(current)
            if block:
                blocks.append(block)
            current = {}
        current.setdefault(name, match.group(2))
        if len(blocks) >= MAX_RECIPIENTS:
            break
    block = _fields_to_block(current) if current and len(blocks) < MAX_RECIPIENTS else None
    if block:
        blocks.append(block)
    return blocks


def _dsn_blocks_from_part(part: Message) -> list[Block]:
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = []
        for sub in payload[: MAX_RECIPIENTS + 1]:
            if not isinstance(sub, Message):
                continue
            fields = {k.lower(): str(v) for k, v in sub.items()}
            block = _fields_to_block(fields)
            if block:
                blocks.append(block)
        return blocks
    return _dsn_blocks_from_text(_part_text(part))


def _first_address(text: str) -> str | None:
    match = ADDRESS.search(text)
    return match.group(0).strip(".").lower() if match else None


def cut_original(text: str) -> str:
    match = _ORIGINAL.search(text)
    return text[: match.start()] if match and match.start() > 0 else text


def _ses_blocks(text: str) -> tuple[str, list[Block]] | None:
    """Amazon SES posts bounce notifications as JSON; read its fields directly."""
    start = text.find("{")
    if start < 0 or '"notificationType"' not in text[:MAX_TEXT]:
        return None
    try:
        doc: Any = json.loads(text[start : text.rfind("}") + 1])
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    kind = str(doc.get("notificationType", "")).lower()
    if kind == "complaint":
        return "feedback", [Block(text="complaint")]
    if kind == "delivery":
        recipients = (doc.get("delivery") or {}).get("recipients") or [None]
        return "delivered", [Block(recipient=str(r).lower() if r else None, action="delivered")
                             for r in recipients[:MAX_RECIPIENTS]]
    bounce = doc.get("bounce") or {}
    blocks = []
    for item in (bounce.get("bouncedRecipients") or [])[:MAX_RECIPIENTS]:
        if not isinstance(item, dict):
            continue
        diag = str(item.get("diagnosticCode") or "")
        if diag.lower().startswith("smtp;"):
            diag = diag[5:].strip()
        blocks.append(
            Block(
                recipient=_first_address(str(item.get("emailAddress", ""))),
                text=diag + "\n" + str(bounce.get("bounceSubType", "")),
                status=item.get("status") or None,
                diagnostic=diag or None,
                remote_host=bounce.get("remoteMtaIp") or bounce.get("reportingMTA"),
                action=item.get("action"),
            )
        )
    return ("bounce", blocks) if blocks else None


def _walk(msg: Message) -> list[Message]:
    """Leaf parts of the report, not descending into the returned original."""
    out: list[Message] = []
    stack = [msg]
    while stack and len(out) < MAX_PARTS:
        part = stack.pop()
        ctype = part.get_content_type()
        if ctype in {"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"}:
            continue
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list) and ctype != "message/delivery-status":
            stack.extend(reversed([p for p in payload[:MAX_PARTS] if isinstance(p, Message)]))
        else:
            out.append(part)
    return out


def _split_by_recipient(body: str, exclude: set[str]) -> list[Block]:
    """Cut a free-text bounce into one block per recipient address it names."""
    found: list[tuple[int, str]] = []
    seen: set[str] = set()
    for match in ADDRESS.finditer(body):
        address = match.group(0).strip(".").lower()
        local = split_loosely(address)[0]  # ADDRESS matches exactly one "@"
        if address in exclude or address in seen or local in {"mailer-daemon", "mailer_daemon"}:
            continue
        line_start = body.rfind("\n", 0, match.start()) + 1
        if _NOT_RECIPIENT_LINE.match(body, line_start):
            continue
        if _ENVELOPE_SENDER.search(body[max(line_start, match.start() - 40) : match.start()]):
            continue
        seen.add(address)
        found.append((line_start, address))
        if len(found) >= MAX_RECIPIENTS:
            break
    blocks = []
    for i, (start, address) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(body)
        if end <= start:
            end = body.find("\n", start + 1)
            end = len(body) if end < 0 else end
        blocks.append(Block(recipient=address, text=body[start:end][:MAX_BLOCK_TEXT]))
    return blocks


_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})


def _attached_dsn_blocks(msg: Message) -> list[Block]:
    """DSN fields of a bounce that was forwarded or re-bounced as an attachment.

    Some gateways wrap the original delivery report in a new notice (a
    ``message/rfc822`` part holding a ``multipart/report``); when the outer
    notice has no DSN of its own, the inner one names the recipients and status.
    """
    stack = [msg]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        ctype = part.get_content_type()
        if part is not msg and ctype in _DSN_TYPES:
            blocks = _dsn_blocks_from_part(part)
            if blocks:
                return blocks
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload[:MAX_PARTS] if isinstance(p, Message)]))
    return []


# A transcript's "MAIL FROM:<sender>" names the sender, not a failed recipient;
# nor does the alias an address came from (Exim's "(generated from x)",
# Postfix's "(expanded from <x>)"): its lines belong to the recipient above.
_ENVELOPE_SENDER = re.compile(
    r"(?i)\bMAIL\s+FROM\s*:\s*<?\s*$|\((?:generated|expanded)\s+from\s*<?\s*$")


def _is_autoreply(msg: Message, subject: str, sender: str, has_dsn: bool) -> bool:
    if has_dsn or _DAEMON.search(sender) or _BOUNCE_SUBJECT.search(subject):
        return False
    auto = str(msg.get("Auto-Submitted", "")).lower()
    if auto.startswith("auto-replied") or msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return True
    if str(msg.get("Precedence", "")).lower() == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECT.search(subject))


_FEEDBACK_SUBJECT = re.compile(
    r"(?i)^\s*(complaint about message from|(e-?mail )?abuse report\b|unsubscribe\s*$)"
)
# A mail program's one-click unsubscribe (RFC 2369 List-Unsubscribe mailto:) is
# the recipient's feedback about the mail, not a bounce or an auto-reply.
_UNSUBSCRIBE_HEADERS = ("X-Apple-Unsubscribe",)
# Header lines quoted in a bounce name the sender, the message or a relay, not
# a failed recipient.
_NOT_RECIPIENT_LINE = re.compile(
    r"(?im)^[ \t>]*(message-id|in-reply-to|references|from|reply-to|return-path|sender|received|"
    r"x-[a-z0-9-]+|list-[a-z-]+|dkim-signature|content-id|envelope-from|errors-to|resent-[a-z-]+)\s*:"
)


def _decoded_subject(msg: Message) -> str:
    raw = msg.get("Subject", "")
    try:
        text = str(email.header.make_header(email.header.decode_header(str(raw))))
    except Exception:  # undecodable encoded-words: keep the raw header
        text = str(raw)
    return " ".join(text.split())


def _header_addresses(msg: Message) -> set[str]:
    out: set[str] = set()
    for name in ("To", "From", "Return-Path", "Sender", "Reply-To", "Cc"):
        for value in msg.get_all(name, []) or []:
            out.update(a.lower() for a in ADDRESS.findall(str(value)))
    return out


def parse_mail(raw: str | bytes) -> Parsed:
    parsed = _parse_mail(raw)
    parsed.mail = True
    return parsed


def _parse_mail(raw: str | bytes) -> Parsed:
    if isinstance(raw, bytes):
        msg = email.message_from_bytes(raw[:MAX_INPUT])
    else:
        msg = email.message_from_string(raw[:MAX_INPUT])
    subject = _decoded_subject(msg)
    sender = str(msg.get("From", ""))
    report_type = str(msg.get_param("report-type", "", header="content-type") or "").lower()
    texts: list[str] = []
    htmls: list[str] = []
    dsn_blocks: list[Block] = []
    feedback = report_type == "feedback-report" or bool(_FEEDBACK_SUBJECT.search(subject))
    feedback = feedback or any(
        str(msg.get(name, "")).strip().lower() in {"true", "yes"} for name in _UNSUBSCRIBE_HEADERS
    )
    for part in _walk(msg):
        ctype = part.get_content_type()
        if ctype == "message/delivery-status" or ctype == "message/global-delivery-status":
            dsn_blocks.extend(_dsn_blocks_from_part(part))
        elif ctype == "message/feedback-report":
            feedback = True
        elif ctype == "text/html":
            htmls.append(_part_text(part))
        elif ctype.startswith("text/") or ctype == "message/partial" or not ctype.startswith(
            ("image/", "audio/", "video/", "application/")
        ):
            text = _part_text(part)
            # A later part that is only a header dump is the returned original.
            if texts and looks_like_mail(text.lstrip()):
                continue
            texts.append(cut_original(text))
    body = "\n".join(texts) if any(t.strip() for t in texts) else "\n".join(map(_strip_html, htmls))
    body = cut_original(body)[:MAX_TEXT]
    whole = f"Subject: {subject}\n{body}"
    if feedback:
        return Parsed("feedback", whole, [Block(text=body[:MAX_BLOCK_TEXT])])
    ses = _ses_blocks(body)
    if ses is not None:
        return Parsed(ses[0], whole, ses[1])
    if not dsn_blocks and re.search(r"(?im)^final-recipient\s*:", body):
        dsn_blocks = _dsn_blocks_from_text(body)
    if not dsn_blocks:
        dsn_blocks = _attached_dsn_blocks(msg)
    if _is_autoreply(msg, subject, sender, bool(dsn_blocks)):
        return Parsed("vacation", whole, [Block(text=body[:MAX_BLOCK_TEXT])])
    exclude = _header_addresses(msg)
    free = _split_by_recipient(body, exclude)
    if dsn_blocks:
        by_address = {b.recipient: b for b in free}
        for block in dsn_blocks:
            extra = by_address.get(block.recipient)
            if extra is not None:
                block.text = f"{block.text}\n{extra.text}"[:MAX_BLOCK_TEXT]
        return Parsed("bounce", whole, dsn_blocks)
    if not free:
        free = [Block(text=body[:MAX_BLOCK_TEXT])]
    return Parsed("bounce", whole, free)


_RECIPIENT_HINTS = (
    re.compile(r"(?i)\bto=<?([^>,\s]+@[^>,\s]+)"),
    re.compile(r"(?i)RCPT TO:\s*<?([^>\s]+@[^>\s]+)"),
    re.compile(r"(?i)final-recipient:\s*[^;]*;\s*<?([^>\s]+@[^>\s]+)"),
    re.compile(r"(?i)recipient address:\s*<?([^>\s]+@[^>\s]+)"),
)


def parse_text(text: str) -> Parsed:
    """A paste that is not a whole e-mail: a log, transcript, dialog or reply line."""
    text = text[:MAX_TEXT]
    dsn = _dsn_blocks_from_text(text) if re.search(r"(?im)^\s*final-recipient\s*:", text) else []
    if dsn:
        context = cut_original(text)[:MAX_BLOCK_TEXT]
        for block in dsn:
            block.text = f"{block.text}\n{context}"
        return Parsed("bounce", text, dsn)
    recipient = None
    for hint in _RECIPIENT_HINTS:
        match = hint.search(text)
        if match:
            recipient = _first_address(match.group(1))
            if recipient:
                break
    return Parsed("text", text, [Block(recipient=recipient, text=text)])


def parse(data: str | bytes) -> Parsed:
    """Parse any input into blocks; never raises on malformed input."""
    head = to_text(data[:8192])
    if looks_like_mail(head.lstrip("\r\n")):
        try:
            return parse_mail(data.lstrip() if isinstance(data, str) else data.lstrip(b"\r\n"))
        except Exception:  # the email package can still trip on hostile MIME
            log.debug("diagnostics: MIME parse failed, reading as plain text", exc_info=True)
    return parse_text(to_text(data))
