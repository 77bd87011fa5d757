"""`mailadmin dkim ...` and `mailadmin dns ...`: DKIM keys and a domain's DNS health.

Each command opens one transaction and calls one service (`services.dkim_keys`,
`services.deliverability`).
"""

from __future__ import annotations

import click

from ..names import domain_to_unicode
from ..services import deliverability, dkim_keys
from ..services.dkim_keys import KeyInfo
from .common import CliState, echo_json, format_table, json_option, pass_state, work


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else "-"


def _echo_keys(keys: list[KeyInfo]) -> None:
    if not keys:
        click.echo("No DKIM keys.")
        return
    click.echo(format_table(
        ["selector", "type", "state", "created", "active since", "retired at"],
        [[k.selector, k.algorithm, k.state, _when(k.created_at), _when(k.activated_at),
          _when(k.retire_at)] for k in keys]))


@click.group("dkim")
def dkim_group() -> None:
    """DKIM keys per domain: rotate, update, list, remove."""


@dkim_group.command("list")
@click.argument("domain")
@json_option
@pass_state
def dkim_list(state: CliState, domain: str, as_json: bool) -> None:
    """The domain's keys and their states (published, active, retiring)."""
    with work(state, as_json) as (session, actor):
        keys = dkim_keys.list_keys(session, actor, domain)
    if as_json:
        echo_json([k.as_dict() for k in keys])
    else:
        _echo_keys(keys)


@dkim_group.command("rotate")
@click.argument("domain")
@click.option("--algorithm", type=click.Choice(["rsa", "ed25519"]), default="rsa",
              show_default=True, help="RSA 2048 or Ed25519.")
@json_option
@pass_state
def dkim_rotate(state: CliState, domain: str, algorithm: str, as_json: bool) -> None:
    """Make a new key. It signs once DNS serves its record (`dkim update`, or a DNS check);
    the key it replaces stays published for a week, then is removed."""
    with work(state, as_json) as (session, actor):
        key = dkim_keys.rotate_key(session, actor, domain, algorithm=algorithm)
    if as_json:
        echo_json(key.as_dict())
        return
    click.echo(f"New {key.algorithm} key {key.selector} for {domain_to_unicode(domain)}. "
               "Publish this TXT record; signing switches to it once DNS serves it:")
    click.echo(f"{key.record_name}. IN TXT \"{key.record_value}\"")


@dkim_group.command("update")
@click.argument("domain", required=False)
@json_option
@pass_state
def dkim_update(state: CliState, domain: str | None, as_json: bool) -> None:
    """Sign with new keys DNS now serves; remove retired keys whose week is over (one domain,
    or every domain with a key waiting or retiring)."""
    with work(state, as_json) as (session, actor):
        if domain is None:
            changed = dkim_keys.advance_all(session, actor)
            keys = None
        else:
            keys = dkim_keys.advance_keys(session, actor, domain)
    if keys is None:
        if as_json:
            echo_json({"domains_changed": changed})
        else:
            click.echo(f"{changed} domain(s) changed; apply to sign with their new keys.")
    elif as_json:
        echo_json([k.as_dict() for k in keys])
    else:
        _echo_keys(keys)


@dkim_group.command("remove")
@click.argument("domain")
@click.option("--selector", help="Only this key (default: every key of the domain).")
@json_option
@pass_state
def dkim_remove(state: CliState, domain: str, selector: str | None, as_json: bool) -> None:
    """Remove keys and their files; without an active key the domain's mail goes unsigned."""
    with work(state, as_json) as (session, actor):
        count = dkim_keys.remove_keys(session, actor, domain, selector)
    if as_json:
        echo_json({"removed": count})
    else:
        click.echo(f"Removed {count} key(s).")


@click.group("dns")
def dns_group() -> None:
    """A domain's DNS: health check and the records we recommend."""


@dns_group.command("check")
@click.argument("domain")
@click.option("--cached", is_flag=True, help="Show the last check instead of looking up now.")
@json_option
@pass_state
def dns_check(state: CliState, domain: str, cached: bool, as_json: bool) -> None:
    """Look the domain's records up and judge each: ok, missing, wrong or conflicting.

    Exits 1 unless every record is ok."""
    with work(state, as_json) as (session, actor):
        health = deliverability.dns_health(session, actor, domain, refresh=not cached)
    if as_json:
        echo_json([v.as_dict() for v in health.verdicts])
    else:
        checked = _when(health.checked_at)
        click.echo(f"{domain_to_unicode(health.domain)}, checked {checked} UTC")
        for v in health.verdicts:
            click.echo(f"{v.record:<11} {v.status:<12} {v.message}")
            if v.status != "ok":
                for line in v.recommended:
                    click.echo(f"{'':<11} publish: {line}")
    if not health.all_ok:
        raise SystemExit(1)


@dns_group.command("records")
@click.argument("domain")
@pass_state
def dns_records(state: CliState, domain: str) -> None:
    """The records we recommend, as zone-file lines."""
    with work(state, False) as (session, actor):
        health = deliverability.dns_health(session, actor, domain)
    for record in health.records:
        click.echo(record.line)
