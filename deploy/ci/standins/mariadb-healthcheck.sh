#!/bin/bash
# The official image's healthcheck.sh, for the two tests docker-compose.yml uses.
set -eu
cnf=/var/lib/mysql/.my-healthcheck.cnf
[ -r "$cnf" ] || exit 1
for arg in "$@"; do
  case "$arg" in
    --connect) mariadb --defaults-extra-file="$cnf" -e 'SELECT 1' >/dev/null ;;
    --innodb_initialized)
      [ "$(mariadb --defaults-extra-file="$cnf" -N -e "SELECT 1 FROM information_schema.ENGINES WHERE ENGINE='InnoDB' AND SUPPORT IN ('YES','DEFAULT')")" = 1 ] ;;
    *) ;;
  esac
done
