"""`mailadmin settings list|get|set`: the server admin's settings from the command line."""

from __future__ import annotations

import json
import typing as t

import click

from ..services import settings as settings_service
from .common import CliState, pass_state


@click.group("settings")
def settings_group() -> None:
    """Server settings (host names, ports, paths, hash scheme, mail stack mode)."""


@settings_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def settings_list(state: CliState, as_json: bool) -> None:
    """Show every setting."""
    with state.unit_of_work() as (session, actor):
        values = settings_service.list_settings(session, actor)
    if as_json:
        click.echo(json.dumps(values, sort_keys=True))
        return
    width = max(len(name) for name in values)
    for name, value in values.items():
        click.echo(f"{name:<{width}}  {value}    # {settings_service.SPECS[name].description}")


@settings_group.command("get")
@click.argument("name")
@pass_state
def settings_get(state: CliState, name: str) -> None:
    """Print one setting's value."""
    with state.unit_of_work() as (session, actor):
        value: t.Any = settings_service.get_setting(session, actor, name)
    click.echo(value)


@settings_group.command("set")
@click.argument("name")
@click.argument("value")
@pass_state
def settings_set(state: CliState, name: str, value: str) -> None:
    """Change one setting (validated; refused values change nothing)."""
    with state.unit_of_work() as (session, actor):
        settings_service.set_setting(session, actor, name, value)
        stored = settings_service.get_setting(session, actor, name)
    click.echo(f"{name} = {stored}")
