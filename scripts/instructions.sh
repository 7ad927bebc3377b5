#!/usr/bin/env bash
# Server CPU per delivered message, counted in instructions (stable on a busy or virtual machine,
# unlike wall-clock figures): the 1:1 closed loop of `confab-load dm` against a confab-server run
# under valgrind's callgrind, on the embedded store.
#
#   scripts/instructions.sh [--pairs 100] [--duration 10] [--keep DIR] [--bin DIR]
#
# --bin runs the confab-server and confab-load found in DIR (another build, e.g. of an older
# commit) instead of building this tree.
#
# Users are registered against a native server first (argon2 under valgrind would take minutes),
# then copies of the same data directory are served under callgrind for a short and a long run;
# the difference in instructions divided by the difference in messages stored (read from the
# database) is the cost of one more message, without start-up, logins and shutdown. Prints that
# and the runs' average batch; with --keep, leaves both runs' callgrind output there for
# `callgrind_annotate` (and the number of extra messages, to divide a difference of the two).
#
# Under callgrind the server runs ~50x slower, so batches are larger than in a native run; compare
# figures taken with this same script.
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=100 duration=10 keep="" bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "instructions.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "instructions.sh: needs sqlite3 (apt-get install sqlite3)" >&2; exit 2; }

if [ -z "$bin" ]; then
  cargo build --release --locked -p confab-server -p confab-tui >&2
  bin=target/release
fi
run=$(mktemp -d /tmp/confab-instr.XXXXXX)
port=$((20000 + RANDOM % 20000))
addr=127.0.0.1:$port
limits=(--auth-per-ip-per-minute 1000000 --requests-per-second 1000000 --request-burst 1000000)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  if [ -z "$keep" ]; then rm -rf "$run"; fi
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "instructions.sh: the server did not start" >&2
  exit 1
}

# 1. Users and friendships, natively.
"$bin/confab-server" --listen "$addr" --data-dir "$run/data" "${limits[@]}" >"$run/setup.log" 2>&1 &
server=$!
wait_port
"$bin/confab-load" --server "$addr" --users "$run/users.jsonl" setup --users-count $((pairs * 2)) --pairs --concurrency 8 >&2
kill "$server"; wait "$server" 2>/dev/null || true
server=""

# 2. The same store under callgrind, twice: a short (15 s: logins under callgrind take seconds, and
#    confab-load counts its duration from before they start) and a long run. The difference removes what
#    does not depend on the number of messages (start, 2 x pairs resumes, shutdown).
measure() { # $1: seconds of load, $2: callgrind output; prints "instructions messages"
  local dir=$run/m$1
  cp -r "$run/data" "$dir"
  cp "$run/users.jsonl" "$dir/users.jsonl"
  valgrind --tool=callgrind --callgrind-out-file="$2" \
    "$bin/confab-server" --listen "$addr" --data-dir "$dir" "${limits[@]}" >"$dir/server.log" 2>&1 &
  server=$!
  wait_port
  "$bin/confab-load" --server "$addr" --users "$dir/users.jsonl" --warmup 0 --duration "$1" \
    --drain 2 --json dm --pairs "$pairs" >"$dir/load.json"
  kill "$server"; wait "$server" 2>/dev/null || true
  server=""
  local ir msgs
  ir=$(callgrind_annotate "$2" | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }')
  msgs=$(sqlite3 -readonly "$dir/confab.db" 'SELECT COUNT(*) FROM messages')
  grep -ao 'avg_batch[^ ]*' "$dir/server.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -1 >&2 || true
  echo "$ir $msgs"
}
read -r ir_short n_short < <(measure 15 "$run/short.out")
read -r ir_long n_long < <(measure $((15 + duration)) "$run/long.out")
msgs=$((n_long - n_short))
total=$((ir_long - ir_short))
echo "pairs=$pairs extra_messages=$msgs extra_instructions=$total per_message=$((total / (msgs > 0 ? msgs : 1)))"
if [ -n "$keep" ]; then
  mkdir -p "$keep"
  cp "$run/short.out" "$run/long.out" "$keep/"
  cp "$run/m$((15 + duration))/server.log" "$run/m$((15 + duration))/load.json" "$keep/"
  echo "$msgs" >"$keep/extra_messages"
  echo "kept short.out and long.out (callgrind) in $keep" >&2
fi
