"""`mailadmin user add|passwd|2fa reset`: panel users (`mailadmin.services.accounts`) and the
admin's reset of a second factor (`mailadmin.services.twofactor`)."""

from __future__ import annotations

import click

from ..models import Role
from ..security import generate_password
from ..services import accounts, twofactor
from .common import CliState, pass_state, read_password_from_stdin


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
