#!/usr/bin/env bash
# Sandbox set-up cost per session: start + run /bin/true + teardown, for
# egg's namespaces backend, egg's none backend and bubblewrap, in one run.
#
# usage: bench/sandbox_bench.sh BUILD_DIR [RUNS]
#   BUILD_DIR holds tests/sandbox_probes/egg_sandbox_runner (build the
#   egg_sandbox_runner and egg_sandbox_probe targets first).
# Each row runs the same probe ("exit 0", a program that exits at once) so
# the numbers compare sandbox cost, not program cost. Times include one
# fork+exec of the runner or bwrap itself. The rows take turns run by run,
# so that a busy machine slows them alike; the median and the minimum of
# each row are printed.
set -euo pipefail

build=$(realpath "${1:?usage: sandbox_bench.sh BUILD_DIR [RUNS]}")
runs=${2:-200}
probes="$build/tests/sandbox_probes"
runner="$probes/egg_sandbox_runner"
probe="$probes/egg_sandbox_probe"
if [[ ! -x $runner || ! -x $probe ]]; then
  echo "build the egg_sandbox_runner target first" >&2
  exit 2
fi

lib64=()
[[ -d /usr/lib64 ]] && lib64=(--ro-bind /usr/lib64 /lib64)
bwrap_args=(--unshare-all --die-with-parent
  --ro-bind /usr /usr --ro-bind /usr/bin /bin --ro-bind /usr/lib /lib
  "${lib64[@]}" --ro-bind "$probes" /probe --proc /proc --dev /dev
  --tmpfs /tmp /probe/egg_sandbox_probe exit 0)

# Rows: a name and a command line (one string, word-split when run).
names=() cmds=()
row() { names+=("$1"); cmds+=("$2"); }
row "plain exec (no sandbox)" "$probe exit 0"
row "egg none backend" "$runner --probe-dir $probes --none -- exit 0"
row "egg namespaces backend" "$runner --probe-dir $probes -- exit 0"
if command -v bwrap >/dev/null; then
  row "bwrap --unshare-all" "bwrap ${bwrap_args[*]}"
fi
# As an unprivileged user egg cannot create cgroups here, so this row shows
# the namespace cost without cgroup set-up (which bwrap does not do).
if [[ $(id -u) -eq 0 ]] && id egg-sandbox-test >/dev/null 2>&1; then
  u=$(id -u egg-sandbox-test); g=$(id -g egg-sandbox-test)
  as_user="setpriv --reuid=$u --regid=$g --clear-groups"
  row "egg namespaces, unprivileged" \
    "$as_user $runner --probe-dir $probes -- exit 0"
  row "bwrap, unprivileged" "$as_user bwrap ${bwrap_args[*]}"
fi

now_ns() { date +%s%N; }
declare -A times failed
for ((r = 0; r <= runs; r++)); do
  for ((k = 0; k < ${#names[@]}; k++)); do
    start=$(now_ns)
    # shellcheck disable=SC2086  # the command line is split on purpose
    if ! ${cmds[$k]} >/dev/null 2>&1; then failed[$k]=1; fi
    end=$(now_ns)
    # Run 0 warms the page cache and is not counted.
    (( r > 0 )) && times[$k]+="$(( (end - start) / 1000 )) "
  done
done

echo "runs per row: $runs   kernel: $(uname -r)   user: $(id -un)"
printf '%-34s %10s %10s\n' "sandbox (per session)" "median us" "min us"
for ((k = 0; k < ${#names[@]}; k++)); do
  if [[ -n ${failed[$k]:-} ]]; then
    printf '%-34s %10s\n' "${names[$k]}" "FAILED"
    continue
  fi
  # shellcheck disable=SC2086
  printf '%s\n' ${times[$k]} | sort -n | awk -v name="${names[$k]}" '
    { v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
          printf "%-34s %10d %10d\n", name, m, v[1] }'
done

# egg hatch starts each session from its own running process, so a session
# costs it the sandbox alone, without loading a program; bwrap's rows
# above are what a bwrap session costs, exec included. These rows run the
# sessions one after another inside one runner process (--repeat).
in_process() {
  local name=$1; shift
  local line
  line=$("$@" --probe-dir "$probes" --repeat "$runs" -- exit 0 2>/dev/null |
         tail -n 1)
  if [[ $line == PER_SESSION_US* ]]; then
    set -- $line
    printf '%-34s %10d %10d\n' "$name" "$2" "$3"
  else
    printf '%-34s %10s\n' "$name" "FAILED"
  fi
}
in_process "egg namespaces, in-process" "$runner"
if [[ -n ${as_user:-} ]]; then
  # shellcheck disable=SC2086
  in_process "egg namespaces, in-process, unpriv" $as_user "$runner"
fi
