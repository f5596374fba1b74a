/* bn_tok_tiktoken.c: tiktoken's rank-driven BPE (reference/bitnet/tokenizers/tiktoken_file.py):
 * a handle over a rank file (bn_bpe in rank mode: bn_tok_bpe.c's merge loop), the `regex`
 * module's character classes, and cl100k_base's pattern split in C. (Overview:
 * bn_tok_internal.h.)
 */
#include "bn_tok_internal.h"

bn_bpe *bn_rank_bpe_new(int64_t n_tok, const uint8_t *blob, const int64_t *offs,
                        const int32_t *ranks) {
    bn_bpe *h;
    int64_t i, j, n_pairs = 0;
    if (n_tok < 0) return NULL;
    h = (bn_bpe *)calloc(1, sizeof(bn_bpe));
    if (!h) return NULL;
    bn_tok_live_add(1);
    h->rank_mode = 1;
    h->ignore_merges = 1; /* a piece that is a token is that token */
    for (i = 0; i < 256; i++) h->fallback[i] = -1;
    for (i = 0; i < n_tok; i++) n_pairs += offs[i + 1] - offs[i] > 1 ? offs[i + 1] - offs[i] - 1 : 0;
    if (bn_pairmap_init(&h->pairs, n_pairs) || bn_strmap_init(&h->str, n_tok + 256)) goto fail;
    for (i = 0; i < n_tok; i++) {
        int32_t sid = bn_strmap_intern(&h->str, blob + offs[i], offs[i + 1] - offs[i]);
        if (sid < 0) goto fail;
        h->str.val[sid] = ranks[i];
    }
    for (i = 0; i < 256; i++) { /* a word's first symbols, tokens or not */
        uint8_t c = (uint8_t)i;
        h->byte_sid[i] = bn_strmap_intern(&h->str, &c, 1);
        if (h->byte_sid[i] < 0) goto fail;
    }
    /* symbols are single bytes and merge results (tokens): (a, b) merges when a + b has a rank */
    for (i = 0; i < n_tok; i++) {
        const uint8_t *t = blob + offs[i];
        int64_t n = offs[i + 1] - offs[i];
        int32_t m = bn_strmap_find(&h->str, t, n);
        for (j = 1; j < n; j++) {
            int32_t a = bn_strmap_find(&h->str, t, j), b;
            bn_pair_slot *slot;
            if (a < 0 || (j > 1 && h->str.val[a] < 0)) continue;
            b = bn_strmap_find(&h->str, t + j, n - j);
            if (b < 0 || (n - j > 1 && h->str.val[b] < 0)) continue;
            slot = bn_pairmap_slot(&h->pairs, a, b);
            slot->key = bn_pair_key(a, b);
            slot->rank = h->str.val[m];
            slot->merged = m;
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
        int m = bn_tok_utf8_len(text[i]);
        uint32_t c[4];
        if (m > len - i || (text[i] & 0xC0) == 0x80 || bn_tok_decode_lenient(text + i, m, c) != 1 ||
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
    k = bn_tok_encode_words(h, text, wstart, n_words, out);
done:
    free(cp);
    free(boff);
    free(ends);
    free(wstart);
    return k;
}
