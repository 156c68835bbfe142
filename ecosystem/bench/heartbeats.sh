#!/usr/bin/env bash
# Heartbeats with 10^5 active leases: preloads one day-long lease for each of
# users 0..99999 (stream id md5('hb' || user)), then wrk POSTs heartbeats for
# random users through heartbeats.lua (HB_CONNECTIONS connections, default
# 16), 3 runs of 5 s, and prints the server's
# batch sizes.
#
#   bash ecosystem/bench/heartbeats.sh BINARY DBNAME [ENV=VALUE...]
#
# Needs a running Postgres on 127.0.0.1:55432 (user postgres, trust) and wrk;
# DBNAME is dropped and created.
set -u
BIN=$1; DB=$2; shift 2
cd "$(dirname "$0")/../.."
pkill -x stream-limit-ht; sleep 0.5
P="psql -q -h 127.0.0.1 -p 55432 -U postgres"
$P -c "drop database if exists $DB" -c "create database $DB" 2>/dev/null
(env -i PATH=$PATH HOME=$HOME PORT=18080 STREAM_LIMIT__SERVER__WORKERS=1 STREAM_LIMIT__LOG__LEVEL=warn STREAM_LIMIT__SERVER__HOST=127.0.0.1 DATABASE_URL=postgres://postgres@127.0.0.1:55432/$DB "$@" taskset -c 1 $BIN > /tmp/srv.log 2>&1 &)
sleep 2
$P -d $DB -c "INSERT INTO viewers (viewer, started, leases, sweep_after) SELECT 'user:'||u, true, ARRAY[ROW(md5('hb'||u)::uuid, now(), now() + interval '1 day', 86400000, NULL, NULL)::stream_lease], now() + interval '1 day' FROM generate_series(0, 99999) u ON CONFLICT DO NOTHING" -c "VACUUM ANALYZE viewers"
$P -At -d $DB -c "SELECT u || ' ' || md5('hb'||u)::uuid FROM generate_series(0, 99999) u" > "${TMPDIR:-/tmp}/heartbeat_ids.txt"
taskset -c 0 wrk -t1 -c16 -d3s -s ecosystem/bench/heartbeats.lua http://127.0.0.1:18080 > /dev/null
for i in 1 2 3; do taskset -c 0 wrk -t2 -c${HB_CONNECTIONS:-16} -d5s -s ecosystem/bench/heartbeats.lua http://127.0.0.1:18080 | awk '/Requests\/sec/{r=$2} /Non-2xx/{e=$NF} END{print "heartbeats/s", r, "non-2xx", e+0}'; done
curl -s localhost:18080/metrics | grep -E "store_batch_size_(sum|count)"
pkill -x stream-limit-ht
