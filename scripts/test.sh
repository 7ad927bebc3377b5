#!/usr/bin/env bash
# The project's one test command: formatting, lints, and every test of the workspace.
# It starts what the tests need (scripts/services.sh) and installs missing tools.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo; echo "==> $*"; }

# A clean clone builds everything once: incremental state (~0.8 GiB) would only cost disk.
export CARGO_INCREMENTAL=0

step "disk (the debug build of the tests takes about 1.5 GiB under target/)"
df -h . || true

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "services (MariaDB, Redis; nginx installed for the cluster tests)"
scripts/services.sh all

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tmux (the terminal client's end-to-end test runs confab in it)"
if ! command -v tmux >/dev/null 2>&1; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq tmux
fi
tmux -V

step "cargo test (embedded store)"
cargo test --workspace --locked

# Every later cargo call names the whole workspace: `-p CRATE` unifies features over fewer
# packages, rebuilds tokio and friends, and links every test binary a second time.
step "cargo test --include-ignored (MariaDB store: the server's tests again on mysql://root@127.0.0.1:3306; the cluster tests: nodes, a private Redis each, nginx; the terminal client's measurement, a smoke test in a debug build)"
export CONFAB_TEST_MYSQL="${CONFAB_TEST_MYSQL:-mysql://root@127.0.0.1:3306}"
cleanup_test_databases() {
  mariadb -uroot -h127.0.0.1 -N -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'confab\_t\_%'" 2>/dev/null |
    while read -r db; do mariadb -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS \`$db\`" || true; done
}
trap cleanup_test_databases EXIT
cargo test --workspace --locked -- --include-ignored
