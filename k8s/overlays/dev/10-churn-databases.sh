#!/bin/bash
# Runs once, when MariaDB initialises an empty data directory (/docker-entrypoint-initdb.d):
# one database and one user per service, each user allowed only its own database. The
# passwords are read from the compose secrets (/run/secrets/<service>_db_password).
set -euo pipefail
MYSQL_PWD="$(cat "${MARIADB_ROOT_PASSWORD_FILE:-/run/secrets/mariadb_root_password}")"
export MYSQL_PWD
for service in auth customers prediction alerts; do
  password="$(cat "/run/secrets/${service}_db_password")"
  password="${password//\\/\\\\}"
  password="${password//\'/\\\'}"
  mariadb --protocol=socket -uroot <<SQL
CREATE DATABASE IF NOT EXISTS \`churn_${service}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'churn_${service}'@'%' IDENTIFIED BY '${password}';
ALTER USER 'churn_${service}'@'%' IDENTIFIED BY '${password}';
GRANT ALL PRIVILEGES ON \`churn_${service}\`.* TO 'churn_${service}'@'%';
SQL
  echo "churn: database churn_${service} and its user are ready"
done
