"""llama.cpp's samplers (src/llama-sampler.cpp), each a `Sampler` mutating a `TokenDataArray`."""

from __future__ import annotations

import copy
import math
import os
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bitnet.sampling.candidates import (
    TokenDataArray,
    apply_temp,
    bucket_partial_sort,
    softmax,
    sort_inplace,
    top_k,
)
from bitnet.sampling.glibc import c_int, exp_double, expf, log2f, log2f_vec, logf, logf_vec, powf
from bitnet.sampling.libstdcxx import MT19937, cxx_sort, discrete_sample, is_strictly_ordered

LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # llama.h: "use a random seed"

f32 = np.float32
_FLT_MAX = float(np.finfo(np.float32).max)


def rng_seed(seed: int) -> int:
    """get_rng_seed: LLAMA_DEFAULT_SEED means a fresh random seed."""
    seed &= 0xFFFFFFFF
    if seed == LLAMA_DEFAULT_SEED:
        return int.from_bytes(os.urandom(4), "little")
    return seed


class Sampler:
    """Base of a llama_sampler: `apply` mutates candidates; `accept` feeds chosen tokens."""

    name = "sampler"

    def apply(self, cur: TokenDataArray) -> None:
        raise NotImplementedError

    def accept(self, token: int) -> None:
        """Record a chosen token (only stateful samplers care)."""

    def reset(self) -> None:
        """Return to the state right after construction."""

    def clone(self) -> Sampler:
        """Independent copy carrying the current state (llama_sampler_clone)."""
        return copy.deepcopy(self)

    def get_seed(self) -> int:
        return LLAMA_DEFAULT_SEED

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_")
        )
        return f"{type(self).__name__}({fields})"


class Greedy(Sampler):
    """llama_sampler_init_greedy: select the first candidate with the highest logit."""

    name = "greedy"

    def apply(self, cur: TokenDataArray) -> None:
        cur.selected = 0
        if cur.size > 1:
            cur.selected = int(np.argmax(cur.logits))


class _Seeded(Sampler):
    def __init__(self, seed: int) -> None:
        self.seed = seed & 0xFFFFFFFF
        self.seed_cur = rng_seed(self.seed)
        self._rng = MT19937(self.seed_cur)

    def _reseed(self) -> None:
        self.seed_cur = rng_seed(self.seed)
        self._rng.seed(self.seed_cur)

    def get_seed(self) -> int:
        return self.seed_cur


class Dist(_Seeded):
    """llama_sampler_init_dist(seed): softmax and one draw from std::mt19937."""

    name = "dist"

    def apply(self, cur: TokenDataArray) -> None:
        if cur.size == 0:
            cur.selected = -1
            return
        cur.selected = 0
        if cur.size == 1:
            self._rng.canonical_double()  # llama.cpp draws anyway, to stay in step
            cur.p = np.ones(1, dtype=np.float32)
            return
        max_l = cur.logits[0] if cur.sorted else np.max(cur.logits)
        with np.errstate(invalid="ignore", over="ignore"):
            e = expf(cur.logits - max_l)
        run = np.cumsum(e.astype(np.float64))  # double sums, sequential like the C loop
        sum_cum = float(run[-1])
        rnd = self._rng.canonical_double()
        hit = np.nonzero(run >= sum_cum * rnd)[0]
        cur.selected = int(hit[0]) if hit.size else cur.size - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            cur.p = (e.astype(np.float64) / sum_cum).astype(np.float32)

    def reset(self) -> None:
        self._reseed()


class TopK(Sampler):
    """llama_sampler_init_top_k(k): keep the k highest logits, sorted (k <= 0: no-op)."""

    name = "top-k"

    def __init__(self, k: int) -> None:
        self.k = int(k)

    def apply(self, cur: TokenDataArray) -> None:
        top_k(cur, self.k)


class TopP(Sampler):
    """llama_sampler_init_top_p(p, min_keep): nucleus sampling (p >= 1: no-op)."""

    name = "top-p"

    def __init__(self, p: float, min_keep: int = 1) -> None:
        self.p = f32(p)
        self.min_keep = int(min_keep)

    def apply(self, cur: TokenDataArray) -> None:
        if self.p >= 1.0:
            return
        softmax(cur, False)
        size = cur.size
        if not cur.sorted and size > 1024:
            # adaptive: look at the top 256 first, sort everything only if that is not enough
            k = 256
            perm = bucket_partial_sort(cur.logits, k)
        elif not cur.sorted:
            sort_inplace(cur, size)
            k = size
            perm = np.arange(size)
        else:
            k = size
            perm = np.arange(size)
        last_idx = self._cut(cur.p[perm[:k]], 0, f32(0.0))
        if last_idx is None and k < size:
            perm = bucket_partial_sort(cur.logits, size)
            head = np.cumsum(cur.p[perm[:k]], dtype=np.float32)[-1]
            last_idx = self._cut(cur.p[perm[k:size]], k, head)
        if last_idx is None:
            last_idx = size
        if not cur.sorted:
            cur.take(perm[:last_idx])
            cur.sorted = True
        else:
            cur.truncate(last_idx)

    def _cut(self, p: np.ndarray, offset: int, start: np.float32) -> Optional[int]:
        """First i (global) with float cum sum >= p and i + 1 >= min_keep, as i + 1."""
        cum = np.cumsum(np.concatenate([[start], p]).astype(np.float32), dtype=np.float32)[1:]
        i = np.arange(offset, offset + p.shape[0])
        hit = np.nonzero((cum >= self.p) & (i + 1 >= self.min_keep))[0]
        return int(i[hit[0]]) + 1 if hit.size else None


class MinP(Sampler):
    """llama_sampler_init_min_p(p, min_keep): keep logits >= max + logf(p) (p <= 0: no-op)."""

    name = "min-p"

    def __init__(self, p: float, min_keep: int = 1) -> None:
        self.p = f32(p)
        self.min_keep = int(min_keep)

    def apply(self, cur: TokenDataArray) -> None:
        if self.p <= 0.0 or cur.size == 0:
            return
        log_p = logf(self.p)
        if not cur.sorted:
            max_logit = max(-_FLT_MAX, float(np.max(cur.logits)))
            min_logit = f32(max_logit) + log_p
            keep = np.nonzero(cur.logits >= min_logit)[0]
            if keep.size and keep.size >= self.min_keep:
                cur.take(keep)
                return
            sort_inplace(cur, cur.size)
        min_logit = cur.logits[0] + log_p
        below = (cur.logits < min_logit) & (np.arange(cur.size) >= self.min_keep)
        below[0] = False  # the first token always matches
        hit = np.nonzero(below)[0]
        cur.truncate(int(hit[0]) if hit.size else cur.size)


class Typical(Sampler):
    """llama_sampler_init_typical(p, min_keep): locally typical sampling (p >= 1: no-op)."""

    name = "typical"

    def __init__(self, p: float, min_keep: int = 1) -> None:
        self.p = f32(p)
        self.min_keep = int(min_keep)

    def apply(self, cur: TokenDataArray) -> None:
        if self.p >= 1.0:
            return
        softmax(cur, True)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            logp = logf_vec(cur.p)
            entropy = np.cumsum(-cur.p * logp, dtype=np.float32)[-1]
            shifted = np.abs(-logp - entropy)
        order = np.argsort(shifted, kind="stable")
        if not is_strictly_ordered(shifted[order]):
            a = list(range(cur.size))
            cxx_sort(a, 0, len(a), (-shifted).tolist())  # comp: shifted[a] < shifted[b]
            order = np.array(a, dtype=np.int64)
        cum = np.cumsum(cur.p[order], dtype=np.float32)
        i = np.arange(cur.size)
        ok = (cum > self.p) & ((self.min_keep == 0) | (i >= self.min_keep - 1))
        hit = np.nonzero(ok)[0]
        last_idx = int(hit[0]) + 1 if hit.size else cur.size
        cur.take(order[:last_idx])
        cur.sorted = False


class Temp(Sampler):
    """llama_sampler_init_temp(t): logits / t; t <= 0 keeps only the best logit."""

    name = "temp"

    def __init__(self, temp: float) -> None:
        self.temp = f32(temp)

    def apply(self, cur: TokenDataArray) -> None:
        apply_temp(cur, self.temp)


class TempExt(Sampler):
    """llama_sampler_init_temp_ext(t, delta, exponent): entropy-based dynamic temperature."""

    name = "temp-ext"

    def __init__(self, temp: float, delta: float, exponent: float) -> None:
        self.temp = f32(temp)
        self.delta = f32(delta)
        self.exponent = f32(exponent)

    def apply(self, cur: TokenDataArray) -> None:
        if not self.delta > 0:
            apply_temp(cur, self.temp)
            return
        min_temp = max(f32(0.0), self.temp - self.delta)
        max_temp = self.temp + self.delta
        if cur.size <= 1:
            return
        max_entropy = -logf(f32(1.0) / f32(cur.size))
        softmax(cur, True)
        pos = cur.p[cur.p > 0.0]
        with np.errstate(invalid="ignore", over="ignore"):
            # float entropy = 0; entropy -= prob * logf(prob): the negated sequential float sum
            entropy = -np.cumsum(pos * logf_vec(pos), dtype=np.float32)[-1] if pos.size else f32(0)
            normalized = entropy / max_entropy
            dyn_temp = min_temp + (max_temp - min_temp) * powf(normalized, self.exponent)
        apply_temp(cur, dyn_temp)
        max_l = float(cur.logits[0])
        e = np.array([exp_double(v - max_l) for v in cur.logits.tolist()], dtype=np.float64)
        total = float(np.cumsum(e)[-1])
        with np.errstate(invalid="ignore", divide="ignore"):
            cur.p = (e.astype(np.float32).astype(np.float64) / total).astype(np.float32)


class XTC(_Seeded):
    """llama_sampler_init_xtc(p, t, min_keep, seed): exclude top choices above threshold t."""

    name = "xtc"

    def __init__(self, probability: float, threshold: float, min_keep: int, seed: int) -> None:
        super().__init__(seed)
        self.probability = f32(probability)
        self.threshold = f32(threshold)
        self.min_keep = int(min_keep)

    def apply(self, cur: TokenDataArray) -> None:
        if self.probability <= 0.0 or self.threshold > 0.5 or cur.size < 2:
            return
        chance = self._rng.canonical_float()
        if chance > self.probability:
            return
        softmax(cur, True)
        above = np.nonzero(~(cur.p >= self.threshold))[0]
        first_below = int(above[0]) if above.size else cur.size
        pos_last = max(first_below - 1, 0)
        if cur.size - pos_last >= self.min_keep and pos_last > 0:
            cur.take(np.arange(pos_last, cur.size))

    def reset(self) -> None:
        self._reseed()


class TopNSigma(Sampler):
    """llama_sampler_init_top_n_sigma(n): mask logits below max - n * std (n <= 0: no-op)."""

    name = "top-n-sigma"

    def __init__(self, n: float) -> None:
        self.n = f32(n)

    def apply(self, cur: TokenDataArray) -> None:
        if self.n <= 0.0 or cur.size <= 1:
            return
        logits = cur.logits
        valid = logits != -np.inf
        vals = logits[valid]
        mx = logits[0]
        if vals.size and np.max(vals) > mx:
            mx = np.max(vals)
        count = int(vals.size)
        mean = f32(0.0)
        if count:
            mean = np.cumsum(vals, dtype=np.float32)[-1] / f32(count)
        acc = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for d in (vals - mean).astype(np.float64).tolist():
                acc = float(f32(acc + d * d))  # float acc += pow(double, 2)
            std = f32(math.sqrt(float(f32(acc) / f32(count)))) if count else f32(0.0)
            cut = mx - self.n * std
            cur.logits = np.where(logits < cut, f32(-np.inf), logits).astype(np.float32)


class Mirostat(_Seeded):
    """llama_sampler_init_mirostat(n_vocab, seed, tau, eta, m): Mirostat 1.0, state `mu`."""

    name = "mirostat"

    def __init__(self, n_vocab: int, seed: int, tau: float, eta: float, m: int = 100) -> None:
        super().__init__(seed)
        self.n_vocab = int(n_vocab)
        self.tau = f32(tau)
        self.eta = f32(eta)
        self.m = int(m)
        self.mu = f32(2.0) * self.tau

    def apply(self, cur: TokenDataArray) -> None:
        softmax(cur, True)
        sum_ti_bi = f32(0.0)
        sum_ti_sq = f32(0.0)
        with np.errstate(all="ignore"):
            # subtle: the C bound is size_t(m - 1), so m <= 0 means "all candidates"
            n_est = cur.size - 1 if self.m <= 0 else min(self.m - 1, cur.size - 1)
            for i in range(max(n_est, 0)):
                t_i = logf(f32(i + 2) / f32(i + 1))
                b_i = logf(cur.p[i] / cur.p[i + 1])
                sum_ti_bi = f32(sum_ti_bi + t_i * b_i)
                sum_ti_sq = f32(sum_ti_sq + t_i * t_i)
            s_hat = sum_ti_bi / sum_ti_sq
            epsilon_hat = s_hat - f32(1.0)
            k = powf(
                (epsilon_hat * powf(2.0, self.mu))
                / (f32(1.0) - powf(f32(self.n_vocab), -epsilon_hat)),
                f32(1.0) / s_hat,
            )
        top_k(cur, max(c_int(float(k)), 1))
        softmax(cur, True)
        idx = discrete_sample(cur.p, self._rng)
        cur.selected = idx
        self._update_mu(cur.p[idx])

    def _update_mu(self, p: np.float32) -> None:
        observed_surprise = -log2f(p)
        e = observed_surprise - self.tau
        self.mu = f32(self.mu - self.eta * e)

    def reset(self) -> None:
        self.mu = f32(2.0) * self.tau
        self._reseed()


class MirostatV2(Mirostat):
    """llama_sampler_init_mirostat_v2(seed, tau, eta): Mirostat 2.0, state `mu`."""

    name = "mirostat-v2"

    def __init__(self, seed: int, tau: float, eta: float) -> None:
        super().__init__(0, seed, tau, eta, 0)

    def apply(self, cur: TokenDataArray) -> None:
        softmax(cur, True)
        surprise = -log2f_vec(cur.p)
        over = np.nonzero(surprise > self.mu)[0]
        cur.truncate(max(int(over[0]) if over.size else cur.size, 1))
        softmax(cur, True)
        idx = discrete_sample(cur.p, self._rng)
        cur.selected = idx
        self._update_mu(cur.p[idx])


class Penalties(Sampler):
    """llama_sampler_init_penalties(last_n, repeat, freq, present) over accepted tokens."""

    name = "penalties"

    def __init__(
        self,
        penalty_last_n: int,
        penalty_repeat: float = 1.0,
        penalty_freq: float = 0.0,
        penalty_present: float = 0.0,
    ) -> None:
        self.penalty_last_n = max(int(penalty_last_n), 0)
        self.penalty_repeat = f32(penalty_repeat)
        self.penalty_freq = f32(penalty_freq)
        self.penalty_present = f32(penalty_present)
        self._prev: Deque[int] = deque(maxlen=max(self.penalty_last_n, 1))
        self._count: Dict[int, int] = {}

    @property
    def disabled(self) -> bool:
        return self.penalty_last_n == 0 or (
            self.penalty_repeat == 1.0 and self.penalty_freq == 0.0 and self.penalty_present == 0.0
        )

    @property
    def history(self) -> List[int]:
        """The last `penalty_last_n` accepted tokens, oldest first."""
        return list(self._prev)

    def accept(self, token: int) -> None:
        if self.disabled:
            return  # llama.cpp builds an empty sampler then, which keeps no history
        token = int(token)
        self._count[token] = self._count.get(token, 0) + 1
        if len(self._prev) >= self.penalty_last_n:
            old = self._prev[0]
            self._count[old] -= 1
            if self._count[old] == 0:
                del self._count[old]
        self._prev.append(token)

    def apply(self, cur: TokenDataArray) -> None:
        if self.disabled:
            return
        if not self._count:
            cur.sorted = False
            return
        toks = np.array(sorted(self._count), dtype=np.int64)
        counts = np.array([self._count[t] for t in toks.tolist()], dtype=np.float32)
        pos = np.minimum(np.searchsorted(toks, cur.ids), toks.shape[0] - 1)
        hit = np.nonzero(toks[pos] == cur.ids)[0]
        logits = cur.logits.copy()
        x = logits[hit]
        c = counts[pos[hit]]
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.where(x <= 0, x * self.penalty_repeat, x / self.penalty_repeat)
            # logit -= float(count) * freq + float(count > 0) * present, all in float
            x = x - (c * self.penalty_freq + f32(1.0) * self.penalty_present)
        logits[hit] = x
        cur.logits = logits
        cur.sorted = False

    def reset(self) -> None:
        self._prev.clear()
        self._count.clear()


class LogitBias(Sampler):
    """llama_sampler_init_logit_bias(n_vocab, biases): add a float bias to chosen tokens."""

    name = "logit-bias"

    def __init__(self, n_vocab: int, logit_bias: Sequence[Tuple[int, float]]) -> None:
        self.n_vocab = int(n_vocab)
        self.logit_bias = [(int(t), f32(b)) for t, b in logit_bias]

    def apply(self, cur: TokenDataArray) -> None:
        if not self.logit_bias:
            return
        logits = cur.logits.copy()
        to_search: List[Tuple[int, np.float32]] = []
        for tok, bias in self.logit_bias:
            # fast path: the candidate at index `tok` still has id `tok`
            if 0 <= tok < cur.size and cur.ids[tok] == tok:
                logits[tok] = logits[tok] + bias
            else:
                to_search.append((tok, bias))
        if to_search:
            first_bias: Dict[int, np.float32] = {}
            for tok, bias in to_search:
                first_bias.setdefault(tok, bias)  # the C search stops at the first match
            toks = np.array(list(first_bias), dtype=np.int64)
            biases = np.array(list(first_bias.values()), dtype=np.float32)
            order = np.argsort(toks)
            toks, biases = toks[order], biases[order]
            pos = np.minimum(np.searchsorted(toks, cur.ids), toks.shape[0] - 1)
            hit = np.nonzero(toks[pos] == cur.ids)[0]
            logits[hit] = logits[hit] + biases[pos[hit]]
        cur.logits = logits


class Custom(Sampler):
    """A Python callback over the candidates (llama-cpp-python's CustomSampler, used for
    logits processors): `apply_func(cur)` mutates `cur` in place."""

    name = "custom"

    def __init__(self, apply_func: Callable[[TokenDataArray], None]) -> None:
        self.apply_func = apply_func

    def apply(self, cur: TokenDataArray) -> None:
        self.apply_func(cur)
