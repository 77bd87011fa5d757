"""The Jinja environment for the templates in ``templates/``: one per output file, with
blocks for the Dovecot version and the mode.

Every value reaching a template has been re-validated by the renderer; StrictUndefined turns a
missing value into an error instead of an empty setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import jinja2

ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,
    # config files, not HTML; values are validated, not escaped
    autoescape=False,  # noqa: S701
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render_template(name: str, context: Mapping[str, object]) -> str:
    return ENV.get_template(f"{name}.j2").render(context)
