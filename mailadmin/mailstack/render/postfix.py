"""Postfix's lookup tables in files mode, and where main.cf finds its tables in each mode."""

from __future__ import annotations

from collections import defaultdict

from ...names import domain_of, safe_address, safe_domain, safe_hosted_domain, safe_local_part
from .. import names
from ..snapshot import StackSnapshot
from .common import (
    DISCARD_ADDRESS,
    DISCARD_DOMAIN,
    HEADER,
    SUSPENDED_INCOMING_REPLY,
    SUSPENDED_OUTGOING_REPLY,
    Files,
    RenderError,
    mailbox_address,
    map_text,
)
from .routing import Routing, routing, transport_entries

#: Maps that apply compiles with ``postmap hash:...`` (in every mode: SQL mode writes them
#: with no entries except the transport map).
POSTFIX_HASH_MAPS = (
    "postfix/vdomains",
    "postfix/vmailbox",
    "postfix/valias",
    "postfix/recipient_access",
    "postfix/sender_login",
    "postfix/sasl_access",
    "postfix/transport",
)

#: main.cf setting -> the hash map that answers it in files mode (SQL mode: `sql.TABLES`).
HASH_TABLES = {
    "domains": "vdomains",
    "mailboxes": "vmailbox",
    "aliases": "valias",
    "recipient_access": "recipient_access",
    "sender_login": "sender_login",
    "sasl_access": "sasl_access",
}


def hash_tables(root: str) -> dict[str, str]:
    """main.cf's lookup tables in files mode."""
    return {key: f"hash:{root}/postfix/{name}" for key, name in HASH_TABLES.items()}


def transport_map(route: Routing | None = None, lmtp_port: int = 0) -> str:
    """The discard domain, and on a mail node each domain another node holds
    (`render.routing`)."""
    entries = [(DISCARD_DOMAIN, "discard:discarded by the default address")]
    if route is not None and route.remote:
        entries += transport_entries(route, lmtp_port)
    return map_text(entries)


def sql_mode_maps() -> Files:
    """SQL mode: the hash maps apply compiles, empty but for the transport map."""
    files = {rel: f"# {HEADER}\n# SQL mode: looked up in the database (postfix/sql/)\n"
             for rel in POSTFIX_HASH_MAPS}
    files["postfix/transport"] = transport_map()
    return files


def postfix_maps(snapshot: StackSnapshot) -> Files:
    """Lookup tables in files mode (source form; `apply` runs postmap on each).

    Every entry belongs to one domain (its key: ``local@domain``, ``@domain`` or
    ``domain``) and the entries of a domain come together, domains in the snapshot's order,
    so that the incremental render (`render.incremental`) can replace one domain's entries.
    An entry depends only on its own domain's rows and on which addresses refuse incoming
    mail (`StackSnapshot.refuses_incoming`, across domains).
    """
    domains = {safe_hosted_domain(d.name): d for d in snapshot.domains}
    mailboxes = {}
    for m in snapshot.mailboxes:
        addr = mailbox_address(m)
        if m.domain not in domains:
            raise RenderError(f"mailbox {addr} in unknown domain")
        mailboxes[addr] = m
    refusing = snapshot.refuses_incoming()

    def deliverable(dest: str) -> bool:
        """A suspended local mailbox gets nothing, not even through a forwarder."""
        return dest not in refusing

    valias: dict[str, list[tuple[str, str]]] = defaultdict(list)
    access: dict[str, dict[str, str]] = defaultdict(dict)
    for a, m in mailboxes.items():
        if m.suspend_incoming:
            access[domain_of(a)][a] = SUSPENDED_INCOMING_REPLY
    forwarded = set()
    per_domain_known: dict[str, set[str]] = defaultdict(set)
    for a in mailboxes:
        per_domain_known[domain_of(a)].add(a)
    for f in snapshot.forwarders:
        addr = safe_address(f"{safe_local_part(f.local_part)}@{safe_domain(f.domain)}")
        if f.domain not in domains:
            raise RenderError(f"forwarder {addr} in unknown domain")
        per_domain_known[f.domain].add(addr)
        forwarded.add(addr)
        targets = [safe_address(d) for d in f.destinations if d != addr]
        targets = [d for d in dict.fromkeys(targets) if deliverable(d)]
        if addr in mailboxes and f.keep_copy and deliverable(addr):
            # a self-reference ends Postfix's alias recursion: deliver here *and* forward
            targets.insert(0, addr)
        if targets:
            valias[domain_of(addr)].append((addr, ",".join(targets)))
        else:
            # Everything it would reach is suspended (or it has nowhere to go): refuse at RCPT
            # with the suspension reply instead of accepting mail that would vanish.
            access[domain_of(addr)][addr] = SUSPENDED_INCOMING_REPLY
    for d in snapshot.domains:
        action = d.catchall_action
        if action == "reject":
            if d.catchall_reject_reason:
                access[d.name][d.name] = (
                    f"550 5.1.1 {names.reply_text(d.catchall_reject_reason)}")
                # DUNNO stops the lookup falling back to the domain key for real addresses.
                for a in per_domain_known[d.name]:
                    access[d.name].setdefault(a, "DUNNO")
            continue
        if action == "deliver":
            if not d.catchall_target:
                raise RenderError(f"default address of {d.name} delivers nowhere")
            if d.catchall_target.startswith("@"):
                # "@other.example": Postfix hands the mail to the same local part there
                # (virtual(5), result address rewriting)
                target = "@" + safe_domain(d.catchall_target[1:])
            else:
                target = safe_address(d.catchall_target)
                if not deliverable(target):
                    continue  # delivering to a suspended mailbox: behave like "reject"
        elif action == "discard":
            target = DISCARD_ADDRESS
        else:
            raise RenderError(f"unknown default-address action {action!r} for {d.name}")
        # "@domain" would also catch existing mailboxes; an identity entry keeps each one.
        for a in sorted(per_domain_known[d.name]):
            if a in mailboxes and a not in forwarded:
                valias[d.name].append((a, a))
        valias[d.name].append((f"@{d.name}", target))
    route = routing(snapshot)
    for a, m in mailboxes.items():
        if m.domain in route.remote and access[m.domain].get(a, "DUNNO") == "DUNNO":
            # held by another node, whose LMTP checks the quota at RCPT: skip this node's
            # quota-status, which would open (and create) an empty Maildir here
            access[m.domain][a] = "OK"
    return {
        "postfix/vdomains": map_text((name, "OK") for name in domains),
        "postfix/vmailbox": map_text((a, "OK") for a in mailboxes),
        "postfix/valias": map_text(e for name in domains for e in valias.get(name, ())),
        "postfix/recipient_access": map_text(
            e for name in domains for e in sorted(access.get(name, {}).items())),
        "postfix/sender_login": map_text((a, a) for a in mailboxes),
        "postfix/sasl_access": map_text(
            (a, SUSPENDED_OUTGOING_REPLY) for a, m in mailboxes.items() if m.suspend_outgoing
        ),
        "postfix/transport": transport_map(route, snapshot.settings.ports.lmtp),
    }
