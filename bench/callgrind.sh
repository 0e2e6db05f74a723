#!/usr/bin/env bash
# Where the CPU goes, in instructions per event and per query, counted by valgrind's callgrind:
# repeatable on a shared, noisy machine where timings are not. Runs the real `usersync serve`
# under callgrind (one output file per thread) with a fixed workload:
#   1. ingest: N signed Clerk events over HTTPS from usersync-loadgen, 8 connections;
#   2. query: GET /v1/users/{id} with wrk over HTTPS for 15 s on the users of step 1.
# Prints, per event and per request, the instructions of the writer thread and of the HTTP
# threads, the inclusive cost of the service's own functions, and the top self costs.
#
# Usage: bench/callgrind.sh [--events N] [--no-build] [--out DIR]
# Needs root or sudo to install valgrind and wrk with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

events=3000 build=1 out=""
while (($#)); do
  case $1 in
    --events) events=${2:?--events needs a number}; shift ;;
    --no-build) build=0 ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/callgrind.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
die() { echo "bench/callgrind.sh: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }

as_root=()
[[ $(id -u) -eq 0 ]] || as_root=(sudo)
missing=()
for p in valgrind wrk; do command -v "$p" >/dev/null || missing+=("$p"); done
if ((${#missing[@]})); then
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
if ((build)); then
  mkdir -p build-bench
  { cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DUSERSYNC_BUILD_TESTS=OFF &&
    cmake --build build-bench -j"$(nproc)" --target usersync usersync-loadgen; } >build-bench/bench-build.log 2>&1 ||
    die "the build failed (see build-bench/bench-build.log)"
fi
bin=$repo/build-bench/usersync
loadgen=$repo/build-bench/bench/usersync-loadgen

mkdir -p "$repo/build-bench"
work=$(mktemp -d -p "$repo/build-bench" callgrind-work.XXXXXX)
out=${out:-$repo/build-bench/bench-results/callgrind-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
echo "whsec_$(head -c 32 /dev/urandom | base64 -w0)" >"$work/secret"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"

# start_under_callgrind NAME: the server on kernel-chosen ports, read back from its log.
start_under_callgrind() {
  local name=$1 log=$out/$1.log line
  : >"$log"
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/$name.%p" \
    "$bin" serve --data-dir "$work/data" --listen 127.0.0.1:0 --admin-listen none \
    --webhook-secret-file "$work/secret" --query-token-file "$work/token" --threads 2 \
    --backup-interval 0 >"$log" 2>&1 &
  server_pid=$! port=""
  for _ in $(seq 1 600); do
    while IFS= read -r line; do
      [[ $line =~ listening\ on\ https://127\.0\.0\.1:([0-9]+) ]] && port=${BASH_REMATCH[1]}
    done <"$log"
    [[ -n $port ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || die "usersync exited under valgrind: see $log"
    sleep 0.1
  done
  die "usersync did not start under valgrind within 60 s: see $log"
}

stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=""
}

# thread_files NAME: the per-thread output files of a run, as "writer" or "http" threads
# (the writer thread is the one that runs writer::run; completions it calls name sessions too).
thread_files() {
  local f
  for f in "$out/$1".*-[0-9]*; do
    [[ -e $f ]] || continue
    if grep -q 'usersync::writer::run' "$f"; then
      [[ $2 == writer ]] && echo "$f"
    elif grep -q 'http_session' "$f"; then
      [[ $2 == http ]] && echo "$f"
    fi
  done
}

# per_unit FILES... : "instructions-per-unit function" lines, summed over the files, for
# `annotate_args` (self or inclusive costs); divides by $units.
per_unit() {
  local f
  for f in "$@"; do callgrind_annotate "${annotate_args[@]}" "$f" 2>/dev/null; done |
    awk -v units="$units" '
      /^ *[0-9,]+ \(/ && !/PROGRAM TOTALS/ {
        n = $1; gsub(",", "", n)
        name = $0; sub(/^ *[0-9,]+ \( *[0-9.]+%\) +/, "", name); sub(/ \[[^]]*\]$/, "", name)
        sub(/^[^:]*:/, "", name)
        cost[name] += n
      }
      /PROGRAM TOTALS/ { n = $1; gsub(",", "", n); total += n }
      END {
        printf "%10.0f  TOTAL\n", total / units
        for (k in cost) printf "%10.0f  %s\n", cost[k] / units, k
      }' | sort -rn
}

report() { # TITLE UNITS FILES...
  local title=$1
  units=$2
  shift 2
  (($#)) || { echo "  (no thread files)"; return; }
  echo "$title: instructions per unit"
  annotate_args=(--inclusive=yes)
  echo "  inclusive, the service's own functions:"
  per_unit "$@" | awk 'NR == 1 || /usersync::|sqlite3_step|SSL_read|SSL_write|boost::json::parse\(|boost::json::serialize|spdlog::logger::log_it_/' |
    grep -v "_M_run\|::run()\|executor_function\|io_op<\|transfer_op\|read_some_op\|read_op<\|write_op<\|reactive_socket" |
    head -25 | cut -c1-160 | sed 's/^/    /'
  annotate_args=(--inclusive=no)
  echo "  self cost, top 15:"
  per_unit "$@" | sed -n '2,16p' | cut -c1-160 | sed 's/^/    /'
}

note "ingest under callgrind: $events events over HTTPS, 8 connections (takes a minute or two)"
start_under_callgrind ingest
"$loadgen" --url "https://127.0.0.1:$port/webhooks/clerk" --insecure --secret-file "$work/secret" \
  --connections 8 --events "$events" --users $((events / 10)) --run-id cg --timeout 60 \
  --json >"$out/ingest.json"
stop_server
acked=$(jq -r .acknowledged "$out/ingest.json")
((acked > 0)) || die "no event was acknowledged under valgrind (see $out/ingest.json)"

note "query under callgrind: wrk -t1 -c4 -d15s GET /v1/users/{id}"
start_under_callgrind query
wrk -t1 -c4 -d15s -s "$repo/bench/query.lua" -H "Authorization: Bearer $(cat "$work/token")" \
  "https://127.0.0.1:$port/v1/users/" -- cg $((events / 10)) >"$out/query.wrk" 2>&1
stop_server
requests=$(awk '/requests in/ { print $1 }' "$out/query.wrk")

{
  echo "# callgrind profile of usersync, $(date -u +%Y-%m-%dT%H:%MZ) ($(nproc) cores, $(uname -r))"
  echo "ingest: $acked events acknowledged over HTTPS (8 connections, Clerk-shaped bodies ~3 KB)"
  echo "query:  ${requests:-0} GET /v1/users/{id} over HTTPS (wrk, 4 connections)"
  echo "HTTP-thread counts include the server's start-up (migrations, TLS set-up) on the main thread."
  echo
  report "ingest, writer thread, per event" "$acked" $(thread_files ingest writer)
  echo
  report "ingest, HTTP threads, per event" "$acked" $(thread_files ingest http)
  echo
  report "query, HTTP threads, per request" "${requests:-1}" $(thread_files query http)
} | tee "$out/summary.txt"
echo "(callgrind files: $out; open them with callgrind_annotate or kcachegrind)"
