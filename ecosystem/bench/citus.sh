#!/usr/bin/env bash
# One Postgres against a Citus coordinator, with the same harness: the same
# release binary, the same wrk mix (ecosystem/bench/mix.lua: seed start and
# end of random users), the same settings. It does not start either server.
#
#   bash ecosystem/bench/citus.sh --postgres postgres://postgres@127.0.0.1:5432/postgres \
#        --citus 'postgres://postgres@127.0.0.1:9700/stream_limit?sslmode=disable'
#
# Each URL must be a superuser. On the single server it creates a fresh
# database; on the coordinator a fresh schema (a Citus cluster is set up per
# database), migrated by the binary and distributed with
# ecosystem/citus/distribute.sql. Both are dropped at the end.
#
# Per target: BENCH_RUNS runs of BENCH_DURATION s of the mix and of /health,
# alternating; prints each run and the medians (req/s, and mix / /health).
# On Citus it then repeats one short run with citus.log_remote_commands on
# for the service's connections and counts, in the coordinator's log, the
# statements sent to workers and any PREPARE TRANSACTION (two-phase commit):
# the coordinator's log file must be readable here (BENCH_CITUS_LOG).
#
# Environment: BENCH_RUNS [3], BENCH_DURATION [8], BENCH_CONNECTIONS [32],
# BENCH_THREADS [2], BENCH_USERS [100000], BENCH_WORKERS [1],
# BENCH_POOL_SIZE [16], BENCH_BATCH_WORKERS [4], BENCH_MAX_BATCH [64: 1 makes
# every decision a transaction of its own], BENCH_CITUS_LOG [unset: skip
# the statement count], --bin PATH (else target/release/stream-limit-http).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PG_URL="" CITUS_URL="" BIN="$ROOT/target/release/stream-limit-http"
while [ $# -gt 0 ]; do
    case "$1" in
        --postgres) PG_URL="$2"; shift ;;
        --citus) CITUS_URL="$2"; shift ;;
        --bin) BIN=$(realpath "$2"); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$PG_URL" ] && [ -n "$CITUS_URL" ] || { echo "need --postgres URL and --citus URL" >&2; exit 2; }
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -p stream-limit-http)
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

RUNS=${BENCH_RUNS:-3} SECS=${BENCH_DURATION:-8}
CONNS=${BENCH_CONNECTIONS:-32} THREADS=${BENCH_THREADS:-2}
export BENCH_USERS=${BENCH_USERS:-100000}
NAME="sl_bench_$$_$(date +%s)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
    psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" 2>/dev/null || true
    psql "$CITUS_URL" -qc "DROP SCHEMA IF EXISTS $NAME CASCADE" 2>/dev/null || true
}
trap cleanup EXIT

with_options() { # URL OPTIONS: the URL with `options` set (percent-encoded)
    local sep='?'; [[ "$1" == *\?* ]] && sep='&'
    printf '%s%soptions=%s' "$1" "$sep" "$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$2")"
}
db_url() { # URL DB: the URL with its database replaced
    python3 -c 'import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$1" "$2"
}

start_server() { # start_server URL [ENV=VALUE...]
    local url=$1; shift
    env -i PATH="$PATH" RUST_LOG=warn PORT="$PORT" DATABASE_URL="$url" \
        STREAM_LIMIT__SERVER__HOST=127.0.0.1 STREAM_LIMIT__SERVER__WORKERS="${BENCH_WORKERS:-1}" \
        STREAM_LIMIT__STORE__POOL_SIZE="${BENCH_POOL_SIZE:-16}" \
        STREAM_LIMIT__STORE__BATCH_WORKERS="${BENCH_BATCH_WORKERS:-4}" \
        STREAM_LIMIT__STORE__MAX_BATCH="${BENCH_MAX_BATCH:-64}" \
        "$@" "$BIN" > "/tmp/$NAME.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "the server did not start:" >&2; cat "/tmp/$NAME.log" >&2; exit 1
}
stop_server() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""; }

rate() { # rate [PATH]: one wrk run, prints req/s
    BENCH_PATH="${1:-}" wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --timeout 5s \
        -s "$HERE/mix.lua" "http://127.0.0.1:$PORT" | awk '/Requests\/sec/ {print $2}'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

measure() { # measure LABEL: RUNS alternating runs, then medians
    local label=$1 mixes=() healths=()
    for run in $(seq "$RUNS"); do
        local m h; m=$(rate); h=$(rate /health)
        mixes+=("$m"); healths+=("$h")
        printf '  %-9s run %s: start+end %8.0f req/s, /health %8.0f req/s, ratio %.3f\n' \
            "$label" "$run" "$m" "$h" "$(echo "$m / $h" | bc -l)"
    done
    local mm hm; mm=$(printf '%s\n' "${mixes[@]}" | median); hm=$(printf '%s\n' "${healths[@]}" | median)
    printf '%-9s median: start+end %8.0f req/s, /health %8.0f req/s, ratio %.3f\n' \
        "$label" "$mm" "$hm" "$(echo "$mm / $hm" | bc -l)"
}

echo "binary: $BIN; wrk -t$THREADS -c$CONNS, $RUNS x ${SECS}s; users $BENCH_USERS; pool ${BENCH_POOL_SIZE:-16}, batch workers ${BENCH_BATCH_WORKERS:-4}, max batch ${BENCH_MAX_BATCH:-64}"
echo "postgres: $(psql "$PG_URL" -Atc 'SHOW server_version')"
echo "citus: $(psql "$CITUS_URL" -Atc 'SELECT citus_version()'), $(psql "$CITUS_URL" -Atc 'SELECT count(*) FROM citus_get_active_worker_nodes()') workers, $(psql "$CITUS_URL" -Atc 'SHOW citus.shard_count') shards"

psql "$PG_URL" -qc "CREATE DATABASE $NAME"
PG_DB=$(db_url "$PG_URL" "$NAME")
env -i PATH="$PATH" DATABASE_URL="$PG_DB" "$BIN" migrate >/dev/null
start_server "$PG_DB"
measure postgres
stop_server

psql "$CITUS_URL" -qc "CREATE SCHEMA $NAME"
CITUS_DB=$(with_options "$CITUS_URL" "-c search_path=$NAME")
env -i PATH="$PATH" DATABASE_URL="$CITUS_DB" STREAM_LIMIT__STORE__CITUS=true "$BIN" migrate >/dev/null
psql "$(with_options "$CITUS_URL" "-c search_path=$NAME")" -qv ON_ERROR_STOP=1 -f "$ROOT/ecosystem/citus/distribute.sql" >/dev/null
start_server "$CITUS_DB" STREAM_LIMIT__STORE__CITUS=true
measure citus
stop_server

if [ -n "${BENCH_CITUS_LOG:-}" ]; then
    # The same load for 3 s, every statement the coordinator sends logged.
    start_server "$(with_options "$CITUS_URL" "-c search_path=$NAME -c citus.log_remote_commands=on -c log_min_messages=notice")" \
        STREAM_LIMIT__STORE__CITUS=true
    from=$(stat -c %s "$BENCH_CITUS_LOG")
    SECS=3 rate >/dev/null
    stop_server
    tail -c +"$((from + 1))" "$BENCH_CITUS_LOG" > "/tmp/$NAME.remote"
    sent=$(grep -c 'issuing' "/tmp/$NAME.remote" || true)
    prepared=$(grep -c 'issuing PREPARE TRANSACTION' "/tmp/$NAME.remote" || true)
    begins=$(grep -c 'issuing BEGIN' "/tmp/$NAME.remote" || true)
    echo "citus, 3 s logged: $sent statements sent to workers in $begins worker transactions; $prepared PREPARE TRANSACTION (two-phase commits)"
    grep -o 'issuing [A-Z]*' "/tmp/$NAME.remote" | sort | uniq -c | sort -rn | head -8
fi
