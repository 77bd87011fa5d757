#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine, then runs all of it:
#   - Debian packages: Dovecot (+ LMTP, Sieve, SQL drivers), Postfix (+ SQL maps), Chromium,
#     dnsmasq (the binary only, dnsmasq-base: the tests start it on a loopback port from files
#     they write; the "dnsmasq" package would also start a system DNS service on port 53)
#   - systemd's systemd-analyze, which checks the shipped units in deploy/systemd
#   - a virtual environment in .venv with mailadmin and its test dependencies
# Extra arguments go to pytest. PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) are
# expected to be running; with CI=true a test that needs a missing service fails, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(
  dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sieve
  dovecot-sqlite dovecot-pgsql dovecot-mysql
  postfix postfix-sqlite postfix-pgsql postfix-mysql sqlite3
  mmdebstrap
  dnsmasq-base
  systemd
  opendkim opendkim-tools
  chromium fonts-liberation fonts-dejavu-core
)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages (run as root to install them): ${missing[*]}" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Postfix asks no questions and no system-wide daemon is started: the tests run their own.
  printf '%s\n' 'postfix postfix/main_mailer_type select No configuration' \
                'postfix postfix/mailname string localhost' | debconf-set-selections
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
