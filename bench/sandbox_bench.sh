#!/usr/bin/env bash
# Sandbox set-up cost per session: start + run /bin/true + teardown, for
# egg's namespaces backend, egg's none backend and bubblewrap, in one run.
#
# usage: bench/sandbox_bench.sh BUILD_DIR [RUNS]
#   BUILD_DIR holds tests/sandbox_probes/egg_sandbox_runner (build the
#   egg_sandbox_runner and egg_sandbox_probe targets first).
# Each row runs the same probe ("exit 0", a program that exits at once) so
# the numbers compare sandbox cost, not program cost. Times include one
# fork+exec of the runner or bwrap itself.
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

now_ns() { date +%s%N; }

# time_runs NAME CMD...: runs CMD $runs times, prints one table row.
time_runs() {
  local name=$1; shift
  "$@" >/dev/null 2>&1 || { printf '%-34s %s\n' "$name" "FAILED"; return; }
  local start end
  start=$(now_ns)
  for ((i = 0; i < runs; i++)); do "$@" >/dev/null 2>&1; done
  end=$(now_ns)
  local per_us=$(( (end - start) / runs / 1000 ))
  printf '%-34s %8d us %10.1f /s\n' "$name" "$per_us" \
    "$(echo "scale=1; 1000000 / $per_us" | bc)"
}

echo "runs per row: $runs   kernel: $(uname -r)   user: $(id -un)"
printf '%-34s %11s %12s\n' "sandbox" "per session" "sessions"
time_runs "plain exec (no sandbox)" "$probe" exit 0
time_runs "egg none backend" "$runner" --probe-dir "$probes" --none -- exit 0
time_runs "egg namespaces backend" "$runner" --probe-dir "$probes" -- exit 0
if command -v bwrap >/dev/null; then
  time_runs "bwrap --unshare-all" bwrap --unshare-all --die-with-parent \
    --ro-bind /usr /usr --ro-bind /usr/bin /bin --ro-bind /usr/lib /lib \
    "${lib64[@]}" --ro-bind "$probes" /probe --proc /proc --dev /dev \
    --tmpfs /tmp /probe/egg_sandbox_probe exit 0
else
  printf '%-34s %s\n' "bwrap --unshare-all" "not installed"
fi
# As an unprivileged user egg cannot create cgroups here, so this row shows
# the namespace cost without cgroup set-up (which bwrap does not do).
if [[ $(id -u) -eq 0 ]] && id egg-sandbox-test >/dev/null 2>&1; then
  u=$(id -u egg-sandbox-test); g=$(id -g egg-sandbox-test)
  time_runs "egg namespaces, unprivileged" setpriv --reuid="$u" \
    --regid="$g" --clear-groups "$runner" --probe-dir "$probes" -- exit 0
  time_runs "bwrap, unprivileged" setpriv --reuid="$u" --regid="$g" \
    --clear-groups bwrap --unshare-all --die-with-parent \
    --ro-bind /usr /usr --ro-bind /usr/bin /bin --ro-bind /usr/lib /lib \
    "${lib64[@]}" --ro-bind "$probes" /probe --proc /proc --dev /dev \
    --tmpfs /tmp /probe/egg_sandbox_probe exit 0
fi
