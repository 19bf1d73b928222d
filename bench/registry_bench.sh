#!/usr/bin/env bash
# Registry benchmark: push and pull of a 1 GiB egg through Debian's
# docker-registry on 127.0.0.1, beside curl moving the same bytes as one
# blob; the second pull of the same egg; the pull of an egg that shares its
# runtime with one already in the store; the runtime pushed and fetched on
# its own. Prints one Markdown table.
#
# usage: bench/registry_bench.sh [path/to/egg]   (default: build/egg)
# SIZE_MIB=1024 sets the egg size (half runtime, half data).
set -euo pipefail

egg=${1:-${EGG_BIN:-build/egg}}
egg=$(realpath "$egg")
size_mib=${SIZE_MIB:-1024}
registry=/usr/bin/docker-registry
[[ -x $registry ]] || { echo "needs docker-registry (scripts/deps.sh)" >&2; exit 2; }

work=$(mktemp -d /tmp/egg-registry-bench-XXXXXX)
pid=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
export XDG_CACHE_HOME=$work/cache XDG_CONFIG_HOME=$work/config
export SOURCE_DATE_EPOCH=1700000000

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YAML
"$registry" serve "$work/config.yml" >"$work/registry.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
host=127.0.0.1:$port

# Two eggs: "a" (runtime R + data A) and "b" (the same runtime R + data B).
half=$((size_mib / 2))
make_egg() {  # name, runtime folder, data MiB
  local dir=$work/$1
  mkdir -p "$dir/data"
  cp -al "$2" "$dir/rt"
  head -c $(($3 << 20)) /dev/urandom >"$dir/data/input.bin"
  cat >"$dir/egg.yaml" <<YAML
name: bench-$1
runtime:
  folder: rt
data:
  - from: data/input.bin
cells:
  - id: one
    language: bash
    code: ls -l /data
YAML
  "$egg" build "$dir/egg.yaml" -o "$work/$1.egg" >/dev/null 2>&1
}
mkdir -p "$work/runtime/usr/lib"
for i in $(seq 0 $(((half - 1) / 64))); do
  head -c $((64 << 20)) /dev/urandom >"$work/runtime/usr/lib/lib$i.so"
done
make_egg a "$work/runtime" "$half"
make_egg b "$work/runtime" 64

now() { date +%s.%N; }
rows=()
row() {  # label, bytes, seconds
  rows+=("$(awk -v l="$1" -v b="$2" -v s="$3" 'BEGIN {
    printf "| %s | %.0f | %.2f | %.0f |", l, b / 1048576, s, b / 1048576 / s }')")
}
timed() {  # label, bytes, command...
  local label=$1 bytes=$2; shift 2
  local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now)
  row "$label" "$bytes" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
}
bytes_of() { stat -c %s "$1"; }

# curl baseline: the egg file as one blob (POST + PUT), then GET.
a_bytes=$(bytes_of "$work/a.egg")
digest=sha256:$(sha256sum "$work/a.egg" | cut -d' ' -f1)
curl_push() {
  local loc
  loc=$(curl -fsS -o /dev/null -D - -X POST \
        "http://$host/v2/bench/blob/blobs/uploads/" |
        awk 'tolower($1) == "location:" { print $2 }' | tr -d '\r')
  [[ $loc == /* ]] && loc="http://$host$loc"
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
    -T "$work/a.egg" "$loc&digest=$digest"
}
curl_pull() {
  curl -fsS -o "$work/blob.out" "http://$host/v2/bench/blob/blobs/$digest"
}
timed "curl: PUT the egg as one blob" "$a_bytes" curl_push
timed "curl: GET the blob" "$a_bytes" curl_pull

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
push() { "$egg" push --json "$@"; }
pull() { "$egg" pull --json "$@"; }

timed "egg push a (empty registry)" "$a_bytes" push "$work/a.egg" "$host/bench/egg:a"
timed "egg pull a (empty store)" "$a_bytes" \
  pull "$host/bench/egg:a" -o "$work/a1.egg" --store "$work/store"
cmp "$work/a.egg" "$work/a1.egg"
t0=$(now)
second=$(pull "$host/bench/egg:a" -o "$work/a2.egg" --store "$work/store")
row "egg pull a again (same store)" "$(echo "$second" | json_field bytes_fetched)" \
  "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')"
cmp "$work/a.egg" "$work/a2.egg"
b_bytes=$(bytes_of "$work/b.egg")
t0=$(now)
pb=$(push "$work/b.egg" "$host/bench/egg:b")
row "egg push b (runtime already in registry)" \
  "$(echo "$pb" | json_field bytes_sent)" \
  "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')"
t0=$(now)
fb=$(pull "$host/bench/egg:b" -o "$work/b1.egg" --store "$work/store")
row "egg pull b (runtime already in store)" \
  "$(echo "$fb" | json_field bytes_fetched)" \
  "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')"
cmp "$work/b.egg" "$work/b1.egg"

# The runtime R on its own: pushed from a store, fetched into an empty one
# through a trust config, fetched again.
cat >"$work/trust.yaml" <<YAML
runtime_registries: ["$host/runtimes"]
YAML
rt_digest=$("$egg" runtime import-folder "$work/runtime" --store "$work/rstore" 2>/dev/null)
rt_bytes=$(du -sb "$work/runtime" | cut -f1)
t0=$(now)
pr=$("$egg" runtime push --json "$rt_digest" "$host/runtimes/r:1" --version 1 \
     --store "$work/rstore" 2>/dev/null)
row "egg runtime push R (registry holds eggs a and b)" \
  "$(echo "$pr" | json_field bytes_sent)" \
  "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')"
pin=$(echo "$pr" | json_field reference)
fetch() { "$egg" runtime fetch --json "$pin" --trust "$work/trust.yaml" --store "$1" 2>/dev/null; }
t0=$(now)
fr=$(fetch "$work/fstore")
row "egg runtime fetch R (empty store)" "$(echo "$fr" | json_field bytes_fetched)" \
  "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')"
t0=$(now)
fr=$(fetch "$work/fstore")
row "egg runtime fetch R again (same store)" "$(echo "$fr" | json_field bytes_fetched)" \
  "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')"

echo "egg a: $a_bytes bytes; egg b: $b_bytes bytes (same runtime); runtime R: $rt_bytes bytes; $(nproc) cores"
echo
echo "| operation | MiB moved | seconds | MiB/s |"
echo "|---|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
