"""bitnet.sampling against llama.cpp's own samplers (libllama through llama-cpp-python's ctypes).

Every comparison builds the same candidate array on both sides, runs our sampler and
llama.cpp's on it, and requires the same ids in the same order, bit-identical logits and
probabilities, the same `sorted` flag and the same selected index. Multi-step cases feed the
selected token back with accept() on both sides, so RNG streams, mirostat's mu and the
penalty history stay in lock step or the test fails.

Budget: BITNET_HYPOTHESIS_EXAMPLES (default 20) examples per property.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitnet import sampling as S
from bitnet.sampling import TokenDataArray
from bitnet.sampling.glibc import LIBM
from bitnet.sampling.libstdcxx import cxx_sort, partial_sort

EXAMPLES = int(os.environ.get("BITNET_HYPOTHESIS_EXAMPLES", "20"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("CI") is not None,
)

L: Any
try:
    import llama_cpp as L
except ImportError:  # pragma: no cover - the oracle is a test dependency
    L = None

needs_llama = pytest.mark.skipif(L is None, reason="llama-cpp-python (the oracle) not installed")


# ---------------------------------------------------------------------------------------------
# the oracle side
# ---------------------------------------------------------------------------------------------

GUARD = 4  # guard records after the candidates; llama.cpp must never touch them
GUARD_ID, GUARD_LOGIT, GUARD_P = 0x5EADBEEF, np.float32(1234.5), np.float32(-6789.25)


def c_apply(smpl: Any, cur: TokenDataArray) -> TokenDataArray:
    """llama_sampler_apply on a copy of `cur` laid out as llama_token_data_array."""
    n = cur.size
    assert n > 0, "never hand llama.cpp an empty candidate array"
    buf = (L.llama_token_data * (n + GUARD))()
    view = np.ctypeslib.as_array(buf)
    assert view.dtype.itemsize == ctypes.sizeof(L.llama_token_data) == 12
    view["id"][:n], view["logit"][:n], view["p"][:n] = cur.ids, cur.logits, cur.p
    view["id"][n:], view["logit"][n:], view["p"][n:] = GUARD_ID, GUARD_LOGIT, GUARD_P
    arr = L.llama_token_data_array(
        data=ctypes.cast(buf, L.llama_token_data_p),
        size=n,
        selected=cur.selected,
        sorted=cur.sorted,
    )
    L.llama_sampler_apply(smpl, ctypes.byref(arr))
    assert (view["id"][n:] == GUARD_ID).all() and (view["logit"][n:] == GUARD_LOGIT).all()
    assert (view["p"][n:] == GUARD_P).all(), "llama.cpp wrote past the candidate array"
    data: Any = arr.data  # subtle: XTC moves the data pointer forward instead of copying
    off = (ctypes.addressof(data.contents) - ctypes.addressof(buf)) // 12
    size = int(arr.size)
    assert 0 <= off and off + size <= n
    return TokenDataArray(
        view["id"][off : off + size].copy(),
        view["logit"][off : off + size].copy(),
        view["p"][off : off + size].copy(),
        selected=int(arr.selected),
        sorted=bool(arr.sorted),
    )


@contextlib.contextmanager
def c_sampler(ptr: Any) -> Iterator[Any]:
    """Own a llama_sampler* for the duration of a block (freed even when an assert fails)."""
    assert ptr, "llama.cpp returned a NULL sampler"
    try:
        yield ptr
    finally:
        L.llama_sampler_free(ptr)


def c_chain(ptrs: List[Any]) -> Any:
    chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    for p in ptrs:
        L.llama_sampler_chain_add(chain, p)  # the chain takes ownership
    return chain


def build(kind: str, a: Dict[str, Any]) -> Tuple[S.Sampler, Any]:
    """Our sampler and llama.cpp's for one spec (kind, args)."""
    if kind == "greedy":
        return S.Greedy(), L.llama_sampler_init_greedy()
    if kind == "dist":
        return S.Dist(a["seed"]), L.llama_sampler_init_dist(a["seed"])
    if kind == "top_k":
        return S.TopK(a["k"]), L.llama_sampler_init_top_k(a["k"])
    if kind == "top_p":
        return S.TopP(a["p"], a["min_keep"]), L.llama_sampler_init_top_p(a["p"], a["min_keep"])
    if kind == "min_p":
        return S.MinP(a["p"], a["min_keep"]), L.llama_sampler_init_min_p(a["p"], a["min_keep"])
    if kind == "typical":
        ours = S.Typical(a["p"], a["min_keep"])
        return ours, L.llama_sampler_init_typical(a["p"], a["min_keep"])
    if kind == "temp":
        return S.Temp(a["t"]), L.llama_sampler_init_temp(a["t"])
    if kind == "temp_ext":
        t, delta, exponent = a["t"], a["delta"], a["exponent"]
        return S.TempExt(t, delta, exponent), L.llama_sampler_init_temp_ext(t, delta, exponent)
    if kind == "xtc":
        xtc = (a["p"], a["t"], a["min_keep"], a["seed"])
        return S.XTC(*xtc), L.llama_sampler_init_xtc(*xtc)
    if kind == "top_n_sigma":
        return S.TopNSigma(a["n"]), L.llama_sampler_init_top_n_sigma(a["n"])
    if kind == "mirostat":
        m1 = (a["n_vocab"], a["seed"], a["tau"], a["eta"], a["m"])
        return S.Mirostat(*m1), L.llama_sampler_init_mirostat(*m1)
    if kind == "mirostat_v2":
        m2 = (a["seed"], a["tau"], a["eta"])
        return S.MirostatV2(*m2), L.llama_sampler_init_mirostat_v2(*m2)
    if kind == "penalties":
        pen = (a["last_n"], a["repeat"], a["freq"], a["present"])
        return S.Penalties(*pen), L.llama_sampler_init_penalties(a["n_vocab"], *pen)
    if kind == "logit_bias":
        biases = a["biases"]
        c_biases = (L.llama_logit_bias * max(len(biases), 1))()
        for i, (tok, bias) in enumerate(biases):
            c_biases[i].token, c_biases[i].bias = tok, bias
        ours = S.LogitBias(a["n_vocab"], biases)
        return ours, L.llama_sampler_init_logit_bias(a["n_vocab"], len(biases), c_biases)
    raise KeyError(kind)


def assert_same(ours: TokenDataArray, theirs: TokenDataArray, what: str) -> None:
    """Exact agreement: ids in order, logits and p bit for bit, flags, selection."""
    assert ours.size == theirs.size, f"{what}: size {ours.size} != llama.cpp {theirs.size}"
    bad = np.nonzero(ours.ids != theirs.ids)[0]
    assert bad.size == 0, (
        f"{what}: ids differ first at {bad[0]}: {ours.ids[bad[0]:bad[0]+5]} vs "
        f"{theirs.ids[bad[0]:bad[0]+5]}"
    )
    for field in ("logits", "p"):
        a, b = getattr(ours, field), getattr(theirs, field)
        # exact: both sides run the same float operations in the same order (see module doc)
        same = (a.view(np.int32) == b.view(np.int32)) | (np.isnan(a) & np.isnan(b))
        bad = np.nonzero(~same)[0]
        assert bad.size == 0, (
            f"{what}: {field} differ at {bad.size} positions, first {bad[0]} "
            f"(id {ours.ids[bad[0]]}): {a[bad[0]]!r} vs llama.cpp {b[bad[0]]!r}"
        )
    assert ours.sorted == theirs.sorted, f"{what}: sorted {ours.sorted} != {theirs.sorted}"
    assert ours.selected == theirs.selected, (
        f"{what}: selected {ours.selected} != llama.cpp {theirs.selected}"
    )


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------

STYLES = ["normal", "ties", "quantized", "neginf", "wide", "tiny", "flat", "peaked"]


def make_logits(n: int, style: str, seed: int) -> np.ndarray:
    """Reproducible logits [n] of a given character; always at least one finite value."""
    rng = np.random.default_rng(seed)
    x: np.ndarray
    if style == "normal":
        x = rng.normal(0.0, 3.0, n)
    elif style == "ties":
        x = rng.integers(-6, 6, n) * 0.5  # a dozen distinct values: ties everywhere
    elif style == "quantized":
        x = np.round(rng.normal(0.0, 4.0, n) * 8.0) / 8.0
    elif style == "neginf":
        x = rng.normal(0.0, 2.0, n)
        x[rng.random(n) < 0.4] = -np.inf
    elif style == "wide":
        x = np.sign(rng.normal(size=n)) * 10.0 ** rng.uniform(-30.0, 30.0, n)
    elif style == "tiny":
        x = rng.normal(0.0, 1e-30, n)
    elif style == "flat":
        x = np.zeros(n)
    else:  # peaked: one or two dominant logits over a low flat floor with ties
        x = rng.integers(-3, 0, n).astype(np.float64)
        x[rng.integers(0, n, 2)] = [25.0, 24.0]
    x = x.astype(np.float32)
    if not np.isfinite(x).any():
        x[rng.integers(0, n)] = 0.0
    return x


sizes = st.one_of(
    st.integers(1, 40), st.integers(100, 300), st.integers(1000, 1400), st.integers(1, 5000)
)


@st.composite
def candidates(draw: Any, shuffled: bool = True) -> TokenDataArray:
    n = draw(sizes)
    logits = make_logits(n, draw(st.sampled_from(STYLES)), draw(st.integers(0, 2**32 - 1)))
    rng = np.random.default_rng(n)
    ids = np.arange(n, dtype=np.int32)
    if shuffled and draw(st.booleans()):
        ids = rng.permutation(n).astype(np.int32)
    p = rng.random(n).astype(np.float32)  # stale p values must travel with their token
    return TokenDataArray(ids, logits, p)


def f32s(lo: float, hi: float) -> Any:
    """float32 values in [lo, hi] (bounds rounded to float32 first)."""
    return st.floats(float(np.float32(lo)), float(np.float32(hi)), width=32)


unit = f32s(0.0, 1.0)
seeds = st.integers(0, 2**32 - 2)  # 2**32 - 1 is LLAMA_DEFAULT_SEED (a random seed)

SPECS: Dict[str, Any] = {
    "greedy": st.just({}),
    "dist": st.fixed_dictionaries({"seed": seeds}),
    "top_k": st.fixed_dictionaries({"k": st.one_of(st.integers(-1, 50), st.integers(0, 6000))}),
    "top_p": st.fixed_dictionaries(
        {"p": st.one_of(unit, f32s(0.9, 1.0)), "min_keep": st.integers(0, 300)}
    ),
    "min_p": st.fixed_dictionaries(
        {"p": st.one_of(unit, f32s(0.0, 0.01)), "min_keep": st.integers(0, 300)}
    ),
    "typical": st.fixed_dictionaries({"p": unit, "min_keep": st.integers(0, 300)}),
    "temp": st.fixed_dictionaries({"t": f32s(-1.0, 5.0)}),
    "temp_ext": st.fixed_dictionaries(
        {
            "t": f32s(0.05, 3.0),
            "delta": f32s(-0.5, 2.0),
            "exponent": f32s(0.1, 3.0),
        }
    ),
    "xtc": st.fixed_dictionaries(
        {"p": unit, "t": f32s(0.0, 0.6), "min_keep": st.integers(0, 5), "seed": seeds}
    ),
    "top_n_sigma": st.fixed_dictionaries({"n": f32s(-1.0, 4.0)}),
}


def _temp_safe(cur: TokenDataArray, kind: str, args: Dict[str, Any]) -> bool:
    """Dividing by a tiny temperature can overflow to +inf, which makes llama.cpp's softmax NaN."""
    t = args.get("t", 1.0)
    finite = cur.logits[np.isfinite(cur.logits)]
    return kind not in ("temp", "temp_ext") or t <= 0 or float(np.max(np.abs(finite))) / t < 1e37


# ---------------------------------------------------------------------------------------------
# tests that need no oracle
# ---------------------------------------------------------------------------------------------


def test_mt19937_matches_numpy_legacy_stream() -> None:
    """std::mt19937(seed) is init_genrand(seed): numpy's RandomState(seed) holds the same state."""
    for seed in (0, 1, 5489, 2**32 - 1, 123456789):
        ours = S.MT19937(seed)
        legacy: Any = np.random.RandomState(seed).get_state()
        bg = np.random.MT19937()
        bg.state = {"bit_generator": "MT19937", "state": {"key": legacy[1], "pos": 624}}
        theirs = bg.random_raw(2000)
        assert [ours.next_u32() for _ in range(2000)] == theirs.tolist()


def test_mt19937_10000th_output_is_the_standard_value() -> None:
    """The C++ standard fixes mt19937's 10000th output for the default seed 5489: 4123659995."""
    rng = S.MT19937(5489)
    for _ in range(9999):
        rng.next_u32()
    assert rng.next_u32() == 4123659995


def test_libstdcxx_sort_emulation_sorts() -> None:
    """The introsort/heap emulation is a correct sort (order of ties checked against llama.cpp)."""
    rng = np.random.default_rng(7)
    for n in (0, 1, 2, 3, 16, 17, 100, 1000):
        keys = rng.integers(0, 10, n).astype(float).tolist()
        a = list(range(n))
        cxx_sort(a, 0, n, [-v for v in keys])  # ascending = descending on -key
        assert sorted(a) == list(range(n))
        assert [keys[i] for i in a] == sorted(keys)
        for middle in {0, min(n, 1), n // 2, n} - {0}:
            b = list(range(n))
            partial_sort(b, 0, middle, n, keys)
            assert [keys[i] for i in b[:middle]] == sorted(keys, reverse=True)[:middle]
            assert sorted(b) == list(range(n))


def test_clone_and_reset_are_independent() -> None:
    logits = make_logits(500, "normal", 3)
    chain = S.make_chain(seed=42, repeat_penalty=1.3, n_vocab=500)
    first = [chain.sample(logits) for _ in range(5)]
    twin = chain.clone()
    assert [chain.sample(logits) for _ in range(20)] == [twin.sample(logits) for _ in range(20)]
    chain.reset()
    assert [chain.sample(logits) for _ in range(5)] == first


def test_custom_sampler_sees_the_whole_vocabulary_first() -> None:
    """A logits processor in front of the chain sees ids 0..n-1 and can force the choice."""
    seen: List[int] = []

    def only_token_3(cur: TokenDataArray) -> None:
        seen.append(cur.size)
        cur.logits = np.where(cur.ids == 3, cur.logits, np.float32(-np.inf)).astype(np.float32)

    chain = S.make_chain(seed=5)
    chain.samplers.insert(0, S.Custom(only_token_3))
    assert chain.sample(make_logits(100, "normal", 1)) == 3
    assert seen == [100]


# ---------------------------------------------------------------------------------------------
# against llama.cpp
# ---------------------------------------------------------------------------------------------


@needs_llama
@pytest.mark.llamacpp
def test_expf_is_glibc_expf() -> None:
    """The vectorised expf equals glibc's for every input class softmax produces."""
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            -rng.random(200_000) * 110.0,
            rng.random(20_000) * 100.0,
            -(10.0 ** rng.uniform(-45, 1, 20_000)),
            [0.0, -0.0, -np.inf, 88.72283, 88.72284, -87.33655, -103.97208, -103.97209],
        ]
    ).astype(np.float32)
    libm = LIBM
    assert libm is not None
    want = np.array([libm.expf(v) for v in x.tolist()], dtype=np.float32)
    got = S.expf(x)
    assert np.array_equal(got.view(np.int32), want.view(np.int32))


@needs_llama
@pytest.mark.llamacpp
@pytest.mark.parametrize("kind", sorted(SPECS))
@SETTINGS
@given(data=st.data())
def test_single_sampler_matches_llamacpp(kind: str, data: Any) -> None:
    cur = data.draw(candidates(), label="candidates")
    args = data.draw(SPECS[kind], label="args")
    if not _temp_safe(cur, kind, args):
        return
    if data.draw(st.booleans(), label="presorted"):
        # a candidate list already sorted by llama.cpp (sorted=True), as later chain stages see
        with c_sampler(L.llama_sampler_init_top_k(cur.size)) as sort_all:
            cur = c_apply(sort_all, cur)
    ours, ptr = build(kind, args)
    with c_sampler(ptr):
        for step in range(3):  # seeded samplers: the RNG must stay in step across calls
            theirs = c_apply(ptr, cur)
            mine = cur.copy()
            ours.apply(mine)
            assert_same(mine, theirs, f"{kind}{args} step {step} n={cur.size}")


@needs_llama
@pytest.mark.llamacpp
@SETTINGS
@given(data=st.data())
def test_random_chains_match_llamacpp(data: Any) -> None:
    """Random stacks of samplers ending in dist, several steps with accept() on both sides."""
    n = data.draw(sizes, label="n")
    style = data.draw(st.sampled_from(STYLES), label="style")
    kinds = data.draw(
        st.lists(st.sampled_from(sorted(set(SPECS) - {"greedy", "dist"})), min_size=1, max_size=4),
        label="kinds",
    )
    specs = [(k, data.draw(SPECS[k], label=k)) for k in kinds]
    specs.append(("dist", {"seed": data.draw(seeds, label="seed")}))
    logits_seq = [make_logits(n, style, i) for i in range(4)]
    probe = TokenDataArray.from_logits(logits_seq[0])
    if not all(_temp_safe(probe, k, a) for k, a in specs):
        return
    pairs = [build(k, a) for k, a in specs]
    ours = S.SamplerChain([o for o, _ in pairs])
    with c_sampler(c_chain([c for _, c in pairs])) as ptr:
        _run_chain_steps(ours, ptr, logits_seq, f"chain {specs}")


@needs_llama
@pytest.mark.llamacpp
@SETTINGS
@given(
    cur=candidates(shuffled=False),
    last_n=st.integers(-1, 80),
    repeat=f32s(0.5, 2.0),
    freq=f32s(-1.0, 1.0),
    present=f32s(-1.0, 1.0),
    history=st.lists(st.integers(0, 60), max_size=150),
)
def test_penalties_over_history_match_llamacpp(
    cur: TokenDataArray, last_n: int, repeat: float, freq: float, present: float, history: List[int]
) -> None:
    args = dict(n_vocab=cur.size, last_n=last_n, repeat=repeat, freq=freq, present=present)
    ours, ptr = build("penalties", args)
    with c_sampler(ptr):
        for i, tok in enumerate(history):
            ours.accept(tok)
            L.llama_sampler_accept(ptr, tok)
            if i % 37 == 0 or i == len(history) - 1:
                assert_same(_applied(ours, cur), c_apply(ptr, cur), f"penalties after {i + 1}")
        L.llama_sampler_reset(ptr)
        ours.reset()
        assert_same(_applied(ours, cur), c_apply(ptr, cur), "penalties after reset")


def _applied(s: S.Sampler, cur: TokenDataArray) -> TokenDataArray:
    out = cur.copy()
    s.apply(out)
    return out


@needs_llama
@pytest.mark.llamacpp
@SETTINGS
@given(
    cur=candidates(),
    biases=st.lists(
        st.tuples(st.integers(-3, 5200), f32s(-50.0, 50.0)), max_size=12
    ),
)
def test_logit_bias_matches_llamacpp(cur: TokenDataArray, biases: List[Tuple[int, float]]) -> None:
    ours, ptr = build("logit_bias", {"n_vocab": cur.size, "biases": biases})
    with c_sampler(ptr):
        assert_same(_applied(ours, cur), c_apply(ptr, cur), f"logit_bias {biases}")


def _run_chain_steps(
    ours: S.SamplerChain, ptr: Any, logits_seq: List[np.ndarray], what: str
) -> List[int]:
    """Sample each logits vector on both sides as llama_sampler_sample does; compare all."""
    tokens = []
    for step, logits in enumerate(logits_seq):
        cur = TokenDataArray.from_logits(logits)
        theirs = c_apply(ptr, cur)
        mine = cur.copy()
        ours.apply(mine)
        assert_same(mine, theirs, f"{what} step {step}")
        token = theirs.selected_token()
        L.llama_sampler_accept(ptr, token)
        ours.accept(token)
        tokens.append(token)
    return tokens


@needs_llama
@pytest.mark.llamacpp
@SETTINGS
@given(
    n=sizes,
    style=st.sampled_from(STYLES),
    seed=seeds,
    mode=st.sampled_from([1, 2]),
    tau=f32s(0.5, 10.0),
    eta=f32s(0.01, 1.0),
    m=st.sampled_from([100, 1, 2, 7, 0]),
)
def test_mirostat_many_steps_match_llamacpp(
    n: int, style: str, seed: int, mode: int, tau: float, eta: float, m: int
) -> None:
    logits_seq = [make_logits(n, style, seed + i) for i in range(12)]
    if mode == 1:
        ours = S.SamplerChain([S.Mirostat(n, seed, tau, eta, m)])
        ptr = c_chain([L.llama_sampler_init_mirostat(n, seed, tau, eta, m)])
    else:
        ours = S.SamplerChain([S.MirostatV2(seed, tau, eta)])
        ptr = c_chain([L.llama_sampler_init_mirostat_v2(seed, tau, eta)])
    with c_sampler(ptr):
        _run_chain_steps(ours, ptr, logits_seq, f"mirostat{mode}")


def c_make_chain(n_vocab: int, kw: Dict[str, Any]) -> Any:
    """llama-cpp-python's Llama._init_sampler, sampler for sampler, on the C side."""
    seed = kw["seed"]
    ptrs = []
    if kw.get("logit_bias"):
        items = list(kw["logit_bias"].items())
        arr = (L.llama_logit_bias * len(items))()
        for i, (tok, bias) in enumerate(items):
            arr[i].token, arr[i].bias = tok, bias
        ptrs.append(L.llama_sampler_init_logit_bias(n_vocab, len(items), arr))
    ptrs.append(
        L.llama_sampler_init_penalties(
            n_vocab, kw["penalty_last_n"], kw["repeat_penalty"], kw["frequency_penalty"],
            kw["presence_penalty"],
        )
    )
    temp = kw["temp"]
    if temp < 0.0:
        ptrs.append(L.llama_sampler_init_dist(seed))
    elif temp == 0.0:
        ptrs.append(L.llama_sampler_init_greedy())
    elif kw["mirostat_mode"] == 1:
        tau, eta = kw["mirostat_tau"], kw["mirostat_eta"]
        ptrs.append(L.llama_sampler_init_mirostat(n_vocab, seed, tau, eta, 100))
    elif kw["mirostat_mode"] == 2:
        ptrs.append(L.llama_sampler_init_mirostat_v2(seed, kw["mirostat_tau"], kw["mirostat_eta"]))
    else:
        ptrs.append(L.llama_sampler_init_top_k(kw["top_k"]))
        ptrs.append(L.llama_sampler_init_typical(kw["typical_p"], 1))
        ptrs.append(L.llama_sampler_init_top_p(kw["top_p"], 1))
        ptrs.append(L.llama_sampler_init_min_p(kw["min_p"], 1))
        ptrs.append(L.llama_sampler_init_temp(temp))
        ptrs.append(L.llama_sampler_init_dist(seed))
    return c_chain(ptrs)


chain_kwargs = st.fixed_dictionaries(
    {
        "top_k": st.sampled_from([40, 0, 1, 5, 200, -1]),
        "top_p": st.sampled_from([0.95, 1.0, 0.5, 0.0, 0.99]),
        "min_p": st.sampled_from([0.05, 0.0, 0.2, 0.001]),
        "typical_p": st.sampled_from([1.0, 1.0, 0.9, 0.5]),
        "temp": st.sampled_from([0.8, 0.8, 0.0, -1.0, 1.5, 0.3]),
        "repeat_penalty": st.sampled_from([1.0, 1.1, 1.5, 0.9]),
        "frequency_penalty": st.sampled_from([0.0, 0.0, 0.5]),
        "presence_penalty": st.sampled_from([0.0, 0.0, -0.3]),
        "penalty_last_n": st.sampled_from([64, 0, 3, -1]),
        "mirostat_mode": st.sampled_from([0, 0, 0, 1, 2]),
        "mirostat_tau": st.sampled_from([5.0, 3.0]),
        "mirostat_eta": st.sampled_from([0.1, 0.5]),
        "seed": seeds,
    }
)


@needs_llama
@pytest.mark.llamacpp
@SETTINGS
@given(
    kw=chain_kwargs,
    n=st.one_of(st.integers(1, 300), st.integers(1000, 5000)),
    style=st.sampled_from(STYLES),
    bias=st.booleans(),
)
def test_make_chain_matches_llamacpp_chain(
    kw: Dict[str, Any], n: int, style: str, bias: bool
) -> None:
    if bias:
        kw = dict(kw, logit_bias={0: -np.inf, n // 2: 5.0, n - 1: -2.5})
    logits_seq = [make_logits(n, style, kw["seed"] + i) for i in range(8)]
    # tokens from a small set recur, so penalties bite
    logits_seq = [lg + np.float32(3.0) * (np.arange(n) % 7 == 0) for lg in logits_seq]
    ours = S.make_chain(n_vocab=n, **kw)
    with c_sampler(c_make_chain(n, kw)) as ptr:
        _run_chain_steps(ours, ptr, [x.astype(np.float32) for x in logits_seq], f"chain {kw}")


@needs_llama
@pytest.mark.llamacpp
def test_seeded_dist_draws_match_llamacpp_over_many_steps() -> None:
    """500 seeded draws over one flat 5000-way distribution: the uniform variates themselves.

    With equal logits the selected index is ceil(5000 * u) - 1, so any divergence of the
    mt19937 stream or of generate_canonical shows up as a different token.
    """
    logits = np.zeros(5000, np.float32)
    ours = S.SamplerChain([S.Dist(1234)])
    with c_sampler(c_chain([L.llama_sampler_init_dist(1234)])) as ptr:
        tokens = _run_chain_steps(ours, ptr, [logits] * 500, "dist flat")
    assert len(set(tokens)) > 400  # the draws really vary


@needs_llama
@pytest.mark.llamacpp
def test_clone_matches_llamacpp_clone() -> None:
    """A clone taken mid-stream continues exactly as llama.cpp's clone of the same chain."""
    kw: Dict[str, Any] = dict(S.make_chain.__kwdefaults__ or {})
    kw.update(seed=99, repeat_penalty=1.2, n_vocab=800)
    n = kw.pop("n_vocab")
    ckw = dict(kw, penalty_last_n=64)
    ours = S.make_chain(n_vocab=n, **kw)
    logits_seq = [make_logits(n, "quantized", i) for i in range(6)]
    with c_sampler(c_make_chain(n, ckw)) as ptr:
        _run_chain_steps(ours, ptr, logits_seq, "before clone")
        with c_sampler(L.llama_sampler_clone(ptr)) as twin_ptr:
            twin = ours.clone()
            _run_chain_steps(twin, twin_ptr, logits_seq, "clone")
            _run_chain_steps(ours, ptr, logits_seq, "original after clone")


@pytest.mark.llamacpp
@pytest.mark.slow
@needs_llama
@settings(max_examples=EXAMPLES * 20, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), kind=st.sampled_from(sorted(SPECS)))
def test_single_sampler_campaign(data: Any, kind: str) -> None:
    """The single-sampler property with a 20x budget (slow)."""
    test_single_sampler_matches_llamacpp.hypothesis.inner_test(kind=kind, data=data)
