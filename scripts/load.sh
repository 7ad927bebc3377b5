#!/usr/bin/env bash
# One command for a load run: builds release binaries, starts a confab-server on a fresh embedded
# store (or on MySQL with --mysql URL), registers users, runs the scenario, prints the summary,
# and stops what it started.
#
#   scripts/load.sh dm [--pairs 100] [--duration 10] [--warmup 3] [--mysql mysql://root@127.0.0.1:3306/confab_load]
#   scripts/load.sh idle [--conns 10000]
#
# Exit status: confab-load's (1 when anything was lost, duplicated or reordered).
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=${1:-dm}
shift || true
pairs=100 conns=1000 duration=10 warmup=3 mysql="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --mysql) mysql=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done

cargo build --release --locked -p confab-server -p confab-tui >&2
bin=target/release
run=$(mktemp -d /tmp/confab-load.XXXXXX)
port=$((20000 + RANDOM % 20000))
addr=127.0.0.1:$port

store_args=(--data-dir "$run/data")
if [ -n "$mysql" ]; then
  scripts/services.sh mariadb
  store_args=(--store "$mysql")
fi
# A load client drives one connection far harder than a person: lift the per-connection and
# per-IP limits that protect a real deployment.
"$bin/confab-server" --listen "$addr" "${store_args[@]}" \
  --auth-per-ip-per-minute 1000000 --requests-per-second 1000000 --request-burst 1000000 \
  > "$run/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$run"' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

users=$run/users.jsonl
case "$scenario" in
  dm)
    "$bin/confab-load" --server "$addr" --users "$users" setup --users-count $((pairs * 2)) --pairs --concurrency 8
    "$bin/confab-load" --server "$addr" --users "$users" --duration "$duration" --warmup "$warmup" \
      "${extra[@]}" dm --pairs "$pairs"
    ;;
  idle)
    "$bin/confab-load" --server "$addr" --users "$users" setup --users-count $(( (conns + 4) / 5 )) --concurrency 8
    "$bin/confab-load" --server "$addr" --users "$users" --duration "$duration" "${extra[@]}" \
      idle --conns "$conns" --server-pid "$server"
    ;;
  *)
    echo "load.sh: unknown scenario $scenario (dm, idle)" >&2
    exit 2
    ;;
esac
