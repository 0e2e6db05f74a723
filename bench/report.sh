#!/usr/bin/env bash
# Turns the files bench/run.sh leaves in its results directory into the Markdown report of
# docs/benchmarks.md, with ratios against the baselines of the same run, and checks the
# targets of issue #7. bench/run.sh sources it; `bench/report.sh DIR` prints it again later.
# Reads DIR/ingest.tsv, DIR/query.tsv, DIR/facts.env (rate, query_users, start-up times,
# prefill time), DIR/prefill.json and DIR/*.perf-stat.

# One row per configuration with group commit on, and its baseline (off) right below it.
print_ingest_table() {
  echo
  echo "### Ingest: durable events/s (answers after a synchronous=FULL commit), closed loop"
  echo
  echo "| transport | conns | group commit | events/s | × vs off | p50 ms | p90 ms | p99 ms | max ms | events/commit | KiB written/event | server CPU µs/event | server CPU | generator CPU µs/event | non-2xx | errors | verify | O_DSYNC write ms (probe) | other tenants' CPU |"
  echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
  awk -F'\t' '$1 ~ /^ingest-/ { key = $2 "-" $3; row[key, $4] = $0; if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
    END {
      for (i = 1; i <= n; i++) {
        k = order[i]; split(row[k, 256], on, "\t"); split(row[k, 1], off, "\t")
        ratio = off[6] > 0 ? sprintf("%.2f", on[6] / off[6]) : "n/a"
        printf "| %s | %s | on (256) | %s | **%s** | %.2f | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
          on[2], on[3], on[6], ratio, on[7], on[8], on[9], on[10], on[13], on[14], on[15], on[16], on[20], on[11], on[12], on[18], on[21], on[22]
        printf "| %s | %s | off (1) | %s | 1.00 | %.2f | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
          off[2], off[3], off[6], off[7], off[8], off[9], off[10], off[13], off[14], off[15], off[16], off[20], off[11], off[12], off[18], off[21], off[22]
      }
    }' "$results"
}

print_rate_table() {
  echo
  echo "### Fixed rate: $rate events/s over HTTPS, 16 connections, latency from the scheduled send time"
  echo
  echo "| group commit | events/s | p50 ms | p90 ms | p99 ms | max ms | events/commit | non-2xx | errors | verify | O_DSYNC write ms (probe) | other tenants' CPU |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
  awk -F'\t' '$1 ~ /^rate/ {
      printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s | %s |\n",
        ($4 == 1 ? "off (1)" : "on (256)"), $6, $7, $8, $9, $10, $13, $11, $12, $18, $21, $22 }' "$results"
}

# The same HTTPS c64 configuration with its data directory on tmpfs, next to the durable one.
print_ceiling_table() {
  grep -q '^ceiling-' "$results" || return 0
  echo
  echo "### CPU ceiling: HTTPS, 64 connections, group commit on, data directory on tmpfs (fsync free, not durable)"
  echo
  echo "| storage | events/s | × vs disk | p50 ms | p99 ms | events/commit | server CPU µs/event | server CPU | generator CPU µs/event | other tenants' CPU |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' '$1 == "ingest-https-c64-b256" { disk = $0 } $1 == "ceiling-https-c64-b256" { shm = $0 }
    END {
      split(disk, d, "\t"); split(shm, m, "\t")
      printf "| disk (ext4) | %s | 1.00 | %.2f | %.2f | %s | %s | %s | %s | %s |\n", d[6], d[7], d[9], d[13], d[15], d[16], d[20], d[22]
      ratio = d[6] > 0 ? m[6] / d[6] : 0
      printf "| tmpfs | %s | **%.2f** | %.2f | %.2f | %s | %s | %s | %s | %s |\n", m[6], ratio, m[7], m[9], m[13], m[15], m[16], m[20], m[22]
    }' "$results"
}

print_query_table() {
  echo
  echo "### Queries: wrk -t2 -c64, keep-alive, $query_users users, a random user per request"
  echo
  echo "| transport | request | req/s | × vs /healthz | p50 | p99 | non-2xx |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  awk -F'\t' 'NR > 1 { rps[$1, $2] = $3; line[++n] = $0 }
    END {
      for (i = 1; i <= n; i++) {
        split(line[i], f, "\t"); base = rps[f[1], "/healthz"]
        what = f[2] == "/healthz" ? "GET /healthz (baseline)" : "GET /v1/users/{id}"
        ratio = f[2] == "/healthz" ? "1.00" : (base > 0 ? sprintf("%.2f", f[3] / base) : "n/a")
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", f[1], what, f[3], ratio, f[4], f[5], f[6]
      }
    }' "$query_results"
}

# A field of the TSV row whose name is $1 (column $2).
ingest_field() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$results"; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo "met"; else echo "MISSED"; fi; }

print_targets() {
  local eps p99 rate_p99 q_https q_http hwm_mb
  eps=$(ingest_field ingest-https-c64-b256 6) p99=$(ingest_field ingest-https-c64-b256 9)
  rate_p99=$(ingest_field "rate$rate-https-c16-b256" 9)
  [[ -n $p99 ]] && p99=$(printf '%.2f' "$p99")
  [[ -n $rate_p99 ]] && rate_p99=$(printf '%.2f' "$rate_p99")
  q_https=$(awk -F'\t' '$1 == "https" && $2 == "/v1/users/" { print $3 }' "$query_results")
  q_http=$(awk -F'\t' '$1 == "http" && $2 == "/v1/users/" { print $3 }' "$query_results")
  # The highest VmHWM of every server of the run: column 17 of ingest.tsv, 7 of query.tsv.
  max_hwm_kb=$(awk -F'\t' 'FNR > 1 { v = FILENAME ~ /query/ ? $7 : $17; if (v > m) m = v } END { print m + 0 }' "$results" "$query_results")
  hwm_mb=$(awk -v k="$max_hwm_kb" 'BEGIN { printf "%.1f", k / 1024 }')
  echo
  echo "### Targets (2 cores, generator included)"
  echo
  echo "| target | measured | verdict |"
  echo "|---|---|---|"
  if [[ -n $eps ]]; then
    echo "| ≥ 20,000 durable events/s over HTTPS at concurrency 64, p99 < 10 ms | $eps events/s, p99 $p99 ms | $(verdict "$eps >= 20000 && $p99 < 10") |"
  fi
  echo "| p99 < 2 ms at $rate events/s | p99 ${rate_p99:-n/a} ms | $(verdict "${rate_p99:-999} < 2") |"
  echo "| GET /v1/users/{id} ≥ 40,000 req/s | HTTPS ${q_https:-n/a}, HTTP ${q_http:-n/a} req/s | HTTPS $(verdict "${q_https:-0} >= 40000"), HTTP $(verdict "${q_http:-0} >= 40000") |"
  echo "| RSS < 64 MB | highest VmHWM of every server in this run: $hwm_mb MiB | $(verdict "$max_hwm_kb < 65536") |"
  echo
  echo "Start-up (exec to /healthz answering, median of 3): fresh data directory ${fresh_startup_ms} ms;"
  echo "existing database of $query_users users ${warm_startup_ms} ms. Prefill of $query_users users through"
  echo "the service: ${prefill_s} s ($(jq -r '.events_per_s | floor' "$out/prefill.json") user.created/s over HTTP, 256 connections)."
}

print_profiles() {
  local f name
  for f in "$out"/*.perf-stat; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .perf-stat)
    echo
    echo "Profile of $name (perf, whole run):"
    echo '```'
    awk -F, '$3 ~ /^syscalls/ { sub("syscalls:sys_enter_", "", $3); printf "%s %s  ", $3, $1 } END { print "" }' "$f"
    [[ -s $out/$name.perf-top.txt ]] && head -12 "$out/$name.perf-top.txt"
    echo '```'
  done
}

print_report() {
  print_ingest_table
  print_ceiling_table
  print_rate_table
  print_query_table
  print_targets
  print_profiles
}

# Run directly: bench/report.sh DIR
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  out=${1:?usage: bench/report.sh RESULTS_DIR (from bench/run.sh)}
  results=$out/ingest.tsv query_results=$out/query.tsv
  source "$out/facts.env"
  print_report
fi
