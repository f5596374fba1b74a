"""llama.cpp's own ggml, driven op by op through ctypes: the oracle of the peer-exact kernels.

llama-cpp-python ships libggml-base / libggml / libggml-cpu. This module builds one-op ggml
graphs on the CPU backend and returns what llama.cpp computes, with llama.cpp's kernel
choice intact (tinyBLAS for batches, ggml_vec_dot_* for one row, the tiled K-quant path,
and, with `repack=True`, the CPU_REPACK buffer that holds Q4_0 / Q4_K weights as
q4_0_8x8 / q4_K_8x8 on AVX2+ CPUs):

    g = GgmlOracle()
    y = g.mul_mat(w_bytes, type_id, n_out, n_in, x, n_threads=2)   # (T, n_out) float32
    y = g.rope(x, positions, n_dims, mode, freq_base=10000.0)       # x (T, H, d)

Arrays are numpy order (ggml's ne reversed). Every call allocates and frees its own
context, buffers and backend.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

_P = ctypes.c_void_p
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_I32 = 26
GGML_BACKEND_DEVICE_TYPE_CPU = 0
# types llama.cpp's CPU_REPACK buffer takes on an x86 AVX-512 CPU (ggml_repack_get_optimal_repack_type,
# rows a multiple of 8): Q4_0 -> q4_0_8x8, Q2_K -> q2_K_8x8, Q4_K -> q4_K_8x8, IQ4_NL, MXFP4
REPACKED_TYPES = (2, 10, 12, 20, 39)


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


def _libdir() -> Path:
    import llama_cpp

    return Path(llama_cpp.__file__).parent / "lib"


def load_ggml_lib(name: str) -> ctypes.CDLL:
    """llama-cpp-python's lib`name` (ggml-base, ggml, ggml-cpu), loaded RTLD_GLOBAL."""
    libdir = _libdir()
    found = sorted(libdir.glob(f"lib{name}.so*")) + sorted(libdir.glob(f"{name}.*"))
    if not found:
        raise FileNotFoundError(f"lib{name} not found in {libdir}")
    return ctypes.CDLL(str(found[0]), mode=ctypes.RTLD_GLOBAL)


def _sig(lib: ctypes.CDLL, name: str, res: Any, *args: Any) -> None:
    fn = getattr(lib, name)
    fn.restype = res
    fn.argtypes = list(args)


class GgmlOracle:
    """One-op ggml graphs on llama.cpp's CPU backend (see the module docstring)."""

    def __init__(self) -> None:
        base, core, cpu = load_ggml_lib("ggml-base"), load_ggml_lib("ggml"), load_ggml_lib("ggml-cpu")
        self.base, self.core, self.cpu = base, core, cpu
        _sig(base, "ggml_init", _P, _InitParams)
        _sig(base, "ggml_free", None, _P)
        _sig(base, "ggml_tensor_overhead", ctypes.c_size_t)
        _sig(base, "ggml_graph_overhead", ctypes.c_size_t)
        for n, k in (("ggml_new_tensor_1d", 1), ("ggml_new_tensor_2d", 2), ("ggml_new_tensor_3d", 3),
                     ("ggml_new_tensor_4d", 4)):
            _sig(base, n, _P, _P, ctypes.c_int, *([ctypes.c_int64] * k))
        _sig(base, "ggml_nbytes", ctypes.c_size_t, _P)
        _sig(base, "ggml_mul_mat", _P, _P, _P, _P)
        _sig(base, "ggml_rms_norm", _P, _P, _P, ctypes.c_float)
        _sig(base, "ggml_soft_max_ext", _P, _P, _P, _P, ctypes.c_float, ctypes.c_float)
        _sig(base, "ggml_swiglu_split", _P, _P, _P, _P)
        for unary in ("ggml_relu", "ggml_sqr"):
            _sig(base, unary, _P, _P, _P)
        _sig(base, "ggml_mul", _P, _P, _P, _P)
        _sig(base, "ggml_rope_ext", _P, _P, _P, _P, _P, ctypes.c_int, ctypes.c_int, ctypes.c_int,
             ctypes.c_float, ctypes.c_float, ctypes.c_float, ctypes.c_float, ctypes.c_float, ctypes.c_float)
        _sig(base, "ggml_flash_attn_ext", _P, _P, _P, _P, _P, _P, ctypes.c_float, ctypes.c_float,
             ctypes.c_float)
        _sig(base, "ggml_new_graph", _P, _P)
        _sig(base, "ggml_build_forward_expand", None, _P, _P)
        _sig(base, "ggml_backend_alloc_ctx_tensors_from_buft", _P, _P, _P)
        _sig(base, "ggml_backend_buffer_free", None, _P)
        _sig(base, "ggml_backend_tensor_set", None, _P, _P, ctypes.c_size_t, ctypes.c_size_t)
        _sig(base, "ggml_backend_tensor_get", None, _P, _P, ctypes.c_size_t, ctypes.c_size_t)
        _sig(base, "ggml_backend_graph_compute", ctypes.c_int, _P, _P)
        _sig(base, "ggml_backend_free", None, _P)
        _sig(base, "ggml_backend_buft_name", ctypes.c_char_p, _P)
        _sig(core, "ggml_backend_dev_by_type", _P, ctypes.c_int)
        _sig(base, "ggml_backend_dev_backend_reg", _P, _P)
        _sig(base, "ggml_backend_reg_get_proc_address", _P, _P, ctypes.c_char_p)
        _sig(base, "ggml_backend_dev_buffer_type", _P, _P)
        _sig(cpu, "ggml_backend_cpu_init", _P)
        _sig(cpu, "ggml_backend_cpu_set_n_threads", None, _P, ctypes.c_int)
        self.dev = core.ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)
        self.cpu_buft = base.ggml_backend_dev_buffer_type(self.dev)
        self.repack_buft = self._extra_buft("CPU_REPACK")

    def _extra_buft(self, name: str) -> Optional[int]:
        reg = self.base.ggml_backend_dev_backend_reg(self.dev)
        addr = self.base.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_dev_get_extra_bufts")
        if not addr:
            return None
        fn = ctypes.CFUNCTYPE(ctypes.POINTER(_P), _P)(addr)
        bufts = fn(self.dev)
        i = 0
        while bufts and bufts[i]:
            if self.base.ggml_backend_buft_name(bufts[i]).decode() == name:
                return int(bufts[i])
            i += 1
        return None

    # -- plumbing -----------------------------------------------------------------------

    def _new(self, ctx: int, type_id: int, shape: Sequence[int]) -> int:
        """A tensor of numpy `shape` (ggml ne reversed)."""
        ne = list(reversed([int(s) for s in shape]))
        fn = getattr(self.base, f"ggml_new_tensor_{len(ne)}d")
        return int(fn(ctx, type_id, *ne))

    def _ctx(self, n_tensors: int = 64) -> int:
        size = self.base.ggml_tensor_overhead() * n_tensors + self.base.ggml_graph_overhead() + 1024
        ctx = self.base.ggml_init(_InitParams(size, None, True))
        if not ctx:
            raise MemoryError("ggml_init failed")
        return int(ctx)

    def _run(self, build: Callable[[int, int], Tuple[int, List[Tuple[int, np.ndarray]]]],
             out_shape: Sequence[int], n_threads: int,
             weights: Sequence[Tuple[int, Sequence[int], np.ndarray, bool]] = ()) -> np.ndarray:
        """build(ctx, wctx) -> (result tensor, [(input tensor, numpy data)]). `weights`:
        (type, numpy shape, raw bytes, repack) created in their own context first, passed to
        build through self._w."""
        b = self.base
        wctx, ctx = self._ctx(8), self._ctx()
        buffers: List[int] = []
        backend = self.cpu.ggml_backend_cpu_init()
        try:
            self._w = []
            for type_id, shape, raw, repack in weights:
                t = self._new(wctx, type_id, shape)
                self._w.append((t, raw, repack))
            if self._w:
                repack = any(r for _, _, r in self._w)
                buft = self.repack_buft if repack and self.repack_buft else self.cpu_buft
                buf = b.ggml_backend_alloc_ctx_tensors_from_buft(wctx, buft)
                if not buf:
                    raise MemoryError("weight buffer allocation failed")
                buffers.append(int(buf))
                for t, raw, _ in self._w:
                    raw = np.ascontiguousarray(raw, dtype=np.uint8)
                    assert raw.nbytes == b.ggml_nbytes(t), (raw.nbytes, b.ggml_nbytes(t))
                    b.ggml_backend_tensor_set(t, raw.ctypes.data, 0, raw.nbytes)
            out, inputs = build(ctx, wctx)
            graph = b.ggml_new_graph(ctx)
            b.ggml_build_forward_expand(graph, out)
            buf = b.ggml_backend_alloc_ctx_tensors_from_buft(ctx, self.cpu_buft)
            if not buf:
                raise MemoryError("activation buffer allocation failed")
            buffers.append(int(buf))
            for t, data in inputs:
                data = np.ascontiguousarray(data)
                assert data.nbytes == b.ggml_nbytes(t), (data.nbytes, b.ggml_nbytes(t))
                b.ggml_backend_tensor_set(t, data.ctypes.data, 0, data.nbytes)
            self.cpu.ggml_backend_cpu_set_n_threads(backend, n_threads)
            rc = b.ggml_backend_graph_compute(backend, graph)
            if rc != 0:
                raise RuntimeError(f"ggml_backend_graph_compute returned {rc}")
            res = np.empty(tuple(out_shape), dtype=np.float32)
            assert res.nbytes == b.ggml_nbytes(out), (res.nbytes, b.ggml_nbytes(out))
            b.ggml_backend_tensor_get(out, res.ctypes.data, 0, res.nbytes)
            return res
        finally:
            for buf in buffers:
                b.ggml_backend_buffer_free(buf)
            b.ggml_free(ctx)
            b.ggml_free(wctx)
            b.ggml_backend_free(backend)

    # -- ops ------------------------------------------------------------------------------

    def mul_mat(self, w: np.ndarray, type_id: int, n_out: int, n_in: int, x: np.ndarray, *,
                n_threads: int = 1, repack: bool = True) -> np.ndarray:
        """ggml_mul_mat(w, x): w raw bytes of a (n_out, n_in) weight of `type_id`; x (T, n_in)
        float32 -> (T, n_out). repack: put the weight in CPU_REPACK (as llama.cpp does for
        its model weights; types it does not repack stay as they are)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        t = x.shape[0]

        def build(ctx: int, _wctx: int) -> Tuple[int, List[Tuple[int, np.ndarray]]]:
            xt = self._new(ctx, GGML_TYPE_F32, (t, n_in))
            return int(self.base.ggml_mul_mat(ctx, self._w[0][0], xt)), [(xt, x)]

        repack = repack and type_id in REPACKED_TYPES and n_out % 8 == 0
        return self._run(build, (t, n_out), n_threads, [(type_id, (n_out, n_in), w, repack)])

    def mul_mat_f16_act(self, a: np.ndarray, b: np.ndarray, *, n_threads: int = 1) -> np.ndarray:
        """ggml_mul_mat of an F16 tensor `a` (N, K) (values rounded to f16) by float32 `b` (T, K),
        both plain activations (no weight buffer), like attention's K·q. -> (T, N)."""
        a16 = np.ascontiguousarray(a, dtype=np.float16)
        b32 = np.ascontiguousarray(b, dtype=np.float32)

        def build(ctx: int, _wctx: int) -> Tuple[int, List[Tuple[int, np.ndarray]]]:
            at = self._new(ctx, GGML_TYPE_F16, a16.shape)
            bt = self._new(ctx, GGML_TYPE_F32, b32.shape)
            return int(self.base.ggml_mul_mat(ctx, at, bt)), [(at, a16), (bt, b32)]

        return self._run(build, (b32.shape[0], a16.shape[0]), n_threads)

    def rms_norm(self, x: np.ndarray, eps: float, *, n_threads: int = 1) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)

        def build(ctx: int, _wctx: int) -> Tuple[int, List[Tuple[int, np.ndarray]]]:
            xt = self._new(ctx, GGML_TYPE_F32, x.shape)
            return int(self.base.ggml_rms_norm(ctx, xt, eps)), [(xt, x)]

        return self._run(build, x.shape, n_threads)

    def soft_max(self, x: np.ndarray, scale: float = 1.0, mask: Optional[np.ndarray] = None, *,
                 n_threads: int = 1) -> np.ndarray:
        """ggml_soft_max_ext over the last axis of x (R, K); mask (R, K) float32 or None."""
        x = np.ascontiguousarray(x, dtype=np.float32)

        def build(ctx: int, _wctx: int) -> Tuple[int, List[Tuple[int, np.ndarray]]]:
            xt = self._new(ctx, GGML_TYPE_F32, x.shape)
            ins = [(xt, x)]
            mt = None
            if mask is not None:
                m = np.ascontiguousarray(mask, dtype=np.float32)
                mt = self._new(ctx, GGML_TYPE_F32, m.shape)
                ins.append((mt, m))
            return int(self.base.ggml_soft_max_ext(ctx, xt, mt, scale, 0.0)), ins

        return self._run(build, x.shape, n_threads)

    def flash_attn_ext(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, scale: float, *,
                       n_threads: int = 1) -> np.ndarray:
        """ggml_flash_attn_ext as llama.cpp's graph builds it: q (T, H, d) float32; k, v
        (K, Hkv, d) float16 or float32 (K: llama.cpp's KV view); mask (T, K) 0 / -inf (stored
        F16). -> (T, H, d) float32."""
        t, h, d = q.shape
        kv_type = GGML_TYPE_F16 if k.dtype == np.float16 else GGML_TYPE_F32
        qh = np.ascontiguousarray(np.asarray(q, dtype=np.float32).transpose(1, 0, 2))  # ne [d, T, H]
        kh = np.ascontiguousarray(k.transpose(1, 0, 2))  # ne [d, K, Hkv]
        vh = np.ascontiguousarray(v.transpose(1, 0, 2))
        m16 = np.ascontiguousarray(mask, dtype=np.float16)

        def build(ctx: int, _wctx: int) -> Tuple[int, List[Tuple[int, np.ndarray]]]:
            qt = self._new(ctx, GGML_TYPE_F32, qh.shape)
            kt = self._new(ctx, kv_type, kh.shape)
            vt = self._new(ctx, kv_type, vh.shape)
            mt = self._new(ctx, GGML_TYPE_F16, m16.shape)
            out = self.base.ggml_flash_attn_ext(ctx, qt, kt, vt, mt, scale, 0.0, 0.0)
            return int(out), [(qt, qh), (kt, kh), (vt, vh), (mt, m16)]

        return self._run(build, (t, h, d), n_threads)

    def swiglu(self, gate: np.ndarray, up: np.ndarray, *, n_threads: int = 1) -> np.ndarray:
        g = np.ascontiguousarray(gate, dtype=np.float32)
        u = np.ascontiguousarray(up, dtype=np.float32)

        def build(ctx: int, _wctx: int) -> Tuple[int, List[Tuple[int, np.ndarray]]]:
            gt = self._new(ctx, GGML_TYPE_F32, g.shape)
            ut = self._new(ctx, GGML_TYPE_F32, u.shape)
            return int(self.base.ggml_swiglu_split(ctx, gt, ut)), [(gt, g), (ut, u)]

        return self._run(build, g.shape, n_threads)

    def relu_sqr_mul(self, gate: np.ndarray, up: np.ndarray, *, n_threads: int = 1) -> np.ndarray:
        """build_ffn's LLM_FFN_RELU_SQR + LLM_FFN_PAR: ggml_mul(ggml_sqr(ggml_relu(gate)), up)."""
        g = np.ascontiguousarray(gate, dtype=np.float32)
        u = np.ascontiguousarray(up, dtype=np.float32)

        def build(ctx: int, _wctx: int) -> Tuple[int, List[Tuple[int, np.ndarray]]]:
            gt = self._new(ctx, GGML_TYPE_F32, g.shape)
            ut = self._new(ctx, GGML_TYPE_F32, u.shape)
            sq = self.base.ggml_sqr(ctx, self.base.ggml_relu(ctx, gt))
            return int(self.base.ggml_mul(ctx, sq, ut)), [(gt, g), (ut, u)]

        return self._run(build, g.shape, n_threads)

    def rope(self, x: np.ndarray, positions: np.ndarray, n_dims: int, mode: int, *,
             freq_base: float = 10000.0, freq_scale: float = 1.0, ext_factor: float = 0.0,
             attn_factor: float = 1.0, beta_fast: float = 32.0, beta_slow: float = 1.0,
             n_ctx_orig: int = 0, freq_factors: Optional[np.ndarray] = None,
             n_threads: int = 1) -> np.ndarray:
        """ggml_rope_ext of x (T, H, d) at positions (T,)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        pos = np.ascontiguousarray(positions, dtype=np.int32)

        def build(ctx: int, _wctx: int) -> Tuple[int, List[Tuple[int, np.ndarray]]]:
            xt = self._new(ctx, GGML_TYPE_F32, x.shape)
            pt = self._new(ctx, GGML_TYPE_I32, pos.shape)
            ins = [(xt, x), (pt, pos)]
            ft = None
            if freq_factors is not None:
                ff = np.ascontiguousarray(freq_factors, dtype=np.float32)
                ft = self._new(ctx, GGML_TYPE_F32, ff.shape)
                ins.append((ft, ff))
            out = self.base.ggml_rope_ext(ctx, xt, pt, ft, n_dims, mode, n_ctx_orig, freq_base,
                                          freq_scale, ext_factor, attn_factor, beta_fast, beta_slow)
            return int(out), ins

        return self._run(build, x.shape, n_threads)
