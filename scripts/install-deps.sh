#!/usr/bin/env bash
# Installs the Debian 12 packages usersync needs to build and run (and, with --test, to run
# its tests). Works as root or through sudo.
set -euo pipefail

packages=(g++ cmake make pkg-config ca-certificates openssl sqlite3 curl
  libboost1.81-dev libboost-json1.81-dev libboost-program-options1.81-dev
  libsqlitecpp-dev libsqlite3-dev libspdlog-dev libssl-dev doctest-dev)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(python3)
  # Debian's nodejs and npm, unless a Node.js with npm is already installed (another build,
  # such as NodeSource's, conflicts with Debian's npm package).
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    packages+=(nodejs npm)
  fi
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  as_root=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
