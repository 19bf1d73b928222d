#!/usr/bin/env bash
# Peer benchmark: Debian's `jupyter nbconvert --execute` on the host (no
# sandbox) beside `egg hatch` of the same notebooks in the namespaces
# sandbox with a warm runtime, wall time side by side, in one run.
# Needs python3-nbconvert and python3-ipykernel (the R and bash notebooks
# need IRkernel / bash_kernel on the nbconvert side, else that column
# says fail), a built egg, and the mirror or the CI runtime cache.
#
# The egg column is `egg hatch` alone: the eggs are built first (the
# build column: packing the notebook with its runtime), and each runtime
# is materialised in the store by one untimed hatch before the timed
# ones, as it is for anyone's second hatch. R notebooks get a Debian R
# runtime (r-base-core, r-cran-irkernel), the others the Python one.
#
# Usage: bench/nbconvert_bench.sh [NOTEBOOK_DIR]
#   EGG=path/to/egg          (default: build/egg)
#   EGG_RUNTIME=sha256:...   a runtime in $XDG_CACHE_HOME/egg; default:
#                            scripts/ci-runtime.sh with the notebook
#                            packages, imported into a private store
#   EGG_R_RUNTIME=sha256:... the same for R notebooks (kernel language
#                            R); default: ci-runtime.sh r-base-core
#                            r-cran-irkernel
#   EGG_HATCH_FLAGS=...      e.g. "--isolation gvisor"
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${1:-../shared/notebooks}
egg=$(realpath "${EGG:-build/egg}")
work=$(mktemp -d /tmp/egg-nbbench-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/styles"
cp "$dir"/*.css "$work/styles/custom.css" 2>/dev/null || true

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# The runtime, in a private store unless one was named.
runtime=${EGG_RUNTIME:-}
if [[ -z $runtime ]]; then
  export XDG_CACHE_HOME=$work/cache
  line=$(EGG_BIN=$egg bash scripts/ci-runtime.sh python3 python3-numpy \
           python3-sympy python3-matplotlib python3-ipython) || exit 1
  runtime=$("$egg" runtime import-tar "${line#* }") || exit 1
  runtime=${runtime%% *}
fi
echo "runtime $runtime" >&2

# R notebooks get an R runtime (made on first use); sets $rt.
r_runtime=${EGG_R_RUNTIME:-}
runtime_for() {
  local lang line
  rt=$runtime
  lang=$(python3 -c 'import json,sys
m = json.load(open(sys.argv[1])).get("metadata", {})
print((m.get("kernelspec", {}).get("language")
       or m.get("language_info", {}).get("name") or "").lower())' "$1" \
         2>/dev/null)
  [[ $lang == r ]] || return 0
  if [[ -z $r_runtime ]]; then
    line=$(EGG_BIN=$egg bash scripts/ci-runtime.sh r-base-core \
             r-cran-irkernel) || return 0
    r_runtime=$("$egg" runtime import-tar "${line#* }") || return 0
    r_runtime=${r_runtime%% *}
    echo "R runtime $r_runtime" >&2
  fi
  rt=$r_runtime
}

# Build every egg first (its own column), then warm the store once.
for nb in "$dir"/*.ipynb; do
  name=$(basename "$nb" .ipynb)
  runtime_for "$nb"
  t0=$(now)
  if "$egg" build "$nb" --runtime "$rt" -o "$work/$name.egg" \
       >/dev/null 2>"$work/$name.build.err"; then
    echo "$(elapsed "$t0" "$(now)")" > "$work/$name.build"
    echo "$rt" > "$work/$name.rt"
  else
    echo "fail" > "$work/$name.build"
  fi
done
ls "$work"/*.egg >/dev/null 2>&1 ||
  { echo "nbconvert_bench: no egg was built" >&2; exit 1; }
# One untimed hatch per runtime materialises it in the store.
warmed=" "
for e in "$work"/*.egg; do
  r=$(cat "${e%.egg}.rt")
  [[ $warmed == *" $r "* ]] && continue
  warmed+="$r "
  rm -rf "$work/warm.out"
  "$egg" hatch "$e" --allow-unsigned -o "$work/warm.json" \
    --out-dir "$work/warm.out" >/dev/null 2>&1
done

printf '%-58s %9s %9s %9s %11s\n' notebook "nbconv s" "hatch s" \
  "build s" reproduced
tot_n=0 tot_e=0
for nb in "$dir"/*.ipynb; do
  name=$(basename "$nb" .ipynb)
  rm -rf "$work/run" && mkdir -p "$work/run"
  cp "$nb" "$work/run/"

  t0=$(now)
  if (cd "$work/run" && timeout 1800 /usr/bin/python3 -m nbconvert \
        --to notebook --execute --allow-errors \
        --ExecutePreprocessor.timeout=600 \
        --output "$work/run/out.ipynb" "$name.ipynb") >/dev/null 2>&1; then
    nbc=$(elapsed "$t0" "$(now)")
  else
    nbc="fail"
  fi

  eg=build-fail repro=-
  if [[ -f $work/$name.egg ]]; then
    t0=$(now)
    # shellcheck disable=SC2086
    timeout 1800 "$egg" hatch "$work/$name.egg" --allow-unsigned \
      ${EGG_HATCH_FLAGS:-} -o "$work/run/results.json" \
      --out-dir "$work/run/out" >/dev/null 2>&1
    rc=$?
    e=$(elapsed "$t0" "$(now)")
    # Exit 4: a cell failed or differed; the time still counts.
    if [[ $rc -eq 0 || $rc -eq 4 ]]; then
      eg=$e
      repro=$(python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))["reproducibility"]
print("%d/%d" % (r["reproduced"], r["code_cells"]))' \
        "$work/run/results.json" 2>/dev/null || echo "?")
    else
      eg="fail($e)"
    fi
  fi
  if [[ $nbc != fail && $eg =~ ^[0-9.]+$ ]]; then
    tot_n=$(awk -v a="$tot_n" -v b="$nbc" 'BEGIN { print a + b }')
    tot_e=$(awk -v a="$tot_e" -v b="$eg" 'BEGIN { print a + b }')
  fi
  printf '%-58s %9s %9s %9s %11s\n' "$name" "$nbc" "$eg" \
    "$(cat "$work/$name.build" 2>/dev/null)" "$repro"
done
printf '%-58s %9s %9s\n' "total (notebooks both ran)" "$tot_n" "$tot_e"
