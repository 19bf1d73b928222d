#!/usr/bin/env bash
# Writes the seed corpus for fuzz_egg_reader into fuzz/corpus/egg_reader
# (or $1) by running the format test that builds small eggs.
# Usage: fuzz/make_corpus.sh [out_dir] (needs a built test_format in
# $EGG_BUILD_DIR, default build/).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-fuzz/corpus/egg_reader}
build=${EGG_BUILD_DIR:-build}
mkdir -p "$out"
EGG_FUZZ_CORPUS_DIR="$(cd "$out" && pwd)" \
  "$build/tests/test_format" --gtest_filter='FuzzCorpus.*' >/dev/null
ls "$out" | wc -l | xargs echo "seed eggs in $out:"
