#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite through
# CTest: a normal build, then the same suite built with ASan + UBSan, then
# the reader's fuzz target for a bounded time.
#   EGG_TEST_QUICK=1  skips the sanitizer build and the fuzz run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)

echo "== build and test (RelWithDebInfo)"
EGG_BUILD_DIR=build bash scripts/build.sh
(cd build && ctest --output-on-failure -j"$jobs" --timeout 900)

if [[ ${EGG_TEST_QUICK:-0} == 1 ]]; then exit 0; fi

echo "== build and test with AddressSanitizer + UBSan"
EGG_BUILD_DIR=build-asan bash scripts/build.sh -DEGG_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=Debug
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j"$jobs" --timeout 1800 -LE slow)

if [[ -f fuzz/CMakeLists.txt ]] && grep -q add_executable fuzz/CMakeLists.txt
then
  echo "== fuzz the egg reader (bounded)"
  cmake -S . -B build-fuzz -DEGG_FUZZ=ON -DEGG_TESTS=OFF \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
  cmake --build build-fuzz -j"$jobs" --target fuzz_egg_reader
  bash fuzz/run.sh build-fuzz/fuzz/fuzz_egg_reader "${EGG_FUZZ_SECONDS:-120}"
fi
