#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite through
# CTest; then the input-parsing suites again built with ASan + UBSan; then
# the egg reader's and the manifest parser's fuzz targets for a bounded
# time.
#   EGG_TEST_QUICK=1  skips the sanitizer build and the fuzz run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)
# The micro-VM tests need Debian's cloud kernel, fetched once into a cache
# keyed by its package version; without it they skip and say so.
bash scripts/vm-kernel.sh >/dev/null ||
  echo "warning: no guest kernel; the vm backend's tests will skip" >&2

echo "== build and test (RelWithDebInfo)"
EGG_BUILD_DIR=build bash scripts/build.sh
log=$(mktemp /tmp/egg-ctest-XXXXXX.log)
# One test at a time: the sandbox, isolation and hatch suites create
# cgroups, mounts and servers, and must not race each other.
(cd build && ctest --output-on-failure --timeout 900) | tee "$log"
# One plain closing line for the whole run, from the main suite's totals.
summary() {
  local total failed
  total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log")
  failed=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$log")
  echo "tests: $((total - failed)) passed, $failed failed"
}

if [[ ${EGG_TEST_QUICK:-0} == 1 ]]; then summary; exit 0; fi

# The sanitizer pass covers the libraries that parse hostile input (the
# egg format, keys and signatures, manifests, the store and runtimes,
# notebooks). The sandbox, hatch and registry suites spawn sandboxes and
# servers and run in the pass above only.
echo "== build and test with AddressSanitizer + UBSan"
asan_tests=(test_common test_format test_verify test_crypto test_manifest
            test_store test_runtime test_notebook)
cmake -S . -B build-asan -DEGG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs" --target "${asan_tests[@]}"
for t in "${asan_tests[@]}"; do
  echo "-- $t (ASan + UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "build-asan/tests/$t" --gtest_brief=1
done

echo "== fuzz the egg reader and the manifest parser (bounded)"
secs=${EGG_FUZZ_SECONDS:-60}
cmake -S . -B build-fuzz -DEGG_FUZZ=ON -DEGG_TESTS=OFF \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_egg_reader fuzz_manifest
corpus=$(mktemp -d /tmp/egg-fuzz-XXXXXX)
trap 'rm -rf "$corpus"' EXIT
EGG_BUILD_DIR=build bash fuzz/make_corpus.sh "$corpus/egg"
mkdir -p "$corpus/manifest" && cp examples/hello/egg.yaml "$corpus/manifest/"
build-fuzz/fuzz/fuzz_egg_reader "$corpus/egg" -max_total_time="$secs" \
  -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 5
build-fuzz/fuzz/fuzz_manifest -dict=fuzz/manifest.dict "$corpus/manifest" \
  -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
  tail -n 5
echo "fuzz: no crash in ${secs}s per target"
summary
