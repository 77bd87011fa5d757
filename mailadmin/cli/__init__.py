"""The `mailadmin` command line: one module per area, mirroring `mailadmin.services`.

Every command is registered here, in `COMMANDS`, by name and by where it lives; the module is
imported only when that command runs (or `--help` lists it). So `mailadmin diagnose FILE` loads
neither SQLAlchemy nor Alembic, and `serve` is the only command that loads Flask. Each command
opens one transaction and calls one service; shared output and refusals are in `cli.common`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from .common import CliState

#: Command name -> "module:attribute" (modules relative to this package).
COMMANDS: dict[str, str] = {
    "apply": "stack:apply_command",
    "config": "stack:config_group",
    "customer": "resellers:customer_group",
    "db": "database:db_group",
    "diagnose": "diagnose:diagnose_command",
    "dkim": "deliverability:dkim_group",
    "dns": "deliverability:dns_group",
    "domain": "mail:domain_group",
    "export": "imports:export_group",
    "forwarder": "mail:forwarder_group",
    "help": "help:help_group",
    "import": "imports:import_group",
    "log": "live:log_command",
    "mailbox": "mail:mailbox_group",
    "node": "nodes:node_group",
    "package": "packages:package_group",
    "render": "stack:render_command",
    "reseller": "resellers:reseller_group",
    "resolve": "resolver:resolve_command",
    "revisions": "stack:revisions_command",
    "rollback": "stack:rollback_command",
    "sandbox": "lab:sandbox_group",
    "serve": "serve:serve_command",
    "settings": "settings:settings_group",
    "sql-access": "sql_access:sql_access_group",
    "test-login": "live:test_login",
    "token": "tokens:token_group",
    "usage": "usage:usage_group",
    "user": "accounts:user_group",
}


class LazyGroup(click.Group):
    """A group whose commands are imported when first used, from `COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module_name, _, attribute = COMMANDS[cmd_name].partition(":")
            module = importlib.import_module(f"{__name__}.{module_name}")
            command = getattr(module, attribute)
            if not isinstance(command, click.Command) or command.name != cmd_name:
                raise RuntimeError(f"COMMANDS[{cmd_name!r}] is not the command {cmd_name!r}")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
@click.option(
    "--instance",
    "instance_path",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MAILADMIN_INSTANCE_PATH",
    help="Instance folder (config file, secret key, SQLite database). Default: ./instance",
)
@click.option(
    "--as", "acting_user", metavar="NAME", help="Act as this panel user, with its rights."
)
@click.version_option(package_name="mailadmin")
@click.pass_context
def main(ctx: click.Context, instance_path: Path | None, acting_user: str | None) -> None:
    """mailadmin: the mail module of a hosting control panel."""
    ctx.obj = CliState(instance_path=instance_path, acting_user=acting_user)


__all__ = ["COMMANDS", "main"]
