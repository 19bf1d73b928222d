#!/usr/bin/env bash
# Peer benchmark: Debian's `jupyter nbconvert --execute` on the host against
# `egg build` + `egg hatch` on the same notebooks, wall time side by side,
# one run each. Needs python3-nbconvert and python3-ipykernel (and
# r-base-core/IRkernel, bash_kernel for those notebooks, else they are
# skipped on the nbconvert side), a built egg, and a runtime for hatch.
#
# Usage: bench/nbconvert_bench.sh [NOTEBOOK_DIR] [-- egg hatch flags...]
#   EGG=path/to/egg          (default: build/egg)
#   EGG_RUNTIME=...          passed to `egg build --runtime`
#   EGG_HATCH_FLAGS=...      e.g. "--no-sandbox" where namespaces are absent
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${1:-../shared/notebooks}
egg=${EGG:-build/egg}
work=$(mktemp -d /tmp/egg-nbbench-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/styles"
cp "$dir"/*.css "$work/styles/custom.css" 2>/dev/null || true

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

printf '%-62s %12s %12s\n' notebook "nbconvert s" "egg s"
for nb in "$dir"/*.ipynb; do
  name=$(basename "$nb")
  mkdir -p "$work/run"
  cp "$nb" "$work/run/$name"

  t0=$(now)
  if (cd "$work/run" && timeout 1800 /usr/bin/python3 -m nbconvert \
        --to notebook --execute --allow-errors \
        --ExecutePreprocessor.timeout=600 \
        --output "$work/run/out.ipynb" "$name") >/dev/null 2>&1; then
    nbc=$(elapsed "$t0" "$(now)")
  else
    nbc="fail($(elapsed "$t0" "$(now)"))"
  fi

  t0=$(now)
  runtime_flag=()
  [[ -n ${EGG_RUNTIME:-} ]] && runtime_flag=(--runtime "$EGG_RUNTIME")
  if "$egg" build "$work/run/$name" "${runtime_flag[@]}" \
        -o "$work/run/nb.egg" >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    (cd "$work/run" && timeout 1800 "$OLDPWD/$egg" hatch nb.egg \
        ${EGG_HATCH_FLAGS:-} --results "$work/run/results.json" \
        >/dev/null 2>&1)
    rc=$?
    e=$(elapsed "$t0" "$(now)")
    # Exit 4 means a cell failed or differed; the time still counts.
    if [[ $rc -eq 0 || $rc -eq 4 ]]; then eg=$e; else eg="fail($e)"; fi
  else
    eg="build-fail"
  fi
  printf '%-62s %12s %12s\n' "$name" "$nbc" "$eg"
  rm -rf "$work/run"
done
