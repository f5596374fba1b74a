/* bn_tok_split.c: llama.cpp's pre-tokenizer splitters (reference/bitnet/tokenizers/
 * pretokenizers.py): GPT-2's, Llama 3's (and Qwen2's, Qwen3.5's variants), the newline one and
 * "\p{N}" on the category-collapsed text, chained as bn_tok_split runs them.
 * Pieces are lengths in code points; each splitter cuts every input piece further.
 * (Overview of the tokenizer files: bn_tok_internal.h.)
 */
#include "bn_tok_internal.h"

typedef struct {
    const uint32_t *cp;
    const uint16_t *fl;
    int64_t ini, end;
} span;

static uint16_t FL(const span *s, int64_t p) { return (p >= s->ini && p < s->end) ? s->fl[p] : 0; }
static uint32_t CP(const span *s, int64_t p) { return (p >= s->ini && p < s->end) ? s->cp[p] : CPT_OUT; }

static uint32_t ascii_lower(uint32_t c) {
    /* unicode_tolower; only compared with ASCII letters, and no non-ASCII code point lowers
     * to one of s t m d r e v l in llama.cpp's table */
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* length of the contraction 's|'t|'re|'ve|'m|'ll|'d at pos (fold: (?i:...)), else 0 */
static int64_t contraction(const span *s, int64_t pos, int fold) {
    uint32_t nx, n2;
    if (s->cp[pos] != '\'' || pos + 1 >= s->end) return 0;
    nx = fold ? ascii_lower(s->cp[pos + 1]) : s->cp[pos + 1];
    if (nx == 's' || nx == 't' || nx == 'm' || nx == 'd') return 2;
    if (pos + 2 >= s->end) return 0;
    n2 = fold ? ascii_lower(s->cp[pos + 2]) : s->cp[pos + 2];
    return ((nx == 'r' && n2 == 'e') || (nx == 'v' && n2 == 'e') || (nx == 'l' && n2 == 'l')) ? 3 : 0;
}

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
            int64_t n_apos = contraction(&s, pos, 0);
            if (n_apos) {
                pos += n_apos;
                out[no++] = pos - prev;
                prev = pos;
                continue;
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
            int64_t nws, last_rn, n_apos = contraction(&s, pos, 1); /* (?i:'s|'t|...) */
            if (n_apos) {
                pos += n_apos;
                out[no++] = pos - prev;
                prev = pos;
                continue;
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

void bn_tok_split_free(bn_tok_split_result *r) {
    free(r->cp);
    free(r->fl);
    free(r->lens);
}

int bn_tok_split_run(const int32_t *kinds, int32_t n_kinds, const uint8_t *text, int64_t len,
                     bn_tok_split_result *r) {
    int64_t i, *tmp, *a, *b, na;
    int32_t k;
    memset(r, 0, sizeof(*r));
    if (!bn_tok_flags || len < 0 || (len > 0 && !text) || n_kinds < 0) return BN_TOK_EARG;
    for (k = 0; k < n_kinds; k++)
        if (kinds[k] < BN_SPLIT_GPT2 || kinds[k] > BN_SPLIT_DIGIT) return BN_TOK_EARG;
    r->cp = (uint32_t *)malloc(sizeof(uint32_t) * (size_t)(len + 1));
    r->fl = (uint16_t *)malloc(sizeof(uint16_t) * (size_t)(len + 1));
    r->lens = (int64_t *)malloc(sizeof(int64_t) * (size_t)(len + 1));
    tmp = (int64_t *)malloc(sizeof(int64_t) * (size_t)(len + 1));
    if (!r->cp || !r->fl || !r->lens || !tmp) {
        free(tmp);
        bn_tok_split_free(r);
        return BN_TOK_ENOMEM;
    }
    r->n_cpt = bn_tok_decode_lenient(text, len, r->cp);
    for (i = 0; i < r->n_cpt; i++) {
        if (r->cp[i] >= NCPT) { /* every code point lands in some word, whose re-encoding fails */
            free(tmp);
            bn_tok_split_free(r);
            return BN_TOK_EUTF8;
        }
        r->fl[i] = bn_tok_cpt_flags(r->cp[i]);
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
    bn_tok_split_result r;
    int64_t w, i, pos = 0, o = 0, nbytes;
    int rc = bn_tok_split_run(kinds, n_kinds, text, len, &r);
    if (rc) return rc;
    for (w = 0; w < r.n_words; w++) {
        int64_t end = pos + r.lens[w];
        for (; pos < end; pos++) o += bn_tok_encode_utf8(r.cp[pos], out_raw + o);
        word_ends[w] = o;
    }
    nbytes = o;
    if (out_enc) {
        bn_tok_bytemap_init();
        o = 0;
        for (i = 0; i < nbytes; i++) o += bn_tok_encode_utf8(bn_tok_b2u[out_raw[i]], out_enc + o);
        if (enc_len) *enc_len = o;
    }
    bn_tok_split_free(&r);
    return r.n_words;
}
