#!/usr/bin/env bash
# Set up bitnet-compat from nothing: a virtualenv in .venv, the oracle llama-cpp-python built
# with flags that are safe on this CPU, the package with every extra, and the fetched corpora.
# Idempotent: a second run reuses what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
LLAMA_CPP_PYTHON_VERSION=0.3.36   # the oracle every figure in this project came from

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install --quiet --upgrade pip setuptools wheel

# llama-cpp-python's default build is -march=native; on these CPUs its AMX matmul path
# segfaults in llama_decode. Build it non-native, enabling only what /proc/cpuinfo shows.
cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { case " $cpu_flags " in *" $1 "*) echo ON ;; *) echo OFF ;; esac; }
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
CMAKE_ARGS+=" -DGGML_AVX=$(has avx) -DGGML_AVX2=$(has avx2) -DGGML_FMA=$(has fma) -DGGML_F16C=$(has f16c)"
CMAKE_ARGS+=" -DGGML_AVX512=$(has avx512f) -DGGML_AVX512_VNNI=$(has avx512_vnni)"
CMAKE_ARGS+=" -DGGML_AVX512_VBMI=$(has avx512vbmi) -DGGML_AVX512_BF16=$(has avx512_bf16)"
CMAKE_ARGS+=" -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
export CMAKE_ARGS

installed=$("$VPY" -c "import importlib.metadata as m; print(m.version('llama_cpp_python'))" 2>/dev/null || true)
if [ "$installed" != "$LLAMA_CPP_PYTHON_VERSION" ]; then
  # Wheels are cached per flag set, so a cached wheel is never one built with other flags.
  key=$(printf '%s %s' "$LLAMA_CPP_PYTHON_VERSION" "$CMAKE_ARGS" | sha256sum | cut -c1-16)
  wheel_dir="${XDG_CACHE_HOME:-$HOME/.cache}/bitnet-compat/llama-cpp-python/$key"
  if ! ls "$wheel_dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (about 5 minutes) with: $CMAKE_ARGS"
    mkdir -p "$wheel_dir.tmp"
    "$VPY" -m pip wheel --no-cache-dir --no-deps --no-binary llama-cpp-python \
      -w "$wheel_dir.tmp" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
    rm -rf "$wheel_dir" && mv "$wheel_dir.tmp" "$wheel_dir"
  fi
  "$VPY" -m pip install --quiet "$wheel_dir"/llama_cpp_python-*.whl
fi

# Debian tools the checks use, installed where we are root: headless Chromium renders the HTML
# report to a screenshot; the aarch64 cross compiler + qemu run the NEON kernels' self-test;
# clang is the second compiler the kernels must build with; nginx fronts the server replicas test.
DEBIAN_TOOLS="chromium-headless-shell gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user clang nginx-light"
if ! command -v chromium-headless-shell >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1 \
   || ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || ! command -v clang >/dev/null 2>&1 \
   || ! command -v nginx >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    (apt-get install -y -qq $DEBIAN_TOOLS >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $DEBIAN_TOOLS >/dev/null 2>&1; }) \
      || echo "note: could not install $DEBIAN_TOOLS; report screenshots / NEON self-test / clang build / nginx replica test will be skipped"
  else
    echo "note: install Debian's $DEBIAN_TOOLS for report screenshots and the NEON self-test"
  fi
fi

# torch for llama.cpp's convert_hf_to_gguf.py (the oracle of `bitnet convert` in
# tests/test_quantize_convert.py), CPU build only. "2.13.0+cpu" is a local version that PyPI
# never serves, so where no such wheel lies on disk (find-links) this step fails and nothing
# is downloaded -- a plain `torch` would pull a multi-GB CUDA build. Without torch those
# tests skip.
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  "$VPY" -m pip install --quiet --only-binary :all: "torch==2.13.0+cpu" \
    || echo "note: no CPU wheel of torch 2.13.0 on this machine; the convert_hf_to_gguf.py comparison will be skipped"
fi

"$VPY" -m pip install --quiet -e ".[all]"
.venv/bin/bitnet-compat fetch
