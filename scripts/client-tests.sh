#!/usr/bin/env bash
# Client-compatibility tests: real, unchanged Segment and RudderStack client libraries
# (segment-analytics-python, rudder-sdk-python, @segment/analytics-node, and analytics.js's
# requests) against a `cairn serve` started by the tests.
#
# Usage: scripts/client-tests.sh [extra pytest arguments]
#
# Environment:
#   CAIRN_BIN   the cairn binary (default: $REPO/target/debug/cairn); build it first (cargo build).
#
# Idempotent: creates $REPO/.venv and tests/clients/node/node_modules on first use and only
# reinstalls when tests/clients/requirements.txt or tests/clients/node/package-lock.json change.
# Exits with pytest's exit code.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLIENTS="$REPO/tests/clients"
NODE_DIR="$CLIENTS/node"
VENV="$REPO/.venv"

say() { printf 'client-tests: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

CAIRN_BIN="${CAIRN_BIN:-$REPO/target/debug/cairn}"
case "$CAIRN_BIN" in
  /*) ;;
  *) CAIRN_BIN="$PWD/$CAIRN_BIN" ;;
esac
[[ -f "$CAIRN_BIN" && -x "$CAIRN_BIN" ]] \
  || die "cairn binary not found or not executable at $CAIRN_BIN (run 'cargo build' or set CAIRN_BIN)"
export CAIRN_BIN

command -v python3 >/dev/null || die "python3 is required"
command -v node >/dev/null || die "node (>= 20) is required for @segment/analytics-node"
command -v npm >/dev/null || die "npm is required"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
(( node_major >= 20 )) || die "node >= 20 is required, found $(node --version)"

hash_of() { sha256sum "$1" | cut -d' ' -f1; }

# --- Python: venv + pinned libraries -----------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV"
  python3 -m venv "$VENV"
fi
req_stamp="$VENV/.cairn-client-tests-requirements"
req_hash="$(hash_of "$CLIENTS/requirements.txt")"
if [[ "$(cat "$req_stamp" 2>/dev/null || true)" != "$req_hash" ]] \
  || ! "$VENV/bin/python" -c 'import pytest, requests, segment.analytics, rudderstack.analytics' 2>/dev/null; then
  say "installing Python packages from tests/clients/requirements.txt"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$CLIENTS/requirements.txt"
  printf '%s\n' "$req_hash" >"$req_stamp"
fi

# --- Node: @segment/analytics-node ------------------------------------------------------------
if [[ -f "$NODE_DIR/package-lock.json" ]]; then
  lock_stamp="$NODE_DIR/node_modules/.cairn-client-tests-lock"
  lock_hash="$(hash_of "$NODE_DIR/package-lock.json")"
  if [[ "$(cat "$lock_stamp" 2>/dev/null || true)" != "$lock_hash" \
        || ! -d "$NODE_DIR/node_modules/@segment/analytics-node" ]]; then
    say "npm ci in tests/clients/node"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$lock_hash" >"$lock_stamp"
  fi
else
  say "no package-lock.json yet: npm install in tests/clients/node (commit the lockfile it writes)"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error)
fi

# --- Run ---------------------------------------------------------------------------------------
say "cairn binary: $CAIRN_BIN"
cd "$REPO"
status=0
"$VENV/bin/python" -m pytest tests/clients -q "$@" || status=$?
exit "$status"
