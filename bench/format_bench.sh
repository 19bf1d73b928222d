#!/usr/bin/env bash
# Format speed and memory beside zstd and openssl, from one run.
#
#   bench/format_bench.sh [build_dir]
#
# Input: BENCH_MIB MiB (default 1024), half random bytes, half repetitive
# text. Measures egg build (WriteEgg), verify (VerifyContent), info on the
# summary (header, manifest, notebook, trailer), and for comparison
# `zstd -3 -T0` and `openssl dgst -sha256` on the same input. With
# BENCH_BIG_GIB=N it also builds an N GiB egg and times info on it.
# Peak RSS comes from /usr/bin/time -v. Work files go under $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tool="$build/tests/egg_format_bench"
if [[ ! -x $tool ]]; then
  cmake --build "$build" --target egg_format_bench >/dev/null
fi
mib=${BENCH_MIB:-1024}
work=$(mktemp -d "${TMPDIR:-/tmp}/egg-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/in"
half=$((mib / 2))
head -c "${half}M" /dev/urandom >"$work/in/random.bin"
(seq 1 1000000000 || true) | head -c "$((mib - half))M" >"$work/in/text.txt"
cat "$work/in/random.bin" "$work/in/text.txt" >"$work/all.bin"
sync

# run NAME CMD...: wall seconds and peak RSS (MiB) into $work/NAME.
run() {
  local name=$1
  shift
  /usr/bin/time -v -o "$work/$name.time" "$@" >"$work/$name.out"
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/$name.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$name.time")
  # m:ss.ss to seconds
  wall=$(awk -v t="$wall" 'BEGIN {n=split(t,p,":"); s=0;
    for (i=1;i<=n;i++) s=s*60+p[i]; printf "%.2f", s}')
  printf '%s %s %s\n' "$name" "$wall" "$((rss / 1024))" >>"$work/results"
}

# Warm the page cache once so every reader starts equal.
cat "$work/all.bin" "$work/in/"* >/dev/null

run "zstd -3 -T0" zstd -3 -T0 -q -f "$work/all.bin" -o "$work/all.zst"
run "openssl dgst -sha256" openssl dgst -sha256 "$work/all.bin"
run "egg build" "$tool" build "$work/in" "$work/x.egg"
run "egg verify" "$tool" verify "$work/x.egg"
run "egg info" "$tool" info "$work/x.egg"
info_us=$(awk '{print $2}' "$work/egg info.out")

big_line=""
if [[ -n ${BENCH_BIG_GIB:-} ]]; then
  mkdir -p "$work/big"
  head -c "${BENCH_BIG_GIB}G" /dev/urandom >"$work/big/random.bin"
  "$tool" build "$work/big" "$work/big.egg" >/dev/null
  rm -rf "$work/big"
  sync
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  run "egg info (big)" "$tool" info "$work/big.egg"
  big_us=$(awk '{print $2}' "$work/egg info (big).out")
  big_size=$(stat -c %s "$work/big.egg")
  big_line="egg info on a $((big_size >> 20)) MiB egg: open+parse ${big_us} us"
fi

in_bytes=$(stat -c %s "$work/all.bin")
egg_bytes=$(stat -c %s "$work/x.egg")
zst_bytes=$(stat -c %s "$work/all.zst")
echo
echo "input: $((in_bytes >> 20)) MiB (half random, half text);" \
  "egg $((egg_bytes >> 20)) MiB, zstd $((zst_bytes >> 20)) MiB;" \
  "$(nproc) CPUs"
printf '%-24s %10s %12s\n' "step" "wall (s)" "peak RSS MiB"
while read -r line; do
  name=${line% * *}
  rest=${line##"$name "}
  printf '%-24s %10s %12s\n' "$name" ${rest}
done <"$work/results"
echo "egg info: open+parse of the summary ${info_us} us"
[[ -n $big_line ]] && echo "$big_line"
exit 0
