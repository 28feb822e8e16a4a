#!/usr/bin/env bash
# Make sure the machine's MariaDB and Redis run, and create one database and one user per service.
# Usage: .ci/services-up.sh [database-prefix]   (default prefix: churn_)
set -euo pipefail
prefix="${1:-churn_}"
if ! mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null 2>&1; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 60); do mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
for svc in auth customers prediction alerts; do
  db="${prefix}${svc}"
  mariadb -uroot -h127.0.0.1 <<SQL
CREATE DATABASE IF NOT EXISTS \`${db}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '${db}'@'127.0.0.1' IDENTIFIED BY '${db}';
CREATE USER IF NOT EXISTS '${db}'@'localhost' IDENTIFIED BY '${db}';
GRANT ALL PRIVILEGES ON \`${db}\`.* TO '${db}'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`${db}\`.* TO '${db}'@'localhost';
SQL
done
echo "mariadb and redis ready; databases ${prefix}{auth,customers,prediction,alerts}"
