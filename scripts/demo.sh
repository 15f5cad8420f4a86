#!/usr/bin/env bash
# Builds Cairn and runs the demo: the server on http://127.0.0.1:8080 with an embedded store in
# ./cairn-demo-data and a demo workspace of generated customers and events. Ctrl-C stops it; running it
# again reuses the data (nothing is stored twice). Extra arguments go to `cairn demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
  echo "cairn demo needs a Rust toolchain (cargo); install it with rustup, then re-run this script" >&2
  exit 1
fi
cargo build --release -p cairn-cli
exec ./target/release/cairn --data-dir ./cairn-demo-data demo "$@"
