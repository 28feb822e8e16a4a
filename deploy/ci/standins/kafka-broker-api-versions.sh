#!/bin/bash
# Health check: one Kafka ApiVersions (v0) request to --bootstrap-server host:port; healthy when
# the broker answers with the request's correlation id.
set -euo pipefail
server=localhost:9092
while [ $# -gt 0 ]; do
  case "$1" in --bootstrap-server) server="$2"; shift 2 ;; *) shift ;; esac
done
host="${server%:*}"; port="${server##*:}"
[ "$host" = localhost ] && host=127.0.0.1
exec 3<>"/dev/tcp/${host}/${port}"
# size 15 | api_key 18 | api_version 0 | correlation_id 0x00c0ffee | client_id "probe"
printf '\x00\x00\x00\x0f\x00\x12\x00\x00\x00\xc0\xff\xee\x00\x05probe' >&3
reply="$(timeout 5 head -c 8 <&3 | od -An -tx1 | tr -d ' \n')"
exec 3>&-
[ "${reply:8:8}" = "00c0ffee" ] || { echo "no ApiVersions answer from $server" >&2; exit 1; }
echo "$server answers ApiVersions"
