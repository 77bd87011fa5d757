"""`mailadmin package|customer|reseller ...`: plans, customers and resellers on the command line.

As in `cli_mail`, only parsing and printing live here: each command opens one transaction and
calls one service from `mailadmin.services.packages` or `.resellers`, which hold every rule. Use
`--as NAME` to act as a reseller or the server admin. Limits take a number or "unlimited"; sizes
take units ("2G", "500M"). With `--json` a command prints what it created or changed, and a
refusal prints ``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

import dataclasses
import typing as t
from collections.abc import Callable

import click

from .cli import CliState, main, pass_state
from .cli_mail import (
    _echo_json,
    _fail,
    _json_option,
    _page_json,
    _page_options,
    _password,
    _table,
    _work,
)
from .errors import ValidationError
from .models import Package, PanelUser
from .protocols import PROTOCOLS
from .security import generate_password
from .services import packages, resellers
from .services.packages import PackageSpec
from .services.resellers import AllocationSpec
from .sizes import format_size, parse_size

F = t.TypeVar("F", bound=Callable[..., t.Any])
UNLIMITED = "unlimited"


def _count(as_json: bool, text: str | None, option: str) -> int | None:
    """A limit: a whole number, or "unlimited" (None)."""
    assert text is not None
    if text.strip().lower() == UNLIMITED:
        return None
    try:
        value = int(text)
    except ValueError:
        _fail(as_json, f"{option} takes a number or 'unlimited'.")
    if value < 0:
        _fail(as_json, f"{option} cannot be negative.")
    return value


def _bytes(as_json: bool, text: str | None, option: str) -> int | None:
    assert text is not None
    if text.strip().lower() == UNLIMITED:
        return None
    try:
        # parse_size reads 0 as "no limit" too.
        return parse_size(text, field=option.lstrip("-")) or None
    except ValidationError as exc:
        _fail(as_json, f"{option}: {exc.message}")


def _show(value: int | None, size: bool = False) -> str:
    if value is None:
        return UNLIMITED
    return format_size(value) if size else str(value)


# --- packages ---------------------------------------------------------------------------------

_PACKAGE_COUNTS = {"domains": "max_domains", "mailboxes": "max_mailboxes",
                   "forwarders": "max_forwarders"}
_PACKAGE_SIZES = {"quota_per_mailbox": "max_quota_per_mailbox", "total_quota": "max_total_quota"}


def _package_options(f: F) -> F:
    for flag in reversed(PROTOCOLS):
        f = click.option(f"--default-{flag}/--no-default-{flag}", flag.default_field,
                         default=None, help=f"New mailboxes get {flag.label}.")(f)
        f = click.option(f"--{flag}/--no-{flag}", flag.allow_field, default=None,
                         help=f"The package allows {flag.label}.")(f)
    f = click.option("--default-quota", metavar="SIZE", help="Quota of new mailboxes.")(f)
    f = click.option("--unlimited-quota/--no-unlimited-quota", "allow_unlimited_quota",
                     default=None, help="Mailboxes may have no quota.")(f)
    f = click.option("--cpanel", "cpanel", multiple=True, metavar="KEY=VALUE",
                     help="A cPanel package key, e.g. MAXPOP=10 or MAX_EMAILACCT_QUOTA=1024 "
                          "(MiB).")(f)
    f = click.option("--total-quota", metavar="SIZE|unlimited")(f)
    f = click.option("--quota-per-mailbox", metavar="SIZE|unlimited")(f)
    for option in ("forwarders", "mailboxes", "domains"):
        f = click.option(f"--{option}", metavar="N|unlimited", help=f"Most {option}.")(f)
    return f


def _package_changes(as_json: bool, options: dict[str, t.Any]) -> dict[str, t.Any]:
    changes: dict[str, t.Any] = {}
    for pair in options.pop("cpanel") or ():
        key, sep, value = pair.partition("=")
        if not sep:
            _fail(as_json, f"--cpanel takes KEY=VALUE, not {pair!r}.")
        try:
            changes.update(packages.spec_from_cpanel({key: value}))
        except ValidationError as exc:
            _fail(as_json, exc.message)
    for option, field in _PACKAGE_COUNTS.items():
        if options.get(option) is not None:
            changes[field] = _count(as_json, options[option], f"--{option}")
    for option, field in _PACKAGE_SIZES.items():
        if options.get(option) is not None:
            changes[field] = _bytes(as_json, options[option], "--" + option.replace("_", "-"))
    if options.get("default_quota") is not None:
        quota = _bytes(as_json, options["default_quota"], "--default-quota")
        changes["default_quota"] = quota or 0
    for key in ("allow_unlimited_quota", *(p.allow_field for p in PROTOCOLS),
                *(p.default_field for p in PROTOCOLS)):
        if options.get(key) is not None:
            changes[key] = options[key]
    return changes


def _package_json(package: Package, owner: str | None = None) -> dict[str, t.Any]:
    return {"id": package.id, "name": package.name, "owner": owner,
            **dataclasses.asdict(PackageSpec.of(package))}


@click.group("package")
def package_group() -> None:
    """Packages (plans): limits and defaults for customers."""


@package_group.command("add")
@click.argument("name")
@click.option("--owner", metavar="R", help="Server admin only: the reseller offering it.")
@_package_options
@_json_option
@pass_state
def package_add(state: CliState, /, name: str, owner: str | None, as_json: bool,
                **options: t.Any) -> None:
    """Create a package. Unset limits are unlimited."""
    spec = PackageSpec().replace(**_package_changes(as_json, options))
    with _work(state, as_json) as (session, actor):
        created = packages.create_package(session, actor, name, spec, owner=owner)
        data = _package_json(created, owner)
    if as_json:
        _echo_json(data)
    else:
        click.echo(f"Created package {created.name!r}.")


@package_group.command("set")
@click.argument("name")
@click.option("--owner", metavar="R", help="Server admin only: the reseller offering it.")
@click.option("--rename", metavar="NEW", help="A new name.")
@_package_options
@_json_option
@pass_state
def package_set(state: CliState, /, name: str, owner: str | None, rename: str | None,
                as_json: bool, **options: t.Any) -> None:
    """Change a package's limits; customers on it must still fit."""
    changes = _package_changes(as_json, options)
    with _work(state, as_json) as (session, actor):
        changed = packages.change_package(session, actor, name, changes, owner=owner,
                                          rename=rename)
        data = _package_json(changed, owner)
    if as_json:
        _echo_json(data)
    else:
        click.echo(f"Package {changed.name!r} saved.")


@package_group.command("remove")
@click.argument("name")
@click.option("--owner", metavar="R", help="Server admin only: the reseller offering it.")
@_json_option
@pass_state
def package_remove(state: CliState, name: str, owner: str | None, as_json: bool) -> None:
    """Delete a package no customer is on."""
    with _work(state, as_json) as (session, actor):
        packages.remove_package(session, actor, name, owner=owner)
    if as_json:
        _echo_json({"removed": name})
    else:
        click.echo(f"Package {name!r} removed.")


@package_group.command("list")
@_json_option
@pass_state
def package_list(state: CliState, as_json: bool) -> None:
    """The packages you offer (the server admin: everybody's)."""
    with _work(state, as_json) as (session, actor):
        rows = packages.list_packages(session, actor)
    if as_json:
        _echo_json({"items": [{"id": r.id, "name": r.name, "owner": r.owner,
                               "customers": r.customers, **dataclasses.asdict(r.spec)}
                              for r in rows]})
        return
    if not rows:
        click.echo("No packages.")
        return
    click.echo(_table(
        ["Package", "Owner", "Customers", "Domains", "Mailboxes", "Per mailbox", "Total"],
        [[r.name, r.owner, str(r.customers), r.label("max_domains"), r.label("max_mailboxes"),
          r.label("max_quota_per_mailbox"), r.label("max_total_quota")] for r in rows],
    ))


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
@_json_option
@pass_state
def customer_add(state: CliState, name: str, package_name: str | None,
                 reseller_name: str | None, contact_email: str | None, password_stdin: bool,
                 as_json: bool) -> None:
    """Create a customer on one of your packages."""
    password = _password(as_json) if password_stdin else generate_password()
    with _work(state, as_json) as (session, actor):
        created = resellers.create_customer(
            session, actor, name, password, package_name=package_name,
            reseller_name=reseller_name, contact_email=contact_email)
        data = _customer_json(created)
    if as_json:
        if not password_stdin:
            data["password"] = password
        _echo_json(data)
        return
    click.echo(f"Created customer {created.username!r}.")
    if not password_stdin:
        click.echo(f"Password (shown once): {password}")


@customer_group.command("set-package")
@click.argument("name")
@click.argument("package_name", metavar="PACKAGE")
@_json_option
@pass_state
def customer_set_package(state: CliState, name: str, package_name: str, as_json: bool) -> None:
    """Put a customer on another package; its use must fit."""
    with _work(state, as_json) as (session, actor):
        changed = packages.assign_package_by_name(session, actor, name, package_name)
        data = _customer_json(changed)
    if as_json:
        _echo_json(data)
    else:
        click.echo(f"{changed.username!r} is now on the package {package_name!r}.")


def _suspension_command(command_name: str, suspended: bool, help_text: str) -> None:
    @customer_group.command(command_name, help=help_text)
    @click.argument("name")
    @_json_option
    @pass_state
    def command(state: CliState, name: str, as_json: bool) -> None:
        with _work(state, as_json) as (session, actor):
            changed = resellers.set_customer_suspended(session, actor, name, suspended)
            data = _customer_json(changed)
        if as_json:
            _echo_json(data)
        else:
            click.echo(f"Customer {changed.username!r} "
                       f"{'suspended' if suspended else 'resumed'}.")


_suspension_command("suspend", True, "Suspend a customer: panel sign-in, API tokens and mail.")
_suspension_command("resume", False, "Resume a suspended customer.")


@customer_group.command("remove")
@click.argument("name")
@_json_option
@pass_state
def customer_remove(state: CliState, name: str, as_json: bool) -> None:
    """Delete a customer that has no domains left."""
    with _work(state, as_json) as (session, actor):
        resellers.delete_customer(session, actor, name)
    if as_json:
        _echo_json({"removed": name})
    else:
        click.echo(f"Customer {name!r} removed.")


@customer_group.command("list")
@click.option("--search", metavar="PREFIX", help="User names starting with this.")
@_page_options
@_json_option
@pass_state
def customer_list(state: CliState, search: str | None, page: int, per_page: int,
                  as_json: bool) -> None:
    """Your customers with their use against their package."""
    with _work(state, as_json) as (session, actor):
        found = resellers.list_customers(session, actor, search=search, page=page,
                                         per_page=per_page)
    if as_json:
        _echo_json(_page_json(found))
        return
    if not found.items:
        click.echo("No customers.")
        return
    click.echo(_table(
        ["Customer", "Reseller", "Package", "Domains", "Mailboxes", "Quota used", "State"],
        [[r.username, r.reseller or "-", r.package or "-",
          f"{r.domains}/{_show(r.max_domains)}", f"{r.mailboxes}/{_show(r.max_mailboxes)}",
          f"{format_size(r.quota_used)}/{_show(r.max_total_quota, True)}",
          "suspended" if r.is_suspended else "active"] for r in found.items],
    ))
    click.echo(f"Page {found.page} of {found.pages} ({found.total} in all)")


# --- resellers --------------------------------------------------------------------------------


def _allocation_options(f: F) -> F:
    for flag in reversed(PROTOCOLS):
        f = click.option(f"--{flag}/--no-{flag}", flag.allow_field, default=None,
                         help=f"Its packages may offer {flag.label}.")(f)
    f = click.option("--total-quota", metavar="SIZE|unlimited")(f)
    for option in ("mailboxes", "domains", "customers"):
        f = click.option(f"--{option}", metavar="N|unlimited", help=f"Most {option}.")(f)
    return f


def _allocation_changes(as_json: bool, options: dict[str, t.Any]) -> dict[str, t.Any]:
    changes: dict[str, t.Any] = {}
    for option in ("customers", "domains", "mailboxes"):
        if options.get(option) is not None:
            changes[f"max_{option}"] = _count(as_json, options[option], f"--{option}")
    if options.get("total_quota") is not None:
        changes["max_total_quota"] = _bytes(as_json, options["total_quota"], "--total-quota")
    for key in (p.allow_field for p in PROTOCOLS):
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
@_json_option
@pass_state
def reseller_add(state: CliState, /, name: str, contact_email: str | None, password_stdin: bool,
                 as_json: bool, **options: t.Any) -> None:
    """Create a reseller with its allocation (unset limits are unlimited)."""
    allocation = AllocationSpec(**_allocation_changes(as_json, options))
    password = _password(as_json) if password_stdin else generate_password()
    with _work(state, as_json) as (session, actor):
        created = resellers.create_reseller(session, actor, name, password, allocation,
                                            contact_email=contact_email)
        data = {"id": created.id, "username": created.username, **allocation.as_dict()}
    if as_json:
        if not password_stdin:
            data["password"] = password
        _echo_json(data)
        return
    click.echo(f"Created reseller {created.username!r}.")
    if not password_stdin:
        click.echo(f"Password (shown once): {password}")


@reseller_group.command("set-allocation")
@click.argument("name")
@_allocation_options
@_json_option
@pass_state
def reseller_set_allocation(state: CliState, /, name: str, as_json: bool, **options: t.Any) -> None:
    """Change a reseller's allocation; it cannot go below what is given out."""
    changes = _allocation_changes(as_json, options)
    with _work(state, as_json) as (session, actor):
        allocation = resellers.change_allocation(session, actor, name, changes)
        data = {"username": name, **AllocationSpec.of(allocation).as_dict()}
    if as_json:
        _echo_json(data)
    else:
        click.echo(f"Allocation of {name!r} saved.")


@reseller_group.command("list")
@click.option("--search", metavar="PREFIX", help="User names starting with this.")
@_page_options
@_json_option
@pass_state
def reseller_list(state: CliState, search: str | None, page: int, per_page: int,
                  as_json: bool) -> None:
    """Resellers with their allocation, what they have given out and what is used."""
    with _work(state, as_json) as (session, actor):
        found = resellers.list_resellers(session, actor, search=search, page=page,
                                         per_page=per_page)
    if as_json:
        _echo_json(_page_json(found))
        return
    if not found.items:
        click.echo("No resellers.")
        return
    click.echo(_table(
        ["Reseller", "Customers", "Domains", "Mailboxes", "Total quota", "State"],
        [[r.username, f"{r.given.customers}/{_show(r.allocation.max_customers)}",
          f"{_show(r.given.domains)}/{_show(r.allocation.max_domains)}",
          f"{_show(r.given.mailboxes)}/{_show(r.allocation.max_mailboxes)}",
          f"{_show(r.given.total_quota, True)}/{_show(r.allocation.max_total_quota, True)}",
          "suspended" if r.is_suspended else "active"] for r in found.items],
    ))
    click.echo(f"Page {found.page} of {found.pages} ({found.total} in all)")


main.add_command(package_group)
main.add_command(customer_group)
main.add_command(reseller_group)
