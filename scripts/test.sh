#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds, and runs the unit and
# end-to-end tests. With --sanitize, builds with ASan+UBSan in build-sanitize/ instead.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build
cmake_args=()
if [[ "${1:-}" == "--sanitize" ]]; then
  build_dir=build-sanitize
  cmake_args+=(-DUSERSYNC_SANITIZE=ON)
fi
scripts/install-deps.sh --test
scripts/build.sh "$build_dir" -DUSERSYNC_BUILD_TESTS=ON "${cmake_args[@]}"
# The interop test signs with the official svix npm package, pinned in package-lock.json.
npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)"
