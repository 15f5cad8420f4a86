#!/usr/bin/env bash
# Identity-resolution tests that drive the real `cairn` binary: FEBRL accuracy (de-duplication of
# febrl1–3, linkage of febrl4a/4b), Parquet input, explain, bad input. Produces the FEBRL data and
# the Python environment first (scripts/identity-data.sh, idempotent).
#
# Usage: scripts/identity-tests.sh [extra pytest arguments]
# Environment: CAIRN_BIN (default: $REPO/target/debug/cairn; build it first with cargo build).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CAIRN_BIN="${CAIRN_BIN:-$REPO/target/debug/cairn}"
[[ -x "$CAIRN_BIN" ]] || { echo "identity-tests: cairn binary not found at $CAIRN_BIN (cargo build)" >&2; exit 1; }
CAIRN_BIN="$(cd "$(dirname "$CAIRN_BIN")" && pwd)/$(basename "$CAIRN_BIN")"
export CAIRN_BIN

# The data and the venv; a failure here is reported by the tests (skipped loudly, failed under CI).
bash "$REPO/scripts/identity-data.sh" >/dev/null || echo "identity-tests: !!! scripts/identity-data.sh failed" >&2
PYTHON="$REPO/.venv/bin/python"
[[ -x "$PYTHON" ]] || PYTHON=python3

cd "$REPO/tests/identity"
status=0
"$PYTHON" -m pytest -q . "$@" || status=$?
exit "$status"
