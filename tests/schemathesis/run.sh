#!/usr/bin/env bash
# Property-based check of the HTTP API against its own OpenAPI 3.1 document.
#
# usage: run.sh <venv-dir> <spec-url> <base-url> [extra schemathesis run args...]
#   e.g. run.sh target/st-venv http://127.0.0.1:9090/admin/openapi.json http://127.0.0.1:9090 \
#          -H 'X-API-Key: test-key'
#
# 1. Prints `schemathesis seed: N (replay with ST_SEED=N)` as its first line.
# 2. Makes <venv-dir> a venv with requirements.txt installed (re-created when
#    requirements.txt or the interpreter changes; a stamp file records both).
# 3. Downloads the spec and validates it as OpenAPI 3.1 with
#    openapi-spec-validator; exits 3 with the validator's message if invalid.
# 4. Runs schemathesis on the spec URL against <base-url> and exits with its
#    exit code (0 pass, 1 failures found, other: usage/schema/network errors).
#
# Environment:
#   ST_SEED             seed (default: random, printed on the first line)
#   ST_MAX_EXAMPLES     test cases per operation and phase (default 30)
#   ST_REQUEST_TIMEOUT  seconds per request (default 10)
#   ST_SHRINK=1         shrink failing examples to a minimal one (slower; off
#                       by default so that a failing run stays short)
#   PYTHON              interpreter that makes the venv (default python3)
#
# No sudo, nothing written outside <venv-dir> except a temp file (removed) and
# <venv-dir>.lock.
set -euo pipefail

usage() {
    sed -n '4,6s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}
[[ $# -ge 3 ]] || usage
venv_dir=$1 spec_url=$2 base_url=$3
shift 3

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# --- seed: first line of output, before anything can fail or print --------
if [[ -n "${ST_SEED:-}" ]]; then
    is_uint "$ST_SEED" || { echo "run.sh: ST_SEED must be a non-negative integer, got '$ST_SEED'" >&2; exit 2; }
    seed=$ST_SEED
else
    # 30 random bits; hypothesis takes any integer.
    seed=$(( (RANDOM << 15) | RANDOM ))
fi
echo "schemathesis seed: $seed (replay with ST_SEED=$seed)"

max_examples=${ST_MAX_EXAMPLES:-30}
if ! is_uint "$max_examples" || (( 10#$max_examples < 1 )); then
    echo "run.sh: ST_MAX_EXAMPLES must be a positive integer, got '$max_examples'" >&2
    exit 2
fi
max_examples=$((10#$max_examples))
request_timeout=${ST_REQUEST_TIMEOUT:-10}
[[ $request_timeout =~ ^[0-9]+(\.[0-9]+)?$ ]] \
    || { echo "run.sh: ST_REQUEST_TIMEOUT must be a number of seconds, got '$request_timeout'" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
requirements=$here/requirements.txt
config=$here/schemathesis.toml
python=${PYTHON:-python3}

# --- venv ------------------------------------------------------------------
venv_dir=${venv_dir%/}
mkdir -p "$(dirname "$venv_dir")"
venv_dir=$(cd "$(dirname "$venv_dir")" && pwd)/$(basename "$venv_dir")
stamp=$venv_dir/.requirements.stamp
want="$(sha256sum "$requirements" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

ensure_venv() {
    if [[ -x "$venv_dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    if [[ -e "$venv_dir" && ! -f "$venv_dir/pyvenv.cfg" && -n "$(ls -A "$venv_dir" 2>/dev/null)" ]]; then
        echo "run.sh: $venv_dir exists, is not empty and is not a venv; refusing to clear it" >&2
        exit 2
    fi
    echo "run.sh: installing $(basename "$requirements") into $venv_dir" >&2
    rm -f "$stamp"
    # --clear: a venv whose requirements changed is rebuilt from nothing, so it
    # holds exactly what requirements.txt pins (no leftovers of older pins).
    "$python" -m venv --clear "$venv_dir"
    "$venv_dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$requirements" >&2
    echo "$want" >"$stamp"
}

# Two tests sharing one venv must not build it at the same time.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$venv_dir.lock"
    flock 9
    ensure_venv
    flock -u 9
    exec 9>&-
else
    ensure_venv
fi
vpython=$venv_dir/bin/python

# --- download and validate the spec -----------------------------------------
spec_file=$(mktemp "${TMPDIR:-/tmp}/st-spec.XXXXXX")
trap 'rm -f "$spec_file"' EXIT
# The extra `-H 'Name: value'` arguments (an API key) go with the download too.
headers=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
        -H | --header) headers+=("${args[i + 1]:-}") ;;
        --header=*) headers+=("${args[i]#--header=}") ;;
    esac
done
"$vpython" - "$spec_url" "$spec_file" "${headers[@]}" <<'PY' || exit 3
import shutil, sys, urllib.request
url, dest, headers = sys.argv[1], sys.argv[2], sys.argv[3:]
request = urllib.request.Request(url)
for header in headers:
    name, _, value = header.partition(":")
    request.add_header(name.strip(), value.strip())
try:
    with urllib.request.urlopen(request, timeout=30) as resp, open(dest, "wb") as out:
        shutil.copyfileobj(resp, out)
except Exception as exc:  # noqa: BLE001
    sys.exit(f"run.sh: could not download the spec: GET {url}: {exc}")
PY
# --schema 3.1: the document must be OpenAPI 3.1 (a 3.0 document fails on
# its `openapi` field). It reports the first error only: with
# `--validation-errors all`, 0.9.0 crashes on a document that breaks the
# meta-schema and prints an empty "Error:".
if ! validation=$("$venv_dir/bin/openapi-spec-validator" --schema 3.1 "$spec_file" 2>&1); then
    echo "run.sh: $spec_url is not a valid OpenAPI 3.1 document:" >&2
    echo "${validation//$spec_file/$spec_url}" >&2
    exit 3
fi
rm -f "$spec_file"
trap - EXIT

# --- schemathesis ------------------------------------------------------------
# Checks: `--checks all` turns on every built-in check (4.x enables them all by
# default too; naming it keeps the run the same if a default changes):
#   not_a_server_error, status_code_conformance, content_type_conformance,
#   response_schema_conformance (validates formats such as uuid, date-time),
#   response_headers_conformance (required response headers, e.g. Location),
#   positive_data_acceptance, negative_data_rejection, missing_required_header,
#   unsupported_method (405 + an Allow header for undeclared methods),
#   allow_header_conformance (Allow of OPTIONS matches the spec),
#   use_after_free, ensure_resource_availability, ignored_auth,
#   object_level_authorization.
# None is excluded. Why the ones that look like false positives for an API
# that documents 401/404/409/410 are not:
#   - positive_data_acceptance accepts 2xx, 3xx, 401, 403, 404, 409, 429 (and
#     5xx, left to not_a_server_error) for valid data; schemathesis.toml adds
#     410. A refusal at the stream limit (401 on /watch, 409 on REST) and an
#     unknown stream (404) are therefore not failures.
#   - negative_data_rejection accepts 400, 401, 403, 404, 405, 406, 409, 415,
#     422, 428, 429, 5xx for invalid data (410 added in schemathesis.toml); it
#     fails only when invalid data gets 2xx/3xx. It also skips mutations that
#     are still valid once serialised (e.g. extra header/query properties).
#   - ignored_auth only looks at 2xx answers of operations whose `security`
#     needs a key: it resends them without the key and with a wrong key and
#     wants 401/403 (a redirect also counts). 401 for a refusal does not
#     matter. Operations with `security: [{}]` (health, metrics) are skipped.
#   - use_after_free fires only on a 2xx/3xx to a GET/HEAD/OPTIONS/PATCH/DELETE
#     after a successful DELETE of the same resource in one stateful scenario;
#     repeated DELETEs (idempotent) and POSTs (e.g. a heartbeat, which gets
#     410 after an end) are exempt.
#   - ensure_resource_availability fires only on a 404 to a request all of
#     whose parameters came from links of a POST that created the resource,
#     with no successful DELETE in between: a 404 for a stream just started.
#   - object_level_authorization needs several configured identities; with
#     one X-API-Key it has nothing to compare and passes.
#   - max_response_time is not part of `all` (it needs a limit); pass
#     `--max-response-time SECONDS` as an extra argument to use it.
#
# Phases: examples (the spec's own examples), coverage (boundary and invalid
# values per parameter), fuzzing (random positive and negative cases) and
# stateful (sequences that follow the spec's OpenAPI links, plus links
# schemathesis infers from Location headers and response schemas).
#
# Bounded runtime: --max-examples caps the cases per operation (and the
# scenarios of the stateful phase); no --max-time, which would make fuzzing and
# stateful repeat until the budget is spent; --no-shrink unless ST_SHRINK=1;
# --request-timeout so a hung request fails instead of hanging the run.
#
# Reproducible: --seed, --workers 1 (one request at a time, so the server sees
# the same sequence), --generation-database none (no ./.hypothesis example
# database replaying earlier failures), and the cross-run cache is off in
# schemathesis.toml. --generation-deterministic is not used: a seed takes
# precedence over it, and with it every run would test the same inputs.
shrink=(--no-shrink)
[[ "${ST_SHRINK:-0}" == 1 ]] && shrink=()

# Hypothesis keeps derived data (unicode tables, constants) in
# ./.hypothesis unless told otherwise; keep it in the venv, not in the
# caller's working directory (a cargo test runs in the crate's directory).
export HYPOTHESIS_STORAGE_DIRECTORY=$venv_dir/hypothesis

cmd=(
    "$venv_dir/bin/schemathesis" --no-color --config-file "$config"
    run "$spec_url"
    --url "$base_url"
    --checks all
    --phases 'examples,coverage,fuzzing,stateful'
    --mode all
    --max-examples "$max_examples"
    --seed "$seed"
    "${shrink[@]}"
    --generation-database none
    --workers 1
    --request-timeout "$request_timeout"
    "$@"
)
# The command line, with header values hidden (they may be credentials).
printf 'run.sh:' >&2
hide_next=0
for arg in "${cmd[@]}"; do
    if (( hide_next )); then arg="${arg%%:*}: ***"; hide_next=0; fi
    [[ $arg == -H || $arg == --header ]] && hide_next=1
    [[ $arg == -H?* || $arg == --header=* ]] && arg="${arg%%:*}: ***"
    printf ' %q' "$arg" >&2
done
printf '\n' >&2
exec "${cmd[@]}"
