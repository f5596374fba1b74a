"""llama.cpp's Unicode helpers (src/unicode.cpp): lenient UTF-8 decoding, code point flags,
GPT-2 byte<->unicode mapping, lowercase and first-code-point NFD.

Decoding is llama.cpp's, not Python's: `cpts_from_utf8` never fails. A byte that does not
start a well-formed sequence (by llama.cpp's loose rules: lead byte + continuation bytes,
no overlong / surrogate / range checks) becomes U+FFFD and decoding resumes at the next
byte. So ``b"\\xc0\\xaf"`` decodes to '/', ``b"\\xed\\xa0\\x80"`` to U+D800, and
``b"\\xf7\\xbf\\xbf\\xbf"`` to 0x1FFFFF, a value re-encoding cannot represent:
`cpt_to_utf8` raises `InvalidUTF8Error` there, where llama.cpp throws an uncaught
std::invalid_argument out of llama_tokenize (the process aborts).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from typing import Dict, List, Tuple

from bitnet.errors import InvalidUTF8Error
from bitnet.tokenizers import _unicode_data as _data

MAX_CODEPOINTS = 0x110000

# unicode_cpt_flags bits (src/unicode.h)
UNDEFINED = 0x0001
NUMBER = 0x0002  # \p{N}
LETTER = 0x0004  # \p{L}
SEPARATOR = 0x0008  # \p{Z}
ACCENT_MARK = 0x0010  # \p{M}
PUNCTUATION = 0x0020  # \p{P}
SYMBOL = 0x0040  # \p{S}
CONTROL = 0x0080  # \p{C}
MASK_CATEGORIES = 0x00FF
WHITESPACE = 0x0100


def _build_flags() -> array:
    flags = array("H", bytes(2 * MAX_CODEPOINTS))
    r = _data.FLAG_RANGES
    for i in range(0, len(r) - 2, 2):
        start, value, end = r[i], r[i + 1], r[i + 2]
        flags[start:end] = array("H", [value]) * (end - start)
    for cpt in _data.WHITESPACE:
        flags[cpt] |= WHITESPACE
    return flags


_FLAGS = _build_flags()
_LOWER: Dict[int, int] = dict(zip(_data.LOWERCASE[0::2], _data.LOWERCASE[1::2]))
_NFD_FIRST = _data.NFD_RANGES[0::3]
_NFD_LAST = _data.NFD_RANGES[1::3]
_NFD_VALUE = _data.NFD_RANGES[2::3]


def cpt_flags(cpt: int) -> int:
    """llama.cpp's flags of a code point (unicode_cpt_flags_from_cpt); UNDEFINED past U+10FFFF."""
    return _FLAGS[cpt] if cpt < MAX_CODEPOINTS else UNDEFINED


def tolower(cpt: int) -> int:
    """Simple lowercase mapping (unicode_tolower)."""
    return _LOWER.get(cpt, cpt)


def nfd_first(cpt: int) -> int:
    """First code point of the NFD decomposition (unicode_cpts_normalize_nfd, per code point)."""
    i = bisect_right(_NFD_FIRST, cpt) - 1
    if i >= 0 and _NFD_FIRST[i] <= cpt <= _NFD_LAST[i]:
        return _NFD_VALUE[i]
    return cpt


def utf8_len(lead: int) -> int:
    """Sequence length implied by a lead byte (unicode_len_utf8): 1, 2, 3 or 4."""
    return (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4)[lead >> 4]


def cpt_from_utf8(data: bytes, offset: int) -> Tuple[int, int]:
    """(code point, next offset) at `offset`; ValueError where llama.cpp throws."""
    b0 = data[offset]
    n = len(data)
    if not b0 & 0x80:
        return b0, offset + 1
    if not b0 & 0x40:
        raise ValueError("invalid character")
    if not b0 & 0x20:
        if offset + 1 >= n or (data[offset + 1] & 0xC0) != 0x80:
            raise ValueError("invalid character")
        return ((b0 & 0x1F) << 6) | (data[offset + 1] & 0x3F), offset + 2
    if not b0 & 0x10:
        if (
            offset + 2 >= n
            or (data[offset + 1] & 0xC0) != 0x80
            or (data[offset + 2] & 0xC0) != 0x80
        ):
            raise ValueError("invalid character")
        cpt = ((b0 & 0x0F) << 12) | ((data[offset + 1] & 0x3F) << 6) | (data[offset + 2] & 0x3F)
        return cpt, offset + 3
    if not b0 & 0x08:
        if (
            offset + 3 >= n
            or (data[offset + 1] & 0xC0) != 0x80
            or (data[offset + 2] & 0xC0) != 0x80
            or (data[offset + 3] & 0xC0) != 0x80
        ):
            raise ValueError("invalid character")
        cpt = (
            ((b0 & 0x07) << 18)
            | ((data[offset + 1] & 0x3F) << 12)
            | ((data[offset + 2] & 0x3F) << 6)
            | (data[offset + 3] & 0x3F)
        )
        return cpt, offset + 4
    raise ValueError("failed to convert utf8 to codepoint")


def cpts_from_utf8(data: bytes) -> List[int]:
    """Code points of `data`, llama.cpp style: each undecodable byte becomes U+FFFD.

    >>> cpts_from_utf8(b"a\\xffb")
    [97, 65533, 98]
    """
    try:  # fast path: strict UTF-8 is a subset of what llama.cpp accepts, with equal results
        return [ord(c) for c in data.decode("utf-8")]
    except UnicodeDecodeError:
        pass
    out: List[int] = []
    offset = 0
    n = len(data)
    while offset < n:
        try:
            cpt, offset = cpt_from_utf8(data, offset)
        except ValueError:
            offset += 1
            cpt = 0xFFFD
        out.append(cpt)
    return out


def cpt_to_utf8(cpt: int) -> bytes:
    """UTF-8 bytes of a code point (surrogates included); InvalidUTF8Error past U+10FFFF."""
    if cpt <= 0x7F:
        return bytes((cpt,))
    if cpt <= 0x7FF:
        return bytes((0xC0 | (cpt >> 6), 0x80 | (cpt & 0x3F)))
    if cpt <= 0xFFFF:
        return bytes((0xE0 | (cpt >> 12), 0x80 | ((cpt >> 6) & 0x3F), 0x80 | (cpt & 0x3F)))
    if cpt <= 0x10FFFF:
        return bytes(
            (
                0xF0 | (cpt >> 18),
                0x80 | ((cpt >> 12) & 0x3F),
                0x80 | ((cpt >> 6) & 0x3F),
                0x80 | (cpt & 0x3F),
            )
        )
    raise InvalidUTF8Error(
        f"code point 0x{cpt:X} decoded from a 4-byte sequence is past U+10FFFF; llama.cpp "
        "aborts on such input (std::invalid_argument 'invalid codepoint')"
    )


def cpts_to_utf8(cpts: List[int]) -> bytes:
    """UTF-8 bytes of code points (see `cpt_to_utf8`)."""
    try:
        return "".join(map(chr, cpts)).encode("utf-8", "surrogatepass")
    except ValueError:  # chr() past 0x10FFFF
        return b"".join(cpt_to_utf8(c) for c in cpts)


def _bytes_to_unicode() -> List[str]:
    """GPT-2's byte -> printable character table (unicode_byte_to_utf8_map)."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table: List[str] = [""] * 256
    for b in keep:
        table[b] = chr(b)
    n = 0
    for b in range(256):
        if not table[b]:
            table[b] = chr(256 + n)
            n += 1
    return table


BYTE_TO_UNICODE: List[str] = _bytes_to_unicode()
UNICODE_TO_BYTE: Dict[str, int] = {c: b for b, c in enumerate(BYTE_TO_UNICODE)}


def byte_encode(data: bytes) -> str:
    """GPT-2 byte-level encoding of raw bytes: one printable character per byte."""
    return "".join([BYTE_TO_UNICODE[b] for b in data])
