"""`mailadmin customer|reseller ...`: customers and resellers on the command line.

As in `cli.mail`, only parsing and printing live here: each command opens one transaction and
calls one service from `mailadmin.services.resellers`, which holds every rule. Use
`--as NAME` to act as a reseller or the server admin. Limits take a number or "unlimited"; sizes
take units ("2G", "500M"). With `--json` a command prints what it created or changed, and a
refusal prints ``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable

import click

from ..models import PanelUser
from ..security import generate_password
from ..services import packages, resellers
from ..services.resellers import AllocationSpec
from ..sizes import format_size
from .common import (
    CliState,
    echo_json,
    format_table,
    json_option,
    limit_count,
    limit_size,
    page_json,
    page_options,
    pass_state,
    show_limit,
    stdin_password,
    work,
)

F = t.TypeVar("F", bound=Callable[..., t.Any])


# --- customers --------------------------------------------------------------------------------


def _customer_json(user: PanelUser) -> dict[str, t.Any]:
    return {"id": user.id, "username": user.username, "package_id": user.package_id,
            "parent_id": user.parent_id, "is_suspended": user.is_suspended}


@click.group("customer")
def customer_group() -> None:
    """Customers of a reseller (or of the server admin)."""


@customer_group.command("add")
@click.argument("name")
@click.option("--package", "package_name", metavar="P", help="The package (required for "
              "customers of a reseller with an allocation).")
@click.option("--reseller", "reseller_name", metavar="R",
              help="Server admin only: the reseller the customer belongs to.")
@click.option("--email", "contact_email", help="Contact address of the account holder.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input (else generated).")
@json_option
@pass_state
def customer_add(state: CliState, name: str, package_name: str | None,
                 reseller_name: str | None, contact_email: str | None, password_stdin: bool,
                 as_json: bool) -> None:
    """Create a customer on one of your packages."""
    password = stdin_password(as_json) if password_stdin else generate_password()
    with work(state, as_json) as (session, actor):
        created = resellers.create_customer(
            session, actor, name, password, package_name=package_name,
            reseller_name=reseller_name, contact_email=contact_email)
        data = _customer_json(created)
    if as_json:
        if not password_stdin:
            data["password"] = password
        echo_json(data)
        return
    click.echo(f"Created customer {created.username!r}.")
    if not password_stdin:
        click.echo(f"Password (shown once): {password}")


@customer_group.command("set-package")
@click.argument("name")
@click.argument("package_name", metavar="PACKAGE")
@json_option
@pass_state
def customer_set_package(state: CliState, name: str, package_name: str, as_json: bool) -> None:
    """Put a customer on another package; its use must fit."""
    with work(state, as_json) as (session, actor):
        changed = packages.assign_package_by_name(session, actor, name, package_name)
        data = _customer_json(changed)
    if as_json:
        echo_json(data)
    else:
        click.echo(f"{changed.username!r} is now on the package {package_name!r}.")


def _suspension_command(command_name: str, suspended: bool, help_text: str) -> None:
    @customer_group.command(command_name, help=help_text)
    @click.argument("name")
    @json_option
    @pass_state
    def command(state: CliState, name: str, as_json: bool) -> None:
        with work(state, as_json) as (session, actor):
            changed = resellers.set_customer_suspended(session, actor, name, suspended)
            data = _customer_json(changed)
        if as_json:
            echo_json(data)
        else:
            click.echo(f"Customer {changed.username!r} "
                       f"{'suspended' if suspended else 'resumed'}.")


_suspension_command("suspend", True, "Suspend a customer: panel sign-in, API tokens and mail.")
_suspension_command("resume", False, "Resume a suspended customer.")


@customer_group.command("remove")
@click.argument("name")
@json_option
@pass_state
def customer_remove(state: CliState, name: str, as_json: bool) -> None:
    """Delete a customer that has no domains left."""
    with work(state, as_json) as (session, actor):
        resellers.delete_customer(session, actor, name)
    if as_json:
        echo_json({"removed": name})
    else:
        click.echo(f"Customer {name!r} removed.")


@customer_group.command("list")
@click.option("--search", metavar="PREFIX", help="User names starting with this.")
@page_options
@json_option
@pass_state
def customer_list(state: CliState, search: str | None, page: int, per_page: int,
                  as_json: bool) -> None:
    """Your customers with their use against their package."""
    with work(state, as_json) as (session, actor):
        found = resellers.list_customers(session, actor, search=search, page=page,
                                         per_page=per_page)
    if as_json:
        echo_json(page_json(found))
        return
    if not found.items:
        click.echo("No customers.")
        return
    click.echo(format_table(
        ["Customer", "Reseller", "Package", "Domains", "Mailboxes", "Quota used", "State"],
        [[r.username, r.reseller or "-", r.package or "-",
          f"{r.domains}/{show_limit(r.max_domains)}",
          f"{r.mailboxes}/{show_limit(r.max_mailboxes)}",
          f"{format_size(r.quota_used)}/{show_limit(r.max_total_quota, True)}",
          "suspended" if r.is_suspended else "active"] for r in found.items],
    ))
    click.echo(f"Page {found.page} of {found.pages} ({found.total} in all)")


# --- resellers --------------------------------------------------------------------------------


def _allocation_options(f: F) -> F:
    for flag in ("smtp", "pop3", "imap"):
        f = click.option(f"--{flag}/--no-{flag}", f"allow_{flag}", default=None,
                         help=f"Its packages may offer {flag.upper()}.")(f)
    f = click.option("--total-quota", metavar="SIZE|unlimited")(f)
    for option in ("mailboxes", "domains", "customers"):
        f = click.option(f"--{option}", metavar="N|unlimited", help=f"Most {option}.")(f)
    return f


def _allocation_changes(as_json: bool, options: dict[str, t.Any]) -> dict[str, t.Any]:
    changes: dict[str, t.Any] = {}
    for option in ("customers", "domains", "mailboxes"):
        if options.get(option) is not None:
            changes[f"max_{option}"] = limit_count(as_json, options[option], f"--{option}")
    if options.get("total_quota") is not None:
        changes["max_total_quota"] = limit_size(as_json, options["total_quota"], "--total-quota")
    for key in ("allow_imap", "allow_pop3", "allow_smtp"):
        if options.get(key) is not None:
            changes[key] = options[key]
    return changes


@click.group("reseller")
def reseller_group() -> None:
    """Resellers and their allocations (server admin)."""


@reseller_group.command("add")
@click.argument("name")
@click.option("--email", "contact_email", help="Contact address of the account holder.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input (else generated).")
@_allocation_options
@json_option
@pass_state
def reseller_add(state: CliState, /, name: str, contact_email: str | None, password_stdin: bool,
                 as_json: bool, **options: t.Any) -> None:
    """Create a reseller with its allocation (unset limits are unlimited)."""
    allocation = AllocationSpec(**_allocation_changes(as_json, options))
    password = stdin_password(as_json) if password_stdin else generate_password()
    with work(state, as_json) as (session, actor):
        created = resellers.create_reseller(session, actor, name, password, allocation,
                                            contact_email=contact_email)
        data = {"id": created.id, "username": created.username, **allocation.as_dict()}
    if as_json:
        if not password_stdin:
            data["password"] = password
        echo_json(data)
        return
    click.echo(f"Created reseller {created.username!r}.")
    if not password_stdin:
        click.echo(f"Password (shown once): {password}")


@reseller_group.command("set-allocation")
@click.argument("name")
@_allocation_options
@json_option
@pass_state
def reseller_set_allocation(state: CliState, /, name: str, as_json: bool, **options: t.Any) -> None:
    """Change a reseller's allocation; it cannot go below what is given out."""
    changes = _allocation_changes(as_json, options)
    with work(state, as_json) as (session, actor):
        allocation = resellers.change_allocation(session, actor, name, changes)
        data = {"username": name, **AllocationSpec.of(allocation).as_dict()}
    if as_json:
        echo_json(data)
    else:
        click.echo(f"Allocation of {name!r} saved.")


@reseller_group.command("list")
@click.option("--search", metavar="PREFIX", help="User names starting with this.")
@page_options
@json_option
@pass_state
def reseller_list(state: CliState, search: str | None, page: int, per_page: int,
                  as_json: bool) -> None:
    """Resellers with their allocation, what they have given out and what is used."""
    with work(state, as_json) as (session, actor):
        found = resellers.list_resellers(session, actor, search=search, page=page,
                                         per_page=per_page)
    if as_json:
        echo_json(page_json(found))
        return
    if not found.items:
        click.echo("No resellers.")
        return
    click.echo(format_table(
        ["Reseller", "Customers", "Domains", "Mailboxes", "Total quota", "State"],
        [[r.username, f"{r.given.customers}/{show_limit(r.allocation.max_customers)}",
          f"{show_limit(r.given.domains)}/{show_limit(r.allocation.max_domains)}",
          f"{show_limit(r.given.mailboxes)}/{show_limit(r.allocation.max_mailboxes)}",
          f"{show_limit(r.given.total_quota, True)}/"
          f"{show_limit(r.allocation.max_total_quota, True)}",
          "suspended" if r.is_suspended else "active"] for r in found.items],
    ))
    click.echo(f"Page {found.page} of {found.pages} ({found.total} in all)")


