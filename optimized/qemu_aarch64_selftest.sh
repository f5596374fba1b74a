#!/usr/bin/env bash
# Cross-compile the C kernels for aarch64 (NEON variants) and run the C self-test under qemu.
# Optional: needs Debian's gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user
#   apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
# Exits 77 (the "skipped" convention) when they are missing, else the self-test's status.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CC=${AARCH64_CC:-aarch64-linux-gnu-gcc}
QEMU=${QEMU_AARCH64:-qemu-aarch64}
SYSROOT=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
if ! command -v "$CC" >/dev/null 2>&1 || ! command -v "$QEMU" >/dev/null 2>&1 || [ ! -d "$SYSROOT" ]; then
  echo "skip: need $CC, $QEMU and $SYSROOT (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)"
  exit 77
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$CC" -std=c99 -O3 -ffp-contract=off -D_POSIX_C_SOURCE=200809L -Wall -Werror \
  -I"$here/bitnet_kernels/kernels" "$here"/bitnet_kernels/kernels/*.c -o "$out/bn_selftest" -lm -lpthread
"$QEMU" -L "$SYSROOT" "$out/bn_selftest"
