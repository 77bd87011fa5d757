"""`mailadmin serve`: migrate, create the first admin if needed, and serve the panel.

The only command that needs the web layer: `panel` (Flask), waitress and gunicorn are imported
inside the command, so the rest of the command line never loads Flask.

One process (waitress, threads) is the default. `--workers N` (N > 1) or a TLS certificate
switch to gunicorn's pre-fork server: each worker process builds its own app and database
engine after the fork, so no connection is ever shared between processes, and one slow request
no longer queues every other behind the same interpreter lock.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
import threading
import traceback
import typing as t
from collections.abc import Callable
from pathlib import Path

import click
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from ..db import make_engine, make_session_factory, transaction
from ..services import accounts
from ..services.context import Actor
from ..workers import apply_watcher
from .common import CliState, pass_state

DEFAULT_PORT = 2082
DEFAULT_TLS_PORT = 2083
#: Pages cost CPU in Python, so threads beyond the cores only share the interpreter lock; they
#: are there for requests that wait (a DNS check, doveadm). One process keeps 8 so that a few
#: slow requests never hold up the others; with several workers each needs fewer, and each
#: thread costs memory (its own SQLite connection and page cache, its own malloc heap):
#: measured with 2 workers, 8 threads: 106-127 MiB per worker, 4 threads: 108-113, 2: 107-111.
ONE_PROCESS_THREADS = 8
WORKER_THREADS = 4

WsgiApp = t.Callable[..., t.Any]

#: glibc's mallopt() parameter for the size from which an allocation gets its own mapping.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1024 * 1024


def _return_big_blocks_to_the_system() -> None:
    """Make glibc give every allocation of 1 MiB or more its own mapping, unmapped when freed.

    By default glibc raises that threshold to the size of the largest block freed so far, so
    after the first sign-in (Argon2 allocates 19 MiB and frees it) every later 19 MiB buffer
    came from the heap of the thread that asked, and stayed there: one waitress process that
    had signed in 8 people from its 8 threads kept 8 x 19 MiB (276 MiB peak, 133 with this; a
    gunicorn worker 208, 122). Setting the threshold turns that adjustment off. Called before
    any thread starts or worker is forked; not glibc (musl): nothing to do.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=None, type=click.IntRange(1, 65535),
              help=f"Port to listen on [default: {DEFAULT_PORT}, or {DEFAULT_TLS_PORT} with TLS].")
@click.option("--threads", default=None, type=click.IntRange(1, 256),
              help=f"Request threads per process [default: {ONE_PROCESS_THREADS} with one "
                   f"process, {WORKER_THREADS} per worker process].")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (more than 1 runs gunicorn's pre-fork server).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM certificate (chain) to serve HTTPS with; needs --tls-key.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM private key of --tls-cert.")
@pass_state
def serve_command(state: CliState, host: str, port: int | None, threads: int | None,
                  workers: int, tls_cert: Path | None, tls_key: Path | None) -> None:
    """Migrate the database, create the first admin if needed, and serve the panel."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together.")
    if threads is None:
        threads = ONE_PROCESS_THREADS if workers == 1 else WORKER_THREADS
    _return_big_blocks_to_the_system()
    tls = tls_cert is not None
    if port is None:
        port = DEFAULT_TLS_PORT if tls else DEFAULT_PORT

    _in_a_child_process(lambda: _prepare_database(state))

    overrides = {"INSTANCE_PATH": state.config["INSTANCE_PATH"], **_overrides(state)}

    def build_app() -> WsgiApp:
        # The web layer sits above the core: imported by name so neither Python at import time
        # nor mypy (which checks the core) follows the core into Flask.
        create_app = importlib.import_module("panel").create_app
        app: WsgiApp = create_app(overrides)
        return app

    scheme = "https" if tls else "http"
    # coalescing auto-apply: acts only while the apply_automatically setting is on; one watcher
    # per serve command (gunicorn's master), and applies are serialised by a lock anyway.
    # No database connection of this process may be open when gunicorn forks a worker (at
    # start and whenever a worker exits): a SQLite connection carried into a worker and closed
    # there (by its garbage collector, after dispose) closes a file descriptor of the database,
    # which drops every POSIX lock the worker holds on it; another process then took the
    # worker's WAL for unused and deleted it, and the worker's sign-ins waited for a write lock
    # nobody held (1 start in ~10 of `serve --workers 2` once the master kept no connection).
    # So the watcher's engine keeps no connection between checks (NullPool), and a check and
    # a fork never overlap (_no_connection_across_fork).
    os.register_at_fork(before=_no_connection_across_fork.acquire,
                        after_in_parent=_no_connection_across_fork.release,
                        after_in_child=_no_connection_across_fork.release)
    watcher_engine = make_engine(state.config["DATABASE_URL"], poolclass=NullPool)
    apply_watcher.start_auto_apply(
        make_session_factory(watcher_engine, class_=_ForkGuardedSession))
    how = f"{workers} worker processes" if workers > 1 else "one process"
    click.echo(f"mailadmin panel on {scheme}://{host}:{port}/ ({how}; Ctrl+C stops it)",
               nl=True)
    if workers == 1 and not tls:
        import waitress

        waitress.serve(build_app(), host=host, port=port, threads=threads, ident="mailadmin")
        return
    # A connection the master has open (the watcher's, during a check) must never be used or
    # closed by a forked worker: it shares the socket with the master.
    _serve_prefork(build_app, host=host, port=port, workers=workers, threads=threads,
                   tls_cert=tls_cert, tls_key=tls_key,
                   after_fork=lambda: watcher_engine.dispose(close=False))


#: Held by the watcher's database sessions and around every os.fork() of this process.
_no_connection_across_fork = threading.Lock()


class _ForkGuardedSession(Session):
    """A session during which this process does not fork (its connection closes with it)."""

    def __enter__(self) -> _ForkGuardedSession:
        _no_connection_across_fork.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        finally:
            _no_connection_across_fork.release()


def _prepare_database(state: CliState) -> None:
    """Migrate the database and create the first admin if there is none (printing its
    password once)."""
    from .. import migrate

    before = migrate.current_revision(state.engine)
    migrate.upgrade(state.engine)
    after = migrate.current_revision(state.engine)
    if before != after:
        click.echo(f"Database migrated to revision {after}.")
    with transaction(state.session_factory) as session:
        first_admin = accounts.ensure_first_admin(session, Actor.operator(source="serve"))
    if first_admin is not None:
        click.echo("")
        click.echo("  First server admin created. This password is shown only once:")
        click.echo(f"    user name: {first_admin.username}")
        click.echo(f"    password:  {first_admin.password}")
        click.echo("")
    state.engine.dispose()


def _in_a_child_process(work: Callable[[], None]) -> None:
    """Run `work` in a forked child and wait for it; a failure there fails the command.

    Why: whatever the serving process loads before it forks (gunicorn's workers) or serves
    (waitress) stays in every process's resident memory, and the migration loads Alembic, its
    scripts and the first admin's Argon2 buffer (~10 MiB of Alembic alone) only to run once.
    The child also takes its own database connections with it when it exits.
    """
    sys.stdout.flush()  # or the child would print what is buffered a second time
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (coverage does not follow it)
        code = 0
        try:
            work()
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise click.ClickException(
            f"Preparing the database failed (exit status {code}); nothing is served.")


def _serve_prefork(build_app: Callable[[], WsgiApp], *, host: str, port: int, workers: int,
                   threads: int, tls_cert: Path | None, tls_key: Path | None,
                   after_fork: Callable[[], None]) -> None:
    from gunicorn.app.base import BaseApplication

    options: dict[str, t.Any] = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "proc_name": "mailadmin",
        "timeout": 120,
        "graceful_timeout": 10,
        "loglevel": "warning",
        "accesslog": None,
        "preload_app": False,
        "post_fork": lambda _arbiter, _worker: after_fork(),
    }
    if tls_cert is not None and tls_key is not None:
        options.update(certfile=str(tls_cert), keyfile=str(tls_key))

    class PanelServer(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> WsgiApp:
            return build_app()

    PanelServer().run()


def _overrides(state: CliState) -> dict[str, str]:
    return {"DATABASE_URL": state.config["DATABASE_URL"], "SECRET_KEY": state.config["SECRET_KEY"]}
