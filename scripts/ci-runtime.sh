#!/usr/bin/env bash
# Builds, or restores from a cache outside the clone, a small Debian
# runtime for tests that need a real one. Prints one line:
#   sha256:<digest> <tarball>
# The tarball holds the runtime's tree; `egg runtime import-tar TARBALL`
# gives the same digest (checked here before the line is printed).
#
# The cache key is the suite, the variant, the sorted package list and the
# SHA-256 of the mirror's InRelease files for the suite (and its updates
# and security suites), so a mirror update builds a new runtime.
#
# Usage: scripts/ci-runtime.sh [--cache DIR] [--suite SUITE] [PACKAGE...]
#   default packages: python3; default cache: $EGG_CI_CACHE or
#   /var/cache/egg-ci; the egg binary: $EGG_BIN or build/egg.
# Later notebooks need e.g.: python3-numpy python3-sympy python3-matplotlib
# r-base-core r-cran-irkernel (the R notebook, its own runtime).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${EGG_CI_CACHE:-/var/cache/egg-ci}
suite=bookworm
variant=essential
mirror=http://deb.debian.org/debian
security=http://deb.debian.org/debian-security
egg=${EGG_BIN:-$here/build/egg}
packages=()
while (($#)); do
  case $1 in
    --cache) cache=$2; shift 2 ;;
    --suite) suite=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "ci-runtime: unknown option '$1'" >&2; exit 2 ;;
    *) packages+=("$1"); shift ;;
  esac
done
((${#packages[@]})) || packages=(python3)
[[ -x $egg ]] || { echo "ci-runtime: no egg binary at '$egg'" >&2; exit 2; }

# Key: request plus the mirror's current release files.
sorted=$(printf '%s\n' "${packages[@]}" | LC_ALL=C sort -u)
release_sums=""
for url in "$mirror/dists/$suite/InRelease" \
           "$mirror/dists/$suite-updates/InRelease" \
           "$security/dists/$suite-security/InRelease"; do
  if ! sum=$(curl -fsSL --max-time 60 "$url" | sha256sum); then
    echo "ci-runtime: cannot fetch '$url' (mirror unreachable?)" >&2
    exit 3
  fi
  release_sums+="$url ${sum%% *}"$'\n'
done
key=$(printf '%s\n%s\n%s\n%s' "$suite" "$variant" "$sorted" \
        "$release_sums" | sha256sum | cut -c1-32)
entry=$cache/$suite-$key

if [[ -f $entry/digest && -f $entry/runtime.tar ]]; then
  echo "ci-runtime: restored from '$entry'" >&2
  echo "$(cat "$entry/digest") $entry/runtime.tar"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT

# Build into a private store, timing mmdebstrap (and the import).
start=$(date +%s.%N)
digest=$("$egg" runtime debian --store "$work/store" --suite "$suite" \
           --variant "$variant" "${packages[@]}")
end=$(date +%s.%N)
echo "ci-runtime: built $digest in $(echo "$end - $start" | bc) s" >&2
"$egg" runtime show --json --store "$work/store" "$digest" > "$work/info.json"

# Pack the tree as a plain tarball and check it imports to the same digest.
"$egg" runtime export --store "$work/store" "$digest" "$work/root"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -C "$work/root" -cf "$work/runtime.tar" .
again=$("$egg" runtime import-tar --store "$work/check" "$work/runtime.tar")
if [[ $again != "$digest" ]]; then
  echo "ci-runtime: tarball imports as $again, not $digest" >&2
  exit 1
fi

mkdir -p "$work/entry"
mv "$work/runtime.tar" "$work/info.json" "$work/entry/"
echo "$digest" > "$work/entry/digest"
rm -rf "$entry"
mv "$work/entry" "$entry"
echo "$digest $entry/runtime.tar"
