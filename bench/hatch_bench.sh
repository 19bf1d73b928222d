#!/usr/bin/env bash
# A 20-cell Python notebook: `egg hatch` in the namespaces sandbox with a
# warm runtime cache, beside the same cells run in one plain python3
# process, in one run. The runtime is the host's /usr (--host-runtime), so
# both sides run the same interpreter; each side is timed end to end (for
# egg: verify, sandbox, agent, every cell, results JSON).
#
# usage: bench/hatch_bench.sh [EGG_BINARY] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
egg=$(realpath "${1:-build/egg}")
runs=${2:-5}
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
time_ms() {  # time_ms CMD...: mean wall time of $runs runs, in ms
  "$@" >/dev/null 2>&1 || { echo FAILED; return; }
  local start end
  start=$(now_ns)
  for ((i = 0; i < runs; i++)); do "$@" >/dev/null 2>&1; done
  end=$(now_ns)
  echo $(( (end - start) / runs / 1000000 ))
}
hatch() {
  rm -rf "$work/nb.out" "$work/nb.results.json"
  "$egg" hatch "$work/nb.egg" --host-runtime --allow-unsigned </dev/null
}

plain=$(time_ms /usr/bin/python3 "$work/plain.py")
hatched=$(time_ms hatch)
printf '%-44s %8s\n' "20-cell Python notebook ($runs runs, mean)" "ms"
printf '%-44s %8s\n' "python3, one process, no sandbox" "$plain"
printf '%-44s %8s\n' "egg hatch, namespaces sandbox" "$hatched"
if [[ $plain != FAILED && $hatched != FAILED ]]; then
  awk -v a="$hatched" -v b="$plain" \
    'BEGIN { printf "%-44s %8.2f\n", "ratio (target <= 1.2)", a / b }'
fi
