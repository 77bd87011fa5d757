"""Configuration: defaults, then the instance file `mailadmin.toml`, then `MAILADMIN_*` variables.

Shared by the web panel and the CLI so both see the same database and secrets.
"""

from __future__ import annotations

import os
import secrets
import tomllib
import typing as t
from collections.abc import Mapping
from pathlib import Path

ENV_PREFIX = "MAILADMIN_"
CONFIG_FILE_NAME = "mailadmin.toml"
SECRET_KEY_FILE_NAME = "secret_key"  # noqa: S105  (a file name)

DEFAULTS: dict[str, t.Any] = {
    # Filled in by load_config: a SQLite file in the instance folder.
    "DATABASE_URL": None,
    "SECRET_KEY": None,
    # Sign-in throttling: failures counted within the window lock one account from one client
    # address, a client address, or (much later, and not for places it signed in from before)
    # the account everywhere.
    "LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS": 5,
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": 100,
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
    "LOGIN_FAILURE_WINDOW_SECONDS": 900,
    "LOGIN_LOCK_SECONDS": 900,
    # How many reverse proxies in front of the panel may set X-Forwarded-For / -Proto.
    "TRUSTED_PROXY_COUNT": 0,
    # "auto": the session cookie is Secure whenever the request came over HTTPS.
    "SESSION_COOKIE_SECURE": "auto",
    "SESSION_LIFETIME_SECONDS": 8 * 3600,
    "PAGE_SIZE": 50,
}


class ConfigError(Exception):
    pass


def default_instance_path() -> Path:
    env = os.environ.get(ENV_PREFIX + "INSTANCE_PATH")
    return Path(env) if env else Path.cwd() / "instance"


def _coerce(name: str, raw: str, default: t.Any) -> t.Any:
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{ENV_PREFIX}{name} must be true or false, not {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{name} must be a whole number, not {raw!r}") from None
    return raw


def ensure_instance_folder(instance_path: Path) -> None:
    """Create the instance folder, private to its owner (0700): it holds the secret key and
    the SQLite database with every password hash. An existing folder is left as it is (an
    operator may have opened it on purpose, see `mailadmin sql-access grant`), and so are the
    parents it needed."""
    if instance_path.is_dir():
        return
    instance_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        instance_path.mkdir(mode=0o700)
    except FileExistsError:
        return
    # mkdir's mode is filtered by the umask; say it exactly.
    instance_path.chmod(0o700)


def _read_or_create_secret_key(instance_path: Path) -> str:
    key_file = instance_path / SECRET_KEY_FILE_NAME
    if key_file.exists():
        return key_file.read_text().strip()
    ensure_instance_folder(instance_path)
    key = secrets.token_hex(32)
    # O_EXCL: two processes starting at once must not overwrite each other's key.
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def load_config(
    instance_path: Path | None = None,
    overrides: Mapping[str, t.Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, t.Any]:
    """Return the effective configuration.

    Order, later wins: DEFAULTS, `<instance>/mailadmin.toml`, `MAILADMIN_*` environment
    variables, `overrides` (what tests pass). Creates the instance folder and its secret key
    on first use.
    """
    environ = os.environ if environ is None else environ
    if instance_path is None:
        instance_path = (
            Path(overrides["INSTANCE_PATH"])
            if overrides and "INSTANCE_PATH" in overrides
            else default_instance_path()
        )
    config: dict[str, t.Any] = dict(DEFAULTS)
    config_file = instance_path / CONFIG_FILE_NAME
    if config_file.exists():
        with config_file.open("rb") as fh:
            try:
                from_file = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{config_file}: {exc}") from None
        config.update({key.upper(): value for key, value in from_file.items()})
    for env_name, raw in environ.items():
        if env_name.startswith(ENV_PREFIX) and env_name != ENV_PREFIX + "INSTANCE_PATH":
            name = env_name[len(ENV_PREFIX) :]
            config[name] = _coerce(name, raw, DEFAULTS.get(name))
    if overrides:
        config.update(overrides)
    config["INSTANCE_PATH"] = str(instance_path)
    if not config.get("DATABASE_URL"):
        ensure_instance_folder(instance_path)
        config["DATABASE_URL"] = f"sqlite:///{instance_path / 'mailadmin.db'}"
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _read_or_create_secret_key(instance_path)
    return config
