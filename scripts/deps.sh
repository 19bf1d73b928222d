#!/usr/bin/env bash
# Installs everything egg needs to build, run and test, from Debian's
# packages. Safe to run again; needs root (or sudo).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake pkg-config clang libclang-rt-14-dev
  # libraries egg links
  libssl-dev libzstd-dev libseccomp-dev libyaml-cpp-dev nlohmann-json3-dev
  libcli11-dev libarchive-dev libcurl4-openssl-dev libcmark-gfm-dev
  libcmark-gfm-extensions-dev libexpected-dev libgtest-dev libgmock-dev
  libutf8proc-dev
  # tools egg calls or tests compare against
  openssh-client zstd openssl bubblewrap mmdebstrap debian-archive-keyring
  python3 bash coreutils util-linux iproute2 procps
  # notebooks: PNG decoding, the Jupyter kernel protocol, and the tools the
  # notebook tests and bench compare against
  libpng-dev libzmq3-dev cppzmq-dev chromium python3-nbformat
  python3-nbconvert python3-ipykernel python3-matplotlib python3-numpy
  python3-sympy r-cran-irkernel
  # registry tests run Debian's registry on 127.0.0.1
  docker-registry
  # stronger isolation backends (docs/ISOLATION.md): gVisor, OCI runtimes,
  # the micro-VM and its disk and initramfs tools
  runsc runc crun qemu-system-x86 erofs-utils e2fsprogs cpio kmod
)

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
fi
