/* bn_tokenize.c: the tokenizer hot path in portable C99 (no SIMD): llama.cpp's pre-tokenizer
 * splitters, the byte-level BPE merge loop and SentencePiece's score-driven bigram merge.
 *
 * Every function mirrors the Python reference line for line (reference/bitnet/tokenizers/
 * pretokenizers.py, bpe.py, spm.py, themselves ports of llama.cpp's unicode.cpp and
 * llama-vocab.cpp), so results are identical; tests/test_tokenizer_fastpath.py holds them to
 * the reference and to llama.cpp. Strings are handled as raw bytes: a GPT-2 byte-level
 * vocabulary is decoded back to bytes once, so a word's initial symbols are its bytes.
 * Handles are immutable after construction; every call allocates its own scratch, so one
 * handle may serve several threads at once.
 */
#include "bn_api_tokenize.h"

#include <stdlib.h>
#include <string.h>

#define NCPT 0x110000
#define F_UNDEF 0x0001
#define F_NUM 0x0002
#define F_LET 0x0004
#define F_MARK 0x0010
#define F_WS 0x0100
#define F_CATS 0x00FF
#define CPT_OUT 0xFFFFFFFFu

static uint16_t *g_flags; /* llama.cpp's unicode_cpt_flags, set once from Python */
static int64_t g_live;    /* handles alive */

static void live_add(int64_t d) {
#if defined(__GNUC__) || defined(__clang__)
    __atomic_fetch_add(&g_live, d, __ATOMIC_RELAXED);
#else
    g_live += d;
#endif
}

int64_t bn_tok_live_handles(void) { return g_live; }

int bn_tok_set_unicode(const uint16_t *flags, int64_t n) {
    if (!flags || n != NCPT) return BN_TOK_EARG;
    if (!g_flags) {
        uint16_t *t = (uint16_t *)malloc(sizeof(uint16_t) * NCPT);
        if (!t) return BN_TOK_ENOMEM;
        memcpy(t, flags, sizeof(uint16_t) * NCPT);
        g_flags = t;
    } else {
        memcpy(g_flags, flags, sizeof(uint16_t) * NCPT);
    }
    return 0;
}

static uint16_t cpt_flags(uint32_t c) { return c < NCPT ? g_flags[c] : F_UNDEF; }

/* ---- UTF-8 ------------------------------------------------------------------------------ */

static int utf8_len(uint8_t lead) {
    static const int8_t t[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return t[lead >> 4];
}

/* unicode_cpts_from_utf8 with llama.cpp's loose rules; a bad byte is U+FFFD */
static int64_t decode_lenient(const uint8_t *s, int64_t n, uint32_t *out) {
    int64_t i = 0, k = 0;
    while (i < n) {
        uint8_t b0 = s[i];
        if (!(b0 & 0x80)) {
            out[k++] = b0;
            i += 1;
            continue;
        }
        if (!(b0 & 0x40)) goto bad;
        if (!(b0 & 0x20)) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) goto bad;
            out[k++] = ((uint32_t)(b0 & 0x1F) << 6) | (s[i + 1] & 0x3F);
            i += 2;
            continue;
        }
        if (!(b0 & 0x10)) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) goto bad;
            out[k++] = ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) |
                       (s[i + 2] & 0x3F);
            i += 3;
            continue;
        }
        if (!(b0 & 0x08)) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                goto bad;
            out[k++] = ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
                       ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
            i += 4;
            continue;
        }
    bad:
        out[k++] = 0xFFFD;
        i += 1;
    }
    return k;
}

/* UTF-8 of a code point <= 0x10FFFF (surrogates included); returns the byte count */
static int encode_utf8(uint32_t c, uint8_t *o) {
    if (c <= 0x7F) {
        o[0] = (uint8_t)c;
        return 1;
    }
    if (c <= 0x7FF) {
        o[0] = (uint8_t)(0xC0 | (c >> 6));
        o[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c <= 0xFFFF) {
        o[0] = (uint8_t)(0xE0 | (c >> 12));
        o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18));
    o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

int bn_tok_utf8_offsets(const uint8_t *blob, int64_t n_bytes, const int64_t *n_cpts, int64_t n,
                        int64_t *offs) {
    int64_t i, j, pos = 0;
    offs[0] = 0;
    for (i = 0; i < n; i++) {
        for (j = 0; j < n_cpts[i]; j++) {
            if (pos >= n_bytes) return -1;
            pos += utf8_len(blob[pos]);
        }
        if (pos > n_bytes) return -1;
        offs[i + 1] = pos;
    }
    return pos == n_bytes ? 0 : -1;
}

/* GPT-2's bytes_to_unicode: byte -> code point, and back (-1: not a byte-level character) */
static uint16_t g_b2u[256];
static int16_t g_u2b[324];
static int g_bytemap_ready;

static void bytemap_init(void) {
    int b, n = 0;
    if (g_bytemap_ready) return; /* idempotent: concurrent first calls write the same values */
    for (b = 0; b < 324; b++) g_u2b[b] = -1;
    for (b = 0; b < 256; b++) {
        int keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        g_b2u[b] = (uint16_t)(keep ? b : 256 + n++);
        g_u2b[g_b2u[b]] = (int16_t)b;
    }
    g_bytemap_ready = 1;
}

/* ---- splitters (pretokenizers.py) --------------------------------------------------------
 * Pieces are lengths in code points; each splitter cuts every input piece further.
 */

typedef struct {
    const uint32_t *cp;
    const uint16_t *fl;
    int64_t ini, end;
} span;

static uint16_t FL(const span *s, int64_t p) { return (p >= s->ini && p < s->end) ? s->fl[p] : 0; }
static uint32_t CP(const span *s, int64_t p) { return (p >= s->ini && p < s->end) ? s->cp[p] : CPT_OUT; }

static int64_t split_gpt2(const uint32_t *cp, const uint16_t *fl, const int64_t *in, int64_t nin,
                          int64_t *out) {
    int64_t no = 0, start = 0, k;
    for (k = 0; k < nin; k++) {
        span s;
        int64_t prev, pos;
        s.cp = cp;
        s.fl = fl;
        s.ini = start;
        s.end = start + in[k];
        start = s.end;
        prev = pos = s.ini;
        while (pos < s.end) {
            uint32_t c = cp[pos];
            uint16_t f = fl[pos], f2;
            if (c == '\'' && pos + 1 < s.end) {
                uint32_t nx = cp[pos + 1];
                if (nx == 's' || nx == 't' || nx == 'm' || nx == 'd') {
                    pos += 2;
                    out[no++] = pos - prev;
                    prev = pos;
                    continue;
                }
                if (pos + 2 < s.end) {
                    uint32_t n2 = cp[pos + 2];
                    if ((nx == 'r' && n2 == 'e') || (nx == 'v' && n2 == 'e') || (nx == 'l' && n2 == 'l')) {
                        pos += 3;
                        out[no++] = pos - prev;
                        prev = pos;
                        continue;
                    }
                }
            }
            f2 = c == ' ' ? FL(&s, pos + 1) : f;
            if (f2 & F_LET) {
                pos += c == ' ';
                while (f2 & F_LET) f2 = FL(&s, ++pos);
            } else if (f2 & F_NUM) {
                pos += c == ' ';
                while (f2 & F_NUM) f2 = FL(&s, ++pos);
            } else if (!(f2 & (F_WS | F_LET | F_NUM)) && f2) {
                pos += c == ' ';
                while (!(f2 & (F_WS | F_LET | F_NUM)) && f2) f2 = FL(&s, ++pos);
            } else {
                int64_t nws = 0;
                while (FL(&s, pos + nws) & F_WS) nws++;
                if (nws > 1 && CP(&s, pos + nws) != CPT_OUT)
                    pos += nws - 1; /* \s+(?!\S) */
                else if (nws > 0)
                    pos += nws; /* \s+ */
                else
                    pos += 1;
            }
            if (pos > prev) out[no++] = pos - prev;
            prev = pos;
        }
    }
    return no;
}

static uint32_t ascii_lower(uint32_t c) {
    /* unicode_tolower; only compared with ASCII letters, and no non-ASCII code point lowers
     * to one of s t m d r e v l in llama.cpp's table */
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* variant: BN_SPLIT_LLAMA3 / QWEN2 / QWEN35 */
static int64_t split_llama3(const uint32_t *cp, const uint16_t *fl, const int64_t *in, int64_t nin,
                            int64_t *out, int variant) {
    const uint16_t word = variant == BN_SPLIT_QWEN35 ? (F_LET | F_MARK) : F_LET;
    const uint16_t not_punct = (uint16_t)(F_WS | F_LET | F_NUM | (variant == BN_SPLIT_QWEN35 ? F_MARK : 0));
    int64_t no = 0, start = 0, k;
    for (k = 0; k < nin; k++) {
        span s;
        int64_t prev, pos;
        s.cp = cp;
        s.fl = fl;
        s.ini = start;
        s.end = start + in[k];
        start = s.end;
        prev = pos = s.ini;
        while (pos < s.end) {
            uint32_t c = cp[pos], c2;
            uint16_t f = fl[pos], f2;
            int64_t nws, last_rn;
            if (c == '\'' && pos + 1 < s.end) { /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
                uint32_t nx = ascii_lower(cp[pos + 1]);
                if (nx == 's' || nx == 't' || nx == 'm' || nx == 'd') {
                    pos += 2;
                    out[no++] = pos - prev;
                    prev = pos;
                    continue;
                }
                if (pos + 2 < s.end) {
                    uint32_t n2 = ascii_lower(cp[pos + 2]);
                    if ((nx == 'r' && n2 == 'e') || (nx == 'v' && n2 == 'e') || (nx == 'l' && n2 == 'l')) {
                        pos += 3;
                        out[no++] = pos - prev;
                        prev = pos;
                        continue;
                    }
                }
            }
            if (!(c == '\r' || c == '\n' || (f & F_NUM))) { /* [^\r\n\p{L}\p{N}]?\p{L}+ */
                if ((f & word) || (FL(&s, pos + 1) & word)) {
                    pos += 1;
                    while (FL(&s, pos) & word) pos++;
                    out[no++] = pos - prev;
                    prev = pos;
                    continue;
                }
            }
            if (f & F_NUM) {
                if (variant == BN_SPLIT_LLAMA3) { /* \p{N}{1,3} */
                    int64_t ini_n = pos;
                    while (FL(&s, pos) & F_NUM) {
                        pos++;
                        if (pos - ini_n >= 3) {
                            out[no++] = pos - prev;
                            prev = pos;
                            ini_n = pos;
                        }
                    }
                    if (pos > prev) out[no++] = pos - prev;
                    prev = pos;
                } else { /* \p{N} */
                    pos += 1;
                    out[no++] = pos - prev;
                    prev = pos;
                }
                continue;
            }
            f2 = c == ' ' ? FL(&s, pos + 1) : f;
            if (!(f2 & not_punct) && f) { /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
                pos += c == ' ';
                while (!(f2 & not_punct) && f2) f2 = FL(&s, ++pos);
                c2 = CP(&s, pos);
                while (c2 == '\r' || c2 == '\n') c2 = CP(&s, ++pos);
                out[no++] = pos - prev;
                prev = pos;
                continue;
            }
            nws = 0;
            last_rn = 0;
            while (FL(&s, pos + nws) & F_WS) {
                c2 = CP(&s, pos + nws);
                if (c2 == '\r' || c2 == '\n') last_rn = pos + nws + 1;
                nws++;
            }
            if (last_rn > 0)
                pos = last_rn; /* \s*[\r\n]+ */
            else if (nws > 1 && CP(&s, pos + nws) != CPT_OUT)
                pos += nws - 1; /* \s+(?!\S) */
            else if (nws > 0)
                pos += nws; /* \s+ */
            else
                pos += 1;
            if (pos > prev) out[no++] = pos - prev;
            prev = pos;
        }
    }
    return no;
}

static int64_t split_newlines(const uint32_t *cp, const int64_t *in, int64_t nin, int64_t *out) {
    int64_t no = 0, start = 0, k;
    for (k = 0; k < nin; k++) {
        int64_t pos = start, end = start + in[k];
        start = end;
        while (pos < end) {
            int nl = cp[pos] == '\n';
            int64_t run = pos;
            while (pos < end && (cp[pos] == '\n') == nl) pos++;
            out[no++] = pos - run;
        }
    }
    return no;
}

/* "\p{N}" run by std::regex over the collapsed text: each number code point is a match, the
 * text between matches a piece of its own */
static int64_t split_digit(const uint32_t *cp, const uint16_t *fl, const int64_t *in, int64_t nin,
                           int64_t *out) {
    int64_t no = 0, start = 0, k;
    for (k = 0; k < nin; k++) {
        int64_t pos = start, end = start + in[k], gap = start;
        start = end;
        for (; pos < end; pos++) {
            uint32_t c = cp[pos];
            int is_num = c < 128 ? (c >= '0' && c <= '9')
                                 : (!(fl[pos] & F_WS) && (fl[pos] & F_CATS) == F_NUM);
            if (!is_num) continue;
            if (pos > gap) out[no++] = pos - gap;
            out[no++] = 1;
            gap = pos + 1;
        }
        if (end > gap) out[no++] = end - gap;
    }
    return no;
}

/* decoded text plus its pieces after the splitter chain */
typedef struct {
    uint32_t *cp;
    uint16_t *fl;
    int64_t *lens;
    int64_t n_cpt, n_words;
} split_result;

static void split_free(split_result *r) {
    free(r->cp);
    free(r->fl);
    free(r->lens);
}

static int split_run(const int32_t *kinds, int32_t n_kinds, const uint8_t *text, int64_t len,
                     split_result *r) {
    int64_t i, *tmp, *a, *b, na;
    int32_t k;
    memset(r, 0, sizeof(*r));
    if (!g_flags || len < 0 || (len > 0 && !text) || n_kinds < 0) return BN_TOK_EARG;
    for (k = 0; k < n_kinds; k++)
        if (kinds[k] < BN_SPLIT_GPT2 || kinds[k] > BN_SPLIT_DIGIT) return BN_TOK_EARG;
    r->cp = (uint32_t *)malloc(sizeof(uint32_t) * (size_t)(len + 1));
    r->fl = (uint16_t *)malloc(sizeof(uint16_t) * (size_t)(len + 1));
    r->lens = (int64_t *)malloc(sizeof(int64_t) * (size_t)(len + 1));
    tmp = (int64_t *)malloc(sizeof(int64_t) * (size_t)(len + 1));
    if (!r->cp || !r->fl || !r->lens || !tmp) {
        free(tmp);
        split_free(r);
        return BN_TOK_ENOMEM;
    }
    r->n_cpt = decode_lenient(text, len, r->cp);
    for (i = 0; i < r->n_cpt; i++) {
        if (r->cp[i] >= NCPT) { /* every code point lands in some word, whose re-encoding fails */
            free(tmp);
            split_free(r);
            return BN_TOK_EUTF8;
        }
        r->fl[i] = cpt_flags(r->cp[i]);
    }
    a = r->lens;
    b = tmp;
    a[0] = r->n_cpt;
    na = 1;
    for (k = 0; k < n_kinds; k++) {
        int64_t nb = 0;
        switch (kinds[k]) {
        case BN_SPLIT_GPT2: nb = split_gpt2(r->cp, r->fl, a, na, b); break;
        case BN_SPLIT_NEWLINES: nb = split_newlines(r->cp, a, na, b); break;
        case BN_SPLIT_DIGIT: nb = split_digit(r->cp, r->fl, a, na, b); break;
        default: nb = split_llama3(r->cp, r->fl, a, na, b, kinds[k]); break;
        }
        tmp = a;
        a = b;
        b = tmp;
        na = nb;
    }
    if (a != r->lens) { /* keep the result in r->lens */
        memcpy(r->lens, a, sizeof(int64_t) * (size_t)na);
        free(a);
    } else {
        free(b);
    }
    r->n_words = na;
    return 0;
}

int64_t bn_tok_split(const int32_t *kinds, int32_t n_kinds, const uint8_t *text, int64_t len,
                     uint8_t *out_raw, int64_t *word_ends, uint8_t *out_enc, int64_t *enc_len) {
    split_result r;
    int64_t w, i, pos = 0, o = 0, nbytes;
    int rc = split_run(kinds, n_kinds, text, len, &r);
    if (rc) return rc;
    for (w = 0; w < r.n_words; w++) {
        int64_t end = pos + r.lens[w];
        for (; pos < end; pos++) o += encode_utf8(r.cp[pos], out_raw + o);
        word_ends[w] = o;
    }
    nbytes = o;
    if (out_enc) {
        bytemap_init();
        o = 0;
        for (i = 0; i < nbytes; i++) o += encode_utf8(g_b2u[out_raw[i]], out_enc + o);
        if (enc_len) *enc_len = o;
    }
    split_free(&r);
    return r.n_words;
}

/* ---- hash maps ------------------------------------------------------------------------- */

static uint64_t hash_bytes(const uint8_t *p, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    int64_t i;
    for (i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* byte strings -> dense ids (sid), strings copied into one blob */
typedef struct {
    int32_t *slots; /* sid or -1 */
    uint64_t mask;
    uint8_t *blob;
    int64_t blob_len, blob_cap;
    int64_t *off;
    int32_t *len;
    uint64_t *hash;
    int32_t *val; /* per sid: token id or -1 */
    int64_t n, cap;
} strmap;

static int strmap_init(strmap *m, int64_t expect) {
    uint64_t size = 16;
    int64_t i;
    memset(m, 0, sizeof(*m));
    while (size < (uint64_t)expect * 2) size <<= 1;
    m->slots = (int32_t *)malloc(sizeof(int32_t) * size);
    if (!m->slots) return -1;
    for (i = 0; i < (int64_t)size; i++) m->slots[i] = -1;
    m->mask = size - 1;
    return 0;
}

static void strmap_free(strmap *m) {
    free(m->slots);
    free(m->blob);
    free(m->off);
    free(m->len);
    free(m->hash);
    free(m->val);
}

static int32_t strmap_find_h(const strmap *m, const uint8_t *p, int64_t n, uint64_t h) {
    uint64_t i = h & m->mask;
    for (;;) {
        int32_t s = m->slots[i];
        if (s < 0) return -1;
        if (m->hash[s] == h && m->len[s] == n && memcmp(m->blob + m->off[s], p, (size_t)n) == 0) return s;
        i = (i + 1) & m->mask;
    }
}

static int32_t strmap_find(const strmap *m, const uint8_t *p, int64_t n) {
    return strmap_find_h(m, p, n, hash_bytes(p, n));
}

static int strmap_grow_slots(strmap *m) {
    uint64_t size = (m->mask + 1) * 2, i;
    int32_t *slots = (int32_t *)malloc(sizeof(int32_t) * size);
    int64_t s;
    if (!slots) return -1;
    for (i = 0; i < size; i++) slots[i] = -1;
    for (s = 0; s < m->n; s++) {
        i = m->hash[s] & (size - 1);
        while (slots[i] >= 0) i = (i + 1) & (size - 1);
        slots[i] = (int32_t)s;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = size - 1;
    return 0;
}

/* sid of p[0..n), added if new; -1 when out of memory */
static int32_t strmap_intern(strmap *m, const uint8_t *p, int64_t n) {
    uint64_t h = hash_bytes(p, n), i;
    int32_t s = strmap_find_h(m, p, n, h);
    if (s >= 0) return s;
    if ((uint64_t)(m->n + 1) * 2 > m->mask + 1 && strmap_grow_slots(m)) return -1;
    if (m->n == m->cap) {
        int64_t cap = m->cap ? m->cap * 2 : 1024;
        int64_t *off = (int64_t *)realloc(m->off, sizeof(int64_t) * (size_t)cap);
        int32_t *len, *val;
        uint64_t *hash;
        if (!off) return -1;
        m->off = off;
        len = (int32_t *)realloc(m->len, sizeof(int32_t) * (size_t)cap);
        if (!len) return -1;
        m->len = len;
        hash = (uint64_t *)realloc(m->hash, sizeof(uint64_t) * (size_t)cap);
        if (!hash) return -1;
        m->hash = hash;
        val = (int32_t *)realloc(m->val, sizeof(int32_t) * (size_t)cap);
        if (!val) return -1;
        m->val = val;
        m->cap = cap;
    }
    if (m->blob_len + n > m->blob_cap) {
        int64_t cap = m->blob_cap ? m->blob_cap : 4096;
        uint8_t *blob;
        while (cap < m->blob_len + n) cap *= 2;
        blob = (uint8_t *)realloc(m->blob, (size_t)cap);
        if (!blob) return -1;
        m->blob = blob;
        m->blob_cap = cap;
    }
    if (n) memcpy(m->blob + m->blob_len, p, (size_t)n);
    s = (int32_t)m->n++;
    m->off[s] = m->blob_len;
    m->len[s] = (int32_t)n;
    m->hash[s] = h;
    m->val[s] = -1;
    m->blob_len += n;
    i = h & m->mask;
    while (m->slots[i] >= 0) i = (i + 1) & m->mask;
    m->slots[i] = s;
    return s;
}

/* (left sid, right sid) -> (rank, merged sid) */
typedef struct {
    uint64_t key;
    int32_t rank, merged;
} pair_slot;

typedef struct {
    pair_slot *slots;
    uint64_t mask;
} pairmap;

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
static uint64_t pair_hash(uint64_t key) { return (key * 0x9E3779B97F4A7C15ull) >> 17; }

static const pair_slot *pairmap_find(const pairmap *m, int32_t a, int32_t b) {
    uint64_t key = pair_key(a, b), i = pair_hash(key) & m->mask;
    for (;;) {
        const pair_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
        i = (i + 1) & m->mask;
    }
}

/* ---- byte-level BPE ------------------------------------------------------------------------ */

struct bn_bpe {
    strmap str;
    pairmap pairs;
    int32_t byte_sid[256]; /* sid of each single raw byte (-1: in no token or merge) */
    int32_t fallback[256];
    int byte_encode, ignore_merges, whole_newline_words;
    int rank_mode; /* tiktoken: byte symbols, raw tokens, a final symbol without a rank fails */
};

/* a vocabulary string as raw bytes into buf (capacity n); -1 if it is not byte-level text */
static int64_t vocab_raw(const uint8_t *s, int64_t n, int byte_encode, uint8_t *buf, uint32_t *cps) {
    int64_t k, i;
    if (!byte_encode) {
        memcpy(buf, s, (size_t)n);
        return n;
    }
    k = decode_lenient(s, n, cps);
    for (i = 0; i < k; i++) {
        if (cps[i] >= 324 || g_u2b[cps[i]] < 0) return -1;
        buf[i] = (uint8_t)g_u2b[cps[i]];
    }
    return k;
}

void bn_bpe_free(bn_bpe *h) {
    if (!h) return;
    strmap_free(&h->str);
    free(h->pairs.slots);
    free(h);
    live_add(-1);
}

bn_bpe *bn_bpe_new(int64_t n_tok, int64_t n_merges, const uint8_t *blob, const int64_t *offs,
                   const int32_t *tok_ids, const int32_t *merge_ranks, int32_t byte_encode,
                   const int32_t *fallback, int32_t flags) {
    bn_bpe *h;
    int64_t i, maxlen = 0, n_str = n_tok + 2 * n_merges;
    uint8_t *buf = NULL;
    uint32_t *cps = NULL;
    uint64_t psize = 16;
    if (n_tok < 0 || n_merges < 0) return NULL;
    bytemap_init();
    h = (bn_bpe *)calloc(1, sizeof(bn_bpe));
    if (!h) return NULL;
    live_add(1);
    h->byte_encode = byte_encode != 0;
    h->ignore_merges = (flags & 1) != 0;
    h->whole_newline_words = (flags & 2) != 0;
    memcpy(h->fallback, fallback, sizeof(h->fallback));
    while (psize < (uint64_t)n_merges * 2) psize <<= 1;
    h->pairs.slots = (pair_slot *)malloc(sizeof(pair_slot) * psize);
    h->pairs.mask = psize - 1;
    if (!h->pairs.slots || strmap_init(&h->str, n_tok + n_merges)) goto fail;
    for (i = 0; i < (int64_t)psize; i++) h->pairs.slots[i].key = UINT64_MAX;
    for (i = 0; i < n_str; i++)
        if (offs[i + 1] - offs[i] > maxlen) maxlen = offs[i + 1] - offs[i];
    buf = (uint8_t *)malloc((size_t)(2 * maxlen + 1));
    cps = (uint32_t *)malloc(sizeof(uint32_t) * (size_t)(maxlen + 1));
    if (!buf || !cps) goto fail;
    for (i = 0; i < n_tok; i++) {
        int64_t n;
        int32_t s;
        if (tok_ids[i] < 0) continue;
        n = vocab_raw(blob + offs[i], offs[i + 1] - offs[i], h->byte_encode, buf, cps);
        if (n < 0) continue;
        s = strmap_intern(&h->str, buf, n);
        if (s < 0) goto fail;
        h->str.val[s] = tok_ids[i];
    }
    for (i = 0; i < n_merges; i++) {
        int64_t l = n_tok + 2 * i, r = l + 1, na, nb;
        int32_t a, b, m;
        uint64_t key, j;
        if (merge_ranks[i] < 0) continue;
        na = vocab_raw(blob + offs[l], offs[l + 1] - offs[l], h->byte_encode, buf, cps);
        if (na < 0) continue;
        nb = vocab_raw(blob + offs[r], offs[r + 1] - offs[r], h->byte_encode, buf + na, cps);
        if (nb < 0) continue;
        a = strmap_intern(&h->str, buf, na);
        b = a < 0 ? -1 : strmap_intern(&h->str, buf + na, nb);
        m = b < 0 ? -1 : strmap_intern(&h->str, buf, na + nb);
        if (m < 0) goto fail;
        key = pair_key(a, b);
        j = pair_hash(key) & h->pairs.mask;
        while (h->pairs.slots[j].key != UINT64_MAX && h->pairs.slots[j].key != key) j = (j + 1) & h->pairs.mask;
        if (h->pairs.slots[j].key == key) continue; /* the first rank stays (dict keys are unique) */
        h->pairs.slots[j].key = key;
        h->pairs.slots[j].rank = merge_ranks[i];
        h->pairs.slots[j].merged = m;
    }
    for (i = 0; i < 256; i++) {
        uint8_t c = (uint8_t)i;
        h->byte_sid[i] = strmap_find(&h->str, &c, 1);
    }
    free(buf);
    free(cps);
    return h;
fail:
    free(buf);
    free(cps);
    bn_bpe_free(h);
    return NULL;
}

typedef struct {
    int32_t rank, left, right, a, b, merged;
} bpe_item;

static int bpe_less(const bpe_item *x, const bpe_item *y) {
    if (x->rank != y->rank) return x->rank < y->rank;
    if (x->left != y->left) return x->left < y->left;
    return x->right < y->right;
}

/* A binary min-heap of T ordered by LESS (the first to pop is the one no other is LESS than):
 * defines PREFIX_push(heap, &n, item) and PREFIX_pop(heap, &n); the caller owns the array. */
#define BN_DEFINE_HEAP(PREFIX, T, LESS)                                   \
    static void PREFIX##_push(T *heap, int64_t *n, T it) {                \
        int64_t i = (*n)++;                                               \
        while (i > 0) {                                                   \
            int64_t p = (i - 1) / 2;                                      \
            if (!LESS(&it, &heap[p])) break;                              \
            heap[i] = heap[p];                                            \
            i = p;                                                        \
        }                                                                 \
        heap[i] = it;                                                     \
    }                                                                     \
    static T PREFIX##_pop(T *heap, int64_t *n) {                          \
        T top = heap[0], last = heap[--(*n)];                             \
        int64_t i = 0;                                                    \
        for (;;) {                                                        \
            int64_t c = 2 * i + 1;                                        \
            if (c >= *n) break;                                           \
            if (c + 1 < *n && LESS(&heap[c + 1], &heap[c])) c++;          \
            if (!LESS(&heap[c], &last)) break;                            \
            heap[i] = heap[c];                                            \
            i = c;                                                        \
        }                                                                 \
        if (*n > 0) heap[i] = last;                                       \
        return top;                                                       \
    }

BN_DEFINE_HEAP(bpe, bpe_item, bpe_less)

/* per-call scratch for words of up to `cap` bytes */
typedef struct {
    int32_t *start, *len, *sid, *nxt, *prv;
    bpe_item *heap;
    int64_t cap;
} bpe_scratch;

static void scratch_free(bpe_scratch *s) {
    free(s->start);
    free(s->len);
    free(s->sid);
    free(s->nxt);
    free(s->prv);
    free(s->heap);
}

static int scratch_init(bpe_scratch *s, int64_t cap) {
    size_t n = (size_t)(cap + 1);
    s->cap = cap;
    s->start = (int32_t *)malloc(sizeof(int32_t) * n);
    s->len = (int32_t *)malloc(sizeof(int32_t) * n);
    s->sid = (int32_t *)malloc(sizeof(int32_t) * n);
    s->nxt = (int32_t *)malloc(sizeof(int32_t) * n);
    s->prv = (int32_t *)malloc(sizeof(int32_t) * n);
    s->heap = (bpe_item *)malloc(sizeof(bpe_item) * 3 * n);
    if (!s->start || !s->len || !s->sid || !s->nxt || !s->prv || !s->heap) {
        scratch_free(s);
        return -1;
    }
    return 0;
}

static void bpe_try(const bn_bpe *h, bpe_scratch *s, int64_t *nh, int32_t l, int32_t r) {
    const pair_slot *p;
    bpe_item it;
    if (l < 0 || r < 0 || s->sid[l] < 0 || s->sid[r] < 0) return;
    p = pairmap_find(&h->pairs, s->sid[l], s->sid[r]);
    if (!p) return;
    it.rank = p->rank;
    it.left = l;
    it.right = r;
    it.a = s->sid[l];
    it.b = s->sid[r];
    it.merged = p->merged;
    bpe_push(s->heap, nh, it);
}

/* bytes of a final symbol missing from the vocabulary, one token per byte (BPE.encode_word) */
static int64_t bpe_fallback(const bn_bpe *h, const uint8_t *p, int64_t n, int32_t *out) {
    int64_t i, k = 0;
    for (i = 0; i < n; i++) {
        if (h->byte_encode) {
            uint8_t u[4];
            int j, nu = encode_utf8(g_b2u[p[i]], u);
            for (j = 0; j < nu; j++)
                if (h->fallback[u[j]] >= 0) out[k++] = h->fallback[u[j]];
        } else if (h->fallback[p[i]] >= 0) {
            out[k++] = h->fallback[p[i]];
        }
    }
    return k;
}

static int64_t bpe_word(const bn_bpe *h, const uint8_t *w, int64_t len, int32_t *out, bpe_scratch *s) {
    int64_t n = 0, i, nh = 0, k = 0;
    int32_t j;
    if (len <= 0) return 0;
    if (h->ignore_merges || (h->whole_newline_words && !h->byte_encode)) {
        int whole = h->ignore_merges;
        if (!whole) {
            whole = 1;
            for (i = 0; i < len; i++)
                if (w[i] != '\n') {
                    whole = 0;
                    break;
                }
        }
        if (whole) {
            int32_t sid = strmap_find(&h->str, w, len);
            if (sid >= 0 && h->str.val[sid] >= 0) {
                out[0] = h->str.val[sid];
                return 1;
            }
        }
    }
    /* initial symbols: bytes (byte-level), else UTF-8 characters cut by their lead bytes */
    for (i = 0; i < len; n++) {
        int64_t m = (h->byte_encode || h->rank_mode) ? 1 : utf8_len(w[i]);
        if (m > len - i) m = len - i;
        s->start[n] = (int32_t)i;
        s->len[n] = (int32_t)m;
        s->sid[n] = m == 1 ? h->byte_sid[w[i]] : strmap_find(&h->str, w + i, m);
        s->nxt[n] = (int32_t)n + 1;
        s->prv[n] = (int32_t)n - 1;
        i += m;
    }
    s->nxt[n - 1] = -1;
    for (j = 0; j + 1 < n; j++) bpe_try(h, s, &nh, j, j + 1);
    while (nh > 0) {
        bpe_item it = bpe_pop(s->heap, &nh);
        int32_t l = it.left, r = it.right;
        if (s->len[l] == 0 || s->len[r] == 0 || s->sid[l] != it.a || s->sid[r] != it.b) continue;
        s->sid[l] = it.merged;
        s->len[l] += s->len[r];
        s->len[r] = 0;
        s->nxt[l] = s->nxt[r];
        if (s->nxt[r] >= 0) s->prv[s->nxt[r]] = l;
        bpe_try(h, s, &nh, s->prv[l], l);
        bpe_try(h, s, &nh, l, s->nxt[l]);
    }
    for (j = 0; j >= 0; j = s->nxt[j]) {
        int32_t sid = s->sid[j];
        if (sid >= 0 && h->str.val[sid] >= 0)
            out[k++] = h->str.val[sid];
        else if (h->rank_mode)
            return BN_TOK_ENOBYTE;
        else
            k += bpe_fallback(h, w + s->start[j], s->len[j], out + k);
    }
    return k;
}

int64_t bn_bpe_encode_word(const bn_bpe *h, const uint8_t *word, int64_t len, int32_t *out) {
    bpe_scratch s;
    int64_t n;
    if (!h || len < 0 || len > 0x3FFFFFFF) return BN_TOK_EARG;
    if (len == 0) return 0;
    if (scratch_init(&s, len)) return BN_TOK_ENOMEM;
    n = bpe_word(h, word, len, out, &s);
    scratch_free(&s);
    return n;
}

/* words of up to this many bytes are remembered within one call (most text repeats words) */
#define BPE_CACHE_MAX_WORD 64

/* ids of n_words words lying end to end in raw (word w at raw[wstart[w]..wstart[w+1])) */
static int64_t encode_words(const bn_bpe *h, const uint8_t *raw, const int64_t *wstart,
                            int64_t n_words, int32_t *out) {
    bpe_scratch s;
    int64_t w, k = 0, maxw = 0, n_cached = 0, *wout;
    int32_t *slots;
    uint64_t mask = 15, i;
    while (mask + 1 < (uint64_t)n_words * 2 && mask + 1 < (1u << 20)) mask = mask * 2 + 1;
    for (w = 0; w < n_words; w++)
        if (wstart[w + 1] - wstart[w] > maxw) maxw = wstart[w + 1] - wstart[w];
    if (maxw > 0x3FFFFFFF) return BN_TOK_EARG; /* symbol indices are int32 */
    wout = (int64_t *)malloc(sizeof(int64_t) * (size_t)(n_words + 1));
    slots = (int32_t *)malloc(sizeof(int32_t) * (size_t)(mask + 1));
    if (!wout || !slots || scratch_init(&s, maxw)) {
        free(wout);
        free(slots);
        return BN_TOK_ENOMEM;
    }
    for (i = 0; i <= mask; i++) slots[i] = -1;
    for (w = 0; w < n_words; w++) {
        const uint8_t *p = raw + wstart[w];
        int64_t n = wstart[w + 1] - wstart[w], m;
        uint64_t j = 0;
        int found = 0;
        wout[w] = k;
        if (n <= BPE_CACHE_MAX_WORD) { /* ids of an earlier equal word are already in out */
            j = hash_bytes(p, n) & mask;
            while (slots[j] >= 0) {
                int64_t v = slots[j];
                if (wstart[v + 1] - wstart[v] == n && memcmp(raw + wstart[v], p, (size_t)n) == 0) {
                    m = wout[v + 1] - wout[v];
                    memcpy(out + k, out + wout[v], sizeof(int32_t) * (size_t)m);
                    k += m;
                    found = 1;
                    break;
                }
                j = (j + 1) & mask;
            }
        }
        if (found) continue;
        m = bpe_word(h, p, n, out + k, &s);
        if (m < 0) {
            k = m;
            break;
        }
        k += m;
        if (n <= BPE_CACHE_MAX_WORD && (uint64_t)(n_cached + 1) * 2 <= mask + 1) {
            slots[j] = (int32_t)w; /* j: the empty slot the probe stopped at */
            n_cached++;
        }
    }
    scratch_free(&s);
    free(slots);
    free(wout);
    return k;
}

int64_t bn_bpe_tokenize(const bn_bpe *h, const int32_t *kinds, int32_t n_kinds,
                        const uint8_t *text, int64_t len, int32_t *out) {
    split_result r;
    uint8_t *raw;
    int64_t w, pos = 0, k, nb = 0, *wstart;
    int rc;
    if (!h || h->rank_mode || len > 0x3FFFFFFF) return BN_TOK_EARG;
    rc = split_run(kinds, n_kinds, text, len, &r);
    if (rc) return rc;
    raw = (uint8_t *)malloc((size_t)(3 * len + 1));
    wstart = (int64_t *)malloc(sizeof(int64_t) * (size_t)(r.n_words + 1));
    if (!raw || !wstart) {
        k = BN_TOK_ENOMEM;
        goto done;
    }
    for (w = 0; w < r.n_words; w++) { /* re-encode: the words' raw bytes, end to end */
        int64_t end = pos + r.lens[w];
        wstart[w] = nb;
        for (; pos < end; pos++) nb += encode_utf8(r.cp[pos], raw + nb);
    }
    wstart[r.n_words] = nb;
    k = encode_words(h, raw, wstart, r.n_words, out);
done:
    free(wstart);
    free(raw);
    split_free(&r);
    return k;
}

/* ---- tiktoken ---------------------------------------------------------------------------- */

bn_bpe *bn_rank_bpe_new(int64_t n_tok, const uint8_t *blob, const int64_t *offs,
                        const int32_t *ranks) {
    bn_bpe *h;
    int64_t i, j, n_pairs = 0;
    uint64_t psize = 16;
    if (n_tok < 0) return NULL;
    h = (bn_bpe *)calloc(1, sizeof(bn_bpe));
    if (!h) return NULL;
    live_add(1);
    h->rank_mode = 1;
    h->ignore_merges = 1; /* a piece that is a token is that token */
    for (i = 0; i < 256; i++) h->fallback[i] = -1;
    for (i = 0; i < n_tok; i++) n_pairs += offs[i + 1] - offs[i] > 1 ? offs[i + 1] - offs[i] - 1 : 0;
    while (psize < (uint64_t)n_pairs * 2) psize <<= 1;
    h->pairs.slots = (pair_slot *)malloc(sizeof(pair_slot) * psize);
    h->pairs.mask = psize - 1;
    if (!h->pairs.slots || strmap_init(&h->str, n_tok + 256)) goto fail;
    for (i = 0; i < (int64_t)psize; i++) h->pairs.slots[i].key = UINT64_MAX;
    for (i = 0; i < n_tok; i++) {
        int32_t sid = strmap_intern(&h->str, blob + offs[i], offs[i + 1] - offs[i]);
        if (sid < 0) goto fail;
        h->str.val[sid] = ranks[i];
    }
    for (i = 0; i < 256; i++) { /* a word's first symbols, tokens or not */
        uint8_t c = (uint8_t)i;
        h->byte_sid[i] = strmap_intern(&h->str, &c, 1);
        if (h->byte_sid[i] < 0) goto fail;
    }
    /* symbols are single bytes and merge results (tokens): (a, b) merges when a + b has a rank */
    for (i = 0; i < n_tok; i++) {
        const uint8_t *t = blob + offs[i];
        int64_t n = offs[i + 1] - offs[i];
        int32_t m = strmap_find(&h->str, t, n);
        for (j = 1; j < n; j++) {
            int32_t a = strmap_find(&h->str, t, j), b;
            uint64_t key, q;
            if (a < 0 || (j > 1 && h->str.val[a] < 0)) continue;
            b = strmap_find(&h->str, t + j, n - j);
            if (b < 0 || (n - j > 1 && h->str.val[b] < 0)) continue;
            key = pair_key(a, b);
            q = pair_hash(key) & h->pairs.mask;
            while (h->pairs.slots[q].key != UINT64_MAX && h->pairs.slots[q].key != key) q = (q + 1) & h->pairs.mask;
            h->pairs.slots[q].key = key;
            h->pairs.slots[q].rank = h->str.val[m];
            h->pairs.slots[q].merged = m;
        }
    }
    return h;
fail:
    bn_bpe_free(h);
    return NULL;
}

/* the `regex` module's classes for the cl100k pattern, and its (?i) letters */
static uint8_t *g_cls;
static uint32_t g_fold_cpt[64];
static uint8_t g_fold_to[64];
static int g_n_fold;
#define C_LET 1
#define C_NUM 2
#define C_WS 4

int bn_tok_set_regex_classes(const uint8_t *cls, int64_t n, const uint32_t *fold_cpt,
                             const uint8_t *fold_to, int64_t n_fold) {
    if (!cls || n != NCPT || n_fold < 0 || n_fold > 64) return BN_TOK_EARG;
    if (!g_cls) {
        uint8_t *t = (uint8_t *)malloc(NCPT);
        if (!t) return BN_TOK_ENOMEM;
        memcpy(t, cls, NCPT);
        g_cls = t;
    } else {
        memcpy(g_cls, cls, NCPT);
    }
    if (n_fold) {
        memcpy(g_fold_cpt, fold_cpt, sizeof(uint32_t) * (size_t)n_fold);
        memcpy(g_fold_to, fold_to, (size_t)n_fold);
    }
    g_n_fold = (int)n_fold;
    return 0;
}

static uint32_t fold(uint32_t c) { /* the ASCII letter c matches under (?i), else c */
    int i;
    for (i = 0; i < g_n_fold; i++)
        if (g_fold_cpt[i] == c) return g_fold_to[i];
    return c;
}

/* cl100k_base's pattern, alternative by alternative, as the regex module runs it:
 * '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+
 * |\s++$|\s*[\r\n]|\s+(?!\S)|\s   -- every code point starts a match of one of them. */
static int64_t split_cl100k(const uint32_t *cp, int64_t n, int64_t *ends) {
    int64_t pos = 0, no = 0;
#define CLS(p) ((p) < n ? g_cls[cp[p]] : 0)
#define IS_P(p) ((p) < n && !(g_cls[cp[p]] & (C_LET | C_NUM | C_WS)))
    while (pos < n) {
        uint32_t c = cp[pos];
        uint8_t f = g_cls[c];
        int64_t e = pos;
        if (c == '\'' && pos + 1 < n) {
            uint32_t a = fold(cp[pos + 1]), b = pos + 2 < n ? fold(cp[pos + 2]) : 0;
            if (a == 's' || a == 'd' || a == 'm' || a == 't')
                e = pos + 2;
            else if ((a == 'l' && b == 'l') || (a == 'v' && b == 'e') || (a == 'r' && b == 'e'))
                e = pos + 3;
        }
        if (e == pos && (f & C_LET)) {
            e = pos + 1;
            while (CLS(e) & C_LET) e++;
        } else if (e == pos && c != '\r' && c != '\n' && !(f & C_NUM) && (CLS(pos + 1) & C_LET)) {
            e = pos + 2;
            while (CLS(e) & C_LET) e++;
        }
        if (e == pos && (f & C_NUM)) {
            e = pos + 1;
            while (e < pos + 3 && (CLS(e) & C_NUM)) e++;
        }
        if (e == pos && (IS_P(pos) || (c == ' ' && IS_P(pos + 1)))) {
            e = pos + 1;
            while (IS_P(e)) e++;
            while (e < n && (cp[e] == '\r' || cp[e] == '\n')) e++;
        }
        if (e == pos && (f & C_WS)) {
            int64_t r = pos, last_rn = -1;
            while (r < n && (g_cls[cp[r]] & C_WS)) {
                if (cp[r] == '\r' || cp[r] == '\n') last_rn = r;
                r++;
            }
            if (r == n)
                e = r; /* \s++$ */
            else if (last_rn >= 0)
                e = last_rn + 1; /* \s*[\r\n] */
            else if (r - pos >= 2)
                e = r - 1; /* \s+(?!\S) */
            else
                e = pos + 1; /* \s */
        }
        if (e == pos) e = pos + 1; /* not reached: some alternative matches every code point */
        ends[no++] = e;
        pos = e;
    }
#undef CLS
#undef IS_P
    return no;
}

int64_t bn_tiktoken_cl100k(const bn_bpe *h, const uint8_t *text, int64_t len, int32_t *out) {
    uint32_t *cp;
    int64_t *ends, *wstart, *boff, n, i, w, n_words, k;
    if (!h || !h->rank_mode || !g_cls || len < 0 || len > 0x3FFFFFFF) return BN_TOK_EARG;
    cp = (uint32_t *)malloc(sizeof(uint32_t) * (size_t)(len + 1));
    boff = (int64_t *)malloc(sizeof(int64_t) * (size_t)(len + 1));
    ends = (int64_t *)malloc(sizeof(int64_t) * (size_t)(len + 1));
    wstart = (int64_t *)malloc(sizeof(int64_t) * (size_t)(len + 2));
    if (!cp || !boff || !ends || !wstart) {
        k = BN_TOK_ENOMEM;
        goto done;
    }
    /* valid UTF-8 only (the caller checked): code points and their byte offsets */
    for (i = 0, n = 0; i < len; n++) {
        int m = utf8_len(text[i]);
        uint32_t c[4];
        if (m > len - i || (text[i] & 0xC0) == 0x80 || decode_lenient(text + i, m, c) != 1 ||
            c[0] >= NCPT) {
            k = BN_TOK_EUTF8;
            goto done;
        }
        boff[n] = i;
        cp[n] = c[0];
        i += m;
    }
    boff[n] = len;
    n_words = split_cl100k(cp, n, ends);
    wstart[0] = 0;
    for (w = 0; w < n_words; w++) wstart[w + 1] = boff[ends[w]];
    k = encode_words(h, text, wstart, n_words, out);
done:
    free(cp);
    free(boff);
    free(ends);
    free(wstart);
    return k;
}

/* ---- SentencePiece ------------------------------------------------------------------------- */

struct bn_spm {
    strmap str; /* token bytes -> sid, val = token id */
    double *scores;
    int64_t n_scores;
    int32_t byte_tok[256];
    uint8_t isolated[256]; /* ASCII bytes in no token longer than one byte: never merged */
};

void bn_spm_free(bn_spm *h) {
    if (!h) return;
    strmap_free(&h->str);
    free(h->scores);
    free(h);
    live_add(-1);
}

bn_spm *bn_spm_new(int64_t n_tok, const uint8_t *blob, const int64_t *offs, const int32_t *ids,
                   const double *scores, int64_t n_scores, const int32_t *byte_tok) {
    bn_spm *h;
    int64_t i;
    if (n_tok < 0 || n_scores < 0) return NULL;
    h = (bn_spm *)calloc(1, sizeof(bn_spm));
    if (!h) return NULL;
    live_add(1);
    memcpy(h->byte_tok, byte_tok, sizeof(h->byte_tok));
    h->n_scores = n_scores;
    h->scores = (double *)malloc(sizeof(double) * (size_t)(n_scores + 1));
    if (!h->scores || strmap_init(&h->str, n_tok)) goto fail;
    if (n_scores) memcpy(h->scores, scores, sizeof(double) * (size_t)n_scores);
    for (i = 0; i < 128; i++) h->isolated[i] = 1;
    for (i = 0; i < n_tok; i++) {
        int32_t s;
        if (ids[i] < 0 || ids[i] >= n_scores) continue;
        if (offs[i + 1] - offs[i] > 1) {
            int64_t j;
            for (j = offs[i]; j < offs[i + 1]; j++) h->isolated[blob[j]] = 0;
        }
        s = strmap_intern(&h->str, blob + offs[i], offs[i + 1] - offs[i]);
        if (s < 0) goto fail;
        h->str.val[s] = ids[i];
    }
    return h;
fail:
    bn_spm_free(h);
    return NULL;
}

typedef struct {
    double score;
    int64_t left, size;
} spm_item;

static int spm_less(const spm_item *x, const spm_item *y) { /* higher score first, then leftmost */
    if (x->score != y->score) return x->score > y->score;
    if (x->left != y->left) return x->left < y->left;
    return x->size < y->size;
}

BN_DEFINE_HEAP(spm, spm_item, spm_less)

typedef struct {
    const bn_spm *h;
    const uint8_t *text;
    int64_t *start, *size, *nxt, *prv;
    spm_item *heap;
    int64_t nh;
} spm_state;

static void spm_try(spm_state *st, int64_t l, int64_t r) {
    int64_t size;
    int32_t sid;
    spm_item it;
    if (l < 0 || r < 0) return;
    size = st->size[l] + st->size[r];
    sid = strmap_find(&st->h->str, st->text + st->start[l], size);
    if (sid < 0 || st->h->str.val[sid] < 0) return;
    it.score = st->h->scores[st->h->str.val[sid]];
    it.left = l;
    it.size = size;
    spm_push(st->heap, &st->nh, it);
}

int64_t bn_spm_tokenize(const bn_spm *h, const uint8_t *text, int64_t len, int32_t *out) {
    spm_state st;
    int64_t n = 0, i, k = 0, a, b;
    size_t cap;
    if (!h || len < 0 || (len > 0 && !text)) return BN_TOK_EARG;
    if (len == 0) return 0;
    cap = (size_t)(len + 1);
    memset(&st, 0, sizeof(st));
    st.h = h;
    st.text = text;
    st.start = (int64_t *)malloc(sizeof(int64_t) * cap);
    st.size = (int64_t *)malloc(sizeof(int64_t) * cap);
    st.nxt = (int64_t *)malloc(sizeof(int64_t) * cap);
    st.prv = (int64_t *)malloc(sizeof(int64_t) * cap);
    st.heap = (spm_item *)malloc(sizeof(spm_item) * 3 * cap);
    if (!st.start || !st.size || !st.nxt || !st.prv || !st.heap) {
        k = BN_TOK_ENOMEM;
        goto done;
    }
    for (i = 0; i < len; n++) {
        int64_t m = utf8_len(text[i]);
        if (m > len - i) m = len - i;
        st.start[n] = i;
        st.size[n] = m;
        i += m;
    }
    /* subtle: a symbol that is one isolated byte can merge with nothing, so the symbols between
     * two of them are merged on their own (same result as one queue over the whole text, as
     * spm_tokenize_chunked; small queues stay in cache: 1 MB in one queue is 15x slower) */
    for (a = 0; a < n; a = b) {
        b = a;
        while (b < n && !(st.size[b] == 1 && h->isolated[text[st.start[b]]])) b++;
        if (b == a) b = a + 1; /* an isolated symbol alone */
        for (i = a; i < b; i++) {
            st.nxt[i] = i + 1;
            st.prv[i] = i - 1;
        }
        st.nxt[b - 1] = -1;
        st.prv[a] = -1;
        st.nh = 0;
        for (i = a + 1; i < b; i++) spm_try(&st, i - 1, i);
        while (st.nh > 0) {
            spm_item it = spm_pop(st.heap, &st.nh);
            int64_t l = it.left, r = st.nxt[l];
            if (st.size[l] == 0 || r < 0 || st.size[l] + st.size[r] != it.size) continue;
            st.size[l] = it.size;
            st.size[r] = 0;
            st.nxt[l] = st.nxt[r];
            if (st.nxt[r] >= 0) st.prv[st.nxt[r]] = l;
            spm_try(&st, st.prv[l], l);
            spm_try(&st, l, st.nxt[l]);
        }
        for (i = a; i != -1; i = st.nxt[i]) {
            int32_t sid = strmap_find(&h->str, text + st.start[i], st.size[i]);
            if (sid >= 0 && h->str.val[sid] >= 0) {
                out[k++] = h->str.val[sid];
            } else {
                int64_t j;
                for (j = 0; j < st.size[i]; j++) {
                    int32_t t = h->byte_tok[text[st.start[i] + j]];
                    if (t < 0) {
                        k = BN_TOK_ENOBYTE;
                        goto done;
                    }
                    out[k++] = t;
                }
            }
        }
    }
done:
    free(st.start);
    free(st.size);
    free(st.nxt);
    free(st.prv);
    free(st.heap);
    return k;
}
