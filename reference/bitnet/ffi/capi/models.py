"""Models: loading (llama_model_load_from_file ...), freeing, and what llama.h tells about one
(hyperparameters, metadata, description, size, chat template)."""

from __future__ import annotations

import os
import time
import warnings
from typing import Any, Dict, List, Optional

import numpy as np

from bitnet import errors as E
from bitnet.ffi.capi.core import (
    HANDLES,
    LOG_INFO,
    RT,
    CAPIError,
    KeepAlive,
    as_ptr,
    c_str,
    c_string,
    callback,
    export,
    get,
    handle_id,
    log,
    new_handle,
    set_error,
)
from bitnet.ffi.capi.stdmap import unordered_order

LLAMA_ROPE_TYPE_NORM, LLAMA_ROPE_TYPE_NEOX = 0, 2
# architectures whose rope is NEOX-style (llama.cpp's llama_model_rope_type)
NEOX_ARCHS = {"bitnet", "bitnet-b1.58", "qwen2", "qwen3", "phi2", "phi3", "gemma", "gemma2",
              "gemma3", "stablelm", "gptneox", "falcon", "starcoder2", "olmo2", "bert"}


class Model:
    """A loaded GGUF file: metadata, tokenizer and (unless vocab_only) the engine."""

    def __init__(self, path: str, gguf: Any, tokenizer: Any, engine: Any, t_load_ms: float) -> None:
        self.path = path
        self.gguf = gguf
        self.tokenizer = tokenizer
        self.engine = engine  # bitnet.model.Model, None for vocab_only
        self.t_load_ms = t_load_ms
        self.t_start_ms = time.monotonic() * 1e3 - t_load_ms
        self.vocab_handle = 0
        self.keep = KeepAlive()
        self.meta_items: Optional[List[Any]] = None  # gguf_kv's walk order, built on first use

    @property
    def kv(self) -> Dict[str, Any]:
        return self.gguf.kv

    @property
    def arch(self) -> str:
        return str(self.kv.get("general.architecture", ""))

    def hp(self, key: str, default: Optional[int] = None) -> int:
        """An {arch}.{key} hyperparameter (llama.cpp's hparams); `default` when absent."""
        value = self.kv.get(f"{self.arch}.{key}")
        if value is None:
            if default is None:
                raise CAPIError(E.GENERIC_ERROR, f"the model has no {self.arch}.{key}")
            return default
        return int(value)


class Vocab:
    def __init__(self, model: Model) -> None:
        self.model = model


def model_of(ptr: Any) -> Model:
    return get(ptr, Model, "model")


def _apply_kv_overrides(kv: Dict[str, Any], overrides: Any) -> None:
    """llama_model_params.kv_overrides: an array ended by an entry with an empty key."""
    ffi = RT.ffi
    if overrides == ffi.NULL:
        return
    for i in range(4096):
        o = overrides[i]
        key = ffi.string(o.key).decode("utf-8", "replace")
        if not key:
            return
        tag = int(o.tag)
        if tag == 0:
            kv[key] = int(o.val_i64)
        elif tag == 1:
            kv[key] = float(o.val_f64)
        elif tag == 2:
            kv[key] = bool(o.val_bool)
        elif tag == 3:
            kv[key] = ffi.string(o.val_str).decode("utf-8", "replace")
        else:
            raise CAPIError(E.MODEL_LOAD_FAILED, f"kv_overrides[{i}] ({key}): unknown tag {tag}")
    raise CAPIError(E.GENERIC_ERROR, "kv_overrides: no terminating entry in 4096")


def _progress(params: Any, value: float) -> None:
    """Call params.progress_callback as llama.cpp does; False from it cancels the load."""
    if params.progress_callback == RT.ffi.NULL:
        return
    with callback():
        go = bool(params.progress_callback(value, params.progress_callback_user_data))
    set_error(0)  # what a (refused) call from inside the callback set belongs to that call
    if not go:
        raise CAPIError(E.MODEL_LOAD_FAILED, "model load cancelled by the progress callback")


def load_model(fname: str, params: Any) -> Any:
    """Load `fname` with llama_model_params `params` and return a model handle."""
    if not os.path.isfile(fname):
        raise CAPIError(E.MODEL_NOT_FOUND, f"model file not found: {fname}")
    from bitnet import runtime
    from bitnet.gguf import load

    t0 = time.monotonic()
    _progress(params, 0.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the repairs are logged (bitnet.gguf logger)
            gf = load(fname)
            _apply_kv_overrides(gf.kv, params.kv_overrides)
            tok = runtime.tokenizer_from_kv(gf.kv)
            engine = None if params.vocab_only else runtime.load_model(gf)
    except CAPIError:
        raise
    except E.BitNetError as exc:
        code = exc.code if exc.code in (E.MODEL_LOAD_FAILED, E.OUT_OF_MEMORY) else E.MODEL_LOAD_FAILED
        raise CAPIError(code, f"cannot load {fname}: {exc}") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CAPIError(E.MODEL_LOAD_FAILED, f"cannot load {fname}: {exc}") from exc
    _progress(params, 1.0)
    model = Model(fname, gf, tok, engine, (time.monotonic() - t0) * 1e3)
    mid = new_handle(model)
    model.vocab_handle = new_handle(Vocab(model))
    log(LOG_INFO, f"llama_model_load: {os.path.basename(fname)}: {model.arch}, "
        f"{tok.vocab.n_tokens} tokens{' (vocab only)' if engine is None else ''}, "
        f"numerics {runtime.numerics_mode()}")
    return as_ptr("struct llama_model *", mid)


@export
def llama_model_load_from_file(path: Any, params: Any) -> Any:
    return load_model(c_str(path, "path_model"), params)


@export
def llama_model_load_from_splits(paths: Any, n_paths: int, params: Any) -> Any:
    if paths == RT.ffi.NULL or n_paths < 1:
        raise CAPIError(E.GENERIC_ERROR, "paths is NULL or n_paths < 1")
    if n_paths > 1:
        raise CAPIError(E.GENERIC_ERROR, "models split over several files are not supported")
    return load_model(c_str(paths[0], "paths[0]"), params)


def free_model(ptr: Any) -> None:
    if ptr == RT.ffi.NULL:
        return
    model = model_of(ptr)
    from bitnet.ffi.capi.contexts import Context

    for ctx in [c for c in HANDLES.values() if isinstance(c, Context) and c.model is model]:
        ctx.model_freed = True  # llama.cpp: undefined behaviour; here its calls fail with -9
    HANDLES.pop(model.vocab_handle, None)
    HANDLES.pop(handle_id(ptr), None)


@export
def llama_model_free(ptr: Any) -> None:
    free_model(ptr)


@export
def llama_model_save_to_file(model_ptr: Any, path: Any) -> None:
    """The model's GGUF: its metadata as loaded (repairs and kv_overrides applied), tensors
    byte for byte."""
    model = model_of(model_ptr)
    from bitnet.gguf.writer import write_repaired_copy

    write_repaired_copy(model.gguf, c_str(path, "path_model"), kv=model.kv)


# ---- hyperparameters --------------------------------------------------------------------------


@export
def llama_model_n_ctx_train(m: Any) -> int:
    return model_of(m).hp("context_length")


@export
def llama_model_n_embd(m: Any) -> int:
    return model_of(m).hp("embedding_length")


@export
def llama_model_n_embd_inp(m: Any) -> int:
    return model_of(m).hp("embedding_length")


@export
def llama_model_n_embd_out(m: Any) -> int:
    return model_of(m).hp("embedding_length")


@export
def llama_model_n_layer(m: Any) -> int:
    return model_of(m).hp("block_count")


@export
def llama_model_n_layer_nextn(m: Any) -> int:
    return model_of(m).hp("nextn_predict_layers", 0)


@export
def llama_model_n_head(m: Any) -> int:
    return model_of(m).hp("attention.head_count")


@export
def llama_model_n_head_kv(m: Any) -> int:
    model = model_of(m)
    return model.hp("attention.head_count_kv", model.hp("attention.head_count"))


@export
def llama_model_n_swa(m: Any) -> int:
    return model_of(m).hp("attention.sliding_window", 0)


@export
def llama_model_rope_freq_scale_train(m: Any) -> float:
    model = model_of(m)
    factor = float(model.kv.get(f"{model.arch}.rope.scaling.factor", 0.0) or 0.0)
    return 1.0 / factor if factor else 1.0


@export
def llama_model_n_cls_out(m: Any) -> int:
    model_of(m)
    return 1  # llama_hparams::n_cls_out's default (no classifier heads here)


@export
def llama_model_cls_label(m: Any, i: int) -> Any:
    model_of(m)
    return RT.ffi.NULL


@export
def llama_model_rope_type(m: Any) -> int:
    return LLAMA_ROPE_TYPE_NEOX if model_of(m).arch in NEOX_ARCHS else LLAMA_ROPE_TYPE_NORM


@export
def llama_model_has_encoder(m: Any) -> bool:
    model_of(m)
    return False


@export
def llama_model_has_decoder(m: Any) -> bool:
    model_of(m)
    return True


@export
def llama_model_decoder_start_token(m: Any) -> int:
    model_of(m)
    return -1


@export
def llama_model_is_recurrent(m: Any) -> bool:
    model_of(m)
    return False


@export
def llama_model_is_hybrid(m: Any) -> bool:
    model_of(m)
    return False


@export
def llama_model_is_diffusion(m: Any) -> bool:
    model_of(m)
    return False


@export
def llama_model_size(m: Any) -> int:
    return int(sum(t.nbytes for t in model_of(m).gguf.tensors.values()))


@export
def llama_model_n_params(m: Any) -> int:
    return int(sum(t.n_elements for t in model_of(m).gguf.tensors.values()))


def _ftype(model: Model) -> int:
    value = model.kv.get("general.file_type")
    return int(value) if value is not None else 1024  # LLAMA_FTYPE_GUESSED


@export
def llama_model_ftype(m: Any) -> int:
    return _ftype(model_of(m))


# llama.cpp's llm_type for the supported architectures (load_arch_hparams: by layer count);
# bitnet-b1.58 as bitnet.cpp names it. Anything else is LLM_TYPE_UNKNOWN, printed "?B".
def _type_name(model: Model) -> str:
    kv, n_layer = model.kv, int(model.kv.get(f"{model.arch}.block_count") or 0)
    if model.arch == "llama":
        if int(kv.get("llama.expert_count") or 0) == 8:
            return {32: "8x7B", 56: "8x22B"}.get(n_layer, "?B")
        n_vocab = kv.get("llama.vocab_size")
        if n_vocab is None:
            n_vocab = len(kv.get("tokenizer.ggml.tokens") or ())
        if n_layer == 32:
            return "3B" if n_vocab == 49152 else ("7B" if int(n_vocab) < 40000 else "8B")
        if n_layer == 80:
            same = kv.get("llama.attention.head_count") == kv.get("llama.attention.head_count_kv")
            return "65B" if same else "70B"
        return {16: "1B", 22: "1B", 26: "3B", 28: "3B", 30: "256M", 36: "8B", 40: "13B",
                48: "34B", 60: "30B"}.get(n_layer, "?B")
    if model.arch == "bitnet":
        return "3B" if n_layer == 26 else "?B"
    if model.arch == "bitnet-b1.58":
        return "2B" if n_layer == 30 else "?B"
    return "?B"


@export
def llama_model_desc(m: Any, buf: Any, buf_size: int) -> int:
    model = model_of(m)
    name = RT.ffi.string(RT.lib.llama_ftype_name(_ftype(model))).decode()
    return c_string(f"{model.arch} {_type_name(model)} {name}".encode(), buf, int(buf_size))


@export
def llama_model_chat_template(m: Any, name: Any) -> Any:
    model = model_of(m)
    key = "tokenizer.chat_template"
    if name != RT.ffi.NULL:
        key += "." + RT.ffi.string(name).decode("utf-8", "replace")
    value = model.kv.get(key)
    if value is None:
        return RT.ffi.NULL
    return model.keep.cstr(("chat_template", key), str(value).encode("utf-8", "surrogateescape"))


# ---- metadata --------------------------------------------------------------------------------


def meta_str(value: Any) -> Optional[str]:
    """A metadata value as llama.cpp's gguf_kv_to_str prints it; None for arrays of arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:f}"  # std::to_string
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
        if items and isinstance(items[0], (list, tuple, np.ndarray)):
            return None
        if items and isinstance(items[0], (str, bytes)):
            return "[" + ", ".join(f'"{meta_str(v)}"' for v in items) + "]"
        return "[" + ", ".join(str(meta_str(v)) for v in items) + "]"
    return str(value)


def _meta_items(model: Model) -> List[Any]:
    """The file's non-array key/values in the order llama.cpp's gguf_kv (an unordered_map
    filled in file order, arrays skipped) walks them."""
    items = model.meta_items
    if items is None:
        kv = [(k, v) for k, v in model.gguf.raw_kv.items()
              if not isinstance(v, (list, tuple, np.ndarray))]
        order = unordered_order(k.encode("utf-8", "surrogateescape") for k, _ in kv)
        items = model.meta_items = [kv[i] for i in order]
    return items


@export
def llama_model_meta_val_str(m: Any, key: Any, buf: Any, buf_size: int) -> int:
    model = model_of(m)
    name = c_str(key, "key")
    value = model.gguf.raw_kv.get(name)
    if value is None or isinstance(value, (list, tuple, np.ndarray)):
        c_string(b"", buf, int(buf_size))
        raise CAPIError(0, "", value=-1)  # llama.cpp: -1, not found (not an error of the call)
    text = meta_str(value) or ""
    return c_string(text.encode("utf-8", "surrogateescape"), buf, int(buf_size))


@export
def llama_model_meta_count(m: Any) -> int:
    return len(_meta_items(model_of(m)))


@export
def llama_model_meta_key_by_index(m: Any, i: int, buf: Any, buf_size: int) -> int:
    items = _meta_items(model_of(m))
    if not 0 <= i < len(items):
        c_string(b"", buf, int(buf_size))
        raise CAPIError(E.GENERIC_ERROR, f"metadata index {i} out of range [0, {len(items)})")
    return c_string(items[i][0].encode("utf-8", "surrogateescape"), buf, int(buf_size))


@export
def llama_model_meta_val_str_by_index(m: Any, i: int, buf: Any, buf_size: int) -> int:
    items = _meta_items(model_of(m))
    if not 0 <= i < len(items):
        c_string(b"", buf, int(buf_size))
        raise CAPIError(E.GENERIC_ERROR, f"metadata index {i} out of range [0, {len(items)})")
    text = meta_str(items[i][1]) or ""
    return c_string(text.encode("utf-8", "surrogateescape"), buf, int(buf_size))


@export
def llama_model_get_vocab(m: Any) -> Any:
    return as_ptr("struct llama_vocab *", model_of(m).vocab_handle)
