#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: install what is needed,
# build egg, make a small Debian Python runtime (cached), then build, sign,
# verify, inspect and hatch the bundled example notebook.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# Only the programs (the tests are built by scripts/test.sh).
EGG_BUILD_DIR=build-demo bash scripts/build.sh -DEGG_TESTS=OFF
egg=$PWD/build-demo/egg
work=${EGG_DEMO_DIR:-$PWD/out/demo}
mkdir -p "$work"

echo "== key (kept in $work)"
[[ -f $work/demo_key ]] || "$egg" keygen -o "$work/demo_key" --comment demo
printf 'demo %s\n' "$(cat "$work/demo_key.pub")" > "$work/allowed_signers"

echo "== build (--precompute runs the cells in the sandbox and stores their outputs)"
"$egg" build examples/hello/egg.yaml -o "$work/hello.egg" \
  --sign "$work/demo_key" --force --precompute

echo "== verify"
"$egg" verify "$work/hello.egg" --trusted "$work/allowed_signers" \
  --require-signature

echo "== info"
"$egg" info "$work/hello.egg"

echo "== hatch (fresh outputs compared with the stored ones)"
rm -rf "$work/hello.out"
"$egg" hatch "$work/hello.egg" --trusted "$work/allowed_signers" \
  -o "$work/hello.results.json"
