#!/usr/bin/env bash
# The README's run command: installs what usersync needs, builds it, and starts
# `usersync serve` on its embedded default (a data directory, a dev webhook secret and a
# self-signed certificate made on first run). Extra arguments go to `usersync serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build -DUSERSYNC_BUILD_TESTS=OFF
exec build/usersync serve "$@"
