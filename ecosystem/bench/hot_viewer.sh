#!/usr/bin/env bash
# A hot viewer's cost to the others, twice: the p50 of an 8-connection mix
# (random users) alone, then beside 64 connections starting streams for one
# viewer (user 7), on one server (1 worker, core 1; wrk on core 0).
#
#   bash ecosystem/bench/hot_viewer.sh BINARY DBNAME [POSTGRES_PORT]
#
# Needs a running Postgres on 127.0.0.1 (default port 55432, user postgres,
# trust auth) and wrk; DBNAME is dropped and created.
set -u
BIN=$1; DB=$2; PGPORT=${3:-55432}
cd "$(dirname "$0")/../.."
pkill -x stream-limit-ht ; sleep 0.5
psql -q -h 127.0.0.1 -p $PGPORT -U postgres -c "drop database if exists $DB" -c "create database $DB" 2>/dev/null
(env -i PATH=$PATH HOME=$HOME PORT=18080 STREAM_LIMIT__SERVER__WORKERS=1 STREAM_LIMIT__LOG__LEVEL=warn STREAM_LIMIT__SERVER__HOST=127.0.0.1 DATABASE_URL=postgres://postgres@127.0.0.1:$PGPORT/$DB taskset -c 1 $BIN > /tmp/srv.log 2>&1 &)
sleep 2
BENCH_USERS=100000 BENCH_WRK_POOL=100000 taskset -c 0 wrk -t1 -c8 -d3s -s ecosystem/bench/mix.lua http://127.0.0.1:18080 >/dev/null
for i in 1 2; do
BENCH_USERS=100000 BENCH_WRK_POOL=100000 taskset -c 0 wrk -t1 -c8 -d5s --latency -s ecosystem/bench/mix.lua http://127.0.0.1:18080 | awk '/Requests\/sec/{r=$2} / 50%/{p=$2} / 99%/{q=$2} END{print "alone: rps", r, "p50", p, "p99", q}'
(BENCH_PATH=/api/startstream/7 taskset -c 0 wrk -t1 -c64 -d7s -s ecosystem/bench/mix.lua http://127.0.0.1:18080 > /tmp/hotwrk.txt &)
sleep 1
BENCH_USERS=100000 BENCH_WRK_POOL=100000 taskset -c 0 wrk -t1 -c8 -d5s --latency -s ecosystem/bench/mix.lua http://127.0.0.1:18080 | awk '/Requests\/sec/{r=$2} / 50%/{p=$2} / 99%/{q=$2} END{print "beside hot: rps", r, "p50", p, "p99", q}'
sleep 2; awk '/Requests\/sec/{print "hot viewer rps", $2}' /tmp/hotwrk.txt
done
pkill -x stream-limit-ht
