"""`Llama`: llama-cpp-python 0.3.36's high-level API on this project's engine.

    from bitnet.llama_compat import Llama          # was: from llama_cpp import Llama
    llm = Llama(model_path="model.gguf", n_ctx=512, verbose=False)
    llm("Q: Name the planets. A:", max_tokens=16, stop=["Q:"])["choices"][0]["text"]

Same constructor parameters (names, defaults, **kwargs ignored), same methods and signatures,
same result dicts (text_completion, stream chunks, chat.completion(.chunk), embedding lists),
same error messages and builtin exception types for what users catch (missing file, context
overflow, logprobs without logits_all, embed without embedding=True, evaluating a vocab-only
model). `generate` and the completion loop (`_completion.py`) follow llama-cpp-python's
`llama.py` step for step, so prompt tokens, stop handling, UTF-8 hold-back in streams, usage
counts and finish reasons agree; tokens come from `bitnet.tokenizers`, logits from
`bitnet.model`, token choice from `bitnet.sampling` (the chain llama-cpp-python's
`_init_sampler` builds, `_sampling.py`), grammars from `bitnet.constraints`.

Kernels: `bitnet.runtime.load_model(gguf, numerics=numerics)`; `numerics` (an extra keyword,
default None: $BITNET_NUMERICS or the runtime's default) picks "llama.cpp" (llama.cpp's float
order), "float" or "reference" (the numpy kernels).

Accepted without effect (no GPU, no LoRA, no NUMA here): n_gpu_layers, split_mode, main_gpu,
tensor_split, use_mmap (the file is always mmapped), use_mlock, n_ubatch, offload_kqv,
op_offload, swa_full, no_perf, numa, rope/yarn overrides, attention_type, kv_overrides,
spm_infill-only infill tokens. `flash_attn=True` (default False, as llama-cpp-python's)
computes attention in the float order of llama.cpp's flash-attention kernel, whose split-KV
path (one token over >= 512 cells) depends on `n_threads` (llama.cpp's thread count, not the
kernels' pool). `type_k`: the KV
cache's type, GGML_TYPE_F16 (1, llama.cpp's default when None) or GGML_TYPE_F32 (0); the
quantized caches llama.cpp offers with flash attention raise ValueError. A `lora_path` raises
NotImplementedError.

Speculative decoding: `draft_model=` (`llama_speculative.LlamaPromptLookupDecoding` or any
`LlamaDraftModel`) proposes tokens after each sampled one; they are evaluated in the same
batch and kept while the sampler agrees, so the output is the plain decoding's (greedy: token
for token) in fewer decode calls.

Thread safety: every public method takes one re-entrant lock of the instance, so one `Llama`
used from several threads serializes its calls and its state (KV cache, input_ids, scores)
never interleaves. A generator (`generate`, `stream=True`) holds the lock from its first
`next()` until it is exhausted or closed: close (or drop) a half-read stream before using the
instance from another thread.

Divergences from llama-cpp-python, on purpose: a malformed grammar raises when the
`LlamaGrammar` is made (llama.cpp fails at sampling); detokenize returns pieces longer than 32
bytes whole (llama-cpp-python mangles them); stopping criteria get the logits the token was
sampled from (llama-cpp-python passes a row of its score buffer); passing logit_bias and
logits_processor together applies both (llama-cpp-python drops both, `list.extend` returns
None); eval past the context raises before evaluating (llama-cpp-python evaluates the batches
that fit); n_ctx is padded to a multiple of 256 as llama.cpp pads it and the token buffer is
sized to match. `JSONOutput` markers in `logits_processor` (bitnet.constraints) constrain a
completion to JSON without a grammar.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import sys
import threading
import warnings
from collections import deque
from types import SimpleNamespace
from typing import Any, Callable, Deque, Dict, Generator, Iterator, List, Optional, Sequence, TypeVar, Union

import numpy as np

# what Llama() runs, imported with this module (as llama_cpp's is) rather than in Llama()
import bitnet.gguf
import bitnet.model
import bitnet.numerics  # noqa: F401 (runtime.make_backend's)
import bitnet.tokenizers  # noqa: F401 (runtime.tokenizer_from_kv's)
from bitnet import runtime
from bitnet.errors import ModelLoadError
from bitnet.llama_compat import _sampling, llama_chat_format, llama_types
from bitnet.llama_compat._completion import CompletionParams, completion_method, completion_stream
from bitnet.llama_compat._embedding import embed_texts
from bitnet.llama_compat._errors import ContextOverflowError
from bitnet.llama_compat._internals import LlamaContext, LlamaModel, VocabOnlyContext
from bitnet.llama_compat._logger import set_verbose  # noqa: F401 (llama_cpp.llama exports it)
from bitnet.llama_compat._processors import (  # noqa: F401 (llama_cpp.llama defines them)
    LogitsProcessor,
    LogitsProcessorList,
    MinTokensLogitsProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
)
from bitnet.llama_compat._utils import suppress_stdout_stderr  # noqa: F401 (same)
from bitnet.llama_compat.llama_cache import (
    BaseLlamaCache,
    LlamaCache,
    LlamaDiskCache,
    LlamaRAMCache,
    longest_token_prefix,
)
from bitnet.llama_compat.llama_cpp import (
    GGML_TYPE_F16,
    GGML_TYPE_F32,
    LLAMA_ATTENTION_TYPE_UNSPECIFIED,
    LLAMA_DEFAULT_SEED,
    LLAMA_POOLING_TYPE_NONE,
    LLAMA_POOLING_TYPE_UNSPECIFIED,
    LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED,
    LLAMA_SPLIT_MODE_LAYER,
)
from bitnet.llama_compat.llama_grammar import LlamaGrammar
from bitnet.llama_compat.llama_speculative import LlamaDraftModel
from bitnet.llama_compat.llama_state import LlamaState, load_llama_state, save_llama_state
from bitnet.llama_compat.llama_tokenizer import BaseLlamaTokenizer, LlamaTokenizer
from bitnet.llama_compat.llama_types import *  # noqa: F403 (llama_cpp.llama re-exports the types)

runtime.preload()

# llama.cpp's llm_arch_is_recurrent / llm_arch_is_hybrid, by general.architecture
RECURRENT_ARCHS = frozenset(["mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"])
HYBRID_ARCHS = frozenset([
    "jamba", "falcon-h1", "plamo2", "granitehybrid", "lfm2", "lfm2moe", "nemotron_h",
    "nemotron_h_moe", "qwen3next", "kimi-linear", "bailingmoe3", "kimi-k3", "glm5-next", "qwen35",
    "qwen35moe", "qwen4exp", "deepseek4", "minimax-01",
])

F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """Run `method` holding the instance lock (re-entrant)."""

    @functools.wraps(method)
    def wrapper(self: Llama, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


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
        draft_model: Optional[LlamaDraftModel] = None,
        # Tokenizer Override
        tokenizer: Optional[BaseLlamaTokenizer] = None,
        # KV cache quantization
        type_k: Optional[int] = None,
        type_v: Optional[int] = None,
        # Misc
        spm_infill: bool = False,
        verbose: bool = True,
        # bitnet: numerics mode of the engine (None: $BITNET_NUMERICS or the runtime's default)
        numerics: Optional[str] = None,
        # Extra Params
        **kwargs: Any,
    ) -> None:
        """Load the GGUF file at `model_path` (ValueError if it does not exist or fails to load)."""
        self._lock = threading.RLock()
        self.verbose = verbose
        self._stack = contextlib.ExitStack()
        self.numa = numa
        self.model_path = model_path
        self.numerics = numerics
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
        _check_kv_overrides(kv_overrides)
        self.n_batch = min(n_ctx, n_batch)
        self.n_threads = n_threads or max(multiprocessing.cpu_count() // 2, 1)
        self.n_threads_batch = n_threads_batch or multiprocessing.cpu_count()
        self._seed = seed or LLAMA_DEFAULT_SEED
        self.context_params = SimpleNamespace(
            n_ctx=n_ctx, n_batch=self.n_batch, n_ubatch=min(self.n_batch, n_ubatch),
            n_threads=self.n_threads, n_threads_batch=self.n_threads_batch,
            rope_scaling_type=(rope_scaling_type if rope_scaling_type is not None
                               else LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED),
            pooling_type=pooling_type, attention_type=attention_type,
            rope_freq_base=rope_freq_base, rope_freq_scale=rope_freq_scale,
            yarn_ext_factor=yarn_ext_factor, yarn_attn_factor=yarn_attn_factor,
            yarn_beta_fast=yarn_beta_fast, yarn_beta_slow=yarn_beta_slow, yarn_orig_ctx=yarn_orig_ctx,
            embeddings=embedding, offload_kqv=offload_kqv, flash_attn=flash_attn,
            op_offload=op_offload, swa_full=swa_full,
            type_k=GGML_TYPE_F16 if type_k is None else type_k,
            type_v=GGML_TYPE_F16 if type_v is None else type_v,
            no_perf=no_perf, n_seq_max=1,
        )
        self._type_k = type_k
        self._type_v = type_v
        self._logits_all = logits_all if draft_model is None else True
        self._user_logits_all = logits_all
        self._logprobs_requested = False  # set while a completion with logprobs runs
        self.last_n_tokens_size = last_n_tokens_size
        self.cache: Optional[BaseLlamaCache] = None
        self.lora_base = lora_base
        self.lora_scale = lora_scale
        self.lora_path = lora_path
        self.spm_infill = spm_infill
        self.chat_format = chat_format
        self.chat_handler = chat_handler
        self._chat_handlers: Dict[str, Callable[..., Any]] = {}
        self.draft_model = draft_model

        self._load(model_path, vocab_only, lora_path, type_k, n_batch, n_ubatch)
        self.tokenizer_: BaseLlamaTokenizer = tokenizer or LlamaTokenizer(self)
        self._n_vocab = self.n_vocab()
        self._n_ctx = self.n_ctx()
        self._token_nl = self.token_nl()
        self._token_eos = self.token_eos()
        self.n_tokens = 0
        self._requires_eval = True
        self.input_ids: np.ndarray = np.zeros((self._n_ctx,), dtype=np.intc)
        self.scores: np.ndarray = np.zeros(
            (self._n_ctx if self._logits_all else self.n_batch, self._n_vocab), dtype=np.single)
        self._batch_logits: Optional[np.ndarray] = None  # (n_out, V) of the last decode
        self._sampler: Any = None
        self._constraint: Any = None  # a JSONConstraint while _generate runs with a JSONOutput
        self._grammar_pieces: Any = None  # VocabPieces, built on first use of a grammar
        self.metadata = self._read_metadata()
        if self.verbose:
            print(f"Model metadata: {self.metadata}", file=sys.stderr)
        self._init_chat_formats()
        arch = self.metadata.get("general.architecture", "")
        self._is_recurrent = arch in RECURRENT_ARCHS
        self._is_hybrid = arch in HYBRID_ARCHS

    # --- loading ---------------------------------------------------------------------------
    def _load(self, model_path: str, vocab_only: bool, lora_path: Optional[str],
              type_k: Optional[int], n_batch: int, n_ubatch: int) -> None:
        """Open the file, build the tokenizer, the engine (unless vocab_only) and the context."""
        if not os.path.exists(model_path):
            raise ValueError(f"Model path does not exist: {model_path}")
        if lora_path:
            raise NotImplementedError(f"LoRA adapters are not supported (lora_path={lora_path!r})")
        if type_k not in (None, GGML_TYPE_F16, GGML_TYPE_F32):
            raise ValueError(f"type_k={type_k}: the KV cache is F16 (1) or F32 (0) here")
        try:
            with warnings.catch_warnings():
                if not self.verbose:
                    warnings.simplefilter("ignore")  # repairs are logged only when verbose
                gf = bitnet.gguf.load(model_path)
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
        engine: Any = None
        if not vocab_only:
            try:
                engine = runtime.load_model(gf, numerics=self.numerics)
            except (ModelLoadError, KeyError, ValueError) as e:
                raise ValueError(f"Failed to load model from file: {model_path} ({e})") from e
        self._model = LlamaModel(gf, self._vocab_tok, engine)
        self._grammar_engine: Any = runtime.grammar_engine()  # the C hot path when built

        n_ctx = self.context_params.n_ctx
        if n_ctx == 0:
            n_ctx = self._n_ctx_train()
            self.n_batch = min(n_ctx, n_batch)
            self.context_params.n_ctx = n_ctx
            self.context_params.n_batch = self.n_batch
            self.context_params.n_ubatch = min(self.n_batch, n_ubatch)
        # llama.cpp pads the context to a multiple of 256 (llama_context: GGML_PAD(n_ctx, 256))
        self._n_ctx_padded = max(256, -(-n_ctx // 256) * 256)
        ctx: Any = VocabOnlyContext()
        if engine is not None:
            ctx = bitnet.model.Context(engine, n_ctx=self._n_ctx_padded, n_batch=max(self.n_batch, 1),
                                       kv_type="f32" if type_k == GGML_TYPE_F32 else "f16",
                                       flash_attn=bool(self.context_params.flash_attn),
                                       n_threads=self.n_threads, n_threads_batch=self.n_threads_batch)
        self._ctx = LlamaContext(ctx)
        self._stack.callback(self._ctx.close)

    def _read_metadata(self) -> Dict[str, str]:
        """The file's own key/values as llama.cpp reports them: bitnet.gguf's in-memory repairs
        are undone here (they only steer this project's tokenizer and engine)."""
        gf = self._gguf
        file_kv = dict(gf.kv)
        for fix in reversed(list(getattr(gf, "fixes", []))):
            if fix.old is None:
                file_kv.pop(fix.key, None)
            else:
                file_kv[fix.key] = fix.old
        metadata: Dict[str, str] = {}
        for key, value in file_kv.items():
            s = _gguf_value_to_str(value)
            if s is not None:
                metadata[key] = s
        return metadata

    def _init_chat_formats(self) -> None:
        """Handlers for the GGUF chat templates; the chat format guessed as llama-cpp-python does."""
        eos_token_id = self.token_eos()
        bos_token_id = self.token_bos()
        eos_token = self._token_text(eos_token_id) if eos_token_id != -1 else ""
        bos_token = self._token_text(bos_token_id) if bos_token_id != -1 else ""
        template_choices = {name[10:]: template for name, template in self.metadata.items()
                            if name.startswith("tokenizer.chat_template.")}
        if "tokenizer.chat_template" in self.metadata:
            template_choices["chat_template.default"] = self.metadata["tokenizer.chat_template"]
        for name, template in template_choices.items():
            self._chat_handlers[name] = llama_chat_format.Jinja2ChatFormatter(
                template=template, eos_token=eos_token, bos_token=bos_token,
                stop_token_ids=[eos_token_id],
            ).to_chat_handler()
        unset = self.chat_format is None and self.chat_handler is None
        if unset and "chat_template.default" in template_choices:
            guessed = llama_chat_format.guess_chat_format_from_gguf_metadata(self.metadata)
            self.chat_format = guessed if guessed is not None else "chat_template.default"
        if self.chat_format is None and self.chat_handler is None:
            self.chat_format = "llama-2"

    # --- vocabulary helpers ----------------------------------------------------------------
    def _n_ctx_train(self) -> int:
        if self._model.model is not None:
            return int(self._model.model.hparams.n_ctx_train)
        arch = self._gguf.kv.get("general.architecture", "")
        return int(self._gguf.kv.get(f"{arch}.context_length", 0))

    def _token_text(self, token: int) -> str:
        return self._vocab.text_bytes(token).decode("utf-8")

    def _vocab_tokenize(self, text: bytes, add_bos: bool, special: bool) -> List[int]:
        return self._vocab_tok.tokenize(text, add_special=add_bos, parse_special=special)

    def _vocab_detokenize(self, tokens: List[int], special: bool) -> bytes:
        return self._vocab_tok.detokenize_pieces([int(t) for t in tokens], special=special)

    def _special_token_ids(self, text: str) -> List[int]:
        """Ids of `text` with special tokens parsed, no BOS (a grammar's `<token>`)."""
        return list(self._vocab_tok.tokenize(text.encode("utf-8"), add_special=False, parse_special=True))

    def _grammar_vocab(self) -> Any:
        """The vocabulary as llama.cpp's grammar sees it (built once, on first use)."""
        if self._grammar_pieces is None:
            from bitnet.constraints.grammar_constraint import vocab_pieces

            self._grammar_pieces = vocab_pieces(self._vocab_tok, self._n_vocab, self._is_eog)
        return self._grammar_pieces

    def _is_eog(self, token: int) -> bool:
        return bool(self._vocab.is_eog(int(token)))

    def _require_engine(self) -> Any:
        return self._ctx.require()

    # --- llama-cpp-python's read-only views ------------------------------------------------
    @property
    def ctx(self) -> Any:
        """The engine context (bitnet.model.Context) in place of a llama_context pointer."""
        return self._ctx.ctx

    @property
    def model(self) -> Any:
        """The engine model (bitnet.model.Model; None for vocab_only) in place of a llama_model
        pointer."""
        return self._model.model

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
        return deque(self.scores[: self.n_tokens, :].tolist(), maxlen=self._n_ctx if self._logits_all else 1)

    # --- tokens ----------------------------------------------------------------------------
    @_locked
    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> List[int]:
        """Token ids of UTF-8 `text` (llama_tokenize with add_special=add_bos,
        parse_special=special)."""
        return self.tokenizer_.tokenize(text, add_bos, special)

    @_locked
    def detokenize(self, tokens: List[int], prev_tokens: Optional[List[int]] = None,
                   special: bool = False) -> bytes:
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
        """Decode `tokens` after the current `n_tokens`, in batches of n_batch (past n_ctx:
        ContextOverflowError, a ValueError and a RuntimeError, before evaluating)."""
        self._eval(tokens, all_rows=self._logits_all)

    def _eval(self, tokens: Sequence[int], all_rows: bool) -> None:
        """eval; logits of every row (all_rows) or of the last one only."""
        ctx = self._require_engine()
        tokens = [int(t) for t in tokens]
        if self.n_tokens + len(tokens) > self._n_ctx:
            raise ContextOverflowError(
                f"Requested tokens ({self.n_tokens + len(tokens)}) exceed context window of {self._n_ctx}")
        ctx.kv_cache_seq_rm(self.n_tokens, -1)
        for i in range(0, len(tokens), self.n_batch):
            batch = tokens[i : min(len(tokens), i + self.n_batch)]
            n_past = self.n_tokens
            n_tokens = len(batch)
            logits = ctx.eval(batch, n_past, all_logits=all_rows)  # (n or 1, V)
            self.input_ids[n_past : n_past + n_tokens] = batch
            if self._logits_all:
                self.scores[n_past + n_tokens - logits.shape[0] : n_past + n_tokens, :] = logits
            self._batch_logits = np.array(logits, dtype=np.single)
            self.n_tokens += n_tokens
            self._requires_eval = False

    # --- sampling --------------------------------------------------------------------------
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
        grammar: Optional[LlamaGrammar] = None,
    ) -> Any:
        """The chain of llama-cpp-python's `_init_sampler` (see `_sampling.init_sampler`)."""
        return _sampling.init_sampler(
            self, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p, temp=temp,
            repeat_penalty=repeat_penalty, frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty, mirostat_mode=mirostat_mode,
            mirostat_eta=mirostat_eta, mirostat_tau=mirostat_tau,
            logits_processor=logits_processor, grammar=grammar)

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
        grammar: Optional[LlamaGrammar] = None,
        idx: Optional[int] = None,
    ) -> int:
        """Sample a token from the logits at absolute position `idx` (default: the last
        evaluated token)."""
        assert self.n_tokens > 0
        tmp_sampler = False
        if self._sampler is None:
            tmp_sampler = True
            self._sampler = self._init_sampler(
                top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p, temp=temp,
                repeat_penalty=repeat_penalty, frequency_penalty=frequency_penalty,
                presence_penalty=presence_penalty, tfs_z=tfs_z, mirostat_mode=mirostat_mode,
                mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta, penalize_nl=penalize_nl,
                logits_processor=logits_processor, grammar=grammar)
        logits = self._logits_at(idx)
        try:
            if self._constraint is None:
                token = int(self._sampler.sample(logits))
            else:
                token = _sampling.sample_constrained(self._sampler, logits, self._constraint)
        finally:
            if tmp_sampler:
                self._sampler = None
        return token

    def _logits_at(self, idx: Optional[int]) -> np.ndarray:
        """Logits [n_vocab] at absolute position `idx` (llama_get_logits_ith): any evaluated
        position with logits_all, else only the last one."""
        if idx is not None and self._logits_all and 0 <= idx < self.n_tokens:
            return self.scores[idx]
        if self._batch_logits is None:
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
        grammar: Optional[LlamaGrammar] = None,
    ) -> Generator[int, Optional[Sequence[int]], None]:
        """Yield tokens sampled after `tokens`; `.send(extra_tokens)` appends tokens to eval.

        Reuses the longest cached prefix of `tokens` when `reset` is true (llama-cpp-python's
        prefix matching). With a draft model, its proposals are evaluated with each token and
        kept while they are what the sampler picks. Holds the instance lock until exhausted or
        closed.
        """
        with self._lock:
            ctx = self._require_engine()
            self._sampler = self._init_sampler(
                top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p, temp=temp,
                repeat_penalty=repeat_penalty, frequency_penalty=frequency_penalty,
                presence_penalty=presence_penalty, tfs_z=tfs_z, mirostat_mode=mirostat_mode,
                mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta, penalize_nl=penalize_nl,
                logits_processor=logits_processor, grammar=grammar)
            self._constraint = _sampling.json_constraint(self, logits_processor)
            try:
                tokens = self._reuse_prefix(ctx, [int(t) for t in tokens], reset)
                yield from self._decode_loop(ctx, tokens, stopping_criteria)
            finally:
                self._sampler = None
                self._constraint = None

    def _reuse_prefix(self, ctx: Any, tokens: List[int], reset: bool) -> List[int]:
        """The tokens still to evaluate after matching the evaluated ones (llama-cpp-python's
        prefix matching); resets the state when nothing is reused."""
        if reset and self.n_tokens > 0:
            longest_prefix = longest_token_prefix(self._input_ids.tolist(), tokens)
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
        return tokens

    def _decode_loop(self, ctx: Any, tokens: List[int], stopping_criteria: Optional[StoppingCriteriaList]
                     ) -> Generator[int, Optional[Sequence[int]], None]:
        """Evaluate, sample, yield; draft tokens ride along with each evaluation and are kept
        up to the first one the sampler disagrees with (llama-cpp-python's generate loop)."""
        sample_idx = self.n_tokens + len(tokens) - 1
        # subtle: with a draft model (logits_all forced, as upstream) the prompt's rows are only
        # computed when asked for (logits_all=True, or logprobs); the drafts' rows always are
        all_rows = self._logits_all and (self.draft_model is None or self._user_logits_all
                                         or self._logprobs_requested)
        while True:
            self._eval(tokens, all_rows=all_rows)
            all_rows = self._logits_all
            while sample_idx < self.n_tokens:
                token = self.sample(idx=sample_idx)
                sample_logits = self._logits_at(sample_idx)
                sample_idx += 1
                stop = stopping_criteria is not None and stopping_criteria(
                    self._input_ids[:sample_idx], sample_logits)
                if stop:
                    return
                tokens_or_none = yield token
                tokens = [token]
                if tokens_or_none is not None:
                    tokens.extend(int(t) for t in tokens_or_none)
                if sample_idx < self.n_tokens and token != self._input_ids[sample_idx]:
                    self.n_tokens = sample_idx  # a draft token was wrong: drop it and the rest
                    ctx.kv_cache_seq_rm(self.n_tokens, -1)
                    self._requires_eval = True
                    break
            if self.draft_model is not None:
                self.input_ids[self.n_tokens : self.n_tokens + len(tokens)] = tokens
                draft_tokens = self.draft_model(self.input_ids[: self.n_tokens + len(tokens)])
                room = self._n_ctx - self.n_tokens - len(tokens)
                tokens.extend(np.asarray(draft_tokens).astype(int)[:room].tolist())

    # --- embeddings ------------------------------------------------------------------------
    @_locked
    def create_embedding(self, input: Union[str, List[str]], model: Optional[str] = None) -> Dict[str, Any]:
        """OpenAI-style embedding list for one string or a list of strings."""
        model_name: str = model if model is not None else self.model_path
        inputs = input if isinstance(input, list) else [input]
        embeds, total_tokens = self.embed(inputs, return_count=True)
        data = [{"object": "embedding", "embedding": emb, "index": idx} for idx, emb in enumerate(embeds)]
        return {"object": "list", "data": data, "model": model_name,
                "usage": {"prompt_tokens": total_tokens, "total_tokens": total_tokens}}

    @_locked
    def embed(self, input: Union[str, List[str]], normalize: bool = False, truncate: bool = True,
              return_count: bool = False) -> Any:
        """Embeddings of `input`: one vector per text (pooled), or one per token when the
        pooling type is NONE. `truncate` cuts each text to n_batch tokens."""
        return embed_texts(self, input, normalize, truncate, return_count)

    # --- completion ------------------------------------------------------------------------
    @completion_method()
    def _create_completion(self, prompt: Union[str, List[int]], params: CompletionParams
                           ) -> Generator[Dict[str, Any], None, None]:
        """The completion's chunks (one dict unless stream), holding the lock throughout."""
        return completion_stream(self, prompt, params)

    @completion_method()
    def create_completion(self, prompt: Union[str, List[int]], params: CompletionParams
                          ) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
        """Complete `prompt` (text or token ids): a text_completion dict, or an iterator of
        chunks with stream=True. Raises ValueError when the prompt does not fit n_ctx or
        logprobs is asked of a model created without logits_all=True."""
        return self._complete(prompt, params)

    @completion_method(prompt_annotation="str")
    def __call__(self, prompt: str, params: CompletionParams
                 ) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
        """Same as create_completion."""
        return self._complete(prompt, params)

    def _complete(self, prompt: Union[str, List[int]], params: CompletionParams
                  ) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
        if params.max_tokens is None:
            params.max_tokens = -1
        completion_or_chunks = completion_stream(self, prompt, params)
        if params.stream:
            return completion_or_chunks
        try:
            return next(completion_or_chunks)
        finally:
            completion_or_chunks.close()  # releases the lock

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
        grammar: Optional[LlamaGrammar] = None,
        logit_bias: Optional[Dict[int, float]] = None,
        logprobs: Optional[bool] = None,
        top_logprobs: Optional[int] = None,
    ) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
        """Chat completion through `chat_handler`, the GGUF template or the named chat_format."""
        handler = (
            self.chat_handler
            or self._chat_handlers.get(self.chat_format)  # type: ignore[arg-type]
            or llama_chat_format.get_chat_completion_handler(self.chat_format or "llama-2")
        )
        return handler(
            llama=self, messages=messages, functions=functions, function_call=function_call,
            tools=tools, tool_choice=tool_choice, temperature=temperature, top_p=top_p,
            top_k=top_k, min_p=min_p, typical_p=typical_p, logprobs=logprobs,
            top_logprobs=top_logprobs, stream=stream, stop=stop, seed=seed,
            response_format=response_format, max_tokens=max_tokens,
            presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
            repeat_penalty=repeat_penalty, tfs_z=tfs_z, mirostat_mode=mirostat_mode,
            mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta, model=model,
            logits_processor=logits_processor, grammar=grammar, logit_bias=logit_bias,
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

    def render_chat_prompt(self, messages: List[Dict[str, Any]], **kwargs: Any) -> Any:
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

    # --- pickling and state ----------------------------------------------------------------
    def __getstate__(self) -> Dict[str, Any]:
        cp, mp = self.context_params, self.model_params
        return dict(
            model_path=self.model_path, n_gpu_layers=mp.n_gpu_layers, split_mode=mp.split_mode,
            main_gpu=mp.main_gpu, tensor_split=self.tensor_split, vocab_only=mp.vocab_only,
            use_mmap=mp.use_mmap, use_mlock=mp.use_mlock, kv_overrides=self.kv_overrides,
            seed=self._seed, n_ctx=cp.n_ctx, n_batch=self.n_batch, n_ubatch=cp.n_ubatch,
            n_threads=cp.n_threads, n_threads_batch=cp.n_threads_batch,
            rope_scaling_type=cp.rope_scaling_type, pooling_type=cp.pooling_type,
            attention_type=cp.attention_type, rope_freq_base=cp.rope_freq_base,
            rope_freq_scale=cp.rope_freq_scale, yarn_ext_factor=cp.yarn_ext_factor,
            yarn_attn_factor=cp.yarn_attn_factor, yarn_beta_fast=cp.yarn_beta_fast,
            yarn_beta_slow=cp.yarn_beta_slow, yarn_orig_ctx=cp.yarn_orig_ctx,
            logits_all=self._logits_all, embedding=cp.embeddings, offload_kqv=cp.offload_kqv,
            flash_attn=cp.flash_attn, op_offload=cp.op_offload, swa_full=cp.swa_full,
            no_perf=cp.no_perf, last_n_tokens_size=self.last_n_tokens_size,
            lora_base=self.lora_base, lora_scale=self.lora_scale, lora_path=self.lora_path,
            numa=self.numa, chat_format=self.chat_format, chat_handler=self.chat_handler,
            draft_model=self.draft_model, type_k=self._type_k, type_v=self._type_v,
            spm_infill=self.spm_infill, verbose=self.verbose, numerics=self.numerics,
        )

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    @_locked
    def save_state(self) -> LlamaState:
        """Snapshot of the token buffer, scores, KV cache and seed."""
        return save_llama_state(self)

    @_locked
    def load_state(self, state: LlamaState) -> None:
        """Restore a snapshot from save_state (RuntimeError if its bytes do not fit)."""
        load_llama_state(self, state)

    # --- model facts -----------------------------------------------------------------------
    def n_ctx(self) -> int:
        """Context size (padded to a multiple of 256, as llama.cpp pads it)."""
        return self._n_ctx_padded

    def n_embd(self) -> int:
        return int(self._model.model.n_embd) if self._model.model is not None else 0

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
        return longest_token_prefix(a, b)

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
        from bitnet.llama_compat._pretrained import resolve_pretrained

        return cls(model_path=resolve_pretrained(repo_id, filename, additional_files, local_dir, cache_dir),
                   **kwargs)


def _check_kv_overrides(kv_overrides: Optional[Dict[str, Any]]) -> None:
    """llama-cpp-python's checks of kv_overrides (values are otherwise not applied here)."""
    for k, v in (kv_overrides or {}).items():
        if isinstance(v, str) and len(v.encode("utf-8")) > 128:
            raise ValueError(f"Value for {k} is too long: {v}")
        if not isinstance(v, (bool, int, float, str)):
            raise ValueError(f"Unknown value type for {k}: {v}")


__all__ = [
    "Llama", "LlamaState", "LlamaTokenizer", "BaseLlamaTokenizer", "LogitsProcessor",
    "LogitsProcessorList", "StoppingCriteria", "StoppingCriteriaList", "MinTokensLogitsProcessor",
    "BaseLlamaCache", "LlamaCache", "LlamaRAMCache", "LlamaDiskCache", "LlamaGrammar",
    "LlamaDraftModel", "set_verbose", "suppress_stdout_stderr",
    *llama_types.__all__,
]
