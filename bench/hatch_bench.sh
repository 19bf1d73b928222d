#!/usr/bin/env bash
# A 20-cell Python notebook: `egg hatch` in the namespaces sandbox with a
# warm runtime cache, beside the same cells run in one plain python3
# process, in one run. The runtime is the host's /usr (--host-runtime), so
# both sides run the same interpreter; each side is timed end to end (for
# egg: verify, sandbox, agent, every cell, results JSON). The two sides
# alternate run by run; the median and minimum are printed.
#
# usage: bench/hatch_bench.sh [EGG_BINARY] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
egg=$(realpath "${1:-build/egg}")
runs=${2:-11}
work=$(mktemp -d /tmp/egg-hatch-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT

# The notebook: 20 small cells that carry state, as a notebook does.
mkdir -p "$work/nb/rt"
cells=("import math, statistics
acc = []")
for i in $(seq 2 20); do
  cells+=("acc.append(sum(math.sqrt(k) for k in range($i * 2000)))
print($i, round(statistics.fmean(acc), 3))")
done
{
  printf 'name: twenty-cells\ncreated: 2024-01-01T00:00:00Z\n'
  printf 'runtime: {folder: rt}\ncells:\n'
  for c in "${cells[@]}"; do
    printf '  - language: python\n    code: |\n'
    printf '%s\n' "$c" | sed 's/^/      /'
  done
} > "$work/nb/egg.yaml"
printf '%s\n' "${cells[@]}" > "$work/plain.py"
"$egg" build "$work/nb/egg.yaml" -o "$work/nb.egg" >/dev/null 2>&1

now_ns() { date +%s%N; }
# One timed run of CMD..., in microseconds; "FAILED" if it failed.
time_one() {
  local start end
  start=$(now_ns)
  "$@" >/dev/null 2>&1 || { echo FAILED; return; }
  end=$(now_ns)
  echo $(( (end - start) / 1000 ))
}
# The previous run's results and /out are removed before the clock
# starts: `rm` is a process of its own, and not part of hatching.
fresh() { rm -rf "$work/nb.out" "$work/nb.results.json"; }
hatch() {
  "$egg" hatch "$work/nb.egg" --host-runtime --allow-unsigned </dev/null
}
# stats US...: "median min" in ms, one decimal.
stats() {
  printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
          printf "%.1f %.1f\n", m / 1000, v[1] / 1000 }'
}

# Warm up both (page cache, the egg's first hatch), then alternate the
# two sides run by run, so that a busy machine slows both alike; the
# median and the minimum of the runs are reported.
time_one /usr/bin/python3 "$work/plain.py" >/dev/null
fresh
time_one hatch >/dev/null
plain=() hatched=()
for ((i = 0; i < runs; i++)); do
  p=$(time_one /usr/bin/python3 "$work/plain.py")
  fresh
  h=$(time_one hatch)
  if [[ $p == FAILED || $h == FAILED ]]; then
    echo "a run FAILED (python3: $p, hatch: $h)" >&2
    exit 1
  fi
  plain+=("$p") hatched+=("$h")
done
read -r pm pmin < <(stats "${plain[@]}")
read -r hm hmin < <(stats "${hatched[@]}")
printf '%-44s %8s %8s\n' "20-cell Python notebook ($runs runs)" "median" "min"
printf '%-44s %8s %8s\n' "python3, one process, no sandbox (ms)" "$pm" "$pmin"
printf '%-44s %8s %8s\n' "egg hatch, namespaces sandbox (ms)" "$hm" "$hmin"
awk -v a="$hm" -v b="$pm" -v c="$hmin" -v d="$pmin" \
  'BEGIN { printf "%-44s %8.2f %8.2f\n", "ratio (target <= 1.2)", a / b, c / d }'
