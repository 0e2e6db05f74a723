#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds, and runs the unit and
# end-to-end tests.
#   --sanitize  the same suite under ASan+UBSan, in build-sanitize/
#   --tsan      the concurrency tests (the writer's unit tests) under TSan, in build-tsan/
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
scripts/install-deps.sh --test
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
case $mode in
  "") build_dir=build; cmake_args=() ;;
  --sanitize) build_dir=build-sanitize; cmake_args=(-DUSERSYNC_SANITIZE=ON) ;;
  --tsan)
    cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUSERSYNC_TSAN=ON -DUSERSYNC_BUILD_BENCH=OFF >/dev/null
    cmake --build build-tsan -j"$(nproc)" --target unit_tests
    exec build-tsan/tests/unit_tests --source-file='*writer_test.cpp,*store_test.cpp' ;;
  *) echo "usage: scripts/test.sh [--sanitize|--tsan]" >&2; exit 2 ;;
esac
scripts/build.sh "$build_dir" -DUSERSYNC_BUILD_TESTS=ON -DUSERSYNC_BUILD_BENCH=OFF "${cmake_args[@]}"
# The interop test signs with the official svix npm package, pinned in package-lock.json.
npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error
ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)"
