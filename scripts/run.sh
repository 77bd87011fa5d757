#!/usr/bin/env bash
# Installs mailadmin into .venv and serves the panel on http://127.0.0.1:2082/ with the embedded
# SQLite database in ./instance. The first start creates the server admin and prints its password
# once. Extra arguments go to `mailadmin serve` (e.g. --host 0.0.0.0 --port 2082).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/mailadmin serve "$@"
