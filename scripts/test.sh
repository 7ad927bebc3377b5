#!/usr/bin/env bash
# The project's one test command: formatting, lints, and every test of the workspace.
# It starts what the tests need (scripts/services.sh) and installs missing tools.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo; echo "==> $*"; }

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "services (MariaDB, Redis)"
scripts/services.sh all

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked
