#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) in build-fuzz/ with clang, ASan and UBSan, replays the
# reproducers under fuzz/crashes/, then fuzzes each target for SECONDS_PER_TARGET (default
# 30) on a copy of its seed corpus. Prints one line per target and exits non-zero if any
# target crashed, leaked, timed out or ran out of memory (or a reproducer still fails).
# libFuzzer's output goes to build-fuzz/fuzz-logs/<target>.log, failing inputs to
# build-fuzz/fuzz-artifacts/<target>/. Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2; exit 2; }
build_dir=build-fuzz
targets=(svix_verify_fuzz clerk_event_fuzz http_request_fuzz)
logs=$build_dir/fuzz-logs
artifacts=$build_dir/fuzz-artifacts

# --- toolchain: clang and its libFuzzer runtime --------------------------------------------
has_libfuzzer() {
  command -v clang++ >/dev/null || return 1
  local probe
  probe=$(mktemp -d)
  printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
    'extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }' \
    >"$probe/probe.cpp"
  clang++ -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" 2>/dev/null
  local status=$?
  rm -rf "$probe"
  return $status
}

scripts/install-deps.sh
if ! has_libfuzzer; then
  as_root=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "fuzz: run as root or install sudo" >&2; exit 1; }
    as_root=(sudo)
  fi
  echo "fuzz: installing clang and libclang-rt-14-dev" >&2
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    clang libclang-rt-14-dev
  has_libfuzzer || { echo "fuzz: clang++ -fsanitize=fuzzer still does not link" >&2; exit 1; }
fi

# --- build ---------------------------------------------------------------------------------
mkdir -p "$logs"
if ! CXX=clang++ cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
       -DUSERSYNC_FUZZ=ON -DUSERSYNC_BUILD_TESTS=OFF >"$logs/configure.log" 2>&1 ||
   ! cmake --build "$build_dir" --target usersync_fuzzers -j"$(nproc)" >"$logs/build.log" 2>&1; then
  echo "fuzz: configure or build failed; the end of the log:" >&2
  tail -n 30 "$logs/configure.log" "$logs/build.log" >&2 2>/dev/null || true
  exit 1
fi

# --- run -----------------------------------------------------------------------------------
# The HTTP target keeps a SQLite database under $TMPDIR; tmpfs makes its fsyncs free.
scratch_base=/tmp
[[ -d /dev/shm && -w /dev/shm ]] && scratch_base=/dev/shm
scratch=$(mktemp -d "$scratch_base/usersync-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

max_len_of() {
  case $1 in
    http_request_fuzz) echo 20480 ;;  # room to pass the 16 KiB header limit
    *) echo 8192 ;;
  esac
}

# What went wrong, from the log of a run that failed: the sanitizer's or harness's words.
failure_of() {
  local log=$1 what
  what=$(grep -m1 -E 'fuzz property failed:|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' \
         "$log" || true)
  echo "${what:-exited abnormally}" | sed -E 's/^==[0-9]+==[ ]*//; s/^.*(runtime error:)/\1/'
}

failed=0
for t in "${targets[@]}"; do
  bin=$build_dir/fuzz/$t
  dict=()
  [[ -f fuzz/$t.dict ]] && dict=(-dict="fuzz/$t.dict")
  mkdir -p "$artifacts/$t"

  # Reproducers of findings: each must run clean once the bug is fixed.
  shopt -s nullglob
  known=(fuzz/crashes/"$t"/*)
  shopt -u nullglob
  still=0
  for input in "${known[@]}"; do
    "$bin" -rss_limit_mb=2048 -timeout=10 "$input" >"$logs/$t.replay.log" 2>&1 ||
      { still=$((still + 1)); echo "$t: reproducer $input still fails: $(failure_of "$logs/$t.replay.log")"; }
  done
  ((still == 0)) || failed=1

  work=$(mktemp -d "$scratch/$t.XXXXXX")
  cp -R "fuzz/corpus/$t/." "$work/"
  start=$SECONDS
  status=0
  timeout --kill-after=30 $((seconds + 120)) "$bin" "${dict[@]}" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$(max_len_of "$t")" \
    -print_final_stats=1 -artifact_prefix="$artifacts/$t/" "$work" >"$logs/$t.log" 2>&1 || status=$?
  elapsed=$((SECONDS - start))
  execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$logs/$t.log" | grep -oE '[0-9]+$' || true)
  [[ -n $execs ]] || execs=$(grep -oE '^#[0-9]+' "$logs/$t.log" | tail -n1 | tr -d '#' || true)
  cov=$(grep -oE 'cov: [0-9]+' "$logs/$t.log" | tail -n1 | grep -oE '[0-9]+' || true)
  summary="$t: ${execs:-0} execs in $elapsed s, cov ${cov:-?}"
  if ((status == 0)); then
    echo "$summary, no crash"
  else
    failed=1
    input=$(grep -oE 'Test unit written to .*' "$logs/$t.log" | tail -n1 | sed 's/^Test unit written to //' || true)
    ((status == 124 || status == 137)) && input="(libFuzzer did not stop; killed)"
    echo "$summary, FAILED (exit $status): $(failure_of "$logs/$t.log")"
    echo "  input: ${input:-none saved}; log: $logs/$t.log"
  fi
  rm -rf "$work"
done
exit $failed
