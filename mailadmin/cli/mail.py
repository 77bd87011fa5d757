"""`mailadmin domain|mailbox|forwarder ...`: the customer mail services on the command line.

Only parsing and printing live here. Every command opens one transaction with
`CliState.unit_of_work()` and calls one service from `mailadmin.services`, which holds every rule
and limit; a refusal exits non-zero with the service's message. With `--json` a command prints the
object it created or changed (or one page of a list), and a refusal prints
``{"error": {"code", "message", "field"}}`` to standard output before exiting non-zero.
"""

from __future__ import annotations

import dataclasses
import typing as t
from collections.abc import Callable, Sequence

import click

from ..models import Domain, Forwarder, Mailbox
from ..names import address_to_unicode, domain_to_unicode, normalize_domain, split_address
from ..protocols import PROTOCOLS
from ..services import domain_ownership, domains, forwarders, mailboxes
from ..services.pagination import Page
from ..sizes import format_size
from .app_passwords import app_password_group
from .common import (
    CliState,
    echo_json,
    fail,
    format_table,
    json_option,
    page_json,
    page_options,
    pass_state,
    size_option,
    stdin_password,
    work,
)
from .domain_move import domain_move

F = t.TypeVar("F", bound=Callable[..., t.Any])

MAIL_ON_DISK_NOTE = (
    "The mail on disk is not touched by the panel: the server admin archives or removes it."
)


# --- output -----------------------------------------------------------------------------------


def _echo_page(page: Page[t.Any], noun: str, headers: Sequence[str],
               rows: Sequence[Sequence[str]]) -> None:
    """A table of one page and where it is; `noun` is the plural ("mailboxes")."""
    if rows:
        click.echo(format_table(headers, rows))
    elif page.total:
        click.echo(f"No {noun} on page {page.page}.")
    else:
        click.echo(f"No {noun}.")
    if page.total and not page.exact:
        more = "; more follow" if page.more else ""
        click.echo(f"Page {page.page} (more than {page.total} {noun} match{more})")
    elif page.total:
        counted = f"{page.total} {noun}" if page.total != 1 else f"1 {_SINGULAR[noun]}"
        click.echo(f"Page {page.page} of {page.pages} ({counted} in all)")


_SINGULAR = {"domains": "domain", "mailboxes": "mailbox", "forwarders": "forwarder"}


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _on(**flags: bool) -> str:
    """The names of the flags that are set, or '-'."""
    names = [name for name, value in flags.items() if value]
    return ", ".join(names) if names else "-"


# --- shared options ---------------------------------------------------------------------------


def _protocol_options(f: F) -> F:
    f = click.option("--smtp/--no-smtp", default=None, help="Sending (submission) on or off.")(f)
    f = click.option("--pop3/--no-pop3", default=None, help="POP3 on or off.")(f)
    f = click.option("--imap/--no-imap", default=None, help="IMAP on or off.")(f)
    return f


def _suspension_options(f: F) -> F:
    f = click.option("--outgoing", is_flag=True, default=None, help="Sending.")(f)
    f = click.option("--incoming", is_flag=True, default=None, help="Receiving.")(f)
    f = click.option("--login", is_flag=True, default=None, help="Logging in.")(f)
    return f


# --- domains ----------------------------------------------------------------------------------


def _domain_json(domain: Domain) -> dict[str, t.Any]:
    return {
        "id": domain.id,
        "name": domain.name,
        "unicode_name": domain_to_unicode(domain.name),
        "owner": domain.owner.username,
        "default_quota": domain.default_quota,
        "default_imap": domain.default_imap,
        "default_pop3": domain.default_pop3,
        "default_smtp": domain.default_smtp,
        "catchall_action": domain.catchall_action,
        "catchall_reject_reason": domain.catchall_reject_reason,
        "catchall_target": domain.catchall_target,
        "pending": domain.pending,
    }


def _verification_json(status: domain_ownership.Verification) -> dict[str, t.Any]:
    return {"name": status.name, "unicode_name": domain_to_unicode(status.name),
            **status.as_dict()}


def _echo_verification(status: domain_ownership.Verification) -> None:
    shown = domain_to_unicode(status.name)
    if not status.pending:
        click.echo(f"{shown} is verified" + (f": {status.note}" if status.note else "."))
        return
    click.echo(f"{shown} is waiting for verification: no mail is accepted for it yet.")
    click.echo(status.instructions)
    if status.note:
        click.echo(f"Last check: {status.note}")


def _catchall_text(action: str, reason: str | None, target: str | None) -> str:
    if action == "reject":
        return f"reject ({reason})" if reason else "reject"
    if action == "deliver" and target and target.startswith("@"):
        return f"forward to the same name at {domain_to_unicode(target[1:])}"
    if action == "deliver" and target:
        return f"deliver to {address_to_unicode(target)}"
    return action


@click.group("domain")
def domain_group() -> None:
    """Mail domains."""


@domain_group.command("add")
@click.argument("name")
@click.option("--customer", metavar="C", help="The customer it belongs to (not for a customer).")
@click.option("--node", metavar="NODE", default=None,
              help="Server admin: the mail node that holds it [default: the least loaded].")
@json_option
@pass_state
def domain_add(state: CliState, name: str, customer: str | None, node: str | None,
               as_json: bool) -> None:
    """Add a domain (an internationalised name is stored as IDNA ASCII)."""
    with work(state, as_json) as (session, actor):
        domain = domains.add_domain(session, actor, name, customer=customer, node=node)
        data = _domain_json(domain)
        status = domain_ownership.describe(session, domain)
    if as_json:
        echo_json({**data, "verification": status.as_dict()})
    else:
        click.echo(f"Added domain {data['unicode_name']} for {data['owner']}.")
        if status.pending:
            _echo_verification(status)


@domain_group.command("verify")
@click.argument("name")
@json_option
@pass_state
def domain_verify(state: CliState, name: str, as_json: bool) -> None:
    """Check a pending domain's proof now (DNS: the TXT record or the MX) and say what to do.

    Exits 1 while the domain is still pending."""
    with work(state, as_json) as (session, actor):
        status = domain_ownership.verify_domain(session, actor, name)
    if as_json:
        echo_json(_verification_json(status))
    else:
        _echo_verification(status)
    if status.pending:
        raise SystemExit(1)


@domain_group.command("approve")
@click.argument("name")
@json_option
@pass_state
def domain_approve(state: CliState, name: str, as_json: bool) -> None:
    """Approve a pending domain without proof (the server admin; with verification by
    approval also the customer's reseller)."""
    with work(state, as_json) as (session, actor):
        status = domain_ownership.approve_domain(session, actor, name)
    if as_json:
        echo_json(_verification_json(status))
    else:
        _echo_verification(status)


@domain_group.command("remove")
@click.argument("name")
@json_option
@pass_state
def domain_remove(state: CliState, name: str, as_json: bool) -> None:
    """Remove a domain that has no mailboxes and no forwarders left."""
    with work(state, as_json) as (session, actor):
        domains.remove_domain(session, actor, name)
        ascii_name = normalize_domain(name)
    if as_json:
        echo_json({"removed": True, "type": "domain", "name": ascii_name,
                    "unicode_name": domain_to_unicode(ascii_name)})
    else:
        click.echo(f"Removed domain {domain_to_unicode(ascii_name)}.")


@domain_group.command("list")
@click.option("--search", metavar="S", help="Domains starting with this.")
@page_options
@json_option
@pass_state
def domain_list(state: CliState, search: str | None, page: int, per_page: int,
                as_json: bool) -> None:
    """List the domains you manage."""
    with work(state, as_json) as (session, actor):
        result = domains.list_domains(session, actor, search=search, page=page, per_page=per_page)
    if as_json:
        echo_json(page_json(result))
        return
    rows = [
        [d.unicode_name + (" (pending)" if d.pending else ""), d.owner, str(d.mailboxes),
         str(d.forwarders), _catchall_text(d.catchall_action, None, d.catchall_target)]
        for d in result.items
    ]
    _echo_page(result, "domains", ["DOMAIN", "OWNER", "MAILBOXES", "FORWARDERS", "CATCH-ALL"],
               rows)


@domain_group.command("catchall")
@click.argument("name")
@click.option("--reject", is_flag=True, help="Refuse mail for unknown addresses.")
@click.option("--reason", metavar="TEXT", help="With --reject: the reason given to the sender.")
@click.option("--discard", is_flag=True, help="Accept and drop mail for unknown addresses.")
@click.option("--deliver-to", metavar="ADDRESS", help="Deliver mail for unknown addresses here.")
@json_option
@pass_state
def domain_catchall(state: CliState, name: str, reject: bool, reason: str | None, discard: bool,
                    deliver_to: str | None, as_json: bool) -> None:
    """What happens to mail for addresses of the domain that do not exist."""
    chosen = [action for action, on in
              (("reject", reject), ("discard", discard), ("deliver", deliver_to is not None)) if on]
    if len(chosen) != 1:
        fail(as_json, "Choose one of --reject, --discard or --deliver-to ADDRESS.",
              field="action")
    if reason is not None and not reject:
        fail(as_json, "--reason goes with --reject.", field="reject_reason")
    with work(state, as_json) as (session, actor):
        data = _domain_json(domains.set_catchall(
            session, actor, name, chosen[0], reject_reason=reason, target=deliver_to
        ))
    if as_json:
        echo_json(data)
    else:
        what = _catchall_text(data["catchall_action"], data["catchall_reject_reason"],
                              data["catchall_target"])
        click.echo(f"Mail for unknown addresses at {data['unicode_name']}: {what}.")


# --- mailboxes --------------------------------------------------------------------------------


def _mailbox_json(mailbox: Mailbox) -> dict[str, t.Any]:
    """The same fields as a row of `mailbox list --json`."""
    domain_name = mailbox.domain.name
    row = mailboxes.MailboxRow(
        id=mailbox.id,
        address=f"{mailbox.local_part}@{domain_name}",
        unicode_address=f"{mailbox.local_part}@{domain_to_unicode(domain_name)}",
        quota=mailbox.quota, imap=mailbox.imap, pop3=mailbox.pop3, smtp=mailbox.smtp,
        suspend_login=mailbox.suspend_login, suspend_incoming=mailbox.suspend_incoming,
        suspend_outgoing=mailbox.suspend_outgoing, usage_bytes=mailbox.usage_bytes,
        usage_read_at=mailbox.usage_read_at,
    )
    return dataclasses.asdict(row)


def _protocols_text(data: t.Mapping[str, t.Any]) -> str:
    return _on(**{p: data[p] for p in PROTOCOLS})


def _suspended_text(data: t.Mapping[str, t.Any]) -> str:
    return _on(login=data["suspend_login"], incoming=data["suspend_incoming"],
               outgoing=data["suspend_outgoing"])


def _mailbox_summary(data: t.Mapping[str, t.Any]) -> str:
    return (f"quota {format_size(data['quota'])}; protocols {_protocols_text(data)}; "
            f"suspended {_suspended_text(data)}")


def _usage_text(row: mailboxes.MailboxRow) -> str:
    if row.usage_bytes is None:
        return "-"
    used = format_size(row.usage_bytes) if row.usage_bytes else "0 B"
    percent = row.usage_percent
    return f"{used} ({percent}%)" if percent is not None else used


@click.group("mailbox")
def mailbox_group() -> None:
    """Mailboxes: passwords, quotas, protocols, suspensions."""


@mailbox_group.command("add")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, required=True,
              help="Read the password from standard input (required: never on the command line).")
@click.option("--quota", metavar="SIZE", help="e.g. 500M, 2G or bytes (default: the domain's).")
@_protocol_options
@json_option
@pass_state
def mailbox_add(state: CliState, address: str, password_stdin: bool, quota: str | None,
                imap: bool | None, pop3: bool | None, smtp: bool | None, as_json: bool) -> None:
    """Create a mailbox; unset quota and protocols come from the domain and the package."""
    quota_bytes = size_option(as_json, quota)
    password = stdin_password(as_json)
    with work(state, as_json) as (session, actor):
        data = _mailbox_json(mailboxes.create_mailbox(
            session, actor, address, password, quota=quota_bytes, imap=imap, pop3=pop3, smtp=smtp
        ))
    if as_json:
        echo_json(data)
    else:
        click.echo(f"Created mailbox {data['unicode_address']} ({_mailbox_summary(data)}).")


@mailbox_group.command("passwd")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, required=True,
              help="Read the new password from standard input.")
@json_option
@pass_state
def mailbox_passwd(state: CliState, address: str, password_stdin: bool, as_json: bool) -> None:
    """Set a mailbox's password."""
    password = stdin_password(as_json)
    with work(state, as_json) as (session, actor):
        data = _mailbox_json(mailboxes.set_mailbox_password(session, actor, address, password))
    if as_json:
        echo_json(data)
    else:
        click.echo(f"Password of {data['unicode_address']} changed.")


@mailbox_group.command("set")
@click.argument("address")
@click.option("--quota", metavar="SIZE", help="e.g. 500M, 2G or bytes.")
@_protocol_options
@json_option
@pass_state
def mailbox_set(state: CliState, address: str, quota: str | None, imap: bool | None,
                pop3: bool | None, smtp: bool | None, as_json: bool) -> None:
    """Change the quota and turn protocols on or off; what is not given stays as it is."""
    if quota is None and imap is None and pop3 is None and smtp is None:
        fail(as_json, "Nothing to change: give --quota SIZE, --imap/--no-imap, "
                       "--pop3/--no-pop3 or --smtp/--no-smtp.")
    quota_bytes = size_option(as_json, quota)
    with work(state, as_json) as (session, actor):
        data = _mailbox_json(mailboxes.update_mailbox(
            session, actor, address, quota=quota_bytes, imap=imap, pop3=pop3, smtp=smtp
        ))
    if as_json:
        echo_json(data)
    else:
        click.echo(f"Updated {data['unicode_address']}: {_mailbox_summary(data)}.")


def _suspend(state: CliState, address: str, suspend: bool, login: bool | None,
             incoming: bool | None, outgoing: bool | None, as_json: bool) -> None:
    if not (login or incoming or outgoing):
        verb = "suspend" if suspend else "resume"
        fail(as_json, f"Name what to {verb}: --login, --incoming and/or --outgoing.")
    with work(state, as_json) as (session, actor):
        data = _mailbox_json(mailboxes.set_suspensions(
            session, actor, address,
            login=suspend if login else None,
            incoming=suspend if incoming else None,
            outgoing=suspend if outgoing else None,
        ))
    if as_json:
        echo_json(data)
        return

    def word(flag: str) -> str:
        return "suspended" if data[f"suspend_{flag}"] else "active"

    click.echo(f"{data['unicode_address']}: login {word('login')}, receiving {word('incoming')}, "
               f"sending {word('outgoing')}.")


@mailbox_group.command("suspend")
@click.argument("address")
@_suspension_options
@json_option
@pass_state
def mailbox_suspend(state: CliState, address: str, login: bool | None, incoming: bool | None,
                    outgoing: bool | None, as_json: bool) -> None:
    """Suspend logging in, receiving and/or sending, each on its own."""
    _suspend(state, address, True, login, incoming, outgoing, as_json)


@mailbox_group.command("resume")
@click.argument("address")
@_suspension_options
@json_option
@pass_state
def mailbox_resume(state: CliState, address: str, login: bool | None, incoming: bool | None,
                   outgoing: bool | None, as_json: bool) -> None:
    """Resume logging in, receiving and/or sending, each on its own."""
    _suspend(state, address, False, login, incoming, outgoing, as_json)


@mailbox_group.command("remove")
@click.argument("address")
@click.option("--yes", is_flag=True, help="Confirm removing ADDRESS.")
@click.option("--confirm", metavar="ADDRESS", help="Confirm by repeating the address.")
@json_option
@pass_state
def mailbox_remove(state: CliState, address: str, yes: bool, confirm: str | None,
                   as_json: bool) -> None:
    """Remove a mailbox from the panel (the mail on disk is not touched)."""
    if confirm is None:
        if not yes:
            fail(as_json, "Confirm with --yes or --confirm ADDRESS.", field="confirm")
        confirm = address
    with work(state, as_json) as (session, actor):
        mailboxes.delete_mailbox(session, actor, address, confirm=confirm)
        stored = "@".join(split_address(address, hosted=True))
    if as_json:
        echo_json({"removed": True, "type": "mailbox", "address": stored,
                    "unicode_address": address_to_unicode(stored), "mail_on_disk": "untouched",
                    "note": MAIL_ON_DISK_NOTE})
    else:
        click.echo(f"Removed mailbox {address_to_unicode(stored)} from the panel.")
        click.echo(MAIL_ON_DISK_NOTE)


@mailbox_group.command("list")
@click.option("--domain", metavar="D", help="Only this domain.")
@click.option("--search", metavar="S", help="Addresses containing this.")
@click.option("--sort", type=click.Choice(sorted(mailboxes.SORTS)), default="address",
              show_default=True)
@click.option("--desc", is_flag=True, help="Sort in descending order.")
@page_options
@json_option
@pass_state
def mailbox_list(state: CliState, domain: str | None, search: str | None, sort: str, desc: bool,
                 page: int, per_page: int, as_json: bool) -> None:
    """List mailboxes, one page at a time."""
    with work(state, as_json) as (session, actor):
        result = mailboxes.list_mailboxes(session, actor, domain=domain, search=search, sort=sort,
                                          descending=desc, page=page, per_page=per_page)
    if as_json:
        echo_json(page_json(result))
        return
    rows = [
        [m.unicode_address, format_size(m.quota), _usage_text(m),
         _protocols_text(dataclasses.asdict(m)), _suspended_text(dataclasses.asdict(m))]
        for m in result.items
    ]
    _echo_page(result, "mailboxes", ["ADDRESS", "QUOTA", "USED", "PROTOCOLS", "SUSPENDED"], rows)


# --- forwarders -------------------------------------------------------------------------------


def _forwarder_json(forwarder: Forwarder) -> dict[str, t.Any]:
    domain_name = forwarder.domain.name
    return {
        "id": forwarder.id,
        "address": f"{forwarder.local_part}@{domain_name}",
        "unicode_address": f"{forwarder.local_part}@{domain_to_unicode(domain_name)}",
        "destinations": [address_to_unicode(d.address) for d in forwarder.destinations],
        "keep_copy": forwarder.keep_copy,
    }


@click.group("forwarder")
def forwarder_group() -> None:
    """Forwarders: addresses that hand mail on to other addresses."""


@forwarder_group.command("add")
@click.argument("address")
@click.argument("destinations", metavar="DEST...", nargs=-1, required=True)
@click.option("--keep-copy", is_flag=True, default=None,
              help="At a mailbox's address: keep a copy there too.")
@json_option
@pass_state
def forwarder_add(state: CliState, address: str, destinations: tuple[str, ...],
                  keep_copy: bool | None, as_json: bool) -> None:
    """Forward ADDRESS to one or more destinations; an existing forwarder keeps the ones it has
    and gets these too (`forwarder set` replaces them)."""
    with work(state, as_json) as (session, actor):
        forwarder, change = forwarders.add_destinations(
            session, actor, address, list(destinations), keep_copy=keep_copy or None
        )
        data = {**_forwarder_json(forwarder), "created": change.created,
                "added": [address_to_unicode(a) for a in change.added]}
    if as_json:
        echo_json(data)
    else:
        click.echo(change.summary())


@forwarder_group.command("set")
@click.argument("address")
@click.argument("destinations", metavar="DEST...", nargs=-1, required=True)
@click.option("--keep-copy", is_flag=True, help="At a mailbox's address: keep a copy there too.")
@click.option("--yes", is_flag=True, help="Remove destinations not given without asking.")
@json_option
@pass_state
def forwarder_set(state: CliState, address: str, destinations: tuple[str, ...], keep_copy: bool,
                  yes: bool, as_json: bool) -> None:
    """Replace the destinations of ADDRESS with DEST... (creating it if needed). Destinations
    that would be removed are listed and, without --yes, confirmed first."""
    with work(state, as_json) as (session, actor):
        preview = forwarders.preview_replacement(
            session, actor, address, list(destinations), keep_copy=keep_copy
        )
        if preview.removed and not yes:
            gone = ", ".join(address_to_unicode(a) for a in preview.removed)
            if as_json or not click.confirm(f"This stops delivery to {gone}. Continue?",
                                            err=True):
                raise click.UsageError(
                    f"Not replaced: it would remove {gone}. Add --yes to confirm."
                )
        forwarder, change = forwarders.replace_destinations(
            session, actor, address, list(destinations), keep_copy=keep_copy
        )
        data = {**_forwarder_json(forwarder), "created": change.created,
                "added": [address_to_unicode(a) for a in change.added],
                "removed": [address_to_unicode(a) for a in change.removed]}
    if as_json:
        echo_json(data)
    else:
        click.echo(change.summary())


@forwarder_group.command("remove")
@click.argument("address")
@json_option
@pass_state
def forwarder_remove(state: CliState, address: str, as_json: bool) -> None:
    """Remove a forwarder."""
    with work(state, as_json) as (session, actor):
        forwarders.remove_forwarder(session, actor, address)
        stored = "@".join(split_address(address, hosted=True))
    if as_json:
        echo_json({"removed": True, "type": "forwarder", "address": stored,
                    "unicode_address": address_to_unicode(stored)})
    else:
        click.echo(f"Removed forwarder {address_to_unicode(stored)}.")


@forwarder_group.command("list")
@click.option("--domain", metavar="D", help="Only this domain.")
@click.option("--search", metavar="S", help="Addresses starting with this.")
@page_options
@json_option
@pass_state
def forwarder_list(state: CliState, domain: str | None, search: str | None, page: int,
                   per_page: int, as_json: bool) -> None:
    """List forwarders, one page at a time."""
    with work(state, as_json) as (session, actor):
        result = forwarders.list_forwarders(session, actor, domain=domain, search=search,
                                            page=page, per_page=per_page)
    if as_json:
        echo_json(page_json(result))
        return
    rows = [
        [f.unicode_address, ", ".join(f.destinations),
         _yes_no(f.keep_copy) if f.is_mailbox else "-"]
        for f in result.items
    ]
    _echo_page(result, "forwarders", ["ADDRESS", "DESTINATIONS", "KEEP COPY"], rows)




# --- app passwords (their own module; a subgroup of `mailbox`) --------------------------------

mailbox_group.add_command(app_password_group)
domain_group.add_command(domain_move)
