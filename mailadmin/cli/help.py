"""`mailadmin help list|search|show`: the help centre from the command line.

Each command opens one transaction and calls one `mailadmin.services.help` function, reading
as the acting user (`--as`) or, by default, as the server admin.
"""

from __future__ import annotations

import click

from ..services import help as help_service
from .common import CliState, echo_json, format_table, json_option, pass_state, work


def article_path(slug: str) -> str:
    """Where the article is in the panel (the command line does not know the panel's host)."""
    return f"/help/{slug}"


@click.group("help")
def help_group() -> None:
    """Read and search the help articles."""


@help_group.command("list")
@json_option
@pass_state
def list_command(state: CliState, as_json: bool) -> None:
    """List every article, by topic."""
    with work(state, as_json) as (session, actor):
        topics = help_service.help_index(session, help_service.Reader.for_actor(actor))
    entries = [{**a.as_dict(), "url": article_path(a.slug)}
               for topic in topics for a in topic.articles]
    if as_json:
        echo_json(entries)
        return
    click.echo(format_table(["slug", "topic", "title"],
                            [[e["slug"], e["topic"], e["title"]] for e in entries]))


@help_group.command("search")
@click.argument("text")
@json_option
@pass_state
def search_command(state: CliState, text: str, as_json: bool) -> None:
    """Search the articles for TEXT, best match first."""
    with work(state, as_json) as (session, actor):
        result = help_service.search_articles(session, help_service.Reader.for_actor(actor),
                                              text)
    hits = [{**hit.as_dict(), "url": article_path(hit.slug)} for hit in result.hits]
    if as_json:
        echo_json(hits)
        return
    if not hits:
        click.echo(f"Nothing matched {text!r}.")
        return
    for hit in hits:
        click.echo(f"{hit['slug']}: {hit['title']}")
        click.echo(f"    {hit['summary']}")


@help_group.command("show")
@click.argument("slug")
@json_option
@pass_state
def show_command(state: CliState, slug: str, as_json: bool) -> None:
    """Show the article SLUG (Markdown, with this server's settings filled in)."""
    with work(state, as_json) as (session, actor):
        view = help_service.read_article(session, help_service.Reader.for_actor(actor), slug)
    if as_json:
        echo_json({**view.as_dict(), "url": article_path(view.slug)})
        return
    click.echo(view.title)
    click.echo("=" * min(len(view.title), 78))
    if view.summary:
        click.echo(view.summary)
    click.echo("")
    click.echo(view.text.rstrip())
    if view.related:
        click.echo("")
        click.echo("Related: " + ", ".join(r.slug for r in view.related))
