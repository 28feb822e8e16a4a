#!/bin/bash
# The subset of the official MariaDB image's entrypoint that the platform uses.
set -euo pipefail
if [ "${1:0:1}" = "-" ]; then set -- mariadbd "$@"; fi
datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock
if [ "$1" = "mariadbd" ] && [ ! -d "$datadir/mysql" ]; then
  if [ -n "${MARIADB_ROOT_PASSWORD_FILE:-}" ]; then
    MARIADB_ROOT_PASSWORD="$(cat "$MARIADB_ROOT_PASSWORD_FILE")"
  fi
  : "${MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD or MARIADB_ROOT_PASSWORD_FILE is required}"
  echo "stand-in entrypoint: initialising $datadir"
  mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve >/dev/null
  "$@" --skip-networking --socket="$socket" &
  pid=$!
  for _ in $(seq 1 60); do
    mariadb-admin --protocol=socket --socket="$socket" -uroot ping >/dev/null 2>&1 && break
    sleep 1
  done
  health_password="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  pw="${MARIADB_ROOT_PASSWORD//\\/\\\\}"; pw="${pw//\'/\\\'}"
  mariadb --protocol=socket --socket="$socket" -uroot <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '${pw}';
CREATE USER 'root'@'%' IDENTIFIED BY '${pw}';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
CREATE USER 'healthcheck'@'localhost' IDENTIFIED BY '${health_password}';
GRANT USAGE ON *.* TO 'healthcheck'@'localhost';
FLUSH PRIVILEGES;
SQL
  printf '[mariadb-client]\nport=3306\nsocket=%s\nuser=healthcheck\npassword=%s\n' \
    "$socket" "$health_password" > "$datadir/.my-healthcheck.cnf"
  chmod 600 "$datadir/.my-healthcheck.cnf"
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "stand-in entrypoint: running $f"; MYSQL_PWD="$MARIADB_ROOT_PASSWORD" bash "$f" ;;
      *.sql) echo "stand-in entrypoint: loading $f"
             MYSQL_PWD="$MARIADB_ROOT_PASSWORD" mariadb --protocol=socket --socket="$socket" -uroot < "$f" ;;
    esac
  done
  mariadb-admin --protocol=socket --socket="$socket" -uroot --password="$MARIADB_ROOT_PASSWORD" shutdown
  wait "$pid" || true
  echo "stand-in entrypoint: initialised"
fi
exec "$@" --bind-address=0.0.0.0 --socket="$socket" --skip-name-resolve
