"""The vocabulary: tokenization, pieces, detokenization, special tokens and token attributes.

The functions take a `const struct llama_vocab *` as llama.h 0.3.36 does; they accept a model
handle too, which is how the locked legacy forms (llama_tokenize(model, ...)) reach them.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from bitnet import errors as E
from bitnet.ffi.capi.core import HANDLES, LLAMA_TOKEN_NULL, RT, CAPIError, export, handle_id, out_bytes
from bitnet.ffi.capi.models import Model, Vocab

VOCAB_TYPES = {"spm": 1, "bpe": 2, "wpm": 3, "ugm": 4, "rwkv": 5, "plamo2": 6}


def model_of_vocab(ptr: Any) -> Model:
    """The model behind a vocab handle (or a model handle: the legacy forms)."""
    obj = HANDLES.get(handle_id(ptr))
    if isinstance(obj, Vocab):
        return obj.model
    if isinstance(obj, Model):
        return obj
    raise CAPIError(E.INVALID_MODEL_ID, f"invalid vocab handle 0x{handle_id(ptr):x}")


def tokenizer_of(ptr: Any) -> Any:
    return model_of_vocab(ptr).tokenizer


def _vocab(ptr: Any) -> Any:
    return tokenizer_of(ptr).vocab


def _token(vocab: Any, token: int) -> int:
    if not 0 <= token < vocab.n_tokens:
        raise CAPIError(E.TOKENIZATION_FAILED, f"token {token} out of range [0, {vocab.n_tokens})")
    return int(token)


def _special(ptr: Any, name: str) -> int:
    value: Optional[int] = getattr(_vocab(ptr), name, None)
    return LLAMA_TOKEN_NULL if value is None else int(value)


# ---- tokenization ----------------------------------------------------------------------------


@export
def llama_tokenize(vocab: Any, text: Any, text_len: int, tokens: Any, n_max: int,
                   add_special: bool, parse_special: bool) -> int:
    tok = tokenizer_of(vocab)
    if text_len < 0:
        raise CAPIError(E.GENERIC_ERROR, f"text_len={text_len} is negative")
    if text == RT.ffi.NULL and text_len > 0:
        raise CAPIError(E.GENERIC_ERROR, "text is NULL")
    data = bytes(RT.ffi.buffer(text, text_len)) if text_len else b""
    try:
        ids = tok.tokenize(data, bool(add_special), bool(parse_special))
    except E.BitNetError:
        raise
    except (ValueError, KeyError) as exc:
        raise CAPIError(E.TOKENIZATION_FAILED, str(exc)) from exc
    n = len(ids)
    if n > 2**31 - 1:
        raise CAPIError(E.GENERIC_ERROR, f"{n} tokens overflow int32_t")
    if n > n_max:
        return -n  # llama.cpp: -(tokens needed); not an error
    if n and tokens == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "tokens is NULL")
    if n:
        RT.ffi.memmove(tokens, np.asarray(ids, dtype=np.int32).tobytes(), 4 * n)
    return n


@export
def llama_token_to_piece(vocab: Any, token: int, buf: Any, length: int, lstrip: int,
                         special: bool) -> int:
    tok = tokenizer_of(vocab)
    piece = tok.token_to_piece(_token(tok.vocab, token), int(lstrip), bool(special))
    return out_bytes(piece, buf, length, "buf")


@export
def llama_detokenize(vocab: Any, tokens: Any, n_tokens: int, text: Any, text_len_max: int,
                     remove_special: bool, unparse_special: bool) -> int:
    tok = tokenizer_of(vocab)
    if n_tokens < 0:
        raise CAPIError(E.GENERIC_ERROR, f"n_tokens={n_tokens} is negative")
    if n_tokens and tokens == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "tokens is NULL")
    ids = np.frombuffer(RT.ffi.buffer(tokens, 4 * n_tokens), dtype=np.int32).tolist() \
        if n_tokens else []
    for t in ids:
        _token(tok.vocab, t)
    data = tok.detokenize(ids, bool(remove_special), bool(unparse_special))
    return out_bytes(data, text, text_len_max, "text")


# ---- the vocabulary --------------------------------------------------------------------------


@export
def llama_vocab_type(vocab: Any) -> int:
    return VOCAB_TYPES.get(str(getattr(_vocab(vocab), "type", "")), 0)


@export
def llama_vocab_n_tokens(vocab: Any) -> int:
    return int(_vocab(vocab).n_tokens)


@export
def llama_vocab_get_text(vocab: Any, token: int) -> Any:
    v = _vocab(vocab)
    t = _token(v, token)
    return model_of_vocab(vocab).keep.cstr(("text", t), v.text_bytes(t))


@export
def llama_vocab_get_score(vocab: Any, token: int) -> float:
    v = _vocab(vocab)
    return float(v.scores[_token(v, token)])


@export
def llama_vocab_get_attr(vocab: Any, token: int) -> int:
    v = _vocab(vocab)
    return int(v.attrs[_token(v, token)])


@export
def llama_vocab_is_eog(vocab: Any, token: int) -> bool:
    return bool(_vocab(vocab).is_eog(int(token)))


@export
def llama_vocab_is_control(vocab: Any, token: int) -> bool:
    v = _vocab(vocab)
    return 0 <= token < v.n_tokens and bool(v.is_control(int(token)))


@export
def llama_vocab_bos(vocab: Any) -> int:
    return _special(vocab, "bos_id")


@export
def llama_vocab_eos(vocab: Any) -> int:
    return _special(vocab, "eos_id")


@export
def llama_vocab_eot(vocab: Any) -> int:
    return _special(vocab, "eot_id")


@export
def llama_vocab_sep(vocab: Any) -> int:
    return _special(vocab, "sep_id")


@export
def llama_vocab_nl(vocab: Any) -> int:
    return _special(vocab, "nl_id")


@export
def llama_vocab_pad(vocab: Any) -> int:
    return _special(vocab, "pad_id")


@export
def llama_vocab_mask(vocab: Any) -> int:
    return _special(vocab, "mask_id")


@export
def llama_vocab_fim_pre(vocab: Any) -> int:
    return _special(vocab, "fim_pre_id")


@export
def llama_vocab_fim_suf(vocab: Any) -> int:
    return _special(vocab, "fim_suf_id")


@export
def llama_vocab_fim_mid(vocab: Any) -> int:
    return _special(vocab, "fim_mid_id")


@export
def llama_vocab_fim_pad(vocab: Any) -> int:
    return _special(vocab, "fim_pad_id")


@export
def llama_vocab_fim_rep(vocab: Any) -> int:
    return _special(vocab, "fim_rep_id")


@export
def llama_vocab_fim_sep(vocab: Any) -> int:
    return _special(vocab, "fim_sep_id")


@export
def llama_vocab_get_add_bos(vocab: Any) -> bool:
    return bool(_vocab(vocab).add_bos)


@export
def llama_vocab_get_add_eos(vocab: Any) -> bool:
    return bool(_vocab(vocab).add_eos)


@export
def llama_vocab_get_add_sep(vocab: Any) -> bool:
    return bool(_vocab(vocab).add_sep)


@export
def llama_vocab_get_suppress_tokens(vocab: Any, n_out: Any) -> Any:
    """tokenizer.ggml.suppress_tokens (none in the supported files: NULL, count 0)."""
    model = model_of_vocab(vocab)
    v = model.tokenizer.vocab
    ids = [int(t) for t in model.kv.get("tokenizer.ggml.suppress_tokens", []) or []
           if 0 <= int(t) < v.n_tokens]
    if n_out != RT.ffi.NULL:
        n_out[0] = len(ids)
    if not ids:
        return RT.ffi.NULL
    return model.keep.array("suppress_tokens", "llama_token[]", ids)
