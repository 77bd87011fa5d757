"""`mailadmin user add|passwd|2fa status|2fa reset`: panel users (`mailadmin.services.accounts`)
and the server admin's view and reset of a second factor (`mailadmin.services.twofactor`)."""

from __future__ import annotations

import click

from ..models import Role
from ..security import generate_password
from ..services import accounts, twofactor
from .common import CliState, echo_json, pass_state, read_password_from_stdin


@click.group("user")
def user_group() -> None:
    """Panel users (server admins, resellers, customers)."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option(
    "--reseller", "reseller_name", metavar="R", help="The reseller a customer belongs to."
)
@click.option("--email", "contact_email", help="Contact address of the account holder.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (else generated)."
)
@pass_state
def user_add(
    state: CliState,
    name: str,
    role: str,
    reseller_name: str | None,
    contact_email: str | None,
    password_stdin: bool,
) -> None:
    """Create a panel user."""
    password = read_password_from_stdin() if password_stdin else generate_password()
    with state.unit_of_work() as (session, actor):
        created = accounts.create_panel_user(
            session,
            actor,
            name,
            password,
            Role(role),
            reseller_name=reseller_name,
            contact_email=contact_email,
        )
    click.echo(f"Created {created.role} {created.username!r}.")
    if not password_stdin:
        click.echo(f"Password (shown once): {password}")


@user_group.command("passwd")
@click.argument("name")
@click.option(
    "--password-stdin", is_flag=True, required=True, help="Read the new password from stdin."
)
@pass_state
def user_passwd(state: CliState, name: str, password_stdin: bool) -> None:
    """Set a panel user's password."""
    password = read_password_from_stdin()
    with state.unit_of_work() as (session, actor):
        changed = accounts.set_panel_password(session, actor, name, password)
    click.echo(f"Password of {changed.username!r} changed.")


@user_group.group("2fa")
def two_factor_group() -> None:
    """Two-factor sign-in of panel users and mailbox users (server admin only)."""


@two_factor_group.command("reset")
@click.argument("user", metavar="USER")
@pass_state
def two_factor_reset(state: CliState, user: str) -> None:
    """Turn off USER's two-factor sign-in (a panel user name or a mail address), for one who
    lost the device and the recovery codes. Its remembered browsers are forgotten; it signs
    in with its password and, where the server requires it, sets up a new device."""
    with state.unit_of_work() as (session, actor):
        was_on = twofactor.reset_two_factor(session, actor, user)
    if was_on:
        click.echo(f"Two-factor sign-in of {user!r} is reset: the password alone signs in "
                   "(and the account enrols again where the server requires it).")
    else:
        click.echo(f"{user!r} had no two-factor sign-in set up; nothing to reset.")


@two_factor_group.command("status")
@click.argument("user", metavar="USER")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def two_factor_status(state: CliState, user: str, as_json: bool) -> None:
    """Show whether USER (a panel user name or a mail address) uses two-factor sign-in."""
    with state.unit_of_work() as (session, actor):
        status = twofactor.status_of(session, actor, user)
    facts = {
        "enabled": status.enabled,
        "pending": status.pending,
        "confirmed_at": status.confirmed_at,
        "recovery_codes_left": status.recovery_codes_left,
        "remembered_browsers": status.remembered_browsers,
        "required": status.required,
    }
    if as_json:
        echo_json(facts)
        return
    if status.enabled:
        click.echo(f"{user}: on since {status.confirmed_at:%Y-%m-%d %H:%M} UTC, "
                   f"{status.recovery_codes_left} recovery codes left, "
                   f"{status.remembered_browsers} remembered browsers.")
    else:
        click.echo(f"{user}: off" + (" (set-up started)" if status.pending else "") + ".")
    if status.required:
        click.echo("The server requires it for this account's role.")
