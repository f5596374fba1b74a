"""`Llama`: a drop-in for llama-cpp-python 0.3.x's high-level API on this project's engine.

    from bitnet.llama_compat import Llama          # was: from llama_cpp import Llama
    llm = Llama(model_path="model.gguf", n_ctx=512, verbose=False)
    llm("Q: Name the planets. A:", max_tokens=16, stop=["Q:"])["choices"][0]["text"]

Same constructor parameters (names, defaults, **kwargs ignored), same methods and signatures,
same result dicts (text_completion, stream chunks, chat.completion(.chunk), embedding lists),
same error messages for what users catch (missing file, context overflow, logprobs without
logits_all, embed without embedding=True). The control flow of `generate` and
`_create_completion` mirrors llama-cpp-python's `llama.py` line for line, so prompt tokens,
stop handling, UTF-8 hold-back in streams, usage counts and finish reasons agree; tokens come
from `bitnet.tokenizers`, logits from `bitnet.model`, token choice from `bitnet.sampling`
(the chain llama-cpp-python's `_init_sampler` builds).

Kernels: `bitnet.runtime.make_backend()` (the numerics mode of $BITNET_NUMERICS; the numpy
reference with BITNET_BACKEND=reference).

Accepted but without effect (no GPU, no LoRA, no NUMA here): n_gpu_layers, split_mode, main_gpu,
tensor_split, use_mmap (the file is always mmapped), use_mlock, n_ubatch, n_threads,
n_threads_batch, offload_kqv, flash_attn, op_offload, swa_full, no_perf, numa, rope/yarn
overrides, attention_type, kv_overrides, draft_model, spm_infill-only infill tokens. `type_k`:
GGML_TYPE_F16 (1) selects an f16 KV cache, anything else the exact f32 cache. A `lora_path`
raises NotImplementedError.

Thread safety: every public method takes one re-entrant lock of the instance, so one `Llama`
used from several threads serializes its calls and its state (KV cache, input_ids, scores)
never interleaves. A generator (`generate`, `stream=True`) holds the lock from its first
`next()` until it is exhausted or closed: close (or drop) a half-read stream before using
the instance from another thread.

JSON output without grammars: `response_format={"type": "json_object"}` is honoured by a
reject-and-resample constraint (`bitnet.constraints`; a `JSONOutput()` in
`logits_processor` does the same for create_completion): the text is an RFC 8259 object, at
most 20 whitespace bytes in a row, none before the opening brace, and nothing after the
closing brace but end of generation. With a "schema" the value must match it, laid out as
llama-cpp-python's schema grammars lay it out; the subset in
`bitnet.constraints.SCHEMA_SUBSET` is supported (NotImplementedError naming the keyword
otherwise; llama-cpp-python falls back to plain JSON when its converter fails). Tools and the
function-calling chat formats: see `bitnet.llama_compat.llama_chat_format`.

Divergences from llama-cpp-python, on purpose: grammar= (and a response_format schema outside
that subset) raise NotImplementedError; detokenize returns pieces longer
than 32 bytes whole (llama-cpp-python mangles them); stopping criteria get the logits the
token was sampled from (llama-cpp-python passes row 0 of its scores); passing logit_bias and
logits_processor together applies both (llama-cpp-python drops both, `list.extend` returns
None); eval past the context raises ValueError instead of a numpy broadcast error; n_ctx is
padded to a multiple of 256 as llama.cpp pads it and the token buffer is sized to match.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import io
import json
import multiprocessing
import os
import pickle
import random
import sys
import threading
import time
import uuid
import warnings
from collections import OrderedDict, deque
from pathlib import Path
from types import SimpleNamespace
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Generator,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import numpy as np

from bitnet.constraints import JSONConstraint, JSONOutput
from bitnet.errors import ContextLengthExceededError, InferenceError, ModelLoadError
from bitnet.ggml_types import GGMLType
from bitnet.llama_compat import llama_chat_format

# llama.h constants used as defaults (same values as llama_cpp.llama_cpp)
LLAMA_DEFAULT_SEED = 0xFFFFFFFF
LLAMA_SPLIT_MODE_LAYER = 1
LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED = -1
LLAMA_POOLING_TYPE_UNSPECIFIED = -1
LLAMA_POOLING_TYPE_NONE = 0
LLAMA_POOLING_TYPE_MEAN = 1
LLAMA_POOLING_TYPE_CLS = 2
LLAMA_POOLING_TYPE_LAST = 3
LLAMA_POOLING_TYPE_RANK = 4
LLAMA_ATTENTION_TYPE_UNSPECIFIED = -1
GGML_TYPE_F32 = int(GGMLType.F32)
GGML_TYPE_F16 = int(GGMLType.F16)

GRAMMAR_HINT = llama_chat_format.GRAMMAR_HINT

F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """Run `method` holding the instance lock (re-entrant)."""

    @functools.wraps(method)
    def wrapper(self: Llama, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _no_grammar(grammar: Any) -> None:
    if grammar is not None:
        raise NotImplementedError(f"grammar= is not supported: {GRAMMAR_HINT}")


def _gguf_value_to_str(value: Any) -> Optional[str]:
    """llama.cpp's gguf_kv_to_str for scalars (arrays: None, llama.cpp skips them)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (float, np.floating)):
        return f"{float(value):f}"  # std::to_string(float/double)
    return str(int(value))


# ---------------------------------------------------------------------------------------------
# helpers importable next to Llama

LogitsProcessor = Callable[[np.ndarray, np.ndarray], np.ndarray]
StoppingCriteria = Callable[[np.ndarray, np.ndarray], bool]


class LogitsProcessorList(List[LogitsProcessor]):
    """Processors applied in order: scores = p(input_ids, scores)."""

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        for processor in self:
            scores = processor(input_ids, scores)
        return scores


class StoppingCriteriaList(List[StoppingCriteria]):
    """True when any criterion says stop."""

    def __call__(self, input_ids: np.ndarray, logits: np.ndarray) -> bool:
        return any([stopping_criteria(input_ids, logits) for stopping_criteria in self])


class MinTokensLogitsProcessor:
    """Forbid EOS until `min_tokens` tokens were generated."""

    def __init__(self, min_tokens: int, token_eos: int) -> None:
        self.min_tokens = min_tokens
        self.token_eos = token_eos
        self.prompt_tokens: Optional[int] = None

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.prompt_tokens is None:
            self.prompt_tokens = len(input_ids)
        if len(input_ids) - self.prompt_tokens < self.min_tokens:
            scores[self.token_eos] = -np.inf
        return scores


class LlamaState:
    """A snapshot of a Llama: token buffer, scores, KV cache bytes (`llama_state`), seed."""

    def __init__(
        self,
        input_ids: np.ndarray,
        scores: np.ndarray,
        n_tokens: int,
        llama_state: bytes,
        llama_state_size: int,
        seed: int,
    ) -> None:
        self.input_ids = input_ids
        self.scores = scores
        self.n_tokens = n_tokens
        self.llama_state = llama_state
        self.llama_state_size = llama_state_size
        self.seed = seed


class BaseLlamaCache:
    """Prompt-prefix -> LlamaState cache (llama-cpp-python's llama_cache API)."""

    def __init__(self, capacity_bytes: int = (2 << 30)) -> None:
        self.capacity_bytes = capacity_bytes

    @property
    def cache_size(self) -> int:
        raise NotImplementedError

    def _find_longest_prefix_key(self, key: Tuple[int, ...]) -> Optional[Tuple[int, ...]]:
        raise NotImplementedError

    def __getitem__(self, key: Sequence[int]) -> LlamaState:
        raise NotImplementedError

    def __contains__(self, key: Sequence[int]) -> bool:
        raise NotImplementedError

    def __setitem__(self, key: Sequence[int], value: LlamaState) -> None:
        raise NotImplementedError


class LlamaRAMCache(BaseLlamaCache):
    """States in memory, least recently used evicted past `capacity_bytes`."""

    def __init__(self, capacity_bytes: int = (2 << 30)) -> None:
        super().__init__(capacity_bytes)
        self.cache_state: OrderedDict[Tuple[int, ...], LlamaState] = OrderedDict()

    @property
    def cache_size(self) -> int:
        return sum([state.llama_state_size for state in self.cache_state.values()])

    def _find_longest_prefix_key(self, key: Tuple[int, ...]) -> Optional[Tuple[int, ...]]:
        min_len = 0
        min_key = None
        for k in self.cache_state.keys():
            prefix_len = Llama.longest_token_prefix(k, key)
            if prefix_len > min_len:
                min_len, min_key = prefix_len, k
        return min_key

    def __getitem__(self, key: Sequence[int]) -> LlamaState:
        _key = self._find_longest_prefix_key(tuple(key))
        if _key is None:
            raise KeyError("Key not found")
        value = self.cache_state[_key]
        self.cache_state.move_to_end(_key)
        return value

    def __contains__(self, key: Sequence[int]) -> bool:
        return self._find_longest_prefix_key(tuple(key)) is not None

    def __setitem__(self, key: Sequence[int], value: LlamaState) -> None:
        key = tuple(key)
        if key in self.cache_state:
            del self.cache_state[key]
        self.cache_state[key] = value
        while self.cache_size > self.capacity_bytes and len(self.cache_state) > 0:
            self.cache_state.popitem(last=False)


LlamaCache = LlamaRAMCache  # llama-cpp-python's backwards-compatible alias


class LlamaDiskCache(BaseLlamaCache):
    """States pickled into `cache_dir` (one file per key; no diskcache dependency).

    Like llama-cpp-python's, a hit removes the entry from the cache. Files are pickles:
    only point it at a directory you trust."""

    def __init__(self, cache_dir: str = ".cache/llama_cache", capacity_bytes: int = (2 << 30)) -> None:
        super().__init__(capacity_bytes)
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def _files(self) -> List[Path]:
        return sorted(self.cache_dir.glob("*.state"), key=lambda p: p.stat().st_mtime)

    def _load(self, path: Path) -> Tuple[Tuple[int, ...], LlamaState]:
        with open(path, "rb") as f:
            key, state = pickle.load(f)
        return tuple(key), state

    def _path(self, key: Tuple[int, ...]) -> Path:
        import hashlib

        return self.cache_dir / (hashlib.sha256(repr(key).encode()).hexdigest() + ".state")

    @property
    def cache_size(self) -> int:
        return sum(p.stat().st_size for p in self._files())

    def _find_longest_prefix_key(self, key: Tuple[int, ...]) -> Optional[Tuple[int, ...]]:
        min_len = 0
        min_key: Optional[Tuple[int, ...]] = None
        for path in self._files():
            k, _ = self._load(path)
            prefix_len = Llama.longest_token_prefix(k, key)
            if prefix_len > min_len:
                min_len, min_key = prefix_len, k
        return min_key

    def __getitem__(self, key: Sequence[int]) -> LlamaState:
        _key = self._find_longest_prefix_key(tuple(key))
        if _key is None:
            raise KeyError("Key not found")
        path = self._path(_key)
        _, value = self._load(path)
        path.unlink()
        return value

    def __contains__(self, key: Sequence[int]) -> bool:
        return self._find_longest_prefix_key(tuple(key)) is not None

    def __setitem__(self, key: Sequence[int], value: LlamaState) -> None:
        key = tuple(key)
        path = self._path(key)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump((key, value), f)
        os.replace(tmp, path)
        files = self._files()
        while self.cache_size > self.capacity_bytes and files:
            files.pop(0).unlink()


class LlamaTokenizer:
    """llama-cpp-python's LlamaTokenizer over a Llama's vocabulary."""

    def __init__(self, llama: Llama) -> None:
        self._llama = llama

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = True) -> List[int]:
        return self._llama._vocab_tokenize(text, add_bos, special)

    def detokenize(
        self, tokens: List[int], prev_tokens: Optional[List[int]] = None, special: bool = False
    ) -> bytes:
        return self._llama._vocab_detokenize(tokens, special)

    def encode(self, text: str, add_bos: bool = True, special: bool = True) -> List[int]:
        return self.tokenize(text.encode("utf-8", errors="ignore"), add_bos=add_bos, special=special)

    def decode(self, tokens: List[int]) -> str:
        return self.detokenize(tokens).decode("utf-8", errors="ignore")

    @classmethod
    def from_ggml_file(cls, path: str) -> LlamaTokenizer:
        return cls(Llama(model_path=path, vocab_only=True, verbose=False))


# ---------------------------------------------------------------------------------------------
# Llama


class Llama:
    """High-level API of llama-cpp-python over the bitnet engine (see the module docstring)."""

    def __init__(
        self,
        model_path: str,
        *,
        # Model Params
        n_gpu_layers: int = 0,
        split_mode: int = LLAMA_SPLIT_MODE_LAYER,
        main_gpu: int = 0,
        tensor_split: Optional[List[float]] = None,
        vocab_only: bool = False,
        use_mmap: bool = True,
        use_mlock: bool = False,
        kv_overrides: Optional[Dict[str, Union[bool, int, float, str]]] = None,
        # Context Params
        seed: int = LLAMA_DEFAULT_SEED,
        n_ctx: int = 512,
        n_batch: int = 512,
        n_ubatch: int = 512,
        n_threads: Optional[int] = None,
        n_threads_batch: Optional[int] = None,
        rope_scaling_type: Optional[int] = LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED,
        pooling_type: int = LLAMA_POOLING_TYPE_UNSPECIFIED,
        attention_type: int = LLAMA_ATTENTION_TYPE_UNSPECIFIED,
        rope_freq_base: float = 0.0,
        rope_freq_scale: float = 0.0,
        yarn_ext_factor: float = -1.0,
        yarn_attn_factor: float = 1.0,
        yarn_beta_fast: float = 32.0,
        yarn_beta_slow: float = 1.0,
        yarn_orig_ctx: int = 0,
        logits_all: bool = False,
        embedding: bool = False,
        offload_kqv: bool = True,
        flash_attn: bool = False,
        op_offload: Optional[bool] = None,
        swa_full: Optional[bool] = None,
        # Sampling Params
        no_perf: bool = False,
        last_n_tokens_size: int = 64,
        # LoRA Params
        lora_base: Optional[str] = None,
        lora_scale: float = 1.0,
        lora_path: Optional[str] = None,
        # Backend Params
        numa: Union[bool, int] = False,
        # Chat Format Params
        chat_format: Optional[str] = None,
        chat_handler: Optional[Callable[..., Any]] = None,
        # Speculative Decoding
        draft_model: Optional[Any] = None,
        # Tokenizer Override
        tokenizer: Optional[Any] = None,
        # KV cache quantization
        type_k: Optional[int] = None,
        type_v: Optional[int] = None,
        # Misc
        spm_infill: bool = False,
        verbose: bool = True,
        # Extra Params
        **kwargs: Any,
    ) -> None:
        """Load the GGUF file at `model_path` (ValueError if it does not exist)."""
        self._lock = threading.RLock()
        self.verbose = verbose
        self._stack = contextlib.ExitStack()
        self.numa = numa
        self.model_path = model_path
        self.model_params = SimpleNamespace(
            n_gpu_layers=0x7FFFFFFF if n_gpu_layers == -1 else n_gpu_layers,
            split_mode=split_mode,
            main_gpu=main_gpu,
            vocab_only=vocab_only,
            use_mmap=use_mmap and lora_path is None,
            use_mlock=use_mlock,
        )
        self.tensor_split = tensor_split
        self.kv_overrides = kv_overrides
        if kv_overrides is not None:
            for k, v in kv_overrides.items():
                if isinstance(v, str) and len(v.encode("utf-8")) > 128:
                    raise ValueError(f"Value for {k} is too long: {v}")
                if not isinstance(v, (bool, int, float, str)):
                    raise ValueError(f"Unknown value type for {k}: {v}")

        self.n_batch = min(n_ctx, n_batch)
        self.n_threads = n_threads or max(multiprocessing.cpu_count() // 2, 1)
        self.n_threads_batch = n_threads_batch or multiprocessing.cpu_count()
        self._seed = seed or LLAMA_DEFAULT_SEED
        self.context_params = SimpleNamespace(
            n_ctx=n_ctx,
            n_batch=self.n_batch,
            n_ubatch=min(self.n_batch, n_ubatch),
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads_batch,
            rope_scaling_type=(
                rope_scaling_type
                if rope_scaling_type is not None
                else LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED
            ),
            pooling_type=pooling_type,
            attention_type=attention_type,
            rope_freq_base=rope_freq_base,
            rope_freq_scale=rope_freq_scale,
            yarn_ext_factor=yarn_ext_factor,
            yarn_attn_factor=yarn_attn_factor,
            yarn_beta_fast=yarn_beta_fast,
            yarn_beta_slow=yarn_beta_slow,
            yarn_orig_ctx=yarn_orig_ctx,
            embeddings=embedding,
            offload_kqv=offload_kqv,
            flash_attn=flash_attn,
            op_offload=op_offload,
            swa_full=swa_full,
            type_k=GGML_TYPE_F16 if type_k is None else type_k,
            type_v=GGML_TYPE_F16 if type_v is None else type_v,
            no_perf=no_perf,
            n_seq_max=1,
        )
        self._type_k = type_k
        self._type_v = type_v
        self._logits_all = logits_all if draft_model is None else True
        self.last_n_tokens_size = last_n_tokens_size
        self.cache: Optional[BaseLlamaCache] = None
        self.lora_base = lora_base
        self.lora_scale = lora_scale
        self.lora_path = lora_path
        self.spm_infill = spm_infill

        if not os.path.exists(model_path):
            raise ValueError(f"Model path does not exist: {model_path}")
        if lora_path:
            raise NotImplementedError(
                f"LoRA adapters are not supported (lora_path={lora_path!r})"
            )

        from bitnet import runtime
        from bitnet.gguf import load as gguf_load

        try:
            with warnings.catch_warnings():
                if not verbose:
                    warnings.simplefilter("ignore")  # repairs are logged only when verbose
                gf = gguf_load(model_path)
        except Exception as e:
            raise ValueError(f"Failed to load model from file: {model_path} ({e})") from e
        self._gguf = gf
        if hasattr(gf, "close"):
            self._stack.callback(gf.close)
        try:
            self._vocab_tok = runtime.tokenizer_from_kv(gf.kv)
        except Exception as e:
            raise ValueError(f"Failed to load model from file: {model_path} ({e})") from e
        self._vocab = self._vocab_tok.vocab
        self._engine: Any = None
        if not vocab_only:
            try:
                self._engine = runtime.load_model(gf)
            except (ModelLoadError, KeyError, ValueError) as e:
                raise ValueError(f"Failed to load model from file: {model_path} ({e})") from e

        self.tokenizer_ = tokenizer or LlamaTokenizer(self)

        if n_ctx == 0:
            n_ctx = self._n_ctx_train()
            self.n_batch = min(n_ctx, n_batch)
            self.context_params.n_ctx = n_ctx
            self.context_params.n_batch = self.n_batch
            self.context_params.n_ubatch = min(self.n_batch, n_ubatch)
        # llama.cpp pads the context to a multiple of 256 (llama_context: GGML_PAD(n_ctx, 256))
        self._n_ctx_padded = max(256, -(-n_ctx // 256) * 256)

        self._ctx: Any = None
        if self._engine is not None:
            from bitnet.model import Context

            self._ctx = Context(
                self._engine,
                n_ctx=self._n_ctx_padded,
                n_batch=max(self.n_batch, 1),
                kv_type="f16" if type_k == GGML_TYPE_F16 else "f32",
            )

        self.chat_format = chat_format
        self.chat_handler = chat_handler
        self._chat_handlers: Dict[str, Callable[..., Any]] = {}
        self.draft_model = draft_model

        self._n_vocab = self.n_vocab()
        self._n_ctx = self.n_ctx()
        self._token_nl = self.token_nl()
        self._token_eos = self.token_eos()

        self.n_tokens = 0
        self._requires_eval = True
        self.input_ids: np.ndarray = np.zeros((self._n_ctx,), dtype=np.intc)
        self.scores: np.ndarray = np.zeros(
            (self._n_ctx if logits_all else self.n_batch, self._n_vocab), dtype=np.single
        )
        self._batch_logits: Optional[np.ndarray] = None  # (n_out, V) of the last decode
        self._sampler: Any = None
        self._constraint: Optional[JSONConstraint] = None  # set by _generate for JSON output

        # the file's own key/values as llama.cpp reports them: bitnet.gguf's in-memory
        # repairs are undone here (they only steer this project's tokenizer and engine)
        file_kv = dict(gf.kv)
        for fix in reversed(list(getattr(gf, "fixes", []))):
            if fix.old is None:
                file_kv.pop(fix.key, None)
            else:
                file_kv[fix.key] = fix.old
        self.metadata: Dict[str, str] = {}
        for key, value in file_kv.items():
            s = _gguf_value_to_str(value)
            if s is not None:
                self.metadata[key] = s
        if self.verbose:
            print(f"Model metadata: {self.metadata}", file=sys.stderr)

        eos_token_id = self.token_eos()
        bos_token_id = self.token_bos()
        eos_token = self._token_text(eos_token_id) if eos_token_id != -1 else ""
        bos_token = self._token_text(bos_token_id) if bos_token_id != -1 else ""
        template_choices = {
            name[10:]: template
            for name, template in self.metadata.items()
            if name.startswith("tokenizer.chat_template.")
        }
        if "tokenizer.chat_template" in self.metadata:
            template_choices["chat_template.default"] = self.metadata["tokenizer.chat_template"]
        for name, template in template_choices.items():
            self._chat_handlers[name] = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=eos_token,
                bos_token=bos_token,
                stop_token_ids=[eos_token_id],
            ).to_chat_handler()
        if (
            self.chat_format is None
            and self.chat_handler is None
            and "chat_template.default" in template_choices
        ):
            guessed = llama_chat_format.guess_chat_format_from_gguf_metadata(self.metadata)
            self.chat_format = guessed if guessed is not None else "chat_template.default"
        if self.chat_format is None and self.chat_handler is None:
            self.chat_format = "llama-2"

    # --- vocabulary helpers ---------------------------------------------------------------
    def _n_ctx_train(self) -> int:
        if self._engine is not None:
            return int(self._engine.hparams.n_ctx_train)
        arch = self._gguf.kv.get("general.architecture", "")
        return int(self._gguf.kv.get(f"{arch}.context_length", 0))

    def _token_text(self, token: int) -> str:
        return self._vocab.text_bytes(token).decode("utf-8")

    def _vocab_tokenize(self, text: bytes, add_bos: bool, special: bool) -> List[int]:
        return self._vocab_tok.tokenize(text, add_special=add_bos, parse_special=special)

    def _vocab_detokenize(self, tokens: List[int], special: bool) -> bytes:
        return self._vocab_tok.detokenize_pieces([int(t) for t in tokens], special=special)

    def _is_eog(self, token: int) -> bool:
        return bool(self._vocab.is_eog(int(token)))

    def _require_engine(self) -> Any:
        if self._ctx is None:
            raise RuntimeError(
                "this Llama was created with vocab_only=True: it has no weights to evaluate"
            )
        return self._ctx

    # --- llama-cpp-python's read-only views -----------------------------------------------
    @property
    def ctx(self) -> Any:
        """The engine context (bitnet.model.Context) in place of a llama_context pointer."""
        return self._ctx

    @property
    def model(self) -> Any:
        """The engine model (bitnet.model.Model) in place of a llama_model pointer."""
        return self._engine

    @property
    def _input_ids(self) -> np.ndarray:
        return self.input_ids[: self.n_tokens]

    @property
    def _scores(self) -> np.ndarray:
        return self.scores[: self.n_tokens, :]

    @property
    def eval_tokens(self) -> Deque[int]:
        return deque(self.input_ids[: self.n_tokens].tolist(), maxlen=self._n_ctx)

    @property
    def eval_logits(self) -> Deque[List[float]]:
        return deque(
            self.scores[: self.n_tokens, :].tolist(),
            maxlen=self._n_ctx if self._logits_all else 1,
        )

    # --- tokens ---------------------------------------------------------------------------
    @_locked
    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> List[int]:
        """Token ids of UTF-8 `text` (llama_tokenize with add_special=add_bos,
        parse_special=special)."""
        return self.tokenizer_.tokenize(text, add_bos, special)

    @_locked
    def detokenize(
        self,
        tokens: List[int],
        prev_tokens: Optional[List[int]] = None,
        special: bool = False,
    ) -> bytes:
        """Bytes of `tokens` (pieces joined; one leading space dropped after a BOS)."""
        return self.tokenizer_.detokenize(tokens, prev_tokens=prev_tokens, special=special)

    def set_cache(self, cache: Optional[BaseLlamaCache]) -> None:
        """Use `cache` (LlamaRAMCache / LlamaDiskCache) for prompt-prefix states."""
        self.cache = cache

    def set_seed(self, seed: int) -> None:
        """Seed of the next sampler."""
        self._seed = seed

    @_locked
    def reset(self) -> None:
        """Forget the evaluated tokens (the KV cache is overwritten by the next eval)."""
        self.n_tokens = 0
        self._requires_eval = True

    @_locked
    def eval(self, tokens: Sequence[int]) -> None:
        """Decode `tokens` after the current `n_tokens`, in batches of n_batch."""
        ctx = self._require_engine()
        tokens = [int(t) for t in tokens]
        ctx.kv_cache_seq_rm(self.n_tokens, -1)
        for i in range(0, len(tokens), self.n_batch):
            batch = tokens[i : min(len(tokens), i + self.n_batch)]
            n_past = self.n_tokens
            n_tokens = len(batch)
            if n_past + n_tokens > self._n_ctx:
                raise ContextLengthExceededError(
                    f"Requested tokens ({n_past + n_tokens}) exceed context window of {self._n_ctx}"
                )
            logits = ctx.eval(batch, n_past, all_logits=self._logits_all)  # (n or 1, V)
            self.input_ids[n_past : n_past + n_tokens] = batch
            if self._logits_all:
                self.scores[n_past : n_past + n_tokens, :] = logits
            self._batch_logits = np.array(logits, dtype=np.single)
            self.n_tokens += n_tokens
            self._requires_eval = False

    # --- sampling -------------------------------------------------------------------------
    def _init_sampler(
        self,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        temp: float = 0.80,
        repeat_penalty: float = 1.0,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_eta: float = 0.1,
        mirostat_tau: float = 5.0,
        penalize_nl: bool = True,
        logits_processor: Optional[LogitsProcessorList] = None,
        grammar: Optional[Any] = None,
    ) -> Any:
        """The chain of llama-cpp-python's `_init_sampler` (via bitnet.sampling.make_chain)."""
        from bitnet import sampling

        _no_grammar(grammar)
        chain = sampling.make_chain(
            n_vocab=self._n_vocab,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            typical_p=typical_p,
            temp=temp,
            repeat_penalty=repeat_penalty,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            penalty_last_n=self.last_n_tokens_size,
            mirostat_mode=mirostat_mode,
            mirostat_tau=mirostat_tau,
            mirostat_eta=mirostat_eta,
            seed=self._seed,
        )
        processors = [p for p in logits_processor or [] if not isinstance(p, JSONOutput)]
        if processors:

            def apply_func(cur: Any) -> None:
                # the candidates are the whole vocabulary in id order here (chain start)
                logits = cur.logits
                for processor in processors:
                    logits = np.asarray(processor(self._input_ids, logits), dtype=np.single)
                cur.logits = np.array(logits, dtype=np.single)

            chain.samplers.insert(0, sampling.Custom(apply_func))
        return chain

    @_locked
    def sample(
        self,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        temp: float = 0.80,
        repeat_penalty: float = 1.0,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_eta: float = 0.1,
        mirostat_tau: float = 5.0,
        penalize_nl: bool = True,
        logits_processor: Optional[LogitsProcessorList] = None,
        grammar: Optional[Any] = None,
        idx: Optional[int] = None,
    ) -> int:
        """Sample a token from the logits at `idx` (default: the last evaluated token)."""
        assert self.n_tokens > 0
        _no_grammar(grammar)
        tmp_sampler = False
        if self._sampler is None:
            tmp_sampler = True
            self._sampler = self._init_sampler(
                top_k=top_k,
                top_p=top_p,
                min_p=min_p,
                typical_p=typical_p,
                temp=temp,
                repeat_penalty=repeat_penalty,
                frequency_penalty=frequency_penalty,
                presence_penalty=presence_penalty,
                tfs_z=tfs_z,
                mirostat_mode=mirostat_mode,
                mirostat_tau=mirostat_tau,
                mirostat_eta=mirostat_eta,
                penalize_nl=penalize_nl,
                logits_processor=logits_processor,
                grammar=grammar,
            )
        logits = self._logits_at(idx)
        try:
            if self._constraint is None:
                token = int(self._sampler.sample(logits))
            else:
                token = self._sample_constrained(logits, self._constraint)
        finally:
            if tmp_sampler:
                self._sampler = None
        return token

    def _sample_constrained(self, logits: np.ndarray, constraint: JSONConstraint) -> int:
        """Reject-and-resample: run the chain, and while its token breaks the constraint mask it
        to -inf and run the chain again (bitnet extension, the outcome of a llama.cpp grammar).

        logits: [n_vocab]. Each rejection also masks the invalid tokens among the `batch` most
        likely ones (64, doubling per rejection), so a model that wants anything but JSON costs
        a few chain runs, not one per rejected token. Greedy: exactly the argmax over allowed
        tokens. Sampling: a draw from the chain applied to logits with only disallowed tokens
        masked (llama.cpp's grammar masks all of them first, so with top-k/top-p truncation a
        draw may differ; each chain run draws from the RNG, and mirostat updates mu per run).
        """
        from bitnet.sampling import TokenDataArray

        sampler = self._sampler
        masked = np.array(logits, dtype=np.single)  # [n_vocab]
        n_vocab = masked.shape[0]
        batch = 64
        while True:
            cur = TokenDataArray.from_logits(masked)
            sampler.apply(cur)
            token = int(cur.selected_token())
            if constraint.allows(token):
                break
            if masked[token] == -np.inf:
                raise InferenceError(
                    "JSON-constrained sampling: no token of the vocabulary continues "
                    f"{constraint.state!r}"
                )
            masked[token] = -np.inf
            top = np.argpartition(-masked, batch - 1)[:batch] if batch < n_vocab else np.arange(n_vocab)
            for t in top.tolist():
                if masked[t] != -np.inf and not constraint.allows(t):
                    masked[t] = -np.inf
            batch = min(2 * batch, n_vocab)
        sampler.accept(token)
        constraint.accept(token)
        return token

    def _json_constraint(self, logits_processor: Optional[LogitsProcessorList]) -> Optional[JSONConstraint]:
        """A fresh JSONConstraint if `logits_processor` holds a JSONOutput marker."""
        marker = next((p for p in logits_processor or [] if isinstance(p, JSONOutput)), None)
        if marker is None:
            return None
        tok = self._vocab_tok
        return JSONConstraint(
            # llama.cpp's grammar matches a token by its piece with special=true (a control
            # token like <|im_start|> is the text "<|im_start|>"); end-of-generation tokens
            # only end a complete text
            piece=lambda t: tok.token_to_piece(t, 0, True),
            is_eog=self._is_eog,
            top=marker.top,
            max_ws=marker.max_ws,
            leading_ws=marker.leading_ws,
            schema=marker.schema,
            choices=marker.choices,
            compact=marker.compact,
        )

    def _logits_at(self, idx: Optional[int]) -> np.ndarray:
        """Row `idx` (absolute position) of the last decode's logits, as llama_get_logits_ith."""
        if self._batch_logits is None:
            if self._logits_all and idx is not None and 0 <= idx < self.n_tokens:
                return self.scores[idx]
            raise RuntimeError("no logits: evaluate tokens before sampling")
        ridx = idx - self.n_tokens if idx is not None else -1
        return self._batch_logits[ridx]

    @_locked
    def _last_logits_or_zero(self) -> np.ndarray:
        if self._batch_logits is None:
            return np.zeros(self._n_vocab, dtype=np.single)
        return self._batch_logits[-1]

    def generate(
        self,
        tokens: Sequence[int],
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        temp: float = 0.80,
        repeat_penalty: float = 1.0,
        reset: bool = True,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        penalize_nl: bool = True,
        logits_processor: Optional[LogitsProcessorList] = None,
        stopping_criteria: Optional[StoppingCriteriaList] = None,
        grammar: Optional[Any] = None,
    ) -> Generator[int, Optional[Sequence[int]], None]:
        """Yield tokens sampled after `tokens`; `.send(extra_tokens)` appends tokens to eval.

        Reuses the longest cached prefix of `tokens` when `reset` is true (llama-cpp-python's
        prefix matching). Holds the instance lock until exhausted or closed.
        """
        _no_grammar(grammar)
        with self._lock:
            yield from self._generate(
                tokens,
                top_k=top_k,
                top_p=top_p,
                min_p=min_p,
                typical_p=typical_p,
                temp=temp,
                repeat_penalty=repeat_penalty,
                reset=reset,
                frequency_penalty=frequency_penalty,
                presence_penalty=presence_penalty,
                tfs_z=tfs_z,
                mirostat_mode=mirostat_mode,
                mirostat_tau=mirostat_tau,
                mirostat_eta=mirostat_eta,
                penalize_nl=penalize_nl,
                logits_processor=logits_processor,
                stopping_criteria=stopping_criteria,
            )

    def _generate(
        self,
        tokens: Sequence[int],
        top_k: int,
        top_p: float,
        min_p: float,
        typical_p: float,
        temp: float,
        repeat_penalty: float,
        reset: bool,
        frequency_penalty: float,
        presence_penalty: float,
        tfs_z: float,
        mirostat_mode: int,
        mirostat_tau: float,
        mirostat_eta: float,
        penalize_nl: bool,
        logits_processor: Optional[LogitsProcessorList],
        stopping_criteria: Optional[StoppingCriteriaList],
    ) -> Generator[int, Optional[Sequence[int]], None]:
        ctx = self._require_engine()
        self._sampler = self._init_sampler(
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            typical_p=typical_p,
            temp=temp,
            repeat_penalty=repeat_penalty,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            tfs_z=tfs_z,
            mirostat_mode=mirostat_mode,
            mirostat_tau=mirostat_tau,
            mirostat_eta=mirostat_eta,
            penalize_nl=penalize_nl,
            logits_processor=logits_processor,
        )
        self._constraint = self._json_constraint(logits_processor)
        tokens = [int(t) for t in tokens]

        # prefix matching against the evaluated tokens (llama-cpp-python's generate)
        if reset and self.n_tokens > 0:
            longest_prefix = Llama.longest_token_prefix(self._input_ids.tolist(), tokens)
            prompt_consumed = longest_prefix == len(tokens)
            exact_prompt_cached = self.n_tokens == len(tokens) and prompt_consumed
            if exact_prompt_cached and not self._requires_eval:
                reset = False
                tokens = []
                reuse_prefix = 0
            else:
                # nothing left to decode: replay one token to refresh the logits
                reuse_prefix = longest_prefix - 1 if prompt_consumed else longest_prefix
            if reuse_prefix > 0:
                ctx.kv_cache_seq_rm(reuse_prefix, -1)
                reset = False
                tokens = tokens[reuse_prefix:]
                self.n_tokens = reuse_prefix
                self._requires_eval = True
        if reset:
            self.reset()

        sample_idx = self.n_tokens + len(tokens) - 1
        try:
            while True:
                self.eval(tokens)
                while sample_idx < self.n_tokens:
                    token = self.sample(
                        top_k=top_k,
                        top_p=top_p,
                        min_p=min_p,
                        typical_p=typical_p,
                        temp=temp,
                        repeat_penalty=repeat_penalty,
                        frequency_penalty=frequency_penalty,
                        presence_penalty=presence_penalty,
                        tfs_z=tfs_z,
                        mirostat_mode=mirostat_mode,
                        mirostat_tau=mirostat_tau,
                        mirostat_eta=mirostat_eta,
                        logits_processor=logits_processor,
                        penalize_nl=penalize_nl,
                        idx=sample_idx,
                    )
                    sample_logits = self._logits_at(sample_idx)
                    sample_idx += 1
                    if stopping_criteria is not None and stopping_criteria(
                        self._input_ids[:sample_idx], sample_logits
                    ):
                        return
                    tokens_or_none = yield token
                    tokens = [token]
                    if tokens_or_none is not None:
                        tokens.extend(int(t) for t in tokens_or_none)
                    if sample_idx < self.n_tokens and token != self._input_ids[sample_idx]:
                        self.n_tokens = sample_idx
                        ctx.kv_cache_seq_rm(self.n_tokens, -1)
                        self._requires_eval = True
                        break
                if self.draft_model is not None:
                    self.input_ids[self.n_tokens : self.n_tokens + len(tokens)] = tokens
                    draft_tokens = self.draft_model(self.input_ids[: self.n_tokens + len(tokens)])
                    tokens.extend(
                        np.asarray(draft_tokens).astype(int)[
                            : self._n_ctx - self.n_tokens - len(tokens)
                        ].tolist()
                    )
        finally:
            self._sampler = None
            self._constraint = None

    # --- embeddings -----------------------------------------------------------------------
    @_locked
    def create_embedding(
        self, input: Union[str, List[str]], model: Optional[str] = None
    ) -> Dict[str, Any]:
        """OpenAI-style embedding list for one string or a list of strings."""
        model_name: str = model if model is not None else self.model_path
        inputs = input if isinstance(input, list) else [input]
        embeds, total_tokens = self.embed(inputs, return_count=True)
        data = [
            {"object": "embedding", "embedding": emb, "index": idx}
            for idx, emb in enumerate(embeds)
        ]
        return {
            "object": "list",
            "data": data,
            "model": model_name,
            "usage": {"prompt_tokens": total_tokens, "total_tokens": total_tokens},
        }

    @_locked
    def embed(
        self,
        input: Union[str, List[str]],
        normalize: bool = False,
        truncate: bool = True,
        return_count: bool = False,
    ) -> Any:
        """Embeddings of `input`: one vector per text (pooled), or one per token when the
        pooling type is NONE. `truncate` cuts each text to n_batch tokens."""
        if self.context_params.embeddings is False:
            raise RuntimeError("Llama model must be created with embedding=True to call this method")
        ctx = self._require_engine()
        n_batch = self.n_batch
        pooling = self.pooling_type()
        inputs = [input] if isinstance(input, str) else input
        data: List[Any] = []
        total_tokens = 0
        for text in inputs:
            tokens = self.tokenize(text.encode("utf-8"))
            if truncate:
                tokens = tokens[:n_batch]
            n_tokens = len(tokens)
            total_tokens += n_tokens
            if n_tokens > n_batch:
                raise ValueError(f"Requested tokens ({n_tokens}) exceed batch size of {n_batch}")
            if n_tokens == 0:
                raise RuntimeError("llama_decode returned -1")  # llama.cpp rejects empty batches
            ctx.reset()
            ctx.eval(tokens, 0, all_logits=False)
            hidden = np.asarray(ctx.embeddings, dtype=np.float32)  # (T, D) after output_norm
            if pooling == LLAMA_POOLING_TYPE_NONE:
                rows = [row.tolist() for row in hidden]
                data.append([_normalize(r) for r in rows] if normalize else rows)
                continue
            if pooling == LLAMA_POOLING_TYPE_MEAN:
                vec = hidden.mean(axis=0)
            elif pooling == LLAMA_POOLING_TYPE_CLS:
                vec = hidden[0]
            elif pooling == LLAMA_POOLING_TYPE_LAST:
                vec = hidden[-1]
            else:
                raise NotImplementedError(f"pooling type {pooling} (rank) needs a classifier head")
            emb = vec.astype(np.float32).tolist()
            data.append(_normalize(emb) if normalize else emb)
        output = data[0] if isinstance(input, str) else data
        ctx.reset()
        self.reset()
        self._batch_logits = None
        if return_count:
            return output, total_tokens
        return output

    # --- completion -----------------------------------------------------------------------
    def _create_completion(
        self,
        prompt: Union[str, List[int]],
        suffix: Optional[str] = None,
        max_tokens: Optional[int] = 16,
        temperature: float = 0.8,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        logprobs: Optional[int] = None,
        echo: bool = False,
        stop: Optional[Union[str, List[str]]] = [],  # noqa: B006 (llama-cpp-python's default)
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        repeat_penalty: float = 1.0,
        top_k: int = 40,
        stream: bool = False,
        seed: Optional[int] = None,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        model: Optional[str] = None,
        stopping_criteria: Optional[StoppingCriteriaList] = None,
        logits_processor: Optional[LogitsProcessorList] = None,
        grammar: Optional[Any] = None,
        logit_bias: Optional[Dict[int, float]] = None,
    ) -> Generator[Dict[str, Any], None, None]:
        with self._lock:
            yield from self._create_completion_locked(
                prompt, suffix, max_tokens, temperature, top_p, min_p, typical_p, logprobs,
                echo, stop, frequency_penalty, presence_penalty, repeat_penalty, top_k, stream,
                seed, tfs_z, mirostat_mode, mirostat_tau, mirostat_eta, model,
                stopping_criteria, logits_processor, grammar, logit_bias,
            )  # fmt: skip

    def _create_completion_locked(  # noqa: C901 (mirrors llama-cpp-python's one function)
        self,
        prompt: Union[str, List[int]],
        suffix: Optional[str],
        max_tokens: Optional[int],
        temperature: float,
        top_p: float,
        min_p: float,
        typical_p: float,
        logprobs: Optional[int],
        echo: bool,
        stop: Optional[Union[str, List[str]]],
        frequency_penalty: float,
        presence_penalty: float,
        repeat_penalty: float,
        top_k: int,
        stream: bool,
        seed: Optional[int],
        tfs_z: float,
        mirostat_mode: int,
        mirostat_tau: float,
        mirostat_eta: float,
        model: Optional[str],
        stopping_criteria: Optional[StoppingCriteriaList],
        logits_processor: Optional[LogitsProcessorList],
        grammar: Optional[Any],
        logit_bias: Optional[Dict[int, float]],
    ) -> Generator[Dict[str, Any], None, None]:
        assert suffix is None or suffix.__class__ is str
        _no_grammar(grammar)

        completion_id: str = f"cmpl-{str(uuid.uuid4())}"
        created: int = int(time.time())
        bos_token_id: int = self.token_bos()
        cls_token_id: int = self.token_bos()  # llama-cpp-python's token_cls is llama_vocab_bos
        sep_token_id: int = self._opt_id(self._vocab.sep_id)
        # subtle: llama-cpp-python hard-codes 0 for the FIM tokens ("TODO: Fix"); kept so that
        # a `suffix` builds the same prompt tokens
        prefix_token_id: int = 0
        middle_token_id: int = 0
        suffix_token_id: int = 0
        add_space_prefix: bool = self.metadata.get("tokenizer.ggml.add_space_prefix", "true") == "true"
        bos_tokens: List[int] = [cls_token_id if cls_token_id != -1 else bos_token_id]
        eos_tokens: List[int] = [sep_token_id if sep_token_id != -1 else self.token_eos()]

        if (
            (isinstance(prompt, list) and suffix is None)
            or not self._vocab.add_bos
            or bos_tokens[:1] == [-1]
        ):
            bos_tokens = []
        if (isinstance(prompt, list) and suffix is None) or (
            not self._vocab.add_eos and sep_token_id == -1
        ):
            eos_tokens = []

        suffix_space_prefix: int = 0
        if add_space_prefix and suffix_token_id >= 0 and suffix:
            suffix = "☺" + suffix  # tokenizer hack to remove the leading space
            suffix_space_prefix = 2

        # an empty prompt starts the completion with BOS so detokenization drops its space
        completion_tokens: List[int] = [] if len(prompt) > 0 else [bos_token_id]
        prefix_tokens: List[int] = (
            [prefix_token_id] if prefix_token_id >= 0 and suffix is not None else []
        ) + (
            (
                self.tokenize(
                    prompt.encode("utf-8"),
                    add_bos=False,
                    special=(prefix_token_id < 0 or suffix is None),
                )
                if prompt != ""
                else []
            )
            if isinstance(prompt, str)
            else list(prompt)
        )
        suffix_tokens: List[int] = (
            (
                [suffix_token_id]
                + (
                    self.tokenize(suffix.encode("utf-8"), add_bos=False, special=False)[
                        suffix_space_prefix:
                    ]
                    if suffix
                    else []
                )
            )
            if suffix_token_id >= 0 and suffix is not None
            else []
        )
        middle_tokens: List[int] = (
            [middle_token_id] if middle_token_id >= 0 and suffix is not None else []
        )
        prompt_tokens: List[int] = (
            bos_tokens
            + (
                (suffix_tokens + prefix_tokens + middle_tokens)
                if self.spm_infill
                else (prefix_tokens + suffix_tokens + middle_tokens)
            )
            + eos_tokens
        )
        text: bytes = b""
        returned_tokens: int = 0
        stop = stop if isinstance(stop, list) else [stop] if isinstance(stop, str) else []
        model_name: str = model if model is not None else self.model_path

        if prompt_tokens[:2] == [self.token_bos()] * 2:
            warnings.warn(
                f'Detected duplicate leading "{self._token_text(self.token_bos())}" in prompt, '
                "this will likely reduce response quality, consider removing it...",
                RuntimeWarning,
                stacklevel=2,
            )

        if logit_bias is not None:
            logit_bias_map = {int(k): float(v) for k, v in logit_bias.items()}

            def logit_bias_processor(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
                new_scores = np.copy(scores)
                for input_id, score in logit_bias_map.items():
                    new_scores[input_id] = score + scores[input_id]
                return new_scores

            processors = LogitsProcessorList(logits_processor or [])
            processors.append(logit_bias_processor)
            logits_processor = processors

        if len(prompt_tokens) >= self._n_ctx:
            raise ValueError(
                f"Requested tokens ({len(prompt_tokens)}) exceed context window of {self._n_ctx}"
            )

        if max_tokens is None or max_tokens <= 0:
            max_tokens = self._n_ctx - len(prompt_tokens)  # unlimited, up to n_ctx
        max_tokens = (
            max_tokens
            if max_tokens + len(prompt_tokens) < self._n_ctx
            else (self._n_ctx - len(prompt_tokens))
        )
        stop_sequences = [s.encode("utf-8") for s in stop] if stop != [] else []

        if logprobs is not None and self._logits_all is False:
            raise ValueError("logprobs is not supported for models created with logits_all=False")

        if self.cache:
            try:
                cache_item = self.cache[prompt_tokens]
                cache_prefix_len = Llama.longest_token_prefix(cache_item.input_ids.tolist(), prompt_tokens)
                eval_prefix_len = Llama.longest_token_prefix(self._input_ids.tolist(), prompt_tokens)
                if cache_prefix_len > eval_prefix_len:
                    self.load_state(cache_item)
            except KeyError:
                pass

        if seed is not None:
            self.set_seed(seed)
        else:
            self.set_seed(random.Random(self._seed).randint(0, 2**32))

        def detok(toks: List[int], prev: Optional[List[int]] = None) -> bytes:
            return self.detokenize(toks, prev_tokens=prev)

        def top_logprob_dict(logprobs_row: List[float], n: int) -> Dict[str, float]:
            sorted_logprobs = sorted(zip(logprobs_row, range(len(logprobs_row))), reverse=True)
            return {
                detok([i]).decode("utf-8", errors="ignore"): logprob
                for logprob, i in sorted_logprobs[:n]
            }

        def chunk(text_: str, logprobs_: Optional[Dict[str, Any]], finish: Optional[str]) -> Dict[str, Any]:
            return {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "model": model_name,
                "choices": [
                    {"text": text_, "index": 0, "logprobs": logprobs_, "finish_reason": finish}
                ],
            }

        finish_reason = "length"
        multibyte_fix = 0
        logprobs_or_none: Optional[Dict[str, Any]] = None
        top_logprob: Optional[Dict[str, float]]
        for token in self.generate(
            prompt_tokens,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            typical_p=typical_p,
            temp=temperature,
            tfs_z=tfs_z,
            mirostat_mode=mirostat_mode,
            mirostat_tau=mirostat_tau,
            mirostat_eta=mirostat_eta,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            repeat_penalty=repeat_penalty,
            stopping_criteria=stopping_criteria,
            logits_processor=logits_processor,
            grammar=grammar,
        ):
            if self._is_eog(token):
                text = detok(completion_tokens, prompt_tokens)
                finish_reason = "stop"
                break

            completion_tokens.append(token)
            all_text = detok(completion_tokens, prompt_tokens)

            # hold back an incomplete UTF-8 sequence at the end
            for k, char in enumerate(all_text[-3:]):
                k = 3 - k
                for num, pattern in [(2, 192), (3, 224), (4, 240)]:
                    if num > k and pattern & char == pattern:
                        multibyte_fix = num - k
            if multibyte_fix > 0:
                multibyte_fix -= 1
                continue

            any_stop = [s for s in stop_sequences if s in all_text]
            if len(any_stop) > 0:
                first_stop = any_stop[0]
                text = all_text[: all_text.index(first_stop)]
                finish_reason = "stop"
                break

            if stream:
                remaining_tokens = completion_tokens[returned_tokens:]
                prev = prompt_tokens + completion_tokens[:returned_tokens]
                remaining_text = detok(remaining_tokens, prev)
                remaining_length = len(remaining_text)

                # hold back characters that may start a stop sequence
                first_stop_position = 0
                for s in stop_sequences:
                    for i in range(min(len(s), remaining_length), 0, -1):
                        if remaining_text.endswith(s[:i]):
                            if i > first_stop_position:
                                first_stop_position = i
                            break

                token_end_position = 0
                if logprobs is not None:
                    for token in remaining_tokens:
                        if token == bos_token_id:
                            continue
                        prev = prompt_tokens + completion_tokens[:returned_tokens]
                        token_end_position += len(detok([token], prev))
                        if token_end_position > (remaining_length - first_stop_position):
                            break
                        token_str = detok([token], prev).decode("utf-8", errors="ignore")
                        text_offset = len(prompt) + len(
                            detok(completion_tokens[:returned_tokens], prev).decode(
                                "utf-8", errors="ignore"
                            )
                        )
                        token_offset = len(prompt_tokens) + returned_tokens
                        logits = self._scores[token_offset - 1, :]
                        current_logprobs = Llama.logits_to_logprobs(logits).tolist()
                        top_logprob = top_logprob_dict(current_logprobs, logprobs)
                        top_logprob.update({token_str: current_logprobs[int(token)]})
                        logprobs_or_none = {
                            "tokens": [token_str],
                            "text_offset": [text_offset],
                            "token_logprobs": [current_logprobs[int(token)]],
                            "top_logprobs": [top_logprob],
                        }
                        returned_tokens += 1
                        yield chunk(
                            detok(
                                [token], prompt_tokens + completion_tokens[:returned_tokens]
                            ).decode("utf-8", errors="ignore"),
                            logprobs_or_none,
                            None,
                        )
                else:
                    while len(remaining_tokens) > 0:
                        decode_success = False
                        for i in range(1, len(remaining_tokens) + 1):
                            try:
                                bs = detok(
                                    remaining_tokens[:i],
                                    prompt_tokens + completion_tokens[:returned_tokens],
                                )
                                ts = bs.decode("utf-8")
                                decode_success = True
                                break
                            except UnicodeError:
                                pass
                        else:
                            break
                        if not decode_success:
                            break  # the remaining tokens are not a whole UTF-8 sequence yet
                        token_end_position += len(bs)
                        if token_end_position > (remaining_length - first_stop_position):
                            break
                        remaining_tokens = remaining_tokens[i:]
                        returned_tokens += i
                        yield chunk(ts, None, None)

            if len(completion_tokens) >= max_tokens:
                text = detok(completion_tokens, prompt_tokens)
                finish_reason = "length"
                break

        if stopping_criteria is not None and stopping_criteria(
            self._input_ids, self._last_logits_or_zero()
        ):
            text = detok(completion_tokens, prompt_tokens)
            finish_reason = "stop"

        if stream:
            remaining_tokens = completion_tokens[returned_tokens:]
            remaining_text = detok(remaining_tokens, prompt_tokens + completion_tokens[:returned_tokens])
            any_stop = [s for s in stop_sequences if s in remaining_text]
            if len(any_stop) > 0:
                end = min(remaining_text.index(stop) for stop in any_stop)
            else:
                end = len(remaining_text)

            token_end_position = 0
            for token in remaining_tokens:
                token_end_position += len(
                    detok([token], prompt_tokens + completion_tokens[:returned_tokens])
                )
                logprobs_or_none = None
                if logprobs is not None:
                    if token == bos_token_id:
                        continue
                    token_str = detok([token]).decode("utf-8", errors="ignore")
                    text_offset = len(prompt) + len(
                        detok(
                            completion_tokens[:returned_tokens],
                            prompt_tokens + completion_tokens[:returned_tokens],
                        )
                    )
                    token_offset = len(prompt_tokens) + returned_tokens - 1
                    logits = self._scores[token_offset, :]
                    current_logprobs = Llama.logits_to_logprobs(logits).tolist()
                    top_logprob = top_logprob_dict(current_logprobs, logprobs)
                    top_logprob.update({token_str: current_logprobs[int(token)]})
                    logprobs_or_none = {
                        "tokens": [detok([token]).decode("utf-8", errors="ignore")],
                        "text_offset": [text_offset],
                        "token_logprobs": [current_logprobs[int(token)]],
                        "top_logprobs": [top_logprob],
                    }

                if token_end_position >= end:
                    last_text = detok([token])
                    if token_end_position == end - 1:
                        break
                    returned_tokens += 1
                    yield chunk(
                        last_text[: len(last_text) - (token_end_position - end)].decode(
                            "utf-8", errors="ignore"
                        ),
                        logprobs_or_none,
                        None,
                    )
                    break
                returned_tokens += 1
                yield chunk(detok([token]).decode("utf-8", errors="ignore"), logprobs_or_none, None)
            yield chunk("", None, finish_reason)
            if self.cache:
                self.cache[prompt_tokens + completion_tokens] = self.save_state()
            return

        if self.cache:
            self.cache[prompt_tokens + completion_tokens] = self.save_state()

        text_str = text.decode("utf-8", errors="ignore")
        if echo:
            text_str = prompt + text_str  # type: ignore[operator]  # str prompts only, as upstream
        if suffix_token_id < 0 and suffix is not None:
            text_str = text_str + suffix

        logprobs_or_none = None
        if logprobs is not None:
            text_offset = 0 if echo else len(prompt)
            token_offset = 0 if echo else len(prompt_tokens[1:])
            text_offsets: List[int] = []
            token_logprobs: List[Optional[float]] = []
            tokens: List[str] = []
            top_logprobs: List[Optional[Dict[str, float]]] = []

            if echo:
                # drop a leading BOS
                all_tokens = (
                    prompt_tokens[1 if prompt_tokens[0] == self.token_bos() else 0 :]
                    + completion_tokens
                )
            else:
                all_tokens = completion_tokens

            all_token_strs = [
                detok([token], all_tokens[:i]).decode("utf-8", errors="ignore")
                for i, token in enumerate(all_tokens)
            ]
            all_logprobs = Llama.logits_to_logprobs(self._scores)[token_offset:]
            for idx, (token, token_str, logprobs_token) in enumerate(
                zip(all_tokens, all_token_strs, all_logprobs)
            ):
                if token == bos_token_id:
                    continue
                text_offsets.append(
                    text_offset + len(detok(all_tokens[:idx]).decode("utf-8", errors="ignore"))
                )
                tokens.append(token_str)
                # subtle: values stay np.float32 here, as llama-cpp-python returns them
                row = logprobs_token
                token_logprobs.append(row[int(token)])
                sorted_logprobs = sorted(zip(row, range(len(row))), reverse=True)
                top_logprob = {
                    detok([i], all_tokens[:idx]).decode("utf-8", errors="ignore"): logprob
                    for logprob, i in sorted_logprobs[:logprobs]
                }
                assert top_logprob is not None
                top_logprob.update({token_str: row[int(token)]})
                top_logprobs.append(top_logprob)
            # OpenAI API: no logprobs for the first echoed token
            if echo and len(all_tokens) > 0:
                token_logprobs[0] = None
                top_logprobs[0] = None
            logprobs_or_none = {
                "tokens": tokens,
                "text_offset": text_offsets,
                "token_logprobs": token_logprobs,
                "top_logprobs": top_logprobs,
            }

        out = chunk(text_str, logprobs_or_none, finish_reason)
        out["usage"] = {
            "prompt_tokens": len(prompt_tokens),
            "completion_tokens": len(completion_tokens),
            "total_tokens": len(prompt_tokens) + len(completion_tokens),
        }
        yield out

    def create_completion(
        self,
        prompt: Union[str, List[int]],
        suffix: Optional[str] = None,
        max_tokens: Optional[int] = 16,
        temperature: float = 0.8,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        logprobs: Optional[int] = None,
        echo: bool = False,
        stop: Optional[Union[str, List[str]]] = [],  # noqa: B006 (llama-cpp-python's default)
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        repeat_penalty: float = 1.0,
        top_k: int = 40,
        stream: bool = False,
        seed: Optional[int] = None,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        model: Optional[str] = None,
        stopping_criteria: Optional[StoppingCriteriaList] = None,
        logits_processor: Optional[LogitsProcessorList] = None,
        grammar: Optional[Any] = None,
        logit_bias: Optional[Dict[int, float]] = None,
    ) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
        """Complete `prompt` (text or token ids): a text_completion dict, or an iterator of
        chunks with stream=True. Raises ValueError when the prompt does not fit n_ctx or
        logprobs is asked of a model created without logits_all=True."""
        completion_or_chunks = self._create_completion(
            prompt=prompt,
            suffix=suffix,
            max_tokens=-1 if max_tokens is None else max_tokens,
            temperature=temperature,
            top_p=top_p,
            min_p=min_p,
            typical_p=typical_p,
            logprobs=logprobs,
            echo=echo,
            stop=stop,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            repeat_penalty=repeat_penalty,
            top_k=top_k,
            stream=stream,
            seed=seed,
            tfs_z=tfs_z,
            mirostat_mode=mirostat_mode,
            mirostat_tau=mirostat_tau,
            mirostat_eta=mirostat_eta,
            model=model,
            stopping_criteria=stopping_criteria,
            logits_processor=logits_processor,
            grammar=grammar,
            logit_bias=logit_bias,
        )
        if stream:
            return completion_or_chunks
        try:
            return next(completion_or_chunks)
        finally:
            completion_or_chunks.close()  # releases the lock

    def __call__(
        self,
        prompt: str,
        suffix: Optional[str] = None,
        max_tokens: Optional[int] = 16,
        temperature: float = 0.8,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        logprobs: Optional[int] = None,
        echo: bool = False,
        stop: Optional[Union[str, List[str]]] = [],  # noqa: B006 (llama-cpp-python's default)
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        repeat_penalty: float = 1.0,
        top_k: int = 40,
        stream: bool = False,
        seed: Optional[int] = None,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        model: Optional[str] = None,
        stopping_criteria: Optional[StoppingCriteriaList] = None,
        logits_processor: Optional[LogitsProcessorList] = None,
        grammar: Optional[Any] = None,
        logit_bias: Optional[Dict[int, float]] = None,
    ) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
        """Same as create_completion."""
        return self.create_completion(
            prompt=prompt,
            suffix=suffix,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            min_p=min_p,
            typical_p=typical_p,
            logprobs=logprobs,
            echo=echo,
            stop=stop,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            repeat_penalty=repeat_penalty,
            top_k=top_k,
            stream=stream,
            seed=seed,
            tfs_z=tfs_z,
            mirostat_mode=mirostat_mode,
            mirostat_tau=mirostat_tau,
            mirostat_eta=mirostat_eta,
            model=model,
            stopping_criteria=stopping_criteria,
            logits_processor=logits_processor,
            grammar=grammar,
            logit_bias=logit_bias,
        )

    def create_chat_completion(
        self,
        messages: List[Dict[str, Any]],
        functions: Optional[List[Dict[str, Any]]] = None,
        function_call: Optional[Any] = None,
        tools: Optional[List[Dict[str, Any]]] = None,
        tool_choice: Optional[Any] = None,
        temperature: float = 0.2,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        stream: bool = False,
        stop: Optional[Union[str, List[str]]] = [],  # noqa: B006 (llama-cpp-python's default)
        seed: Optional[int] = None,
        response_format: Optional[Dict[str, Any]] = None,
        max_tokens: Optional[int] = None,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        repeat_penalty: float = 1.0,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        model: Optional[str] = None,
        logits_processor: Optional[LogitsProcessorList] = None,
        grammar: Optional[Any] = None,
        logit_bias: Optional[Dict[int, float]] = None,
        logprobs: Optional[bool] = None,
        top_logprobs: Optional[int] = None,
    ) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
        """Chat completion through `chat_handler`, the GGUF template or the named chat_format."""
        _no_grammar(grammar)
        handler = (
            self.chat_handler
            or self._chat_handlers.get(self.chat_format)  # type: ignore[arg-type]
            or llama_chat_format.get_chat_completion_handler(self.chat_format or "llama-2")
        )
        return handler(
            llama=self,
            messages=messages,
            functions=functions,
            function_call=function_call,
            tools=tools,
            tool_choice=tool_choice,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            min_p=min_p,
            typical_p=typical_p,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            stream=stream,
            stop=stop,
            seed=seed,
            response_format=response_format,
            max_tokens=max_tokens,
            presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
            repeat_penalty=repeat_penalty,
            tfs_z=tfs_z,
            mirostat_mode=mirostat_mode,
            mirostat_tau=mirostat_tau,
            mirostat_eta=mirostat_eta,
            model=model,
            logits_processor=logits_processor,
            grammar=grammar,
            logit_bias=logit_bias,
        )

    def create_chat_completion_openai_v1(self, *args: Any, **kwargs: Any) -> Any:
        """create_chat_completion wrapped in the openai package's types."""
        try:
            from openai.types.chat import ChatCompletion, ChatCompletionChunk
        except ImportError:
            raise ImportError(
                "To use create_chat_completion_openai_v1, you must install the openai package."
                "You can install it with `pip install openai`."
            ) from None
        stream = kwargs.get("stream", False)
        assert isinstance(stream, bool)
        if stream:
            chunks: Any = self.create_chat_completion(*args, **kwargs)
            return (ChatCompletionChunk(**chunk) for chunk in chunks)
        completion: Any = self.create_chat_completion(*args, **kwargs)
        return ChatCompletion(**completion)

    def render_chat_prompt(self, messages: List[Dict[str, Any]], **kwargs: Any) -> Tuple[List[int], Any]:
        """(prompt token ids, ChatFormatterResponse) the active chat format builds — what
        create_chat_completion would evaluate (bitnet extension, no generation)."""
        if self.chat_handler is not None:
            raise ValueError("render_chat_prompt works with chat_format, not a custom chat_handler")
        name = self.chat_format or ""
        if name in self._chat_handlers:
            kv_name = "tokenizer.chat_template" if name == "chat_template.default" else "tokenizer." + name
            eos, bos = self.token_eos(), self.token_bos()
            formatter: Any = llama_chat_format.Jinja2ChatFormatter(
                template=self.metadata[kv_name],
                eos_token=self._token_text(eos) if eos != -1 else "",
                bos_token=self._token_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
        else:
            formatter = llama_chat_format.CHAT_FORMATTERS[name]
        result = formatter(messages=messages, **kwargs)
        ids = self.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
        return ids, result

    # --- pickling and state ---------------------------------------------------------------
    def __getstate__(self) -> Dict[str, Any]:
        cp = self.context_params
        return dict(
            model_path=self.model_path,
            n_gpu_layers=self.model_params.n_gpu_layers,
            split_mode=self.model_params.split_mode,
            main_gpu=self.model_params.main_gpu,
            tensor_split=self.tensor_split,
            vocab_only=self.model_params.vocab_only,
            use_mmap=self.model_params.use_mmap,
            use_mlock=self.model_params.use_mlock,
            kv_overrides=self.kv_overrides,
            seed=self._seed,
            n_ctx=cp.n_ctx,
            n_batch=self.n_batch,
            n_ubatch=cp.n_ubatch,
            n_threads=cp.n_threads,
            n_threads_batch=cp.n_threads_batch,
            rope_scaling_type=cp.rope_scaling_type,
            pooling_type=cp.pooling_type,
            attention_type=cp.attention_type,
            rope_freq_base=cp.rope_freq_base,
            rope_freq_scale=cp.rope_freq_scale,
            yarn_ext_factor=cp.yarn_ext_factor,
            yarn_attn_factor=cp.yarn_attn_factor,
            yarn_beta_fast=cp.yarn_beta_fast,
            yarn_beta_slow=cp.yarn_beta_slow,
            yarn_orig_ctx=cp.yarn_orig_ctx,
            logits_all=self._logits_all,
            embedding=cp.embeddings,
            offload_kqv=cp.offload_kqv,
            flash_attn=cp.flash_attn,
            op_offload=cp.op_offload,
            swa_full=cp.swa_full,
            no_perf=cp.no_perf,
            last_n_tokens_size=self.last_n_tokens_size,
            lora_base=self.lora_base,
            lora_scale=self.lora_scale,
            lora_path=self.lora_path,
            numa=self.numa,
            chat_format=self.chat_format,
            chat_handler=self.chat_handler,
            draft_model=self.draft_model,
            type_k=self._type_k,
            type_v=self._type_v,
            spm_infill=self.spm_infill,
            verbose=self.verbose,
        )

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    @_locked
    def save_state(self) -> LlamaState:
        """Snapshot of the token buffer, scores, KV cache and seed."""
        ctx = self._require_engine()
        n_used = ctx.cache.n_used
        buf = io.BytesIO()
        arrays = {
            "k": ctx.cache.k[:, :n_used],
            "v": ctx.cache.v[:, :n_used],
            "pos": ctx.cache.pos[:n_used],
        }
        if self._batch_logits is not None:
            arrays["logits"] = self._batch_logits
        np.savez(buf, **arrays)
        data = buf.getvalue()
        return LlamaState(
            scores=self._scores.copy(),
            input_ids=self.input_ids.copy(),
            n_tokens=self.n_tokens,
            llama_state=data,
            llama_state_size=len(data),
            seed=self._seed,
        )

    @_locked
    def load_state(self, state: LlamaState) -> None:
        """Restore a snapshot from save_state (RuntimeError if its bytes do not fit)."""
        ctx = self._require_engine()
        try:
            with np.load(io.BytesIO(bytes(state.llama_state[: state.llama_state_size]))) as z:
                k, v, pos = z["k"], z["v"], z["pos"]
                logits = z["logits"] if "logits" in z.files else None
            n_used = pos.shape[0]
            same_shape = k.shape[0] == ctx.cache.k.shape[0] and k.shape[2:] == ctx.cache.k.shape[2:]
            if not same_shape or n_used > ctx.n_ctx:
                raise ValueError("state does not fit this context")
        except Exception as e:
            raise RuntimeError("Failed to set llama state data") from e
        n = state.scores.shape[0]
        self.scores[:n, :] = state.scores.copy()
        rest = self.scores[n:, :]
        rest[rest > 0] = 0.0
        self.input_ids = state.input_ids.copy()
        self.n_tokens = state.n_tokens
        self._requires_eval = True
        self._seed = state.seed
        ctx.cache.clear()
        ctx.cache.k[:, :n_used] = k
        ctx.cache.v[:, :n_used] = v
        ctx.cache.pos[:n_used] = pos
        self._batch_logits = logits

    # --- model facts ----------------------------------------------------------------------
    def n_ctx(self) -> int:
        """Context size (padded to a multiple of 256, as llama.cpp pads it)."""
        return self._n_ctx_padded

    def n_embd(self) -> int:
        return int(self._engine.n_embd) if self._engine is not None else 0

    def n_vocab(self) -> int:
        return int(self._vocab.n_tokens)

    def tokenizer(self) -> LlamaTokenizer:
        return LlamaTokenizer(self)

    @staticmethod
    def _opt_id(token: Optional[int]) -> int:
        return -1 if token is None else int(token)

    def token_eos(self) -> int:
        return self._opt_id(self._vocab.eos_id)

    def token_bos(self) -> int:
        return self._opt_id(self._vocab.bos_id)

    def token_nl(self) -> int:
        return self._opt_id(self._vocab.nl_id)

    def pooling_type(self) -> int:
        """The context's pooling type (the file's `<arch>.pooling_type` unless overridden)."""
        requested = self.context_params.pooling_type
        if requested != LLAMA_POOLING_TYPE_UNSPECIFIED:
            return int(requested)
        arch = self._gguf.kv.get("general.architecture", "")
        return int(self._gguf.kv.get(f"{arch}.pooling_type", LLAMA_POOLING_TYPE_NONE))

    def close(self) -> None:
        """Release the model file; the instance is unusable afterwards."""
        self._stack.close()

    def __enter__(self) -> Llama:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        stack = getattr(self, "_stack", None)
        if stack is not None:
            with contextlib.suppress(Exception):
                stack.close()

    @staticmethod
    def logits_to_logprobs(logits: Union[np.ndarray, List[Any]], axis: int = -1) -> np.ndarray:
        """log_softmax along `axis` in float32 (non-finite maxima treated as 0)."""
        logits_maxs: Any = np.amax(logits, axis=axis, keepdims=True)
        if logits_maxs.ndim > 0:
            logits_maxs[~np.isfinite(logits_maxs)] = 0
        elif not np.isfinite(logits_maxs):
            logits_maxs = 0
        subtract_maxs = np.subtract(logits, logits_maxs, dtype=np.single)
        exp = np.exp(subtract_maxs)
        with np.errstate(divide="ignore"):
            summed = np.sum(exp, axis=axis, keepdims=True)
            out = np.log(summed)
        return subtract_maxs - out

    @staticmethod
    def longest_token_prefix(a: Sequence[int], b: Sequence[int]) -> int:
        """Length of the common prefix of two token sequences."""
        longest_prefix = 0
        for _a, _b in zip(a, b):
            if _a == _b:
                longest_prefix += 1
            else:
                break
        return longest_prefix

    @classmethod
    def from_pretrained(
        cls,
        repo_id: str,
        filename: Optional[str],
        additional_files: Optional[List[Any]] = None,
        local_dir: Optional[Union[str, os.PathLike[str]]] = None,
        local_dir_use_symlinks: Union[bool, str] = "auto",
        cache_dir: Optional[Union[str, os.PathLike[str]]] = None,
        **kwargs: Any,
    ) -> Llama:
        """Load `filename` (a glob) from a local directory `repo_id`, or from the Hugging Face
        hub when huggingface_hub is installed and `repo_id` is not a local directory."""
        if os.path.isdir(repo_id):
            files = sorted(
                str(p.relative_to(repo_id)) for p in Path(repo_id).rglob("*") if p.is_file()
            )
            matching = [f for f in files if fnmatch.fnmatch(f, filename or "")]
            if len(matching) == 0:
                raise ValueError(
                    f"No file found in {repo_id} that match {filename}\n\n"
                    f"Available Files:\n{json.dumps(files)}"
                )
            if len(matching) > 1:
                raise ValueError(
                    f"Multiple files found in {repo_id} matching {filename}\n\n"
                    f"Available Files:\n{json.dumps(files)}"
                )
            return cls(model_path=os.path.join(repo_id, matching[0]), **kwargs)
        try:
            from huggingface_hub import HfFileSystem, hf_hub_download
            from huggingface_hub.utils import validate_repo_id
        except ImportError:
            raise ImportError(
                "Llama.from_pretrained requires the huggingface-hub package. "
                "You can install it with `pip install huggingface-hub`."
            ) from None
        validate_repo_id(repo_id)
        hffs = HfFileSystem()
        all_files = [f["name"] if isinstance(f, dict) else f for f in hffs.ls(repo_id, recursive=True)]
        file_list = [str(Path(f).relative_to(repo_id)) for f in all_files]

        def one_match(pattern: str) -> str:
            found = [f for f in file_list if fnmatch.fnmatch(f, pattern)]
            if len(found) == 0:
                raise ValueError(
                    f"No file found in {repo_id} that match {pattern}\n\n"
                    f"Available Files:\n{json.dumps(file_list)}"
                )
            if len(found) > 1:
                raise ValueError(
                    f"Multiple files found in {repo_id} matching {pattern}\n\n"
                    f"Available Files:\n{json.dumps(all_files)}"
                )
            return found[0]

        matching_file = one_match(filename or "")
        subfolder = str(Path(matching_file).parent)
        name = Path(matching_file).name
        local_dir = None if local_dir is None else os.fspath(local_dir)
        cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        for extra in additional_files or []:
            extra_file = one_match(extra)
            hf_hub_download(
                repo_id=repo_id,
                filename=Path(extra_file).name,
                subfolder=str(Path(extra_file).parent),
                local_dir=local_dir,
                cache_dir=cache_dir,
            )
        model_path = hf_hub_download(
            repo_id=repo_id,
            filename=name,
            subfolder=subfolder,
            local_dir=local_dir,
            cache_dir=cache_dir,
        )
        return cls(model_path=model_path, **kwargs)


def _normalize(embedding: List[float]) -> List[float]:
    """L2-normalize (llama-cpp-python's normalize_embedding); zero vectors unchanged."""
    norm = float(np.linalg.norm(embedding))
    if norm == 0.0:
        return embedding
    return [v / norm for v in embedding]


__all__ = [
    "Llama",
    "LlamaState",
    "LlamaTokenizer",
    "LogitsProcessor",
    "LogitsProcessorList",
    "StoppingCriteria",
    "StoppingCriteriaList",
    "MinTokensLogitsProcessor",
    "BaseLlamaCache",
    "LlamaCache",
    "LlamaRAMCache",
    "LlamaDiskCache",
]
