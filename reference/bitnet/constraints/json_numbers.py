"""Strings and numbers for the schema automaton: pruning and completions.

`_int_reachable` says whether an integer being written can still land inside bounds (and a
multipleOf); `_number_suffix` / `_string_tail` / `_number_candidates` find short ways to finish
a string or a number inside a `SchemaNode`'s constraints (for `completion()`), including the
float rounding band of a bound (`_ulp_band`: the decimals json.loads turns into the same float).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from typing import Any, List, Optional, Tuple

from bitnet.constraints.json_schema import SchemaNode


def _int_reachable(neg: bool, digits: str, lo: Optional[int], hi: Optional[int], m: int = 1) -> bool:
    """Whether an integer written so far as "-"? digits can still end inside [lo, hi] on a
    multiple of m."""
    # the magnitudes allowed
    if neg:
        mlo, mhi = (0 if hi is None else max(-hi, 0)), (None if lo is None else -lo)
    else:
        mlo, mhi = (0 if lo is None else max(lo, 0)), hi
    if mhi is not None and mhi < mlo:
        return False
    if not digits:  # "-" alone: any magnitude but 0 ("-0" is 0)
        if mhi is None:
            return True
        first = -(-max(mlo, 0) // m) * m
        return first <= mhi
    d = int(digits)
    if digits[0] == "0":  # "0" / "-0" cannot grow
        return mlo <= d and (mhi is None or d <= mhi)
    k = 0
    while True:
        a, b = max(d * 10**k, mlo), (d + 1) * 10**k - 1
        if mhi is not None:
            if d * 10**k > mhi:
                return False
            b = min(b, mhi)
        if a <= b and -(-a // m) * m <= b:
            return True
        k += 1


_MAX_COMPLETION = 4096


def _raw_ascii(text: str) -> bytes:
    """Bytes between the quotes of json.dumps(text) (ASCII, as llama-cpp-python's literals)."""
    return json.dumps(text)[1:-1].encode("ascii")


def _raw(text: str) -> bytes:
    """Bytes between the quotes of `text` serialized as JSON, ASCII (what completions write:
    valid everywhere, compact literals included)."""
    return _raw_ascii(text)


def _string_tail(node: SchemaNode, s: str) -> str:
    """Characters that make `s` a complete string of `node` (ValueError if none is found)."""
    if node.string_ok(s):
        return ""
    if node.choices is not None:
        for c in node.choices:
            if c.startswith(s) and node.string_ok(c):
                return c[len(s):]
        raise ValueError("no choice continues the string")
    if node.pattern is None:
        if node.max_len is not None and node.min_len > node.max_len:
            raise ValueError("minLength > maxLength")
        return "a" * max(0, node.min_len - len(s))
    # breadth-first over a small alphabet: the pattern's own characters first
    alphabet = list(dict.fromkeys(ch for ch in node.pattern if ch.isprintable() and ch not in "\\^$")) + \
        list("a0A _-.")
    frontier = [""]
    seen = 0
    while frontier and seen < 20000:
        nxt = []
        for tail in frontier:
            for ch in alphabet:
                t = tail + ch
                seen += 1
                if node.string_ok(s + t):
                    return t
                if node.string_prefix_ok(s + t):
                    nxt.append(t)
        frontier = nxt[:400]
    raise ValueError(f"no completion of {s!r} found for pattern {node.pattern!r}")


def _ulp_band(v: Any) -> Tuple[Fraction, Fraction]:
    """The exact decimals that json.loads turns into the float `v` lie in this band (its
    ends, halfway to the neighbours, round to even: kept only when v's mantissa is even)."""
    f = Fraction(v)
    if not isinstance(v, float) or v == 0:
        return f, f
    import numpy as np  # (math.nextafter is Python 3.9+)

    below, above = float(np.nextafter(v, -np.inf)), float(np.nextafter(v, np.inf))
    fb = Fraction(below) if not math.isinf(below) else 2 * f - Fraction(above)
    fa = Fraction(above) if not math.isinf(above) else 2 * f - Fraction(below)
    lo, hi = (f + fb) / 2, (f + fa) / 2
    if int(v.hex().split("p")[0][-1], 16) % 2:  # odd: the halfway points round away
        shrink = (hi - lo) / 10**6
        lo, hi = lo + shrink, hi - shrink
    return lo, hi


def _beyond(a: Fraction, b: Fraction) -> Fraction:
    """A step just outside the band [a, b] (for exclusive bounds)."""
    # (at 0: just past half the smallest subnormal 5e-324 = math.ulp(0.0), below which
    # decimals parse to 0.0)
    return max((b - a) / 10**6, abs(a) / 10**30, Fraction(5e-324) / 2 + Fraction(1, 10**400))


def _number_suffix(node: SchemaNode, text: str) -> Optional[str]:
    """A suffix that makes the number prefix `text` a complete number inside `node`'s bounds
    (multipleOf aside), or None when no extension of `text` can land inside them."""
    neg = text.startswith("-")
    body = text[1:] if neg else text
    mant, _, exp = body.partition("e") if "e" in body else body.partition("E")
    in_exp = len(mant) < len(body)
    ipart, dot, fpart = mant.partition(".")
    # the values allowed, widened to the decimals that parse to the bound floats
    vlo: Optional[Fraction] = None
    vhi: Optional[Fraction] = None
    for v, excl in ((node.minimum, False), (node.exmin, True)):
        if v is not None:
            a, b = _ulp_band(v)
            x = b + _beyond(a, b) if excl else a
            vlo = x if vlo is None else max(vlo, x)
    for v, excl in ((node.maximum, False), (node.exmax, True)):
        if v is not None:
            a, b = _ulp_band(v)
            x = a - _beyond(a, b) if excl else b
            vhi = x if vhi is None else min(vhi, x)
    # ... as magnitudes of a number of this sign
    if neg:
        lo = Fraction(0) if vhi is None else max(Fraction(0), -vhi)
        hi = None if vlo is None else -vlo
    else:
        lo = Fraction(0) if vlo is None else max(Fraction(0), vlo)
        hi = vhi
    if hi is not None and hi < lo:
        return None
    if in_exp:
        return _exponent_suffix(Fraction(ipart + "." + (fpart or "0")), exp, lo, hi)
    digits = (ipart + fpart).lstrip("0")
    finish = "0" if (not ipart or (dot and not fpart)) else ""
    if not digits:  # so far a zero: any magnitude is still reachable
        if lo == 0:
            return finish
        found = _short_decimal(lo, hi, None)
        if found is None:
            return None
        k, q = found
        if not ipart:  # "-" alone: write the number anew
            return f"{k}e{q}" if q else str(k)
        # "0" / "0.00": continue the fraction, then scale with an exponent
        lead = "" if dot else "."
        written = Fraction(int(str(k)), 10 ** (len(fpart) + len(str(k))))
        e = _exp10(Fraction(k) * Fraction(10) ** q / written)
        return lead + str(k) + (f"e{e}" if e else "")
    g = int(digits)
    found = _short_decimal(lo, hi, g)
    if found is None:
        return None
    k, q = found
    ks = str(k)
    while len(ks) < len(digits):
        ks += "0"
    rest = ks[len(digits):]
    new_mant = ipart + (("." + fpart + rest) if dot else rest)
    if dot and not fpart and not rest:
        rest, new_mant = "0", new_mant + "0"
    e = _exp10(Fraction(k) * Fraction(10) ** q / Fraction(new_mant))
    return rest + (f"e{e}" if e else "")


def _exp10(ratio: Fraction) -> int:
    """log10 of an exact power of ten."""
    e = 0
    while ratio >= 10:
        ratio /= 10
        e += 1
    while ratio < 1:
        ratio *= 10
        e -= 1
    return e


def _short_decimal(lo: Fraction, hi: Optional[Fraction], g: Optional[int]) -> Optional[Tuple[int, int]]:
    """A short positive decimal k * 10**q in [lo, hi] (lo > 0 unless g is given) whose
    significant digits start with those of g (any when None); None if there is none."""
    if hi is not None and hi <= 0:
        return None
    # decades to try: around lo, around hi
    anchor = lo if lo > 0 else (hi if hi is not None else Fraction(1))
    if anchor <= 0:
        anchor = Fraction(1)
    base = _exp10_floor(anchor)
    js = range(base - 2, base + 3) if hi is not None or lo > 0 else range(base, base + 1)
    if g is not None:
        n = len(str(g))
        for j in sorted(set(list(js) + ([_exp10_floor(hi)] if hi is not None and hi > 0 else []))):
            a = Fraction(g) * Fraction(10) ** (j - n + 1)
            b = Fraction(g + 1) * Fraction(10) ** (j - n + 1)
            a2, b2 = max(a, lo), (b if hi is None else min(b, hi))
            if a2 > b2 or (a2 == b2 and b2 == b):
                continue
            if a2 == b2:  # one value: its exact digits
                point = _decimal_of(a2)
                if point is not None and a2 < b:
                    return point
                continue
            for q in range(j - n + 1, j - n - 25, -1):
                unit = Fraction(10) ** q
                # the middle first: at the edges of a float's band decimals may round away
                for k in (round((a2 + b2) / 2 / unit), math.ceil(a2 / unit)):
                    if a2 <= k * unit <= b2 and k * unit < b:
                        return k, q
        if hi is None:
            j = max(base, 0) + 1
            return g, j
        if lo == 0:  # tiny magnitudes: g * 10**q for a very negative q
            q = _exp10_floor(hi) - len(str(g)) - 1
            return g, q
        return None
    hi_ = hi if hi is not None else lo * 10 + 1
    for q in range(_exp10_floor(hi_) + 1, _exp10_floor(hi_) - 40, -1):
        unit = Fraction(10) ** q
        for k in (round((lo + hi_) / 2 / unit), math.ceil(lo / unit)):
            if k > 0 and lo <= k * unit <= hi_:
                return k, q
    return None


def _decimal_of(x: Fraction) -> Optional[Tuple[int, int]]:
    """x as k * 10**q with k an integer (None if x is not a finite decimal)."""
    d, p = x.denominator, 0
    while d % 10 == 0:
        d //= 10
        p += 1
    while d % 2 == 0 or d % 5 == 0:
        d = d // 2 if d % 2 == 0 else d // 5
        p += 1
    if d != 1:
        return None
    k, q = int(x * 10**p), -p
    while k and k % 10 == 0:
        k //= 10
        q += 1
    return k, q


def _exp10_floor(x: Fraction) -> int:
    """floor(log10(x)) of a positive fraction, exactly."""
    e = len(str(x.numerator)) - len(str(x.denominator))
    p = Fraction(10) ** e
    while p > x:
        e -= 1
        p /= 10
    while p * 10 <= x:
        e += 1
        p *= 10
    return e


def _exponent_suffix(m: Fraction, exp: str, lo: Fraction, hi: Optional[Fraction]) -> Optional[str]:
    """Exponent digits after `exp` ("", "+", "-", "-1", ...) putting m * 10**E in [lo, hi]."""
    typed = exp.lstrip("+-")
    if m == 0:
        return ("" if typed else "0") if lo == 0 else None
    # the exponents allowed: [elo, ehi] (None: unbounded)
    elo: Optional[int] = None
    if lo > 0:
        elo = _exp10_floor(lo / m)
        if m * Fraction(10) ** elo < lo:
            elo += 1
    ehi = None if hi is None else _exp10_floor(hi / m) if hi > 0 else None
    if hi is not None and hi <= 0:
        return None
    if elo is not None and ehi is not None and elo > ehi:
        return None
    signs = [(-1 if exp.startswith("-") else 1)] if exp else [1, -1]
    for sgn in signs:
        # the magnitudes of E wanted: [a, b] (b None: unbounded)
        if sgn > 0:
            a, b = max(elo or 0, 0), ehi
        else:
            a = max(-ehi, 0) if ehi is not None else 0
            b = None if elo is None else -elo
        if b is not None and a > b:
            continue
        lead = ("-" if sgn < 0 else "") if not exp else ""
        if not typed:
            return lead + str(a)
        t = int(typed)
        for k in range(0, 9):
            first, last = t * 10**k, t * 10**k + 10**k - 1
            if b is not None and first > b:
                break
            if last >= a:
                v = max(first, a)
                return str(v - first).zfill(k) if k else ""
    return None


def _number_candidates(node: SchemaNode, integer: bool) -> List[str]:
    lo, hi = node.int_range()
    cands = [0]
    if lo is not None:
        cands.append(lo)
    if hi is not None:
        cands.append(hi)
    if lo is not None and hi is not None and lo <= hi:
        cands.append((lo + hi) // 2)
    m = node.multiple_of
    if m is not None and isinstance(m, int) and m > 0:
        if lo is not None:
            cands.append(-(-lo // m) * m)
        if hi is not None:
            cands.append((hi // m) * m)
    out = [str(c) for c in cands]
    if not integer:
        for v in (node.minimum, node.maximum, node.exmin, node.exmax, m):
            if v is not None:
                out.append(json.dumps(v))
        bounds = [v for v in (node.minimum, node.exmin) if v is not None]
        tops = [v for v in (node.maximum, node.exmax) if v is not None]
        if bounds and tops:
            out.append(repr((max(bounds) + min(tops)) / 2))
    return out
