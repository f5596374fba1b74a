"""Text completion: the parameters (declared once) and the generation loop behind
`Llama.create_completion` / `__call__` / `_create_completion`.

`CompletionParams` holds every keyword of llama-cpp-python 0.3.36's `create_completion` with
its default; `completion_method` gives a method taking `(prompt, params)` the public signature
(self, prompt, suffix=None, max_tokens=16, ...) that `inspect.signature` and positional calls
see, so the list is written here only.

`CompletionRun` mirrors llama-cpp-python's `_create_completion` step for step: prompt tokens
(BOS, FIM tokens for `suffix`), context checks, prompt-cache lookup, seed, the token loop with
UTF-8 hold-back and stop strings, streamed chunks (holding back what may start a stop string),
logprobs, usage, and the cache store afterwards.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import random
import time
import uuid
import warnings
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Generator,
    Iterator,
    List,
    Optional,
    TypeVar,
    Union,
    cast,
)

import numpy as np

from bitnet.llama_compat.llama_cache import longest_token_prefix
from bitnet.llama_compat.llama_grammar import LlamaGrammar

if TYPE_CHECKING:  # pragma: no cover
    from bitnet.llama_compat.llama import Llama, LogitsProcessorList, StoppingCriteriaList

Chunk = Dict[str, Any]


@dataclasses.dataclass
class CompletionParams:
    """The keyword parameters of `Llama.create_completion`, names and defaults as
    llama-cpp-python 0.3.36 (the order is the positional order)."""

    suffix: Optional[str] = None
    max_tokens: Optional[int] = 16
    temperature: float = 0.8
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    logprobs: Optional[int] = None
    echo: bool = False
    stop: Optional[Union[str, List[str]]] = dataclasses.field(default_factory=list)  # llama_cpp: []
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repeat_penalty: float = 1.0
    top_k: int = 40
    stream: bool = False
    seed: Optional[int] = None
    tfs_z: float = 1.0
    mirostat_mode: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    model: Optional[str] = None
    stopping_criteria: Optional[StoppingCriteriaList] = None
    logits_processor: Optional[LogitsProcessorList] = None
    grammar: Optional[LlamaGrammar] = None
    logit_bias: Optional[Dict[int, float]] = None


def _signature(prompt_annotation: Any, return_annotation: Any) -> inspect.Signature:
    """(self, prompt, <CompletionParams fields>) as inspect.Signature."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("self", kind),
              inspect.Parameter("prompt", kind, annotation=prompt_annotation)]
    for f in dataclasses.fields(CompletionParams):
        factory = cast(Callable[[], Any], f.default_factory)
        default = f.default if f.default is not dataclasses.MISSING else factory()
        params.append(inspect.Parameter(f.name, kind, default=default, annotation=f.type))
    return inspect.Signature(params, return_annotation=return_annotation)


R = TypeVar("R")


def completion_method(
    prompt_annotation: Any = "Union[str, List[int]]",
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator: `fn(self, prompt, params: CompletionParams)` becomes callable (and
    introspectable) with the keyword list of `create_completion`."""

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        sig = _signature(prompt_annotation, inspect.signature(fn).return_annotation)

        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> R:
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            values = dict(bound.arguments)
            del values["self"]
            prompt = values.pop("prompt")
            return fn(self, prompt, CompletionParams(**values))

        wrapper.__signature__ = sig  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _logit_bias_processor(logit_bias: Dict[Any, float]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """llama-cpp-python's logit_bias processor: scores[id] += bias (keys through int())."""
    bias = {int(k): float(v) for k, v in logit_bias.items()}

    def logit_bias_processor(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        new_scores = np.copy(scores)
        for input_id, score in bias.items():
            new_scores[input_id] = score + scores[input_id]
        return new_scores

    return logit_bias_processor


def _incomplete_utf8_tail(text: bytes) -> int:
    """How many more bytes the last (partial) UTF-8 sequence of `text` needs (0 if none),
    computed as llama-cpp-python computes its multibyte_fix."""
    fix = 0
    for k, char in enumerate(text[-3:]):
        k = 3 - k
        for num, pattern in [(2, 192), (3, 224), (4, 240)]:
            if num > k and pattern & char == pattern:
                fix = num - k
    return fix


class CompletionRun:
    """One `create_completion` call; `chunks()` yields its chunks (one dict unless stream)."""

    def __init__(self, llm: Llama, prompt: Union[str, List[int]], p: CompletionParams) -> None:
        assert p.suffix is None or p.suffix.__class__ is str
        self.llm, self.prompt, self.p = llm, prompt, p
        self.completion_id = f"cmpl-{str(uuid.uuid4())}"
        self.created = int(time.time())
        self.model_name: str = p.model if p.model is not None else llm.model_path
        self.bos_token_id = llm.token_bos()
        # subtle: llama-cpp-python hard-codes 0 for the FIM tokens ("TODO: Fix"); kept so that a
        # `suffix` builds the same prompt tokens
        self.prefix_token_id = self.middle_token_id = self.suffix_token_id = 0
        self.suffix = p.suffix
        self.prompt_tokens = self._prompt_tokens()
        self.completion_tokens: List[int] = [] if len(prompt) > 0 else [self.bos_token_id]
        self.returned_tokens = 0
        self.text = b""
        self.finish_reason = "length"
        stop = p.stop
        self.stop_sequences = [s.encode("utf-8") for s in (
            stop if isinstance(stop, list) else [stop] if isinstance(stop, str) else [])]

    # --- prompt ----------------------------------------------------------------------------
    def _prompt_tokens(self) -> List[int]:
        """BOS + prefix / suffix / middle tokens + EOS/SEP, as llama-cpp-python builds them."""
        llm, prompt = self.llm, self.prompt
        cls_token_id = llm.token_bos()  # llama-cpp-python's token_cls is llama_vocab_bos
        sep_token_id = llm._opt_id(llm._vocab.sep_id)
        add_space_prefix = llm.metadata.get("tokenizer.ggml.add_space_prefix", "true") == "true"
        bos_tokens = [cls_token_id if cls_token_id != -1 else self.bos_token_id]
        eos_tokens = [sep_token_id if sep_token_id != -1 else llm.token_eos()]
        as_ids = isinstance(prompt, list) and self.suffix is None
        if as_ids or not llm._vocab.add_bos or bos_tokens[:1] == [-1]:
            bos_tokens = []
        if as_ids or (not llm._vocab.add_eos and sep_token_id == -1):
            eos_tokens = []
        suffix_space_prefix = 0
        if add_space_prefix and self.suffix_token_id >= 0 and self.suffix:
            self.suffix = "☺" + self.suffix  # tokenizer hack to remove the leading space
            suffix_space_prefix = 2
        fim = self.suffix is not None
        prefix_tokens = [self.prefix_token_id] if self.prefix_token_id >= 0 and fim else []
        if isinstance(prompt, str):
            if prompt != "":
                prefix_tokens += llm.tokenize(prompt.encode("utf-8"), add_bos=False,
                                              special=(self.prefix_token_id < 0 or not fim))
        else:
            prefix_tokens += list(prompt)
        suffix_tokens: List[int] = []
        if self.suffix_token_id >= 0 and fim:
            suffix_tokens = [self.suffix_token_id]
            if self.suffix:
                suffix_tokens += llm.tokenize(self.suffix.encode("utf-8"), add_bos=False,
                                              special=False)[suffix_space_prefix:]
        middle_tokens = [self.middle_token_id] if self.middle_token_id >= 0 and fim else []
        body = (suffix_tokens + prefix_tokens + middle_tokens if llm.spm_infill
                else prefix_tokens + suffix_tokens + middle_tokens)
        return bos_tokens + body + eos_tokens

    def _prepare(self) -> int:
        """Checks, logit bias, prompt cache, seed; returns the max_tokens to generate."""
        llm, p, prompt_tokens = self.llm, self.p, self.prompt_tokens
        if prompt_tokens[:2] == [llm.token_bos()] * 2:
            warnings.warn(
                f'Detected duplicate leading "{llm._token_text(llm.token_bos())}" in prompt, '
                "this will likely reduce response quality, consider removing it...",
                RuntimeWarning,
                stacklevel=5,
            )
        if p.logit_bias is not None:
            from bitnet.llama_compat.llama import LogitsProcessorList

            processors = LogitsProcessorList(p.logits_processor or [])
            processors.append(_logit_bias_processor(p.logit_bias))
            p.logits_processor = processors
        n_ctx = llm._n_ctx
        if len(prompt_tokens) >= n_ctx:
            raise ValueError(f"Requested tokens ({len(prompt_tokens)}) exceed context window of {n_ctx}")
        max_tokens = p.max_tokens
        if max_tokens is None or max_tokens <= 0:
            max_tokens = n_ctx - len(prompt_tokens)  # unlimited, up to n_ctx
        if max_tokens + len(prompt_tokens) >= n_ctx:
            max_tokens = n_ctx - len(prompt_tokens)
        if p.logprobs is not None and llm._logits_all is False:
            raise ValueError("logprobs is not supported for models created with logits_all=False")
        if llm.cache:
            try:
                cache_item = llm.cache[prompt_tokens]
                cache_prefix_len = longest_token_prefix(cache_item.input_ids.tolist(), prompt_tokens)
                eval_prefix_len = longest_token_prefix(llm._input_ids.tolist(), prompt_tokens)
                if cache_prefix_len > eval_prefix_len:
                    llm.load_state(cache_item)
            except KeyError:
                pass
        llm.set_seed(p.seed if p.seed is not None else random.Random(llm._seed).randint(0, 2**32))
        return max_tokens

    # --- helpers ---------------------------------------------------------------------------
    def detok(self, tokens: List[int], prev: Optional[List[int]] = None) -> bytes:
        return self.llm.detokenize(tokens, prev_tokens=prev)

    def chunk(self, text: str, logprobs: Optional[Dict[str, Any]], finish: Optional[str]) -> Chunk:
        return {
            "id": self.completion_id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model_name,
            "choices": [{"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish}],
        }

    def _top_logprobs(self, row: List[float], n: int) -> Dict[str, float]:
        ranked = sorted(zip(row, range(len(row))), reverse=True)
        return {self.detok([i]).decode("utf-8", errors="ignore"): lp for lp, i in ranked[:n]}

    def _token_logprobs(self, token: int, token_str: str, text_offset: int, row_index: int,
                        n: int) -> Dict[str, Any]:
        """One token's streamed logprobs entry, from score row `row_index`."""
        current = self.llm.logits_to_logprobs(self.llm._scores[row_index, :]).tolist()
        top = self._top_logprobs(current, n)
        top.update({token_str: current[int(token)]})
        return {"tokens": [token_str], "text_offset": [text_offset],
                "token_logprobs": [current[int(token)]], "top_logprobs": [top]}

    # --- the run ---------------------------------------------------------------------------
    def chunks(self) -> Iterator[Chunk]:
        """Generate; yield stream chunks, or the one completion dict."""
        llm, p = self.llm, self.p
        max_tokens = self._prepare()
        multibyte_fix = 0
        prompt_tokens, completion_tokens = self.prompt_tokens, self.completion_tokens
        for token in llm.generate(
            prompt_tokens, top_k=p.top_k, top_p=p.top_p, min_p=p.min_p, typical_p=p.typical_p,
            temp=p.temperature, tfs_z=p.tfs_z, mirostat_mode=p.mirostat_mode,
            mirostat_tau=p.mirostat_tau, mirostat_eta=p.mirostat_eta,
            frequency_penalty=p.frequency_penalty, presence_penalty=p.presence_penalty,
            repeat_penalty=p.repeat_penalty, stopping_criteria=p.stopping_criteria,
            logits_processor=p.logits_processor, grammar=p.grammar,
        ):
            if llm._is_eog(token):
                self.text = self.detok(completion_tokens, prompt_tokens)
                self.finish_reason = "stop"
                break
            completion_tokens.append(token)
            all_text = self.detok(completion_tokens, prompt_tokens)
            fix = _incomplete_utf8_tail(all_text)
            if fix > 0:
                multibyte_fix = fix
            if multibyte_fix > 0:  # hold back an incomplete UTF-8 sequence at the end
                multibyte_fix -= 1
                continue
            any_stop = [s for s in self.stop_sequences if s in all_text]
            if len(any_stop) > 0:
                self.text = all_text[: all_text.index(any_stop[0])]
                self.finish_reason = "stop"
                break
            if p.stream:
                yield from self._stream_pending()
            if len(completion_tokens) >= max_tokens:
                self.text = self.detok(completion_tokens, prompt_tokens)
                self.finish_reason = "length"
                break
        criteria = p.stopping_criteria
        if criteria is not None and criteria(llm._input_ids, llm._last_logits_or_zero()):
            self.text = self.detok(completion_tokens, prompt_tokens)
            self.finish_reason = "stop"
        if p.stream:
            yield from self._stream_rest()
            yield self.chunk("", None, self.finish_reason)
            self._store_cache()
            return
        self._store_cache()
        yield self._result()

    def _store_cache(self) -> None:
        if self.llm.cache:
            self.llm.cache[self.prompt_tokens + self.completion_tokens] = self.llm.save_state()

    def _stop_holdback(self, remaining_text: bytes) -> int:
        """Bytes at the end of `remaining_text` that may start a stop sequence."""
        first_stop_position = 0
        for s in self.stop_sequences:
            for i in range(min(len(s), len(remaining_text)), 0, -1):
                if remaining_text.endswith(s[:i]):
                    first_stop_position = max(first_stop_position, i)
                    break
        return first_stop_position

    def _stream_pending(self) -> Iterator[Chunk]:
        """Stream what is safe to show: whole UTF-8 characters, minus a possible stop start."""
        prompt_tokens, completion_tokens = self.prompt_tokens, self.completion_tokens
        remaining_tokens = completion_tokens[self.returned_tokens :]
        returned = prompt_tokens + completion_tokens[: self.returned_tokens]
        remaining_text = self.detok(remaining_tokens, returned)
        limit = len(remaining_text) - self._stop_holdback(remaining_text)
        token_end_position = 0
        if self.p.logprobs is not None:
            for token in remaining_tokens:
                if token == self.bos_token_id:
                    continue
                prev = prompt_tokens + completion_tokens[: self.returned_tokens]
                token_end_position += len(self.detok([token], prev))
                if token_end_position > limit:
                    break
                token_str = self.detok([token], prev).decode("utf-8", errors="ignore")
                text_offset = len(self.prompt) + len(
                    self.detok(completion_tokens[: self.returned_tokens], prev).decode(
                        "utf-8", errors="ignore"))
                row = len(prompt_tokens) + self.returned_tokens - 1
                entry = self._token_logprobs(token, token_str, text_offset, row, self.p.logprobs)
                self.returned_tokens += 1
                text = self.detok([token], prompt_tokens + completion_tokens[: self.returned_tokens])
                yield self.chunk(text.decode("utf-8", errors="ignore"), entry, None)
            return
        while len(remaining_tokens) > 0:
            prev = prompt_tokens + completion_tokens[: self.returned_tokens]
            for i in range(1, len(remaining_tokens) + 1):
                try:
                    bs = self.detok(remaining_tokens[:i], prev)
                    ts = bs.decode("utf-8")
                    break
                except UnicodeError:
                    pass
            else:
                return  # the remaining tokens are not a whole UTF-8 sequence yet
            token_end_position += len(bs)
            if token_end_position > limit:
                return
            remaining_tokens = remaining_tokens[i:]
            self.returned_tokens += i
            yield self.chunk(ts, None, None)

    def _stream_rest(self) -> Iterator[Chunk]:
        """After the loop: stream the tokens not yet returned, cut at the first stop."""
        prompt_tokens, completion_tokens = self.prompt_tokens, self.completion_tokens
        remaining_tokens = completion_tokens[self.returned_tokens :]
        returned = prompt_tokens + completion_tokens[: self.returned_tokens]
        remaining_text = self.detok(remaining_tokens, returned)
        any_stop = [s for s in self.stop_sequences if s in remaining_text]
        end = min(remaining_text.index(s) for s in any_stop) if any_stop else len(remaining_text)
        token_end_position = 0
        for token in remaining_tokens:
            returned = prompt_tokens + completion_tokens[: self.returned_tokens]
            token_end_position += len(self.detok([token], returned))
            entry: Optional[Dict[str, Any]] = None
            if self.p.logprobs is not None:
                if token == self.bos_token_id:
                    continue
                token_str = self.detok([token]).decode("utf-8", errors="ignore")
                text_offset = len(self.prompt) + len(self.detok(
                    completion_tokens[: self.returned_tokens],
                    prompt_tokens + completion_tokens[: self.returned_tokens]))
                row = len(prompt_tokens) + self.returned_tokens - 1
                entry = self._token_logprobs(token, token_str, text_offset, row, self.p.logprobs)
            if token_end_position >= end:
                last_text = self.detok([token])
                if token_end_position == end - 1:
                    break
                self.returned_tokens += 1
                yield self.chunk(last_text[: len(last_text) - (token_end_position - end)].decode(
                    "utf-8", errors="ignore"), entry, None)
                break
            self.returned_tokens += 1
            yield self.chunk(self.detok([token]).decode("utf-8", errors="ignore"), entry, None)

    def _result(self) -> Chunk:
        """The non-streamed completion dict (text, echo, suffix, logprobs, usage)."""
        text_str = self.text.decode("utf-8", errors="ignore")
        if self.p.echo:
            text_str = self.prompt + text_str  # type: ignore[operator]  # str prompts only, as upstream
        if self.suffix_token_id < 0 and self.suffix is not None:
            text_str = text_str + self.suffix
        logprobs = self._logprobs() if self.p.logprobs is not None else None
        out = self.chunk(text_str, logprobs, self.finish_reason)
        n_prompt, n_completion = len(self.prompt_tokens), len(self.completion_tokens)
        out["usage"] = {"prompt_tokens": n_prompt, "completion_tokens": n_completion,
                        "total_tokens": n_prompt + n_completion}
        return out

    def _logprobs(self) -> Dict[str, Any]:
        """Logprobs of the whole (echoed) completion, llama-cpp-python's layout."""
        echo, prompt_tokens, n = self.p.echo, self.prompt_tokens, int(self.p.logprobs or 0)
        text_offset = 0 if echo else len(self.prompt)
        token_offset = 0 if echo else len(prompt_tokens[1:])
        text_offsets: List[int] = []
        token_logprobs: List[Optional[float]] = []
        tokens: List[str] = []
        top_logprobs: List[Optional[Dict[str, float]]] = []
        if echo:  # drop a leading BOS
            start = 1 if prompt_tokens[0] == self.llm.token_bos() else 0
            all_tokens = prompt_tokens[start:] + self.completion_tokens
        else:
            all_tokens = self.completion_tokens
        all_token_strs = [self.detok([t], all_tokens[:i]).decode("utf-8", errors="ignore")
                          for i, t in enumerate(all_tokens)]
        all_logprobs = self.llm.logits_to_logprobs(self.llm._scores)[token_offset:]
        for idx, (token, token_str, row) in enumerate(zip(all_tokens, all_token_strs, all_logprobs)):
            if token == self.bos_token_id:
                continue
            text_offsets.append(
                text_offset + len(self.detok(all_tokens[:idx]).decode("utf-8", errors="ignore")))
            tokens.append(token_str)
            # subtle: values stay np.float32 here, as llama-cpp-python returns them
            token_logprobs.append(row[int(token)])
            ranked = sorted(zip(row, range(len(row))), reverse=True)
            top = {self.detok([i], all_tokens[:idx]).decode("utf-8", errors="ignore"): lp
                   for lp, i in ranked[:n]}
            top.update({token_str: row[int(token)]})
            top_logprobs.append(top)
        if echo and len(all_tokens) > 0:  # OpenAI API: no logprobs for the first echoed token
            token_logprobs[0] = None
            top_logprobs[0] = None
        return {"tokens": tokens, "text_offset": text_offsets, "token_logprobs": token_logprobs,
                "top_logprobs": top_logprobs}


def completion_stream(llm: Llama, prompt: Union[str, List[int]],
                      params: CompletionParams) -> Generator[Chunk, None, None]:
    """`_create_completion`: the run's chunks, holding the instance lock throughout."""
    with llm._lock:
        llm._logprobs_requested = params.logprobs is not None
        try:
            yield from CompletionRun(llm, prompt, params).chunks()
        finally:
            llm._logprobs_requested = False
