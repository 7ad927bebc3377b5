#!/usr/bin/env bash
# One command for a load run: builds release binaries, starts a confab-server on a fresh embedded
# store (or on MySQL with --mysql URL, or a cluster with --cluster), registers the users the
# scenario needs, runs it, prints the summary, and stops what it started.
#
#   scripts/load.sh SCENARIO [options] [-- more confab-load options]
#
#   SCENARIO     dm | group | idle | login | storm | mixed
#   --clients N  connections (dm/storm: N/2 pairs; group: N members; idle: N; login: N workers;
#                mixed: N in all)                        [dm 200, group 200, idle 1000, login 8,
#                                                         storm 1000, mixed 1000]
#   --group-size M   members per group (group, mixed)    [group 20, mixed 10]
#   --senders S      senders per group (group)           [1]
#   --duration S / --warmup S / --rate R / --size B / --processes P   passed to confab-load
#   --wire           dm: drive the pairs over the wire protocol directly (no client core), so the
#                    load generator takes less of a shared machine's CPU
#   --mysql URL      run the server on MySQL / MariaDB (the database must exist)
#   --cluster [--nodes N]   scripts/cluster.sh up --nodes N, run against 127.0.0.1:7000 (nginx),
#                    scripts/cluster.sh down on exit
#   --tls            over TLS: the server (or the cluster's nginx front) with a self-signed
#                    certificate, the clients pinned to its fingerprint
#
# Exit status: confab-load's (1 when anything was lost, duplicated or reordered, or the counts
# did not add up; 2 when the run could not be made).
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=${1:-dm}
shift || true
clients="" group_size="" senders=1 mysql="" cluster=0 nodes=3 tls=0 run_args=() extra=() dm_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients=$2; shift 2 ;;
    --pairs) clients=$(( $2 * 2 )); shift 2 ;;
    --conns) clients=$2; shift 2 ;;
    --group-size) group_size=$2; shift 2 ;;
    --senders) senders=$2; shift 2 ;;
    --duration|--warmup|--drain|--rate|--size|--processes|--bind)
      run_args+=("$1" "$2"); shift 2 ;;
    --wire) dm_args+=(--wire); shift ;;
    --mysql) mysql=$2; shift 2 ;;
    --cluster) cluster=1; shift ;;
    --nodes) nodes=$2; shift 2 ;;
    --tls) tls=1; shift ;;
    --) shift; extra+=("$@"); break ;;
    *) extra+=("$1"); shift ;;
  esac
done

case "$scenario" in
  dm) clients=${clients:-200} ;;
  group) clients=${clients:-200}; group_size=${group_size:-20} ;;
  idle) clients=${clients:-1000} ;;
  login) clients=${clients:-8} ;;
  storm) clients=${clients:-1000} ;;
  mixed) clients=${clients:-1000}; group_size=${group_size:-10} ;;
  *)
    echo "load.sh: unknown scenario '$scenario' (dm, group, idle, login, storm, mixed)" >&2
    exit 2
    ;;
esac

if [ "$cluster" = 1 ] && [ ! -x scripts/cluster.sh ]; then
  echo "load.sh: --cluster needs scripts/cluster.sh (up|down|status [--nodes N]), which is not in this tree yet" >&2
  exit 2
fi

cargo build --release --locked -p confab-server -p confab-tui >&2
bin=target/release
run=$(mktemp -d /tmp/confab-load.XXXXXX)

# A load client drives one connection far harder than a person, and logs in far more often:
# lift the per-connection and per-IP/per-name limits that protect a real deployment. (The
# cluster's nodes read the same settings from the environment.)
export CONFAB_AUTH_PER_IP_PER_MINUTE=1000000 CONFAB_AUTH_PER_NAME_PER_MINUTE=1000000
export CONFAB_REQUESTS_PER_SECOND=1000000 CONFAB_REQUEST_BURST=1000000

server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ "$cluster" = 1 ]; then
    scripts/cluster.sh down >&2 || true
    mariadb -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS \`$CONFAB_CLUSTER_DB\`" >&2 || true
  fi
  rm -rf "$run"
}
trap cleanup EXIT

if [ "$cluster" = 1 ]; then
  # A database of the run's own, like the fresh embedded store: setup registers new users.
  export CONFAB_CLUSTER_DB=confab_load_cluster
  scripts/services.sh mariadb >&2
  mariadb -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS \`$CONFAB_CLUSTER_DB\`" >&2
  tls_up=()
  [ "$tls" = 1 ] && tls_up=(--tls)
  scripts/cluster.sh up --nodes "$nodes" "${tls_up[@]}" >&2
  addr=127.0.0.1:7000
  pid_args=()
  if [ "$tls" = 1 ]; then
    fp=$("$bin/confab-server" --tls-self-signed --data-dir "${CONFAB_CLUSTER_DIR:-$PWD/cluster-run}/tls" fingerprint)
  fi
else
  port=$((20000 + RANDOM % 20000))
  addr=127.0.0.1:$port
  store_args=(--data-dir "$run/data")
  if [ -n "$mysql" ]; then
    scripts/services.sh mariadb
    store_args=(--store "$mysql")
  fi
  tls_args=()
  if [ "$tls" = 1 ]; then
    # confab-server makes the self-signed pair (and prints its fingerprint) once.
    fp=$("$bin/confab-server" --tls-self-signed --data-dir "$run/tls" fingerprint)
    tls_args=(--tls-cert "$run/tls/tls-cert.pem" --tls-key "$run/tls/tls-key.pem")
  fi
  "$bin/confab-server" --listen "$addr" "${store_args[@]}" "${tls_args[@]}" > "$run/server.log" 2>&1 &
  server=$!
  pid_args=(--server-pid "$server")
fi
host=${addr%:*} port=${addr##*:}
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && break
  sleep 0.1
done

users=$run/users.jsonl
target=$addr trust=()
if [ "$tls" = 1 ]; then
  target=tls://$addr trust=(--trust-fingerprint "$fp")
fi
load() { "$bin/confab-load" --server "$target" "${trust[@]}" --users "$users" "$@"; }
case "$scenario" in
  dm)
    load setup --users-count "$clients" --pairs --concurrency 8
    load "${run_args[@]}" "${extra[@]}" dm --pairs $(( clients / 2 )) "${dm_args[@]}"
    ;;
  storm)
    load setup --users-count "$clients" --pairs --concurrency 8
    load "${run_args[@]}" "${extra[@]}" storm --pairs $(( clients / 2 ))
    ;;
  group)
    load setup --users-count "$clients" --group-size "$group_size" --concurrency 8
    load "${run_args[@]}" "${extra[@]}" group --groups $(( clients / group_size )) --senders "$senders"
    ;;
  idle)
    load setup --users-count $(( (clients + 4) / 5 )) --concurrency 8
    load "${run_args[@]}" "${extra[@]}" idle --conns "$clients" "${pid_args[@]}"
    ;;
  login)
    load setup --users-count $(( clients * 4 > 100 ? clients * 4 : 100 )) --concurrency 8
    load "${run_args[@]}" "${extra[@]}" login --workers "$clients"
    ;;
  mixed)
    # A tenth in groups, a tenth in pairs, logins and an idle majority over the rest.
    load setup --users-count $(( clients * 35 / 100 + 2 * group_size )) --pairs \
      --group-size "$group_size" --concurrency 8
    load "${run_args[@]}" --clients "$clients" "${extra[@]}" mixed --group-size "$group_size"
    ;;
esac
