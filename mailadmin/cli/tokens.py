"""`mailadmin --as NAME token create|list|revoke`: API tokens on the command line.

A token belongs to a panel user, so these commands need `--as NAME` (the machine's operator has
no panel account to own one). `token create` prints the token once: only a hash of its secret is
kept. As elsewhere, each command opens one transaction and calls one service
(`mailadmin.services.tokens`); with `--json` refusals print ``{"error": {...}}``.
"""

from __future__ import annotations

import datetime as dt
import typing as t

import click

from ..models import ApiToken
from ..services import tokens
from .common import CliState, echo_json, fail, format_table, json_option, pass_state, work

MAX_EXPIRY_DAYS = 3650


def _token_json(token: ApiToken, now: dt.datetime) -> dict[str, t.Any]:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "scopes": tokens.token_scopes(token),
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
        "state": _state(token, now),
    }


def _state(token: ApiToken, now: dt.datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    expires = token.expires_at
    if expires is not None:
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.UTC)
        if expires <= now:
            return "expired"
    return "active"


def _when(value: dt.datetime | None, never: str = "never") -> str:
    if value is None:
        return never
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _need_panel_user(state: CliState, as_json: bool) -> None:
    if state.acting_user is None:
        fail(as_json, "API tokens belong to a panel user: name one with --as NAME.",
              field="as")


@click.group("token")
def token_group() -> None:
    """API tokens of the panel user named with --as."""


@token_group.command("create")
@click.argument("name")
@click.option("--read-only", is_flag=True, help="The token may look but not change anything.")
@click.option("--expires-days", type=click.IntRange(1, MAX_EXPIRY_DAYS), default=None,
              metavar="N", help="The token stops working after N days (default: never).")
@json_option
@pass_state
def token_create(state: CliState, name: str, read_only: bool, expires_days: int | None,
                 as_json: bool) -> None:
    """Create an API token called NAME and print it (shown only this once)."""
    _need_panel_user(state, as_json)
    scopes = [tokens.READ] if read_only else [tokens.READ, tokens.WRITE]
    with work(state, as_json) as (session, actor):
        now = actor.now()
        expires_at = now + dt.timedelta(days=expires_days) if expires_days else None
        token, secret = tokens.create_api_token(session, actor, name, scopes,
                                                expires_at=expires_at)
        data = {**_token_json(token, now), "token": secret}
    if as_json:
        echo_json(data)
        return
    click.echo(f"Created API token {token.name!r} (id {token.id}, "
               f"{' and '.join(data['scopes'])}, expires {_when(token.expires_at)}).")
    click.echo("The token is shown only now; store it safely:")
    click.echo(secret)


@token_group.command("list")
@json_option
@pass_state
def token_list(state: CliState, as_json: bool) -> None:
    """List your API tokens, revoked and expired ones included (never their secrets)."""
    _need_panel_user(state, as_json)
    with work(state, as_json) as (session, actor):
        now = actor.now()
        items = [_token_json(token, now) for token in tokens.list_api_tokens(session, actor)]
    if as_json:
        echo_json({"items": items})
        return
    if not items:
        click.echo("No API tokens.")
        return
    click.echo(format_table(
        ["ID", "Name", "Prefix", "Access", "Expires", "Last used", "State"],
        [[str(i["id"]), i["name"], i["prefix"], " ".join(i["scopes"]),
          _when(i["expires_at"]), _when(i["last_used_at"]), i["state"]] for i in items],
    ))


@token_group.command("revoke")
@click.argument("token_id", metavar="ID", type=int)
@json_option
@pass_state
def token_revoke(state: CliState, token_id: int, as_json: bool) -> None:
    """Revoke one of your API tokens by its id (see `token list`)."""
    _need_panel_user(state, as_json)
    with work(state, as_json) as (session, actor):
        token = tokens.revoke_api_token(session, actor, token_id)
        data = _token_json(token, actor.now())
    if as_json:
        echo_json(data)
        return
    click.echo(f"Revoked API token {token.name!r} (id {token.id}); requests with it are refused.")


