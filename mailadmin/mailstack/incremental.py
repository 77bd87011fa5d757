"""Render a release from the one in force and the domains that changed (files mode).

`render_release_incremental` reads the previous release's data files, renders the partial
snapshot (`build_snapshot(session, settings, domains=...)`) and merges the two
(`render.incremental.merge`, pure). The result is the same (checksum, files) pair
`render_release` gives for the whole database, plus the paths that are the release in
force's text unchanged, which `apply_files` links without reading them again.

It declines (returns None) whenever the shortcut could differ from a full render: SQL mode,
no release in force, or a release rendered from other settings, another layout or another
version of the templates (its dovecot.conf, main.cf or master.cf differ).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Domain
from .apply import GOVERNING_FILES, current_release, release_dir
from .render import checksum, render
from .render.common import RELEASE_PLACEHOLDER, Files, RenderError
from .render.incremental import SIEVE_FOLDER, key_separator, merge
from .render.renderer import dialect_of
from .snapshot import StackSettings, StackSnapshot, build_snapshot, changed_domains

#: Up to this many changed domains (or a tenth of them all) the incremental render is used.
MAX_DOMAINS = 50


@dataclasses.dataclass(frozen=True)
class IncrementalRelease:
    checksum: str
    files: Files
    #: the release in force it was made from
    base: str
    #: paths whose text is the base release's (link them: `apply_files(unchanged=...)`)
    unchanged: frozenset[str]
    #: the domains rendered afresh (changed, new or removed ones)
    domains: frozenset[str]


def _read(path: Path, previous: str) -> str:
    return path.read_text(encoding="utf-8").replace(previous, RELEASE_PLACEHOLDER)


def served_domains(config_dir: str | Path) -> frozenset[str] | None:
    """The domains the release in force serves (its ``postfix/vdomains``), None without one."""
    previous = current_release(config_dir)
    if previous is None:
        return None
    try:
        text = (release_dir(config_dir, previous) / "postfix" / "vdomains").read_text()
    except OSError:
        return None
    return frozenset(line.partition(" ")[0] for line in text.splitlines()
                     if line and not line.startswith("#"))


def incremental_release(session: Session, settings: StackSettings,
                        since: dt.datetime | None) -> IncrementalRelease | None:
    """The release of the whole database made from the release in force, whose data is the
    database as of the change stamp `since` (its watermark), and the domains that changed
    after it; None when only a full render will do (see the module doc)."""
    if since is None or dialect_of(settings).sql:
        return None
    served = served_domains(settings.config_dir)
    if served is None:
        return None
    now = set(session.scalars(select(Domain.name).where(Domain.pending.is_(False))))
    changed = changed_domains(session, since, gone=served - now)
    if len(changed) > max(MAX_DOMAINS, len(now) // 10):
        return None  # each changed domain is a search through the big files: render all
    return render_release_incremental(build_snapshot(session, settings, domains=changed))


def render_release_incremental(snapshot: StackSnapshot,
                               removed_hint: Collection[str] = ()) -> IncrementalRelease | None:
    """(checksum, files) of the whole database from a partial `snapshot` and the release in
    force, or None when only a full render will do (see the module doc).

    The partial snapshot must hold every domain whose rows changed since the release in
    force was rendered; domains that are gone since are found here (the previous
    ``postfix/vdomains`` against the snapshot's `domain_names`).
    """
    if snapshot.only is None or dialect_of(snapshot.settings).sql:
        return None
    config_dir = Path(snapshot.settings.config_dir)
    previous = current_release(config_dir)
    if previous is None:
        return None
    old_root = release_dir(config_dir, previous)
    if not old_root.is_dir() or old_root.is_symlink():
        return None
    base = f"{snapshot.settings.config_dir}/releases"
    draft = render(snapshot, f"{base}/{RELEASE_PLACEHOLDER}")
    try:
        for rel in GOVERNING_FILES:
            if _read(old_root / rel, previous) != draft[rel]:
                return None
        old: dict[str, str] = {}
        for rel in draft:
            if key_separator(rel) is not None:
                old[rel] = _read(old_root / rel, previous)
            elif rel not in GOVERNING_FILES and (old_root / rel).is_file():
                # the transport map, OpenDKIM's tables: unchanged ones are linked too
                old[rel] = _read(old_root / rel, previous)
        sieve = old_root / SIEVE_FOLDER
        if sieve.is_dir():
            for path in sieve.glob("*.sieve"):
                rel = f"{SIEVE_FOLDER}{path.name}"
                old[rel] = _read(path, previous)
    except (OSError, UnicodeDecodeError, KeyError):
        return None
    order = snapshot.domain_names
    present = {line.partition(" ")[0] for line in old["postfix/vdomains"].splitlines()[1:]}
    rendered = frozenset(snapshot.only | (present - set(order)) | set(removed_hint))
    try:
        merged = merge(draft, old, rendered, order)
    except RenderError:
        return None
    digest = checksum(merged.files)
    # the unchanged files name no release folder (`merge`): nothing to replace in them
    files = {rel: text if rel in merged.unchanged else text.replace(RELEASE_PLACEHOLDER, digest)
             for rel, text in merged.files.items()}
    if any("\x00" in text for text in files.values()):
        raise RenderError("a NUL character reached a rendered file")
    return IncrementalRelease(digest, files, previous, merged.unchanged, rendered)
