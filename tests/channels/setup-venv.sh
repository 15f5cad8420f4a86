#!/usr/bin/env bash
# Installs the channel test stand-ins' Python packages into $REPO/.venv, idempotently and safely
# when several test processes call it at once (flock). Prints the venv's python path on stdout.
#
# Usage: tests/channels/setup-venv.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO/tests/channels"
VENV="$REPO/.venv"

say() { printf 'channel-tests: %s\n' "$*" >&2; }

command -v python3 >/dev/null || { say "error: python3 is required"; exit 1; }
mkdir -p "$REPO/target"
exec 9>"$REPO/target/.channel-venv.lock"
flock 9

if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.cairn-channel-tests-requirements"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]] \
  || ! "$VENV/bin/python" -c 'import aiosmtpd, dkim' 2>/dev/null; then
  say "installing Python packages from tests/channels/requirements.txt"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2
  printf '%s\n' "$want" >"$stamp"
fi
printf '%s\n' "$VENV/bin/python"
