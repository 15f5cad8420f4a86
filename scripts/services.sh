#!/usr/bin/env bash
# Starts the local PostgreSQL and MariaDB servers the federated-attribute tests use, if they are not
# running, and waits until both accept connections. Idempotent: running servers are left alone.
#
#   PostgreSQL: 127.0.0.1:5432, trust auth, database `test`
#   MariaDB:    127.0.0.1:3306, root without password, database `test`
set -euo pipefail

say() { printf 'services: %s\n' "$*" >&2; }

postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
mariadb_up() { mariadb-admin -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1 || mysqladmin -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; }

wait_for() {
  local name="$1" check="$2"
  for _ in $(seq 1 60); do
    if "$check"; then return 0; fi
    sleep 0.5
  done
  say "error: $name did not come up within 30 s"
  return 1
}

if ! postgres_up; then
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_for PostgreSQL postgres_up
fi
psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname = 'test'" postgres 2>/dev/null | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "create database test" postgres >/dev/null

if ! mariadb_up; then
  say "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB mariadb_up
fi
mariadb -h 127.0.0.1 -P 3306 -u root -e "create database if not exists test" 2>/dev/null \
  || mysql -h 127.0.0.1 -P 3306 -u root -e "create database if not exists test"

say "PostgreSQL and MariaDB are up"
