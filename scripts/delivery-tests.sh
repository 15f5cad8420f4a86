#!/usr/bin/env bash
# Delivery end-to-end tests: the real `cairn serve` sending a journey's email through a real SMTP
# server (aiosmtpd, tests/channels/smtp_sink.py), and the tracking links and RFC 8058 one-click
# unsubscribe in the received mail followed against the running server.
#
# Usage: scripts/delivery-tests.sh [extra pytest arguments]
#
# Environment:
#   CAIRN_BIN   the cairn binary (default: $REPO/target/debug/cairn); build it first (cargo build).
#
# Idempotent: installs tests/channels/requirements.txt and tests/delivery/requirements.txt into
# $REPO/.venv on first use or when they change. Exits with pytest's exit code.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$REPO/tests/delivery"

say() { printf 'delivery-tests: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

CAIRN_BIN="${CAIRN_BIN:-$REPO/target/debug/cairn}"
case "$CAIRN_BIN" in
  /*) ;;
  *) CAIRN_BIN="$PWD/$CAIRN_BIN" ;;
esac
[[ -f "$CAIRN_BIN" && -x "$CAIRN_BIN" ]] \
  || die "cairn binary not found or not executable at $CAIRN_BIN (run 'cargo build -p cairn-cli' or set CAIRN_BIN)"
export CAIRN_BIN

PYTHON="$(bash "$REPO/tests/channels/setup-venv.sh")"
stamp="$REPO/.venv/.cairn-delivery-tests-requirements"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]] || ! "$PYTHON" -c 'import pytest, requests' 2>/dev/null; then
  say "installing Python packages from tests/delivery/requirements.txt"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2
  printf '%s\n' "$want" >"$stamp"
fi

cd "$HERE"
exec "$PYTHON" -m pytest "$@"
