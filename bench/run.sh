#!/usr/bin/env bash
# Benchmarks usersync on this machine, generator included, and prints the method and one
# table of figures with ratios against baselines measured in the same run:
#   - ingest (signed Clerk webhooks, every answer after a durable commit) over HTTPS and HTTP
#     at concurrency 1, 16, 64 and 256, with group commit on, and off (--writer-max-batch 1)
#     as the baseline; events per commit from the writer's counters on /metrics;
#   - latency at a fixed 1,000 events/s (from the scheduled send time);
#   - GET /v1/users/{id} with wrk on keep-alive connections over a database of 100k users,
#     against GET /healthz on the same listener as the baseline;
#   - server RSS (VmHWM) under load, and start-up time (exec to /healthz answering).
# Every server is the real `usersync serve` on loopback with its own data directory on disk.
#
# Usage: bench/run.sh [--quick] [--no-build] [--no-profile] [--out DIR]
#   --quick       a 1-2 minute smoke version (fewer, shorter runs; 20k users for queries)
#   --no-build    use the binaries already in build-bench/
#   --no-profile  skip perf (syscall counts and CPU profiles of the main configurations)
#   --out DIR     where the per-run JSON, logs and summary go (default build-bench/bench-results/DATE)
# Needs root or sudo to install wrk (and linux-perf, jq, curl) with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

quick=0 build=1 profile=1 out=""
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --no-build) build=0 ;;
    --no-profile) profile=0 ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "bench/run.sh: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }

# --- sizes: the full run stays under ~10 minutes on 2 cores, --quick under ~2 ---
if ((quick)); then
  concurrencies=(1 64) ingest_seconds=3 rate_seconds=5 wrk_seconds=3 query_users=20000
else
  concurrencies=(1 16 64 256) ingest_seconds=8 rate_seconds=20 wrk_seconds=10 query_users=100000
fi
transports=(https http)
rate=1000
port="" admin_port=""

# --- tools ---
as_root=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || die "run as root or install sudo (apt-get installs wrk and perf)"
  as_root=(sudo)
fi

install_tools() {
  "$repo/scripts/install-deps.sh"
  local wanted=(wrk jq curl) missing=()
  ((profile)) && wanted+=(linux-perf)
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    note "installing ${missing[*]}"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
  if ((profile)) && ! perf stat -e 'syscalls:sys_enter_fdatasync' true >/dev/null 2>&1; then
    note "perf cannot read syscall tracepoints here (perf_event_paranoid, or a container): profiles off"
    profile=0
  fi
}

build_all() {
  mkdir -p build-bench
  { cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DUSERSYNC_BUILD_TESTS=OFF &&
    cmake --build build-bench -j"$(nproc)" --target usersync usersync-loadgen; } >build-bench/bench-build.log 2>&1 ||
    { tail -30 build-bench/bench-build.log >&2; die "the build failed (full log: build-bench/bench-build.log)"; }
}

install_tools
((build)) && { note "building Release in build-bench/"; build_all; }
bin=$repo/build-bench/usersync
loadgen=$repo/build-bench/bench/usersync-loadgen
[[ -x $bin && -x $loadgen ]] || die "build-bench/ has no usersync or usersync-loadgen: run without --no-build"

# --- a work directory on disk (not tmpfs: fsync must cost what it costs), inside build-bench/
# where no other job on this shared machine cleans up ---
work=$(mktemp -d -p "$repo/build-bench" bench-work.XXXXXX)
out=${out:-$repo/build-bench/bench-results/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
shm=""
[[ -d /dev/shm ]] && shm=$(mktemp -d -p /dev/shm loadgen-ceiling.XXXXXX)
data_root=$work
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work" ${shm:+"$shm"}
}
trap cleanup EXIT
echo "whsec_$(head -c 32 /dev/urandom | base64 -w0)" >"$work/secret"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
token=$(cat "$work/token")
clk_tck=$(getconf CLK_TCK)
cores=$(nproc)

# Milliseconds per 4 KiB O_DSYNC write on the work directory's disk, over $1 writes: the
# disk is shared, and its fsync latency moves the durable figures more than anything else.
dsync_ms() {
  dd if=/dev/zero of="$work/dsync-probe" bs=4k count="$1" oflag=dsync 2>&1 |
    awk -v n="$1" '/copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) { printf "%.2f", $(i - 1) * 1000 / n } }'
  rm -f "$work/dsync-probe"
}

# --- the server ---
# The start-up poll loop forks nothing: a fork per check would cost more than what it measures.
now_ns() { local t=${EPOCHREALTIME/./}; echo $((t * 1000)); }
mkfifo "$work/never"
exec 9<>"$work/never"
nap() { read -r -t "$1" -u 9 || true; }  # sleeps $1 seconds without a fork

healthz_ok() {
  [[ -n $admin_port ]] || return 1
  { exec 3<>"/dev/tcp/127.0.0.1/$admin_port"; } 2>/dev/null || return 1
  printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  local line=""
  IFS= read -r -t 2 line <&3 || true
  exec 3<&- 3>&-
  [[ $line == *" 200 "* ]]
}

# start_server NAME DATA_DIR https|http WRITER_MAX_BATCH: sets server_pid, port, admin_port and
# startup_ms (exec to /healthz answering). Both ports are picked by the kernel (port 0) and
# read from the log, so runs never collide with another server on this shared machine.
start_server() {
  local name=$1 dir=$2 transport=$3 batch=$4
  local log=$out/$name.log
  local args=(serve --data-dir "$dir" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0
    --webhook-secret-file "$work/secret" --query-token-file "$work/token" --threads 2
    --writer-max-batch "$batch" --backup-interval 0)
  [[ $transport == http ]] && args+=(--plain-http)
  local t0 deadline line
  : >"$log"  # exists before the loop below reads it
  t0=${EPOCHREALTIME/./}
  "$bin" "${args[@]}" >"$log" 2>&1 &
  server_pid=$!
  deadline=$((t0 + 20000000))
  port="" admin_port=""
  until [[ -n $port && -n $admin_port ]] && healthz_ok; do
    kill -0 "$server_pid" 2>/dev/null || die "usersync exited at start: see $log"
    ((${EPOCHREALTIME/./} < deadline)) || die "usersync did not answer /healthz within 20 s: see $log"
    while IFS= read -r line; do
      [[ $line =~ listening\ on\ $transport://127\.0\.0\.1:([0-9]+) ]] && port=${BASH_REMATCH[1]}
      [[ $line =~ admin\ endpoints\ on\ http://127\.0\.0\.1:([0-9]+) ]] && admin_port=${BASH_REMATCH[1]}
    done <"$log"
    [[ -n $port && -n $admin_port ]] || nap 0.001
  done
  startup_ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
}

stop_server() {
  kill -TERM "$server_pid"
  local i
  for i in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; nap 0.05; done
  kill -0 "$server_pid" 2>/dev/null && { note "usersync ignored SIGTERM for 15 s: killing it"; kill -KILL "$server_pid"; }
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

metric() { curl -s "http://127.0.0.1:$admin_port/metrics" | awk -v n="$1" '$1 == n { print $2; exit }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; }
write_bytes() { awk '/^write_bytes/ { print $2 }' "/proc/$server_pid/io"; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$server_pid/status"; }
last_hwm_kb=0
track_hwm() { last_hwm_kb=$(hwm_kb); }

# --- profiles (perf): syscall counts and where the CPU goes, for the runs that set targets ---
perf_pids=()
profile_start() { # NAME: counts syscalls and samples stacks of the server until profile_stop
  ((profile)) || return 0
  perf stat -x, -e 'syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,syscalls:sys_enter_pwrite64' \
    -p "$server_pid" -o "$out/$1.perf-stat" >/dev/null 2>&1 &
  perf_pids+=($!)
  perf record -q -F 499 -g -p "$server_pid" -o "$out/$1.perf.data" >/dev/null 2>&1 &
  perf_pids+=($!)
}
profile_stop() { # NAME: stops perf (SIGINT makes it write its output) and keeps the top symbols
  ((profile)) && ((${#perf_pids[@]})) || return 0
  kill -INT "${perf_pids[@]}" 2>/dev/null || true
  wait "${perf_pids[@]}" 2>/dev/null || true
  perf_pids=()
  perf report -i "$out/$1.perf.data" --no-children --sort comm,dso,sym --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -20 >"$out/$1.perf-top.txt" || true
}
syscall_count() { # NAME SYSCALL
  [[ -f $out/$1.perf-stat ]] || { echo ""; return; }
  awk -F, -v e="syscalls:sys_enter_$2" '$3 == e { print $1 }' "$out/$1.perf-stat"
}

# --- the load ---
# run_loadgen NAME TRANSPORT CONNECTIONS EVENTS USERS SECONDS RATE [extra...]
run_loadgen() {
  local name=$1 transport=$2 conns=$3 events=$4 users=$5 seconds=$6 rate=$7
  shift 7
  local tls=()
  [[ $transport == https ]] && tls=(--cafile "$data_root/$name/tls/dev-cert.pem")
  "$loadgen" --url "$transport://127.0.0.1:$port/webhooks/clerk" "${tls[@]}" \
    --secret-file "$work/secret" --connections "$conns" --events "$events" --users "$users" \
    --duration "$seconds" --rate "$rate" --label "$name" "$@" --json >"$out/$name.json"
}

j() { jq -r "$1" "$out/$2.json"; }

results=$out/ingest.tsv
printf 'name\ttransport\tconns\tbatch\trate\tevents_s\tp50\tp90\tp99\tmax\tnon2xx\terrors\tper_commit\tkb_per_event\tcpu_us_per_event\tcpu_util\thwm_kb\tverify\tfdatasync_per_commit\tgen_cpu_us_per_event\tdsync_ms\tother_cpu\n' >"$results"

# ingest TRANSPORT CONNECTIONS BATCH [RATE SECONDS [DATA_ROOT]]
# With DATA_ROOT on tmpfs the run is named ceiling-*: fsync costs nothing there, so it shows
# what the CPU alone allows (not durable; for the analysis only).
ingest() {
  local transport=$1 conns=$2 batch=$3 rate=${4:-0} seconds=${5:-$ingest_seconds} root=${6:-$work}
  local name="ingest-$transport-c$conns-b$batch" events
  ((rate > 0)) && name="rate$rate-$transport-c$conns-b$batch"
  [[ $root != "$work" ]] && name="ceiling-$transport-c$conns-b$batch"
  events=$((conns * 2500 < 20000 ? 20000 : conns * 2500))
  ((events > 160000)) && events=160000
  ((rate > 0)) && events=$((rate * seconds))
  probe_ms=$(dsync_ms 50)
  start_server "$name" "$root/$name" "$transport" "$batch"
  local cpu0 io0 cpu1 io1 commits deliveries
  cpu0=$(cpu_ticks) io0=$(write_bytes)
  [[ $conns == 64 && $rate == 0 && $transport == https && $batch != 1 ]] && profile_start "$name"
  data_root=$root run_loadgen "$name" "$transport" "$conns" "$events" $((events / 10 + 1)) "$seconds" "$rate" \
    --verify-db "$root/$name/usersync.db" || note "$name: loadgen reported a failure (see $out/$name.json)"
  cpu1=$(cpu_ticks) io1=$(write_bytes)
  profile_stop "$name"
  commits=$(metric usersync_writer_commits_total) deliveries=$(metric usersync_writer_deliveries_committed_total)
  track_hwm
  stop_server
  record_ingest "$name" "$transport" "$conns" "$batch" "$rate" "$((cpu1 - cpu0))" "$((io1 - io0))" \
    "$commits" "$deliveries" "$last_hwm_kb"
}

record_ingest() {
  local name=$1 transport=$2 conns=$3 batch=$4 rate=$5 ticks=$6 bytes=$7 commits=$8 deliveries=$9 hwm=${10}
  local acked secs per_commit="n/a" fsyncs="" per_sync="n/a"
  acked=$(j .acknowledged "$name") secs=$(j .seconds "$name")
  [[ -n $commits && $commits != 0 ]] && per_commit=$(awk -v d="$deliveries" -v c="$commits" 'BEGIN { printf "%.1f", d / c }')
  fsyncs=$(syscall_count "$name" fdatasync)
  [[ -n $fsyncs && -n $commits && $commits != 0 ]] && per_sync=$(awk -v f="$fsyncs" -v c="$commits" 'BEGIN { printf "%.2f", f / c }')
  awk -v OFS='\t' -v name="$name" -v t="$transport" -v c="$conns" -v b="$batch" -v r="$rate" \
    -v eps="$(j .events_per_s "$name")" -v p50="$(j .p50_ms "$name")" -v p90="$(j .p90_ms "$name")" \
    -v p99="$(j .p99_ms "$name")" -v max="$(j .max_ms "$name")" -v n2="$(j .non_2xx "$name")" \
    -v err="$(j .errors "$name")" -v pc="$per_commit" -v bytes="$bytes" -v acked="$acked" \
    -v ticks="$ticks" -v hz="$clk_tck" -v secs="$secs" -v hwm="$hwm" \
    -v ok="$(j 'if .verify.ok then "ok" else "FAILED" end' "$name")" -v ps="$per_sync" \
    -v gen="$(j '.generator_cpu_us_per_event | floor' "$name")" -v probe="$probe_ms" \
    -v machine="$(j .machine_cpu_seconds "$name")" -v gens="$(j .generator_cpu_seconds "$name")" \
    -v cores="$cores" 'BEGIN {
      a = acked > 0 ? acked : 1
      print name, t, c, b, r, sprintf("%.0f", eps), p50, p90, p99, max, n2, err, pc,
            sprintf("%.1f", bytes / 1024 / a), sprintf("%.0f", ticks / hz * 1e6 / a),
            sprintf("%.0f%%", secs > 0 ? ticks / hz / secs * 100 : 0), hwm, ok, ps, gen, probe,
            sprintf("%.0f%%", secs > 0 ? (machine - ticks / hz - gens) / (secs * cores) * 100 : 0) }' >>"$results"
  note "$name: $(j '"\(.events_per_s|floor) events/s, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, non-2xx \(.non_2xx), errors \(.errors)"' "$name"), events/commit $per_commit"
}

# --- start-up: exec to /healthz answering, median of three ---
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
startup() { # NAME DATA_DIR: prints the median start-up in ms
  local i times=()
  for i in 1 2 3; do
    [[ $1 == fresh ]] && rm -rf "$2"
    start_server "startup-$1" "$2" https 256
    times+=("$startup_ms")
    stop_server
  done
  median3 "${times[@]}"
}

# --- queries: wrk against GET /v1/users/{id} and GET /healthz on the same listener ---
query_results=$out/query.tsv
printf 'transport\tpath\treq_s\tp50\tp99\tnon2xx\thwm_kb\n' >"$query_results"
run_wrk() { # NAME TRANSPORT PATH [lua args]
  local name=$1 transport=$2 path=$3
  shift 3
  local script=()
  (($#)) && script=(-s "$repo/bench/query.lua")
  wrk -t2 -c64 -d"${wrk_seconds}s" --latency "${script[@]}" -H "Authorization: Bearer $token" \
    "$transport://127.0.0.1:$port$path" ${1:+--} "$@" >"$out/$name.wrk" 2>&1
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$out/$name.wrk")
  p50=$(awk '$1 == "50%" { print $2 }' "$out/$name.wrk")
  p99=$(awk '$1 == "99%" { print $2 }' "$out/$name.wrk")
  non2xx=$(awk '/Non-2xx/ { print $NF }' "$out/$name.wrk")
  track_hwm
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$transport" "$path" "$rps" "$p50" "$p99" "${non2xx:-0}" "$last_hwm_kb" >>"$query_results"
  note "$name: $rps req/s, p50 $p50, p99 $p99, non-2xx ${non2xx:-0}"
}

queries() {
  local dir=$work/query prefix=q$query_users
  prefix=${prefix:0:8}
  note "prefill: $query_users users through the service (user.created only, HTTP, 256 connections)"
  start_server prefill "$dir" http 256
  local t0; t0=$(now_ns)
  run_loadgen prefill http 256 "$query_users" "$query_users" 0 0 --run-id "$prefix" --verify-db "$dir/usersync.db" ||
    die "prefill failed: see $out/prefill.json"
  prefill_s=$(awk -v ns=$(($(now_ns) - t0)) 'BEGIN { printf "%.1f", ns / 1e9 }')
  stop_server
  warm_startup_ms=$(startup warm "$dir")
  for transport in "${transports[@]}"; do
    start_server "query-$transport" "$dir" "$transport" 256
    [[ $transport == https ]] && profile_start "query-$transport"
    run_wrk "query-$transport" "$transport" /v1/users/ "$prefix" "$query_users"
    [[ $transport == https ]] && profile_stop "query-$transport"
    run_wrk "healthz-$transport" "$transport" /healthz
    stop_server
  done
}

# --- machine and method ---
print_machine() {
  local model kernel fs dsync
  model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  kernel=$(uname -r)
  fs=$(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 }')
  dsync=$(dsync_ms 200)
  cat <<EOF
# usersync benchmarks, $(date -u +%Y-%m-%dT%H:%MZ)
machine   $(nproc) cores, $model, kernel $kernel, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
storage   $fs; one 4 KiB write with O_DSYNC takes ${dsync} ms (dd, 200 writes)
load      $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15-min load average before the run; the machine is shared)
service   usersync serve --threads 2, TLS with its dev P-256 certificate, synchronous=FULL,
          logging one info line per request to a file, backups off; a fresh data dir per run
generator usersync-loadgen: 1 thread, keep-alive, one request in flight per connection,
          Clerk-shaped events (~10 per user: created, updated, 10% deleted) signed before the
          clock starts; every acknowledged effect checked in the database afterwards
EOF
}

print_machine | tee "$out/summary.md"
started=$(now_ns)
note "start-up on a fresh data directory"
fresh_startup_ms=$(startup fresh "$work/startup-fresh")
for transport in "${transports[@]}"; do
  for conns in "${concurrencies[@]}"; do
    ingest "$transport" "$conns" 1
    ingest "$transport" "$conns" 256
  done
done
if [[ -n $shm ]]; then
  note "CPU ceiling: HTTPS, 64 connections, data directory on tmpfs (fsync is free; not durable)"
  ingest https 64 256 0 "$ingest_seconds" "$shm"
fi
note "fixed rate: $rate events/s for $rate_seconds s"
ingest https 16 1 "$rate" "$rate_seconds"
ingest https 16 256 "$rate" "$rate_seconds"
queries
elapsed_s=$((($(now_ns) - started) / 1000000000))

printf 'rate=%s\nquery_users=%s\nfresh_startup_ms=%s\nwarm_startup_ms=%s\nprefill_s=%s\n' \
  "$rate" "$query_users" "$fresh_startup_ms" "$warm_startup_ms" "$prefill_s" >"$out/facts.env"
source "$repo/bench/report.sh"
print_report | tee -a "$out/summary.md"
echo "(raw figures, logs and profiles: $out; the whole run took ${elapsed_s} s; load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
