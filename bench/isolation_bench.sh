#!/usr/bin/env bash
# Isolation cost per backend, in one run: sandbox start + exit + teardown
# (probe "exit 0"), time to the end of the first cell of a one-cell
# notebook, and a 20-cell bash notebook, for namespaces, oci (runc, crun),
# gvisor and vm, beside bubblewrap. Backends that do not work here print
# why. Needs root for oci/gvisor/vm.
#
# usage: bench/isolation_bench.sh BUILD_DIR [RUNS]
#   EGG_BENCH_BACKENDS="vm gvisor" measures only those (default: all).
#   vm takes at most 3 runs (a guest boot under TCG takes seconds).
#   Build first: egg_sandbox_runner egg_sandbox_probe egg-init egg-agent
#   egg_isolation_bench (and the drivers, which egg_hatch builds).
set -euo pipefail

build=$(realpath "${1:?usage: isolation_bench.sh BUILD_DIR [RUNS]}")
runs=${2:-10}
probes="$build/tests/sandbox_probes"
runner="$probes/egg_sandbox_runner"
tool="$build/tests/egg_isolation_bench"
for f in "$runner" "$tool" "$build/egg-init" "$build/egg-agent"; do
  [[ -x $f ]] || { echo "not built: $f" >&2; exit 2; }
done

now_ns() { date +%s%N; }

# start_ms ARGS...: median-free mean of $runs runs of the runner, in ms.
start_ms() {
  "$runner" --probe-dir "$probes" "$@" -- exit 0 >/dev/null 2>&1 ||
    { echo "FAILED"; return; }
  local start end
  start=$(now_ns)
  for ((i = 0; i < runs; i++)); do
    "$runner" --probe-dir "$probes" "$@" -- exit 0 >/dev/null 2>&1
  done
  end=$(now_ns)
  echo $(( (end - start) / runs / 1000000 ))
}

row() {  # row NAME START_MS HATCH_OUTPUT
  local first="-" twenty="-"
  if [[ $3 =~ first_cell_ms=([0-9]+)\ twenty_cells_ms=([0-9]+) ]]; then
    first=${BASH_REMATCH[1]}; twenty=${BASH_REMATCH[2]}
  fi
  printf '%-22s %12s %14s %16s\n' "$1" "$2" "$first" "$twenty"
}

echo "runs: $runs   kernel: $(uname -r)   cpus: $(nproc)   user: $(id -un)"
printf '%-22s %12s %14s %16s\n' backend "start+exit" "first cell" \
  "20-cell notebook"
printf '%-22s %12s %14s %16s\n' "" "(ms)" "(ms)" "(ms)"
all_runs=$runs
for b in ${EGG_BENCH_BACKENDS:-namespaces oci:runc oci:crun gvisor vm}; do
  name=${b%%:*}; rt=${b#*:}; [[ $rt == "$b" ]] && rt=""
  runs=$all_runs
  [[ $name == vm ]] && ((runs > 3)) && runs=3
  flags=(--backend "$name"); [[ -n $rt ]] && flags+=(--oci-runtime "$rt")
  s=$(start_ms "${flags[@]}")
  if [[ $s == FAILED ]]; then
    why=$("$runner" --probe-dir "$probes" "${flags[@]}" -- exit 0 2>&1 |
          grep -m1 ERROR || true)
    printf '%-22s %s\n' "$b" "does not work here: ${why:-unknown}"
    continue
  fi
  h=$("$tool" "$build" "$name" ${rt:+"$rt"} "$runs" 2>/dev/null || true)
  row "$b" "$s" "$h"
done
runs=$all_runs
if command -v bwrap >/dev/null; then
  lib64=(); [[ -d /usr/lib64 ]] && lib64=(--ro-bind /usr/lib64 /lib64)
  bw() {
    bwrap --unshare-all --die-with-parent --ro-bind /usr /usr \
      --ro-bind /usr/bin /bin --ro-bind /usr/lib /lib "${lib64[@]}" \
      --ro-bind "$probes" /probe --proc /proc --dev /dev --tmpfs /tmp "$@"
  }
  start=$(now_ns)
  for ((i = 0; i < runs; i++)); do bw /probe/egg_sandbox_probe exit 0; done
  end=$(now_ns)
  s=$(( (end - start) / runs / 1000000 ))
  # bwrap has no agent: 20 bash invocations in one sandbox stand in.
  start=$(now_ns)
  for ((i = 0; i < runs; i++)); do
    bw bash -c 'for i in $(seq 20); do bash -c "echo cell $i" >/dev/null; done'
  done
  end=$(now_ns)
  t=$(( (end - start) / runs / 1000000 ))
  printf '%-22s %12s %14s %16s\n' "bwrap --unshare-all" "$s" "-" "$t*"
  echo "* bwrap: 20 bash processes in one sandbox (no agent, no protocol)"
fi
