"""Browser tests: Debian's Chromium driven by Playwright against a live panel on loopback."""

from __future__ import annotations

import os
import threading
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from mailadmin import migrate
from mailadmin.db import make_engine

from ..databases import unavailable

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, t.Any]) -> dict[str, t.Any]:
    if not os.path.exists(CHROMIUM):
        unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"],
    }


@pytest.fixture
def live_panel(tmp_path: Path) -> Iterator[tuple[str, t.Any]]:
    """A panel on a free loopback port with its own migrated SQLite database."""
    from panel import create_app

    url = f"sqlite:///{tmp_path / 'browser.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app({"INSTANCE_PATH": str(tmp_path / "instance"), "DATABASE_URL": url})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        thread.join(5)
