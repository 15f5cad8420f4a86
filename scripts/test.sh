#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, every Rust test (unit, property, HTTP,
# crash safety, federated attributes against PostgreSQL and MariaDB), then the client-library
# compatibility tests against a real `cairn serve`, the delivery end-to-end test (real SMTP server) and
# the identity tests (FEBRL accuracy).
# Installs its own prerequisites (Python venv and packages, Node packages) idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "local services for the federated-attribute tests (PostgreSQL, MariaDB)"
bash scripts/services.sh

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

step "client-library compatibility tests"
cargo build -p cairn-cli --locked
CAIRN_BIN="$PWD/target/debug/cairn" bash scripts/client-tests.sh

step "delivery end to end: a journey's email through a real SMTP server, links followed, one-click unsubscribe"
CAIRN_BIN="$PWD/target/debug/cairn" bash scripts/delivery-tests.sh

step "identity-resolution tests (FEBRL accuracy, CLI) against the real binary"
CAIRN_BIN="$PWD/target/debug/cairn" bash scripts/identity-tests.sh
