#!/usr/bin/env bash
# Configures and builds egg into build/ (or $EGG_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${EGG_BUILD_DIR:-build}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
