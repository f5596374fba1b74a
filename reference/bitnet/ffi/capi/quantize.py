"""llama_model_quantize: bitnet.tools.quantize underneath, llama.cpp's params, semantics and
return codes (0 success, 1 failure)."""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional

from bitnet import errors as E
from bitnet.ffi.capi.core import RT, CAPIError, export

GGML_TYPE_COUNT = 43  # ggml.h of llama.cpp 0.3.36: "use the default"
# LLAMA_FTYPE_MOSTLY_Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_M: llama.cpp upgrades some tensors of
# these files (llama-quant.cpp llama_tensor_get_type); Q5_K_S (16) and Q6_K (18) are one type
K_QUANT_MIXTURE_FTYPES = frozenset({10, 11, 12, 13, 14, 15, 17})
LLAMA_FTYPE_MOSTLY_Q1_0 = 40  # llama.cpp 0.3.36's 40; bitnet.cpp's I2_S file type is 40 too
BITNET_FTYPE_MOSTLY_I2_S = 0x10028  # bitnet_ffi.h: I2_S from C


@export
def llama_model_quantize(fname_inp: Any, fname_out: Any, params: Any) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # llama.cpp prints no repair/ternary warnings either
        return _quantize(fname_inp, fname_out, params)


def _file_type(ftype: int) -> int:
    """The ggml type id llama_model_quantize writes for a llama_ftype."""
    from bitnet.ggml_types import GGMLType
    from bitnet.tools import quantize as Q

    if ftype == BITNET_FTYPE_MOSTLY_I2_S:
        return int(GGMLType.I2_S)
    by_ftype = {ft: tid for tid, ft in Q.FILE_TYPES.items() if ft != LLAMA_FTYPE_MOSTLY_Q1_0}
    if ftype in K_QUANT_MIXTURE_FTYPES:
        # subtle: llama.cpp gives these ftypes per-tensor mixtures (e.g. Q4_K_S puts attn_v and
        # the first ffn_down layers in Q5_K); `bitnet quantize` writes one type, so refuse
        # rather than silently produce a different file.
        raise CAPIError(E.GENERIC_ERROR, f"file type {ftype} is one of llama.cpp's K-quant mixtures "
                        "(not reproduced); use 16 (Q5_K_S) or 18 (Q6_K), or `bitnet quantize --type`")
    if ftype not in by_ftype:
        raise CAPIError(E.GENERIC_ERROR, f"invalid output file type {ftype} (supported: "
                        f"{sorted(set(by_ftype) - K_QUANT_MIXTURE_FTYPES)} and "
                        f"BITNET_FTYPE_MOSTLY_I2_S)")
    return by_ftype[ftype]


def _type_name(t: int) -> Optional[str]:
    from bitnet.ggml_types import GGML_TYPES

    if t == GGML_TYPE_COUNT:
        return None
    if t not in GGML_TYPES:
        raise CAPIError(E.GENERIC_ERROR, f"invalid ggml type {t}")
    return GGML_TYPES[t].name


def _quantize(fname_inp: Any, fname_out: Any, params: Any) -> int:
    from bitnet.ggml_types import GGML_TYPES
    from bitnet.tools import quantize as Q

    ffi = RT.ffi
    if fname_inp == ffi.NULL or fname_out == ffi.NULL or params == ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "fname_inp, fname_out and params must not be NULL")
    src = os.fsdecode(ffi.string(fname_inp))
    dst = os.fsdecode(ffi.string(fname_out))
    if not os.path.isfile(src):
        raise CAPIError(E.MODEL_NOT_FOUND, f"input file not found: {src}")
    unsupported = [name for name, on in (
        ("only_copy", params.only_copy), ("pure", params.pure),
        ("imatrix", params.imatrix != ffi.NULL), ("kv_overrides", params.kv_overrides != ffi.NULL),
        ("tt_overrides", params.tt_overrides != ffi.NULL),
        ("prune_layers", params.prune_layers != ffi.NULL)) if on]
    if unsupported:
        raise CAPIError(E.GENERIC_ERROR, f"unsupported quantize params: {', '.join(unsupported)}")
    qtype = GGML_TYPES[_file_type(int(params.ftype))].name
    out_type = _type_name(int(params.output_tensor_type))
    embd_type = _type_name(int(params.token_embedding_type))
    from bitnet.gguf import load

    try:
        gf = load(src)
    except (E.BitNetError, OSError, ValueError) as exc:
        raise CAPIError(E.MODEL_LOAD_FAILED, f"cannot read {src}: {exc}") from exc
    tensors = list(gf.tensors.values())
    if not params.quantize_output_tensor and out_type is None:
        out_t = gf.tensors.get("output.weight")
        if out_t is not None:
            out_type = GGML_TYPES[int(out_t.type_id)].name
    plans = Q.plan_tensors(tensors, Q.type_id(qtype),
                           output_type=Q.type_id(out_type) if out_type else None,
                           embd_type=Q.type_id(embd_type) if embd_type else None)
    if not params.allow_requantize:
        plain = {0, 1, 30}  # F32, F16, BF16
        for pl in plans:
            if pl.dst_type != pl.src_type and pl.src_type not in plain:
                raise CAPIError(E.GENERIC_ERROR, f"requantizing from type "
                                f"{GGML_TYPES[pl.src_type].name} is disabled")
    if params.dry_run:
        return 0
    Q.quantize_file(src, dst, qtype, output_type=out_type, embeddings_type=embd_type)
    return 0
