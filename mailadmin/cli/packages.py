"""`mailadmin package add|set|remove|list`: hosting plans (`mailadmin.services.packages`).

Only parsing and printing live here; the service holds every rule. Limits take a number or
"unlimited"; sizes take units ("2G", "500M"). With `--json` a command prints what it created or
changed, and a refusal prints ``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

import dataclasses
import typing as t
from collections.abc import Callable

import click

from ..errors import ValidationError
from ..models import Package
from ..services import packages
from ..services.packages import PackageSpec
from .common import (
    CliState,
    echo_json,
    fail,
    format_table,
    json_option,
    limit_count,
    limit_size,
    pass_state,
    work,
)

F = t.TypeVar("F", bound=Callable[..., t.Any])

_PACKAGE_COUNTS = {"domains": "max_domains", "mailboxes": "max_mailboxes",
                   "forwarders": "max_forwarders"}
_PACKAGE_SIZES = {"quota_per_mailbox": "max_quota_per_mailbox", "total_quota": "max_total_quota"}


def _package_options(f: F) -> F:
    for flag in ("smtp", "pop3", "imap"):
        f = click.option(f"--default-{flag}/--no-default-{flag}", f"default_{flag}",
                         default=None, help=f"New mailboxes get {flag.upper()}.")(f)
        f = click.option(f"--{flag}/--no-{flag}", f"allow_{flag}", default=None,
                         help=f"The package allows {flag.upper()}.")(f)
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
            fail(as_json, f"--cpanel takes KEY=VALUE, not {pair!r}.")
        try:
            changes.update(packages.spec_from_cpanel({key: value}))
        except ValidationError as exc:
            fail(as_json, exc.message)
    for option, field in _PACKAGE_COUNTS.items():
        if options.get(option) is not None:
            changes[field] = limit_count(as_json, options[option], f"--{option}")
    for option, field in _PACKAGE_SIZES.items():
        if options.get(option) is not None:
            changes[field] = limit_size(as_json, options[option], "--" + option.replace("_", "-"))
    if options.get("default_quota") is not None:
        quota = limit_size(as_json, options["default_quota"], "--default-quota")
        changes["default_quota"] = quota or 0
    for key in ("allow_unlimited_quota", "allow_imap", "allow_pop3", "allow_smtp",
                "default_imap", "default_pop3", "default_smtp"):
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
@json_option
@pass_state
def package_add(state: CliState, /, name: str, owner: str | None, as_json: bool,
                **options: t.Any) -> None:
    """Create a package. Unset limits are unlimited."""
    spec = PackageSpec().replace(**_package_changes(as_json, options))
    with work(state, as_json) as (session, actor):
        created = packages.create_package(session, actor, name, spec, owner=owner)
        data = _package_json(created, owner)
    if as_json:
        echo_json(data)
    else:
        click.echo(f"Created package {created.name!r}.")


@package_group.command("set")
@click.argument("name")
@click.option("--owner", metavar="R", help="Server admin only: the reseller offering it.")
@click.option("--rename", metavar="NEW", help="A new name.")
@_package_options
@json_option
@pass_state
def package_set(state: CliState, /, name: str, owner: str | None, rename: str | None,
                as_json: bool, **options: t.Any) -> None:
    """Change a package's limits; customers on it must still fit."""
    changes = _package_changes(as_json, options)
    with work(state, as_json) as (session, actor):
        changed = packages.change_package(session, actor, name, changes, owner=owner,
                                          rename=rename)
        data = _package_json(changed, owner)
    if as_json:
        echo_json(data)
    else:
        click.echo(f"Package {changed.name!r} saved.")


@package_group.command("remove")
@click.argument("name")
@click.option("--owner", metavar="R", help="Server admin only: the reseller offering it.")
@json_option
@pass_state
def package_remove(state: CliState, name: str, owner: str | None, as_json: bool) -> None:
    """Delete a package no customer is on."""
    with work(state, as_json) as (session, actor):
        packages.remove_package(session, actor, name, owner=owner)
    if as_json:
        echo_json({"removed": name})
    else:
        click.echo(f"Package {name!r} removed.")


@package_group.command("list")
@json_option
@pass_state
def package_list(state: CliState, as_json: bool) -> None:
    """The packages you offer (the server admin: everybody's)."""
    with work(state, as_json) as (session, actor):
        rows = packages.list_packages(session, actor)
    if as_json:
        echo_json({"items": [{"id": r.id, "name": r.name, "owner": r.owner,
                               "customers": r.customers, **dataclasses.asdict(r.spec)}
                              for r in rows]})
        return
    if not rows:
        click.echo("No packages.")
        return
    click.echo(format_table(
        ["Package", "Owner", "Customers", "Domains", "Mailboxes", "Per mailbox", "Total"],
        [[r.name, r.owner, str(r.customers), r.label("max_domains"), r.label("max_mailboxes"),
          r.label("max_quota_per_mailbox"), r.label("max_total_quota")] for r in rows],
    ))
