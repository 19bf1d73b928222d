#!/usr/bin/env bash
# Fetches the micro-VM's guest kernel: Debian's linux-image-cloud-amd64
# (the versioned package it depends on), with `apt-get download`, checked
# against the SHA-256 apt's index gives (or EGG_VM_KERNEL_SHA256, to pin),
# unpacked with dpkg-deb into a cache folder named by package, version and
# digest. Nothing is installed into /boot. Prints the folder, which holds:
#
#   vmlinuz        the kernel
#   modules/       the .ko files the guest needs (virtio, erofs, vsock)
#   modules.load   those files in load order (dependencies first)
#   WANTED         the module names asked for (a folder made for another
#                  list is made again)
#   SOURCE         package, version, sha256 of the .deb
#
# usage: scripts/vm-kernel.sh            (cache: $EGG_VM_CACHE or
#                                          /var/cache/egg-vm)
set -euo pipefail

cache=${EGG_VM_CACHE:-/var/cache/egg-vm}
meta=linux-image-cloud-amd64
# The guest's needs: the microvm's virtio-mmio transport, disks, the
# serial port the agent talks over, the runtime's file system, vsock,
# the network card of a network grant and virtiofs for host paths.
wanted=(virtio_mmio virtio_blk virtio_console erofs vsock
        vmw_vsock_virtio_transport virtio_net fuse virtiofs)

die() { echo "vm-kernel: $*" >&2; exit 1; }

pkg=$(apt-cache depends "$meta" 2>/dev/null |
      awk '/Depends: linux-image-/ {print $2; exit}')
[[ -n $pkg ]] || die "cannot resolve $meta (run apt-get update first)"
show=$(apt-cache show --no-all-versions "$pkg")
version=$(awk '/^Version:/ {print $2; exit}' <<<"$show")
sha=$(awk '/^SHA256:/ {print $2; exit}' <<<"$show")
[[ -n $version && ${#sha} -eq 64 ]] || die "no version/SHA256 for $pkg"
if [[ -n ${EGG_VM_KERNEL_SHA256:-} && $EGG_VM_KERNEL_SHA256 != "$sha" ]]; then
  die "$pkg $version has sha256 $sha, not the pinned $EGG_VM_KERNEL_SHA256"
fi

dest="$cache/${pkg}_${version}_${sha:0:16}"
if [[ -f $dest/SOURCE && -f $dest/vmlinuz &&
      $(cat "$dest/WANTED" 2>/dev/null) == "${wanted[*]}" ]]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch-XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root \
   "$pkg=$version" >/dev/null) ||
  die "apt-get download $pkg=$version failed"
deb=$(ls "$work"/*.deb)
got=$(sha256sum "$deb" | cut -d' ' -f1)
[[ $got == "$sha" ]] || die "$deb: sha256 $got, expected $sha"

dpkg-deb -x "$deb" "$work/x"
out="$work/out"
mkdir -p "$out/modules"
cp "$work"/x/boot/vmlinuz-* "$out/vmlinuz"
moddir=$(ls -d "$work"/x/lib/modules/* | head -1)
kver=$(basename "$moddir")
# The package ships no modules.dep (depmod, from kmod, makes it on
# install).
/usr/sbin/depmod -b "$work/x" "$kver" || die "depmod failed for $kver"

# Load order: each wanted module after its dependencies (modules.dep
# lists them, nearest first); built-in ones need nothing.
declare -A seen=()
order=()
add() {
  local name=$1 path deps d
  path=$(awk -F: -v n="/$name.ko" '{i = index($1, n)}
         i > 0 && i == length($1) - length(n) + 1 {print $1; exit}' \
         "$moddir/modules.dep")
  if [[ -z $path ]]; then
    grep -q "/$name.ko" "$moddir/modules.builtin" 2>/dev/null ||
      die "$name is neither a module nor built into $kver"
    return
  fi
  [[ -n ${seen[$path]:-} ]] && return
  deps=$(awk -F': *' -v p="$path" '$1 == p {print $2; exit}' \
         "$moddir/modules.dep")
  for d in $deps; do
    d=$(basename "$d"); add "${d%%.ko*}"
  done
  seen[$path]=1
  order+=("$path")
}
for m in "${wanted[@]}"; do add "$m"; done
: >"$out/modules.load"
for p in "${order[@]}"; do
  f=$(basename "$p")
  cp "$moddir/$p" "$out/modules/$f"
  echo "$f" >>"$out/modules.load"
done
echo "${wanted[*]}" >"$out/WANTED"
printf '%s %s %s\n' "$pkg" "$version" "$sha" >"$out/SOURCE"

rm -rf "$dest"
mv "$out" "$dest"
echo "$dest"
