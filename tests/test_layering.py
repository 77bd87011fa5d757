"""The core never imports Flask: it must run from the CLI, workers and tests without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mailadmin

CORE = Path(mailadmin.__file__).parent


def test_core_modules_do_not_import_flask() -> None:
    modules = sorted(
        ".".join(path.relative_to(CORE.parent).with_suffix("").parts).removesuffix(".__init__")
        for path in CORE.rglob("*.py")
        if path.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'flask' or m.startswith(('flask.', 'flask_')))\n"
        "print(leaked)\n"
        "sys.exit(1 if leaked else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_diagnose_without_account_loads_no_database_layer(tmp_path: Path) -> None:
    """`mailadmin diagnose FILE` reads a file: the group and the command import no SQLAlchemy,
    Alembic or Flask (the commands that need them import them when they run)."""
    bounce = tmp_path / "bounce.txt"
    bounce.write_text("550 5.1.1 <nobody@example.test>: Recipient address rejected\n")
    code = (
        "import sys\n"
        "from mailadmin.cli import main\n"
        f"rc = main.main(['diagnose', '--json', {str(bounce)!r}], standalone_mode=False)\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules}"
        " & {'sqlalchemy', 'alembic', 'flask'})\n"
        "print('LOADED', loaded)\n"
        "sys.exit(1 if loaded or rc else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert '"family": "' in result.stdout, result.stdout + result.stderr
    assert "LOADED []" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_above_would_see_a_database_import() -> None:
    """The same probe on a command that needs the database does see SQLAlchemy load."""
    code = (
        "import sys\n"
        "from mailadmin.cli import COMMANDS, main\n"
        "import click\n"
        "main.get_command(click.Context(main), 'db')\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.stdout.strip() == "True", result.stdout + result.stderr
