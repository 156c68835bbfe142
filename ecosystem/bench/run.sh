#!/usr/bin/env bash
# stream-limit benchmark harness: one command, one table.
#
#   bash ecosystem/bench/run.sh            # full run, about 12-15 minutes
#   bash ecosystem/bench/run.sh --quick    # fewer, shorter runs, about 3-4 minutes
#
# Options (all optional):
#   --quick            3 runs of 4 s per throughput figure instead of 5 of 10 s
#   --bin PATH         benchmark this stream-limit-http binary (skip the cargo build)
#   --only LIST        comma-separated subset of: memory,postgres,latency,lease-memory,scale,criterion
#   --no-criterion     skip the criterion micro-benchmarks
#   -h, --help         this text
#
# Environment knobs (defaults in brackets; see README.md for why):
#   BENCH_WORKERS      STREAM_LIMIT__SERVER__WORKERS for the server [CPUs - 1]
#   BENCH_SERVER_CPUS  taskset CPU list of the server [1-(CPUs-1)]; empty = not pinned
#   BENCH_LOAD_CPUS    taskset CPU list of wrk / oha / pgbench [0]; empty = not pinned
#   BENCH_POOL_SIZE    STREAM_LIMIT__STORE__POOL_SIZE [the service default]
#   BENCH_THREADS      wrk threads and pgbench -j [2]
#   BENCH_CONNECTIONS  wrk / oha connections and pgbench clients [16]
#   BENCH_USERS        random users in the mix [100000]
#   BENCH_WRK_POOL     requests mix.lua prepares per wrk thread [200000]
#   BENCH_RUNS, BENCH_DURATION   runs per figure and seconds per run
#   BENCH_SYNC_OFF     1 = also measure Postgres with synchronous_commit=off [1 in full mode]
#   BENCH_NICE         niceness of server, Postgres and load generator, e.g. -10 on a
#                      machine shared with other work [0]
#   BENCH_QUIET_PCT, BENCH_QUIET_BUDGET, BENCH_NOISY_PCT, BENCH_RETRIES   noise handling
#
# It installs what is missing (wrk and Postgres 15 from Debian, oha from
# crates.io: the first `cargo install oha` takes about 8 minutes on 2 cores),
# starts its own throwaway Postgres cluster (fsync on) and its own servers on
# free loopback ports, and stops and removes all of them on exit.
# Raw outputs go to ecosystem/bench/results/<timestamp>/, the table to
# ecosystem/bench/results/latest.md (and is printed).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

QUICK=0
BIN=""
ONLY="memory,postgres,latency,lease-memory,scale,criterion"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --bin) BIN=$(realpath "$2"); shift ;;
        --only) ONLY="$2"; shift ;;
        --no-criterion) ONLY=$(echo "$ONLY" | sed 's/,*criterion//') ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

if [ "$QUICK" = 1 ]; then
    RUNS=${BENCH_RUNS:-3}; DUR=${BENCH_DURATION:-4}; WARMUP=2
    LAT_DUR=8; SCALE_DUR=6; SCALE_RATE=200; SYNC_OFF=${BENCH_SYNC_OFF:-0}
    CRIT_ARGS=(--warm-up-time 1 --measurement-time 2)
else
    RUNS=${BENCH_RUNS:-5}; DUR=${BENCH_DURATION:-10}; WARMUP=4
    LAT_DUR=20; SCALE_DUR=15; SCALE_RATE=200; SYNC_OFF=${BENCH_SYNC_OFF:-1}
    CRIT_ARGS=(--warm-up-time 2 --measurement-time 5)
fi
# Default placement (see README.md, "Fair numbers on a small machine"): the
# load generator gets CPU 0, the server the other CPUs with one actix worker
# per CPU. Postgres is not pinned. On one CPU nothing is pinned.
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then
    WORKERS=${BENCH_WORKERS:-$((NCPU - 1))}
    SERVER_CPUS=${BENCH_SERVER_CPUS-1-$((NCPU - 1))}
    LOAD_CPUS=${BENCH_LOAD_CPUS-0}
else
    WORKERS=${BENCH_WORKERS:-1}; SERVER_CPUS=${BENCH_SERVER_CPUS-}; LOAD_CPUS=${BENCH_LOAD_CPUS-}
fi
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-16}
USERS=${BENCH_USERS:-100000}
WRK_POOL=${BENCH_WRK_POOL:-200000}
POOL_SIZE=${BENCH_POOL_SIZE:-}
NODE_RPS=1660          # the Node/Express/knex predecessor on Postgres (issue 4)

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$HERE/results"
RAW="$RESULTS/$STAMP"
mkdir -p "$RAW"
MEAS="$RAW/measurements.tsv"     # kind, label, run, value columns; read by report.py
printf 'kind\tlabel\trun\tvalue\textra\n' > "$MEAS"
LOG="$RAW/harness.log"
exec > >(tee -a "$LOG") 2>&1

say() { printf '\n[bench %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >> "$MEAS"; }
export NICE=${BENCH_NICE:-0}
pin() { # pin CPU-LIST CMD...: run under taskset when a list is given, and nice when asked
    local cpus=$1 pre=(); shift
    [ -n "$cpus" ] && pre+=(taskset -c "$cpus")
    [ "${NICE:-0}" != 0 ] && pre+=(nice -n "$NICE")
    "${pre[@]}" "$@"
}

# ---------------------------------------------------------------- cleanup
SERVER_PID=""
PGDATA=""
PGTMP=""
PGBIN=""
cleanup() {
    set +e
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null
    fi
    if [ -n "$PGDATA" ] && [ -f "$PGDATA/postmaster.pid" ]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -t 30 stop >/dev/null 2>&1
    fi
    if [ -n "$PGTMP" ] && [ -d "$PGTMP" ]; then
        cp "$PGTMP"/pg.log "$RAW/postgres.log" 2>/dev/null
        rm -rf "$PGTMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
export PATH="$HOME/.cargo/bin:$PATH"
say "checking tools"
command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl
command -v taskset >/dev/null || apt_install util-linux
if want postgres || want scale; then
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ] || [ ! -x "$PGBIN/pgbench" ]; then
        apt_install postgresql-15
        PGBIN=/usr/lib/postgresql/15/bin
    fi
fi
if want latency || want scale; then
    # oha, not wrk2: wrk cannot hold a fixed rate, Debian has no wrk2, and oha
    # (crates.io) does open-loop `-q <rate>` with --latency-correction
    # (latency counted from when each request was due, not from when a busy
    # connection got round to sending it: no coordinated omission).
    if ! command -v oha >/dev/null; then
        say "installing oha from crates.io (one time, several minutes)"
        timeout 1200 cargo install oha --locked --quiet
    fi
fi

# ---------------------------------------------------------------- build
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "$BIN" ]; then
    say "building the release binary"
    (cd "$ROOT" && timeout 1800 cargo build --release -p stream-limit-http --quiet)
    BIN="$TARGET_DIR/release/stream-limit-http"
fi
if want lease-memory; then
    (cd "$ROOT" && timeout 1800 cargo build --release -p stream-limit-core --example lease_memory --quiet)
fi
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

# ---------------------------------------------------------------- machine
{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(uname -srm)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
    echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
    echo "binary: $BIN"
    echo "git: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo none)$(cd "$ROOT" && [ -n "$(git status --porcelain -- stream-limit-core stream-limit-http migrations 2>/dev/null)" ] && echo ' (with uncommitted changes)')"
    echo "mode: $([ "$QUICK" = 1 ] && echo quick || echo full), $RUNS runs x ${DUR}s"
    echo "server: workers=$WORKERS cpus=${SERVER_CPUS:-all} pool_size=${POOL_SIZE:-default} nice=$NICE"
    echo "load: wrk -t$THREADS -c$CONNS cpus=${LOAD_CPUS:-all}; users=$USERS"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    command -v oha >/dev/null && echo "oha: $(oha --version)"
    [ -n "$PGBIN" ] && echo "postgres: $("$PGBIN/postgres" --version)"
    echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$RAW/machine.txt"
cat "$RAW/machine.txt"

# ---------------------------------------------------------------- helpers
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { # utime+stime of the given pids, in clock ticks (missing pids count 0)
    local sum=0 pid
    for pid in "$@"; do
        if [ -r "/proc/$pid/stat" ]; then
            sum=$((sum + $(awk '{print $14+$15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
        fi
    done
    echo "$sum"
}
busy_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9}' /proc/stat; }
# CPU ticks of the whole Postgres cluster: the live backends plus, through
# the postmaster's cutime/cstime, every backend that exited (pgbench's).
pg_ticks() {
    [ -n "$PGDATA" ] && [ -f "$PGDATA/postmaster.pid" ] || { echo 0; return; }
    local pm; pm=$(head -1 "$PGDATA/postmaster.pid")
    echo $(( $(awk '{print $16+$17}' "/proc/$pm/stat" 2>/dev/null || echo 0) + $(ticks "$pm" $(ps -o pid= --ppid "$pm")) ))
}
# CPU ticks of the harness's finished children (wrk, oha, pgbench, curl).
child_ticks() { awk '{print $16+$17}' /proc/$$/stat; }
HZ=$(getconf CLK_TCK)

# Other sessions or jobs may share this machine. Before each measured run,
# wait (within a budget) until the machine is quiet: less than QUIET_PCT of
# both cores busy over one second while our own processes are idle.
QUIET_PCT=${BENCH_QUIET_PCT:-15}
if [ "$QUICK" = 1 ]; then QUIET_BUDGET=${BENCH_QUIET_BUDGET:-20}; else QUIET_BUDGET=${BENCH_QUIET_BUDGET:-180}; fi
QUIET_WAITED=0
wait_quiet() {
    local b0 b1 pct
    while :; do
        b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
        pct=$(( 100 * (b1 - b0) / HZ / $(nproc) ))
        [ "$pct" -lt "$QUIET_PCT" ] && return 0
        if [ "$QUIET_WAITED" -ge "$QUIET_BUDGET" ]; then
            [ "$QUIET_WAITED" -eq "$QUIET_BUDGET" ] && echo "  (machine still ${pct}% busy with other work; quiet-wait budget of ${QUIET_BUDGET}s spent, measuring anyway: see 'other' in the table)"
            QUIET_WAITED=$((QUIET_BUDGET + 1))
            return 0
        fi
        QUIET_WAITED=$((QUIET_WAITED + 1))
    done
}

# A run during which other work took more than NOISY_PCT of the machine is
# recorded as discarded and repeated, within a budget of RETRIES repeats.
NOISY_PCT=${BENCH_NOISY_PCT:-25}
if [ "$QUICK" = 1 ]; then RETRIES=${BENCH_RETRIES:-3}; else RETRIES=${BENCH_RETRIES:-10}; fi
measured() { # measured CMD ARGS...: run a recording command, repeat it if it was noisy
    local other
    while :; do
        "$@"
        other=$(tail -1 "$MEAS" | grep -o 'other%=[0-9.]*' | cut -d= -f2)
        if [ -n "$other" ] && [ "$RETRIES" -gt 0 ] && [ "${other%.*}" -ge "$NOISY_PCT" ]; then
            RETRIES=$((RETRIES - 1))
            sed -i '$ s/^/discarded-/' "$MEAS"
            echo "    (discarded: other work took ${other}% of the machine during that run; repeating it)"
            continue
        fi
        return 0
    done
}

PORT=""
start_server() { # start_server LABEL [ENV=VALUE...]: starts $BIN, waits for /health
    local label=$1; shift
    PORT=$(free_port)
    local envs=(PORT="$PORT" STREAM_LIMIT__SERVER__WORKERS="$WORKERS" STREAM_LIMIT__LOG__LEVEL=warn
                STREAM_LIMIT__SERVER__HOST=127.0.0.1 HOME="$HOME" PATH="$PATH")
    [ -n "$POOL_SIZE" ] && envs+=(STREAM_LIMIT__STORE__POOL_SIZE="$POOL_SIZE")
    # A clean environment and an empty working directory: no stray
    # DATABASE_URL, RUST_LOG or ./stream-limit.toml changes what is measured.
    (cd "$RAW" && exec env -i "${envs[@]}" "$@" taskset -c "${SERVER_CPUS:-0-$((NCPU - 1))}" nice -n "$NICE" "$BIN") \
        > "$RAW/server-$label.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 150); do
        curl -fsS -m 1 "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "server ($label) did not come up; its log:" >&2
    cat "$RAW/server-$label.log" >&2
    exit 1
}
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# wrk_run KIND LABEL RUN SECONDS [BENCH_PATH]: one wrk run through mix.lua;
# records rps plus the CPU each party used per request, and the answers
# below / from 400 (mix.lua prints `status_codes: 2xx3xx=N 4xx5xx=M`).
wrk_run() {
    local kind=$1 label=$2 run=$3 secs=$4 path=${5:-}
    local out="$RAW/wrk-$label-$run.txt"
    local s0 p0 c0 b0 t0 s1 p1 c1 b1 t1
    [ "$kind" = warmup ] || wait_quiet
    s0=$(ticks "$SERVER_PID"); p0=$(pg_ticks); c0=$(child_ticks); b0=$(busy_ticks); t0=$(date +%s.%N)
    BENCH_PATH="$path" BENCH_USERS="$USERS" BENCH_WRK_POOL="$WRK_POOL" timeout $((secs + 30)) \
        bash -c "$(declare -f pin); pin '$LOAD_CPUS' wrk -t$THREADS -c$CONNS -d${secs}s --timeout 5s -s '$HERE/mix.lua' 'http://127.0.0.1:$PORT'" \
        > "$out" 2>&1
    s1=$(ticks "$SERVER_PID"); p1=$(pg_ticks); c1=$(child_ticks); b1=$(busy_ticks); t1=$(date +%s.%N)
    local rps reqs
    rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
    reqs=$(awk '/requests in/ {print $1}' "$out")
    [ -n "$rps" ] && [ -n "$reqs" ] || { echo "wrk failed:" >&2; cat "$out" >&2; exit 1; }
    # CPU per request (microseconds) of the server, of Postgres, and the share
    # of the machine busy with anything else (wrk, other processes).
    local srv_us pg_us gen_us other
    read -r srv_us pg_us gen_us other < <(python3 -c "
hz, n, wall, cores = $HZ, $reqs, $t1 - $t0, $(nproc)
srv, pg, gen, busy = $s1 - $s0, $p1 - $p0, $c1 - $c0, $b1 - $b0
us = lambda t: round(t * 1e6 / hz / n, 1)
print(us(srv), us(pg), us(gen), round(100 * max(0, busy - srv - pg - gen) / hz / wall / cores, 1))")
    record "$kind" "$label" "$run" "$rps" "srv_us=$srv_us pg_us=$pg_us gen_us=$gen_us other%=$other codes=$(awk -F': ' '/^status_codes/ {print $2}' "$out" | tr ' ' ',') load=$(cut -d' ' -f1 /proc/loadavg)"
    printf '  %-14s run %s: %8.0f req/s | CPU us/req: server %6s, postgres %6s, wrk %5s | other load %4s%%\n' \
        "$label" "$run" "$rps" "$srv_us" "$pg_us" "$gen_us" "$other"
}

# oha_run LABEL RATE SECONDS URL-REGEX: open-loop latency at a fixed rate.
oha_run() {
    local label=$1 rate=$2 secs=$3 url=$4
    local out="$RAW/oha-$label.json"
    wait_quiet
    local s0 p0 c0 b0 t0 s1 p1 c1 b1 t1
    s0=$(ticks "$SERVER_PID"); p0=$(pg_ticks); c0=$(child_ticks); b0=$(busy_ticks); t0=$(date +%s.%N)
    timeout $((secs + 30)) bash -c "$(declare -f pin); pin '$LOAD_CPUS' oha --no-tui -z ${secs}s -c $CONNS -q $rate --latency-correction \
        --rand-regex-url '$url' --output-format json -o '$out'" || true
    s1=$(ticks "$SERVER_PID"); p1=$(pg_ticks); c1=$(child_ticks); b1=$(busy_ticks); t1=$(date +%s.%N)
    local other
    other=$(python3 -c "print(round(100 * max(0, ($b1 - $b0) - ($s1 - $s0) - ($p1 - $p0) - ($c1 - $c0)) / $HZ / ($t1 - $t0) / $NCPU, 1))")
    python3 - "$out" "$label" "$rate" "$MEAS" "$other" <<'EOF'
import json, sys
out, label, rate, meas, other = sys.argv[1:6]
d = json.load(open(out))
p = d["latencyPercentiles"]
codes = ",".join(f"{k}={v}" for k, v in sorted(d.get("statusCodeDistribution", {}).items()))
errs = ",".join(f"{k}={v}" for k, v in d.get("errorDistribution", {}).items())
extra = f"rate={rate} achieved={d['summary']['requestsPerSec']:.0f} other%={other} codes={codes} errors={errs}"
with open(meas, "a") as f:
    for q in ("p50", "p99", "p99.9"):
        f.write(f"latency\t{label}\t{q}\t{p[q] * 1000:.4f}\t{extra}\n")
print(f"  {label:22s} at {int(float(rate))}/s: p50 {p['p50']*1000:.3f} ms  p99 {p['p99']*1000:.3f} ms"
      f"  p99.9 {p['p99.9']*1000:.3f} ms  (achieved {d['summary']['requestsPerSec']:.0f}/s; {codes} {errs}; other load {other}%)")
EOF
}
median() { # median KIND LABEL -> median value recorded so far
    python3 - "$MEAS" "$1" "$2" <<'EOF'
import csv, statistics, sys
meas, kind, label = sys.argv[1:4]
vals = [float(r["value"]) for r in csv.DictReader(open(meas), delimiter="\t")
        if r["kind"] == kind and r["label"] == label]
print(int(statistics.median(vals)) if vals else 0)
EOF
}

START_ALL=$(date +%s)

# ---------------------------------------------------------------- in-memory
if want memory || want latency; then
    say "in-memory store: /health vs start+end mix ($RUNS runs of ${DUR}s, interleaved)"
    start_server memory
    wrk_run warmup memory-warmup 0 "$WARMUP" >/dev/null
    for run in $(seq 1 "$RUNS"); do
        measured wrk_run throughput health "$run" "$DUR" /health
        measured wrk_run throughput memory-mix "$run" "$DUR"
    done
    if want latency; then
        rate=$(( $(median throughput memory-mix) / 2 ))
        say "in-memory latency at half the max rate ($rate req/s, ${LAT_DUR}s)"
        oha_run memory-half "$rate" "$LAT_DUR" "http://127.0.0.1:$PORT/api/(start|end)stream/[0-9]{5}"
        say "in-memory latency at a light 1000 req/s (${LAT_DUR}s)"
        oha_run memory-light 1000 "$LAT_DUR" "http://127.0.0.1:$PORT/api/(start|end)stream/[0-9]{5}"
    fi
    stop_server
fi

# ---------------------------------------------------------------- postgres
PSQL=()
if want postgres || want scale; then
    say "starting a throwaway Postgres cluster (fsync on)"
    PGTMP=$(mktemp -d /var/tmp/stream-limit-bench.XXXXXX)
    chown postgres: "$PGTMP"; chmod 700 "$PGTMP"
    PGDATA="$PGTMP/data"
    PGPORT=$(free_port)
    runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C >/dev/null
    cat >> "$PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PGTMP'
max_connections = 200
shared_buffers = 512MB
fsync = on
synchronous_commit = on
full_page_writes = on
max_wal_size = 4GB
checkpoint_timeout = 15min
log_destination = 'csvlog'
logging_collector = on
log_directory = '$PGTMP'
log_filename = 'pg.log'
log_min_messages = warning
EOF
    nice -n "$NICE" runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGTMP/startup.log" -w -t 60 start >/dev/null
    PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres)
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE bench"
    PSQL+=(-d bench)
    DBURL="postgres://postgres@127.0.0.1:$PGPORT/bench"
    PGBENCH=("$PGBIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres -n -M prepared)

    start_server postgres DATABASE_URL="$DBURL"
    # The exact statements the server runs for one start and one end, with
    # their parameters, from the Postgres log: the second pgbench floor
    # replays them, so it follows whatever the store's SQL becomes.
    "${PSQL[@]}" -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
    curl -fsS "http://127.0.0.1:$PORT/api/startstream/424242" > "$RAW/capture-start.json"; sleep 0.3
    curl -fsS "http://127.0.0.1:$PORT/api/endstream/424242" > "$RAW/capture-end.json"; sleep 0.3
    "${PSQL[@]}" -c "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
    cp "$PGTMP/pg.csv" "$RAW/capture.csv" 2>/dev/null || cp "$PGTMP/pg.log" "$RAW/capture.csv"
    python3 "$HERE/pgbench_script.py" "$RAW/capture.csv" user:424242 "$USERS" "$RAW" \
        || echo "could not capture the store's statements: the 'ours' floor is skipped"

    "${PSQL[@]}" -c "CREATE TABLE bench_counts (user_id int PRIMARY KEY, active int NOT NULL)"
    cat > "$RAW/floor_upsert.sql" <<EOF
-- The issue's SQL floor: a one-statement conditional upsert (start) and a
-- decrement (end), each its own autocommit transaction, random users.
\\set a random(0, $((USERS - 1)))
\\set b random(0, $((USERS - 1)))
INSERT INTO bench_counts (user_id, active) VALUES (:a, 1) ON CONFLICT (user_id) DO UPDATE SET active = bench_counts.active + 1 WHERE bench_counts.active < 3;
UPDATE bench_counts SET active = active - 1 WHERE user_id = :b AND active > 0;
EOF
    cat > "$RAW/floor_upsert16.sql" <<EOF
-- The batched floor: the same upsert and decrement, each over 16 distinct
-- users in one statement, one transaction per pair (32 decisions).
\\set a random(0, $((USERS - 17)))
\\set b random(0, $((USERS - 17)))
INSERT INTO bench_counts (user_id, active) SELECT g, 1 FROM generate_series(:a, :a + 15) g ON CONFLICT (user_id) DO UPDATE SET active = bench_counts.active + 1 WHERE bench_counts.active < 3;
UPDATE bench_counts SET active = active - 1 WHERE user_id BETWEEN :b AND :b + 15 AND active > 0;
EOF
    # pgbench_run LABEL RUN SECONDS SCRIPT [DECISIONS]: records decisions (=requests)
    # per second; DECISIONS per script execution (default 2: one start, one end).
    pgbench_run() {
        local label=$1 run=$2 secs=$3 script=$4 out="$RAW/pgbench-$1-$2.txt" each=${5:-2}
        local p0 p1 c0 c1 b0 b1 t0 t1
        [ "$run" = 0 ] || wait_quiet
        p0=$(pg_ticks); c0=$(child_ticks); b0=$(busy_ticks); t0=$(date +%s.%N)
        timeout $((secs + 60)) bash -c "$(declare -f pin); pin '$LOAD_CPUS' $(printf '%q ' "${PGBENCH[@]}") -c $CONNS -j $THREADS -T $secs -f '$script' bench" > "$out" 2>&1
        b1=$(busy_ticks); t1=$(date +%s.%N)
        sleep 0.5   # let the postmaster reap pgbench's backends (their CPU moves to its cutime)
        p1=$(pg_ticks); c1=$(child_ticks)
        local tps xacts per
        tps=$(awk -F'= ' '/^tps/ {split($2, a, " "); print a[1]}' "$out")
        xacts=$(awk -F': ' '/number of transactions actually processed/ {split($2, a, "/"); print a[1]}' "$out")
        [ -n "$tps" ] || { echo "pgbench failed:" >&2; cat "$out" >&2; exit 1; }
        per=$(python3 -c "print(round($each*$tps, 1))")
        local pg_us gen_us other
        read -r pg_us gen_us other < <(python3 -c "
hz, n, wall, cores = $HZ, $each * $xacts, $t1 - $t0, $(nproc)
pg, gen, busy = $p1 - $p0, $c1 - $c0, $b1 - $b0
us = lambda t: round(t * 1e6 / hz / max(1, n), 1)
print(us(pg), us(gen), round(100 * max(0, busy - pg - gen) / hz / wall / cores, 1))")
        record floor "$label" "$run" "$per" "pg_us=$pg_us gen_us=$gen_us other%=$other load=$(cut -d' ' -f1 /proc/loadavg)"
        printf '  %-14s run %s: %8.0f stmt/s  | CPU us/stmt: postgres %6s, pgbench %5s | other load %4s%%\n' \
            "$label" "$run" "$per" "$pg_us" "$gen_us" "$other"
    }

    if want postgres; then
        say "Postgres store: start+end mix and the pgbench floors ($RUNS runs of ${DUR}s, interleaved)"
        wrk_run warmup pg-warmup 0 "$WARMUP" >/dev/null
        pgbench_run upsert-warmup 0 2 "$RAW/floor_upsert.sql" >/dev/null
        for run in $(seq 1 "$RUNS"); do
            measured wrk_run throughput pg-mix "$run" "$DUR"
            measured pgbench_run floor-upsert "$run" "$DUR" "$RAW/floor_upsert.sql"
            measured pgbench_run floor-upsert16 "$run" "$DUR" "$RAW/floor_upsert16.sql" 32
            [ -f "$RAW/floor_ours.sql" ] && measured pgbench_run floor-ours "$run" "$DUR" "$RAW/floor_ours.sql"
        done
        # How the mix's decisions travelled: the server's own batch-size histogram.
        curl -fsS "http://127.0.0.1:$PORT/metrics" | grep '^stream_limit_store_batch_size' > "$RAW/batch-size.txt" || true
        batch_mean=$(awk '/_sum /{s=$2} /_count /{c=$2} END {if (c > 0) printf "%.2f", s / c}' "$RAW/batch-size.txt")
        [ -n "$batch_mean" ] && record batch pg-mix 0 "$batch_mean" "$(awk '/le="1"}/{one=$2} /_count /{c=$2} END {printf "single=%d batches=%d", one, c}' "$RAW/batch-size.txt")"
        if want latency; then
            rate=$(( $(median throughput pg-mix) / 2 ))
            say "Postgres latency at half the max rate ($rate req/s, ${LAT_DUR}s)"
            oha_run pg-half "$rate" "$LAT_DUR" "http://127.0.0.1:$PORT/api/(start|end)stream/[0-9]{5}"
            say "Postgres latency at a light 1000 req/s (${LAT_DUR}s)"
            oha_run pg-light 1000 "$LAT_DUR" "http://127.0.0.1:$PORT/api/(start|end)stream/[0-9]{5}"
        fi
        if [ "$SYNC_OFF" = 1 ]; then
            say "durability trade-off: synchronous_commit=off ($RUNS runs of ${DUR}s)"
            "${PSQL[@]}" -c "ALTER SYSTEM SET synchronous_commit = off" -c "SELECT pg_reload_conf()" >/dev/null
            sleep 0.5
            for run in $(seq 1 "$(( RUNS < 3 ? RUNS : 3 ))"); do
                measured wrk_run throughput pg-mix-async "$run" "$DUR"
                [ -f "$RAW/floor_ours.sql" ] && measured pgbench_run floor-ours-async "$run" "$DUR" "$RAW/floor_ours.sql"
            done
            "${PSQL[@]}" -c "ALTER SYSTEM RESET synchronous_commit" -c "SELECT pg_reload_conf()" >/dev/null
        fi
        "${PSQL[@]}" -At -c "SELECT 'rows after the runs: viewers=' || (SELECT count(*) FROM viewers) || ' leases=' || (SELECT coalesce(sum(cardinality(leases)), 0) FROM viewers) || ' history=' || (SELECT count(*) FROM stream_history)" | tee "$RAW/pg-rows.txt"
    fi

    if want scale; then
        say "Postgres start latency with 10^3, 10^5, 10^6 active leases (${SCALE_RATE}/s for ${SCALE_DUR}s each)"
        "${PSQL[@]}" -c "TRUNCATE viewers, stream_history"
        have=0
        for target in 1000 100000 1000000; do
            t0=$(date +%s)
            # Viewers user:0 .. user:N-1 with one long lease each. The measured
            # starts use users 10000000-19999999, so every level runs the same
            # code path (a new viewer, admitted) and only the table size changes.
            "${PSQL[@]}" <<EOF
INSERT INTO viewers (viewer, started, leases, sweep_after)
  SELECT 'user:' || g, true,
         ARRAY[ROW(gen_random_uuid(), now(), now() + interval '30 days', 2592000000, NULL, NULL)::stream_lease],
         now() + interval '30 days'
    FROM generate_series($have, $((target - 1))) g;
VACUUM ANALYZE viewers;
CHECKPOINT;
EOF
            have=$target
            echo "  preloaded $target leases in $(( $(date +%s) - t0 ))s"
            oha_run "scale-$target" "$SCALE_RATE" "$SCALE_DUR" "http://127.0.0.1:$PORT/api/startstream/1[0-9]{7}"
        done
        if [ -f "$RAW/explain_start.sql" ]; then
            "${PSQL[@]}" -f "$RAW/explain_start.sql" > "$RAW/explain-start-1e6.txt" 2>&1 || true
            echo "  EXPLAIN ANALYZE of the start statement at 10^6 leases: $RAW/explain-start-1e6.txt"
            grep -E 'Seq Scan' "$RAW/explain-start-1e6.txt" | sed 's/^/    /' || true
        fi
    fi
    stop_server
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -t 60 stop >/dev/null || true
fi

# ---------------------------------------------------------------- memory per lease
if want lease-memory; then
    say "memory per active lease (in-memory store, 10^6 leases)"
    for per in 1 3; do
        out=$(timeout 300 "$TARGET_DIR/release/examples/lease_memory" 1000000 "$per")
        echo "  $out"
        record lease-memory "per-viewer-$per" 1 "$(echo "$out" | sed -n 's/.*bytes_per_lease=\([0-9.]*\).*/\1/p')"
    done
fi

# ---------------------------------------------------------------- criterion
if want criterion; then
    say "criterion micro-benchmarks (core hot path)"
    (cd "$ROOT" && timeout 900 cargo bench -p stream-limit-core --bench hot_path --quiet -- "${CRIT_ARGS[@]}") \
        > "$RAW/criterion.txt" 2>&1 || echo "  criterion failed, see $RAW/criterion.txt"
    python3 - "$RAW/criterion.txt" "$MEAS" <<'EOF'
import re, sys
text, meas = open(sys.argv[1]).read(), sys.argv[2]
scale = {"ps": 1e-3, "ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
for name, mid, unit in re.findall(r"^(\S.*?)\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", text, re.M):
    ns = float(mid) * scale[unit]
    open(meas, "a").write(f"criterion\t{name.strip()}\t1\t{ns:.1f}\t\n")
    print(f"  {name.strip():30s} {ns:10.1f} ns")
EOF
fi

# ---------------------------------------------------------------- report
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg); wall time $(( $(date +%s) - START_ALL ))s; waited for quiet: $(( QUIET_WAITED > QUIET_BUDGET ? QUIET_BUDGET : QUIET_WAITED ))s; noisy runs discarded and repeated: $(grep -c '^discarded-' "$MEAS" || true)" >> "$RAW/machine.txt"
python3 "$HERE/report.py" "$RAW" > "$RAW/table.md"
cp "$RAW/table.md" "$RESULTS/latest.md"
say "done in $(( $(date +%s) - START_ALL ))s; raw outputs in $RAW"
echo
cat "$RESULTS/latest.md"
