#!/usr/bin/env bash
# The search benchmark (issue 20, BENCHMARKS.md "Search"): an embedded store of MESSAGES messages
# (default 1,000,000, mixed English and Chinese) and USERS users (10,000), made by
# scripts/seed_search.py; the server indexes them at start (the upgrade path, timed); then one
# user in 50 threads searches a 2-character Chinese word, an English word and a phrase, ROUNDS
# times each, one at a time (tui/examples/search_latency.rs prints p50/p99). Also the index's
# size per message (SQLite's dbstat).
#
#   scripts/search_bench.sh [--messages N] [--users N] [--rounds N] [--keep DIR]
#
# Builds release binaries; stops what it started. Needs python3 (its sqlite3 module).
set -euo pipefail
cd "$(dirname "$0")/.."

messages=1000000 users=10000 rounds=200 keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --messages) messages=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    *) echo "search_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

cargo build --release --locked -p confab-server -p confab-tui --bins --example search_latency >&2
bin=target/release
dir=${keep:-$(mktemp -d)}
mkdir -p "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -z "$keep" ] && rm -rf "$dir"
  return 0
}
trap cleanup EXIT

start() {
  RUST_LOG=info "$bin/confab-server" --listen "$addr" --data-dir "$dir/srv" \
    --search-per-minute 1000000 > "$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    grep -q "accepting connections" "$dir/server.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "search_bench.sh: the server did not start" >&2
  cat "$dir/server.log" >&2
  exit 2
}
stop() { kill -TERM "$pid"; wait "$pid" || true; pid=""; }

export CONFAB_PASSWORD='bench-password-1'
start
CONFAB_DATA_DIR="$dir/cli" "$bin/confab" --server "$addr" register searcher > /dev/null
stop
python3 scripts/seed_search.py "$dir/srv/confab.db" searcher --users "$users" --messages "$messages" >&2

t0=$(date +%s.%N)
start
until grep -q "every older message is indexed" "$dir/server.log"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "search_bench.sh: the server stopped" >&2
    cat "$dir/server.log" >&2
    exit 2
  fi
  sleep 0.5
done
t1=$(date +%s.%N)
echo "indexed $messages older messages at start in $(python3 -c "print(f'{$t1 - $t0:.1f}')") s"

"$bin/examples/search_latency" "$addr" searcher "$CONFAB_PASSWORD" "$rounds" \
  '会议' 'deploy' '"release notes"' 'deploy*' '明天下午'
stop

python3 - "$dir/srv/confab.db" "$messages" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = int(sys.argv[2])
def size(pattern):
    return db.execute("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name LIKE ?", (pattern,)).fetchone()[0]
idx = size("message_search%")
msgs = size("messages") + size("messages_dedupe") + size("sqlite_autoindex_messages%")
print(f"index: {idx / 1e6:.1f} MB, {idx / n:.0f} bytes per message; messages table: {msgs / n:.0f} bytes per message")
EOF
