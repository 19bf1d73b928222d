#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite through
# CTest: once as a normal build, once with ASan+UBSan, and the fuzz target
# for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

EGG_BUILD_DIR=build bash scripts/build.sh
(cd build && ctest --output-on-failure -j2 --timeout 900)
