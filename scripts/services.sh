#!/usr/bin/env bash
# Makes sure MariaDB (127.0.0.1:3306, root without password) and Redis (127.0.0.1:6379) are
# running, installing them with apt-get where missing, and that nginx with the stream module is
# installed (not started: the cluster tests and scripts/cluster.sh run their own instances with
# generated configs). Idempotent; safe to run before every test.
set -euo pipefail

log() { echo "services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  log "$name did not open port $port"
  return 1
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

start_mariadb() {
  if port_open 3306; then return 0; fi
  if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
    log "installing mariadb-server"
    apt_install mariadb-server
  fi
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  if [ ! -d /var/lib/mysql/mysql ]; then
    log "initialising the MariaDB data directory"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  fi
  log "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
    --bind-address=127.0.0.1 --port=3306
  wait_port 3306 MariaDB
  # A fresh install authenticates root by unix socket only; the tests connect over TCP.
  mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; CREATE DATABASE IF NOT EXISTS test;" 2>/dev/null || true
}

start_redis() {
  if port_open 6379; then return 0; fi
  if ! command -v redis-server >/dev/null; then
    log "installing redis-server"
    apt_install redis-server
  fi
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
}

install_nginx() {
  if ! command -v nginx >/dev/null; then
    log "installing nginx-light"
    # RUNLEVEL=1: the package must not start the system nginx (we run our own instances).
    RUNLEVEL=1 apt_install nginx-light
  fi
  # Debian ships the stream (TCP proxy) module separately.
  if nginx -V 2>&1 | grep -q -- '--with-stream=dynamic' &&
    [ ! -f /usr/lib/nginx/modules/ngx_stream_module.so ]; then
    log "installing libnginx-mod-stream"
    RUNLEVEL=1 apt_install libnginx-mod-stream
  fi
}

case "${1:-all}" in
  all) start_mariadb; start_redis; install_nginx ;;
  mariadb|mysql) start_mariadb ;;
  redis) start_redis ;;
  nginx) install_nginx ;;
  *) echo "usage: $0 [all|mariadb|redis|nginx]" >&2; exit 2 ;;
esac
