"""`bitnet quantize`: re-encode the tensors of a GGUF file, streaming one tensor at a time.

    from bitnet.tools.quantize import quantize_file
    report = quantize_file("in.gguf", "out.gguf", "Q4_0")   # -> QuantizeReport

Which tensors change follows llama.cpp's src/llama-quant.cpp (`tensor_allows_quantization`,
`llama_tensor_get_type`, `tensor_type_fallback`): only 2-D/3-D tensors whose name ends in
"weight" and is not a `*_norm.weight` (nor a few architecture-specific small tensors) are
converted; everything else (norms, 1-D `.scale` tensors, biases) keeps its type and bytes,
as does a tensor already of its target type (llama.cpp would requantize it with
--allow-requantize; copying is exact). Metadata is copied verbatim (unrepaired), with
`general.file_type` set.
A tensor whose ne0 is not a multiple of the target block size falls back as llama.cpp does:
TQ1_0/TQ2_0/Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, 32-weight
types -> F16, and F16 when the fallback does not fit either;
I2_S (no llama.cpp rule) falls back to F16. Each fallback is reported by name.

llama.cpp's type rules for the big tensors are followed: `output.weight` (and
`token_embd.weight` when the output is tied to it) becomes Q6_K unless the target is Q8_0
(Q8_0 when ne0 does not fit the target's block), an untied `token_embd.weight` becomes Q4_K
for TQ1_0/TQ2_0. I2_S (bitnet.cpp's type) is the exception: token embeddings and output
stay F16, as in Microsoft's GGUFs.

The k-quant targets Q2_K..Q6_K quantize every eligible tensor to that type (as
`llama-quantize --pure`), except for the output/token_embd rules above; llama.cpp's
per-layer mixtures of its _S/_M file types (e.g. Q4_K_S giving attn_v Q5_K) are not
reproduced. general.file_type is the llama_ftype of that base type: Q2_K 10, Q3_K_S 11,
Q4_K_S 14, Q5_K_S 16, Q6_K 18 (Q5_K_S and Q6_K have no mixture rules: identical files).

Ternary targets (TQ1_0, TQ2_0, I2_S) first ternarize a tensor as BitNet b1.58 does
(scale = mean|W|, W' = scale * RoundClip(W / scale, -1, 1); `--no-ternarize` skips this
and matches llama-quantize byte for byte); a tensor that already holds
only {-s, 0, +s} is kept as is (re-applying absmean would shrink s by the zero fraction).
A tensor whose relative least-squares error after ternarization exceeds
`NON_TERNARY_THRESHOLD` triggers a NonTernaryWarning: it was not ternary-trained and the
model's quality will collapse.

Left out: importance matrices, IQ-quant targets, llama.cpp's k-quant mixtures (_S/_M),
per-tensor overrides, multi-threading, split files.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from bitnet.errors import BitNetError, UnsupportedError
from bitnet.ggml_types import GGML_TYPES, GGML_TYPES_BY_NAME, GGMLType, tensor_nbytes
from bitnet.gguf import load
from bitnet.gguf.reader import DEFAULT_ALIGNMENT, KVType
from bitnet.gguf.writer import header_bytes
from bitnet.quants import dequantize, quantize
from bitnet.safe_write import atomic_output, check_output
from bitnet.tools.progress import progress_bar, wanted

TARGET_TYPES: Tuple[str, ...] = (
    "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
    "Q6_K", "TQ1_0", "TQ2_0", "I2_S")
TERNARY_TYPES = frozenset({GGMLType.TQ1_0, GGMLType.TQ2_0, GGMLType.I2_S})

# general.file_type (llama_ftype) per target type; I2_S = 40 as bitnet.cpp's files say
FILE_TYPES: Dict[int, int] = {
    GGMLType.F32: 0, GGMLType.F16: 1, GGMLType.Q4_0: 2, GGMLType.Q4_1: 3, GGMLType.Q8_0: 7,
    GGMLType.Q5_0: 8, GGMLType.Q5_1: 9, GGMLType.BF16: 32,
    # the _S ftype of each base type
    GGMLType.Q2_K: 10, GGMLType.Q3_K: 11, GGMLType.Q4_K: 14, GGMLType.Q5_K: 16, GGMLType.Q6_K: 18,
    GGMLType.TQ1_0: 36, GGMLType.TQ2_0: 37, GGMLType.I2_S: 40,
}

# Relative least-squares error min_s ||W - s*t|| / ||W|| of absmean ternarization, measured
# on 256x256 tensors (tests/test_quantize_convert.py re-measures): Gaussian 0.46, uniform
# 0.35, exactly ternary 0, ternary + N(0, (1% of s)^2) noise 0.012, + 10% noise 0.12.
# 0.2 separates ternary-trained weights (even noisy ones) from ordinary ones.
NON_TERNARY_THRESHOLD = 0.2


class NonTernaryWarning(UserWarning):
    """Weights that were not ternary-trained were quantized to a ternary type."""


@dataclass
class TensorPlan:
    name: str
    shape: Tuple[int, ...]  # ggml order
    src_type: int
    dst_type: int
    note: str = ""  # why dst_type is not the requested type, if so


@dataclass
class QuantizeReport:
    plans: List[TensorPlan] = field(default_factory=list)
    non_ternary: List[Tuple[str, float]] = field(default_factory=list)  # (name, rel error)
    in_bytes: int = 0
    out_bytes: int = 0

    @property
    def fallbacks(self) -> List[TensorPlan]:
        return [p for p in self.plans if p.note]


# llama.cpp's file-type names (llama-quantize's QUANT_OPTIONS) that name a file we write
# exactly: Q5_K_S has no per-layer mixture rule in llama-quant.cpp, so it is every eligible
# tensor Q5_K, which is our Q5_K. The other _S/_M/_L names are per-layer mixtures.
LLAMA_FTYPE_ALIASES: Dict[str, str] = {"Q5_K_S": "Q5_K"}
LLAMA_FTYPE_MIXTURES: Dict[str, str] = {
    "Q2_K_S": "Q2_K", "Q3_K_S": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K", "Q4_K_S": "Q4_K",
    "Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K"}


def canonical_type(name: str) -> str:
    """A --type value (any case; ggml type names and the llama.cpp file-type names that map
    to a file we write) -> its name in TARGET_TYPES (or F32); UnsupportedError otherwise."""
    key = name.strip().upper()
    if key in TARGET_TYPES or key == "F32":
        return key
    if key in LLAMA_FTYPE_ALIASES:
        return LLAMA_FTYPE_ALIASES[key]
    if key in LLAMA_FTYPE_MIXTURES:
        base = LLAMA_FTYPE_MIXTURES[key]
        raise UnsupportedError(
            f"{key} is llama.cpp's per-layer mixture of k-quants, which bitnet quantize does not "
            f"reproduce; --type {base} makes every eligible tensor {base} (as llama-quantize "
            "--pure)")
    raise UnsupportedError(f"unknown or unsupported quantization type {name!r}; choose one of "
                           f"{', '.join(TARGET_TYPES)} (or Q5_K_S)")


def type_id(name: str) -> int:
    """'q4_0' / 'Q4_0' / 'Q5_K_S' -> the ggml type id; only what quantize writes (and F32)."""
    return int(GGML_TYPES_BY_NAME[canonical_type(name)].id)


# ---------------------------------------------------------------------------------------
# Type selection (llama-quant.cpp)
# ---------------------------------------------------------------------------------------

_NEVER_QUANTIZED = ("_norm.weight", "ffn_gate_inp.weight", "altup", "laurel",
                    "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight",
                    "time_mix_", "attn_rel_b.weight", ".position_embd", "position_embd.weight",
                    "token_types.weight")


def allows_quantization(name: str, shape: Sequence[int]) -> bool:
    """tensor_allows_quantization: 2-D/3-D `*weight` tensors that are not norms et al."""
    n_dims = len(shape)
    while n_dims > 1 and shape[n_dims - 1] == 1:  # ggml_n_dims ignores trailing 1s
        n_dims -= 1
    if n_dims < 2 or not name.endswith("weight"):
        return False
    return not any(part in name for part in _NEVER_QUANTIZED)


_K_FALLBACK: Dict[int, int] = {
    GGMLType.Q4_K: GGMLType.Q5_0, GGMLType.Q5_K: GGMLType.Q5_1, GGMLType.Q6_K: GGMLType.Q8_0,
}


def _fallback(name: str, ne0: int, target: int) -> Tuple[int, str]:
    """tensor_type_fallback: a type whose block size divides ne0, and the reason."""
    blck = GGML_TYPES[target].block_size
    if ne0 % blck == 0:
        return target, ""
    out: int
    if target in (GGMLType.TQ1_0, GGMLType.TQ2_0, GGMLType.Q2_K, GGMLType.Q3_K):
        out = GGMLType.Q4_0
    elif target in _K_FALLBACK:
        out = _K_FALLBACK[target]
    elif target == GGMLType.I2_S:
        out = GGMLType.F16  # bitnet.cpp has no fallback for I2_S; F16 keeps the weights exact
    else:
        out = target
    if ne0 % GGML_TYPES[out].block_size != 0:
        out = GGMLType.F16
    return out, (f"ne0={ne0} not divisible by {blck} (required for "
                 f"{GGML_TYPES[target].name}) -> {GGML_TYPES[out].name}")


def choose_type(name: str, shape: Sequence[int], src_type: int, target: int, *, tied: bool,
                output_type: Optional[int] = None, embd_type: Optional[int] = None
                ) -> Tuple[int, str]:
    """(type id, note) for one tensor, mirroring llama_tensor_get_type for our targets."""
    if not allows_quantization(name, shape):
        return src_type, ""
    is_embd = name in ("token_embd.weight", "per_layer_token_embd.weight")
    is_output = name == "output.weight"
    if is_embd and embd_type is not None:
        return embd_type, ""
    if is_output and output_type is not None:
        return output_type, ""
    if GGML_TYPES[target].block_size == 1:  # F16 / BF16: not "quantized", no type rules
        return target, ""
    target_for: int
    if is_output or (tied and is_embd):
        if tied and is_embd and output_type is not None:
            return output_type, ""
        if target == GGMLType.I2_S:
            return GGMLType.F16, "output / tied embeddings stay F16 for I2_S (bitnet.cpp)"
        if shape[0] % GGML_TYPES[target].block_size != 0:
            target_for = GGMLType.Q8_0  # llama.cpp: ne0 does not fit the target's block
        elif target != GGMLType.Q8_0:
            target_for = GGMLType.Q6_K
        else:
            target_for = target
    elif is_embd:
        if target == GGMLType.I2_S:
            return GGMLType.F16, "token embeddings stay F16 for I2_S (bitnet.cpp)"
        target_for = GGMLType.Q4_K if target in (GGMLType.TQ1_0, GGMLType.TQ2_0) else target
    else:
        target_for = target
    return _fallback(name, shape[0], target_for)


def plan_tensors(tensors: Sequence[Any], target: int, *, output_type: Optional[int] = None,
                 embd_type: Optional[int] = None) -> List[TensorPlan]:
    """One TensorPlan per TensorInfo, in file order."""
    tied = not any(t.name == "output.weight" for t in tensors)
    plans = []
    for t in tensors:
        dst, note = choose_type(t.name, tuple(t.shape), t.type_id, target, tied=tied,
                                output_type=output_type, embd_type=embd_type)
        plans.append(TensorPlan(t.name, tuple(t.shape), t.type_id, dst, note))
    return plans


# ---------------------------------------------------------------------------------------
# Ternarization (BitNet b1.58)
# ---------------------------------------------------------------------------------------


def ternarize(w: np.ndarray) -> Tuple[np.ndarray, float]:
    """BitNet b1.58 weight quantization of one tensor -> (scale * t as float32, rel error).

    Already-ternary tensors (only {-s, 0, +s}) come back unchanged with error 0. Otherwise
    scale = mean|W|, t = RoundClip(W / scale, -1, 1); the error is the relative
    least-squares distance min_s ||W - s t|| / ||W|| (a shape test, independent of scale).
    """
    w = np.asarray(w, dtype=np.float32)
    a = np.abs(w)
    amax = float(a.max()) if a.size else 0.0
    if amax == 0.0 or bool(np.all((a == 0) | (a == amax))):
        return w, 0.0
    scale = np.float32(max(float(a.mean(dtype=np.float64)), 1e-5))
    t = np.clip(np.round(w / scale), -1, 1).astype(np.float32)
    w64 = w.astype(np.float64).reshape(-1)
    t64 = t.astype(np.float64).reshape(-1)
    tt = float(t64 @ t64)
    best = float(w64 @ t64) / tt if tt else 0.0
    norm = float(np.sqrt(w64 @ w64))
    err = float(np.linalg.norm(w64 - best * t64)) / norm if norm else 0.0
    return (t * scale).astype(np.float32), err


# ---------------------------------------------------------------------------------------
# Streaming writer
# ---------------------------------------------------------------------------------------


def _header(kv: Dict[str, Any], kv_types: Dict[str, KVType], plans: Sequence[TensorPlan],
            alignment: int) -> Tuple[bytes, List[int]]:
    """GGUF v3 header (KVs + tensor infos, padded) and each tensor's size in bytes."""
    sizes = [tensor_nbytes(p.dst_type, int(np.prod(p.shape, dtype=np.int64))) for p in plans]
    infos = [(p.name, tuple(p.shape), p.dst_type, n) for p, n in zip(plans, sizes)]
    return header_bytes(kv, kv_types, infos, alignment), sizes


CHUNK_ELEMENTS = 1 << 22  # weights dequantized at a time (16 MB as float32)


def _convert_rows(raw: np.ndarray, plan: TensorPlan) -> np.ndarray:
    """Row-chunked re-encoding: the float copy never holds more than CHUNK_ELEMENTS weights."""
    ne0 = plan.shape[0]
    n_rows = int(np.prod(plan.shape[1:], dtype=np.int64))
    src_row, dst_row = tensor_nbytes(plan.src_type, ne0), tensor_nbytes(plan.dst_type, ne0)
    out = np.empty(n_rows * dst_row, dtype=np.uint8)
    step = max(1, CHUNK_ELEMENTS // max(ne0, 1))
    for r0 in range(0, n_rows, step):
        r1 = min(n_rows, r0 + step)
        x = dequantize(raw[r0 * src_row:r1 * src_row], plan.src_type, (r1 - r0, ne0))
        out[r0 * dst_row:r1 * dst_row] = (x.astype("<f4").reshape(-1).view(np.uint8)
                                          if plan.dst_type == GGMLType.F32 else quantize(x, plan.dst_type))
    return out


def _convert_tensor(raw: np.ndarray, plan: TensorPlan, bitnet_ternarize: bool = True
                    ) -> Tuple[np.ndarray, float]:
    """Raw source bytes -> raw destination bytes (and the ternarization error, or -1)."""
    if plan.src_type == plan.dst_type:
        return raw, -1.0
    if plan.dst_type not in TERNARY_TYPES and GGMLType.I2_S not in (plan.src_type, plan.dst_type):
        return _convert_rows(raw, plan), -1.0  # blocks never span rows: chunk by rows
    # ternary targets need the whole tensor's mean |W| (and I2_S one scale per tensor)
    np_shape = tuple(reversed(plan.shape))
    x = dequantize(raw, plan.src_type, np_shape)  # (..., ne0) float32
    err = -1.0
    if plan.dst_type in TERNARY_TYPES:
        x_t, err = ternarize(x)
        if bitnet_ternarize:
            x = x_t
    if plan.dst_type == GGMLType.F32:
        return x.astype("<f4").reshape(-1).view(np.uint8), err
    return quantize(x, plan.dst_type), err


def quantize_file(src: Union[str, os.PathLike], dst: Union[str, os.PathLike], qtype: str, *,
                  output_type: Optional[str] = None, embeddings_type: Optional[str] = None,
                  progress: bool = False, bitnet_ternarize: bool = True) -> QuantizeReport:
    """Write `src` re-encoded to `qtype` as `dst`; memory is bounded by the largest tensor.

    `bitnet_ternarize=False` feeds ternary targets the raw weights, as llama.cpp does
    (TQ1_0/TQ2_0: per-256-block max scale; byte-identical to llama-quantize).
    Raises BitNetError for an in-place overwrite; warns NonTernaryWarning (once, naming the
    worst tensor) when a ternary target meets weights that were not ternary-trained.
    """
    src_path, dst_path = Path(src), Path(dst)
    check_output(dst_path, [src_path])  # refuse before the (possibly long) work starts
    target = type_id(qtype)
    gf = load(src_path)
    plans = plan_tensors(list(gf.tensors.values()), target,
                         output_type=type_id(output_type) if output_type else None,
                         embd_type=type_id(embeddings_type) if embeddings_type else None)
    kv = dict(gf.raw_kv)  # verbatim, as llama.cpp copies it; repairs re-apply on load
    kv_types = {k: t for k, t in gf.kv_types.items() if k in kv}
    kv["general.file_type"] = FILE_TYPES[target]
    kv_types["general.file_type"] = KVType(4)  # u32, as llama.cpp writes it
    alignment = gf.alignment
    if alignment != DEFAULT_ALIGNMENT:
        kv["general.alignment"] = alignment
        kv_types["general.alignment"] = KVType(4)
    head, sizes = _header(kv, kv_types, plans, alignment)
    report = QuantizeReport(plans=plans, in_bytes=src_path.stat().st_size)
    _write_tensors(gf, dst_path, head, plans, sizes, alignment, report, progress, bitnet_ternarize)
    report.out_bytes = dst_path.stat().st_size
    if report.non_ternary:
        name, err = max(report.non_ternary, key=lambda r: r[1])
        warnings.warn(
            f"{len(report.non_ternary)} tensor(s) are not ternary-trained (worst: {name}, "
            f"relative ternarization error {err:.3f} > {NON_TERNARY_THRESHOLD}): "
            f"{GGML_TYPES[target].name} will make the model's output quality collapse",
            NonTernaryWarning, stacklevel=2)
    return report


def _write_tensors(gf: Any, dst: Path, head: bytes, plans: Sequence[TensorPlan],
                   sizes: Sequence[int], alignment: int, report: QuantizeReport,
                   progress: bool, bitnet_ternarize: bool) -> None:
    """The header, then one tensor at a time: only one tensor's data is ever in memory.
    Written through atomic_output: `dst` is replaced only by a complete file."""
    with atomic_output(dst, inputs=[gf.path]) as fh, \
            progress_bar("quantizing", len(plans), enabled=progress) as advance:
        fh.write(head)
        for plan, nbytes in zip(plans, sizes):
            out, err = _convert_tensor(gf.tensor_bytes(plan.name), plan, bitnet_ternarize)
            if out.nbytes != nbytes:  # a bug, not bad input: sizes come from the type table
                raise AssertionError(f"{plan.name}: wrote {out.nbytes} bytes, planned {nbytes}")
            if err > NON_TERNARY_THRESHOLD:
                report.non_ternary.append((plan.name, err))
            fh.write(out.tobytes())
            fh.write(b"\0" * (-nbytes % alignment))
            del out
            advance(f"{plan.name} -> {GGML_TYPES[plan.dst_type].name}")


def _type_arg(name: str) -> str:
    try:
        return canonical_type(name)
    except UnsupportedError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bitnet quantize", description=(__doc__ or "").split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("input", help="GGUF file to read")
    ap.add_argument("output", help="GGUF file to write (never the input; replaced atomically)")
    ap.add_argument("--type", required=True, type=_type_arg, metavar="TYPE",
                    help=f"target tensor type, any case: {', '.join(TARGET_TYPES)}; llama.cpp's "
                         "Q5_K_S is accepted (the same file), its mixtures (Q4_K_M ...) are not")
    ap.add_argument("--output-type", type=_type_arg, default=None, metavar="TYPE",
                    help="type of output.weight (default: llama.cpp's rule)")
    ap.add_argument("--embeddings-type", type=_type_arg, default=None, metavar="TYPE",
                    help="type of token_embd.weight (default: llama.cpp's rule)")
    ap.add_argument("--no-ternarize", action="store_true",
                    help="ternary types: skip BitNet absmean ternarization (llama.cpp's way)")
    ap.add_argument("--no-progress", action="store_true",
                    help="no progress bar (it is shown only on a terminal anyway)")
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    """`bitnet quantize IN.gguf OUT.gguf --type T [--output-type T2] [--embeddings-type T3]`."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NonTernaryWarning)
            report = quantize_file(args.input, args.output, args.type,
                                   output_type=args.output_type,
                                   embeddings_type=args.embeddings_type,
                                   bitnet_ternarize=not args.no_ternarize,
                                   progress=wanted(args.no_progress))
    except (BitNetError, OSError) as exc:
        print(f"bitnet quantize: error: {exc}", file=sys.stderr)
        return 1
    for w in caught:
        if issubclass(w.category, NonTernaryWarning):
            print(f"WARNING: {w.message}", file=sys.stderr)
    for p in report.fallbacks:
        print(f"note: {p.name}: {p.note}", file=sys.stderr)
    print(f"{args.output}: {report.in_bytes / 2**20:.1f} MiB -> {report.out_bytes / 2**20:.1f} MiB"
          f", {len(report.plans)} tensors, general.file_type={FILE_TYPES[type_id(args.type)]}")
    return 0
