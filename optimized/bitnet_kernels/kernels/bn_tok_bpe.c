/* bn_tok_bpe.c: byte-level BPE (llm_tokenizer_bpe_session; reference/bitnet/tokenizers/bpe.py):
 * a vocabulary handle, the rank-driven merge loop of one word, and whole texts (splitter chain,
 * then every word, with a per-call cache of repeated words). The merge loop and the word
 * encoder also serve tiktoken's rank BPE (bn_tok_tiktoken.c). (Overview: bn_tok_internal.h.)
 */
#include "bn_tok_internal.h"

/* a vocabulary string as raw bytes into buf (capacity n); -1 if it is not byte-level text */
static int64_t vocab_raw(const uint8_t *s, int64_t n, int byte_encode, uint8_t *buf, uint32_t *cps) {
    int64_t k, i;
    if (!byte_encode) {
        memcpy(buf, s, (size_t)n);
        return n;
    }
    k = bn_tok_decode_lenient(s, n, cps);
    for (i = 0; i < k; i++) {
        if (cps[i] >= 324 || bn_tok_u2b[cps[i]] < 0) return -1;
        buf[i] = (uint8_t)bn_tok_u2b[cps[i]];
    }
    return k;
}

void bn_bpe_free(bn_bpe *h) {
    if (!h) return;
    bn_strmap_free(&h->str);
    free(h->pairs.slots);
    free(h);
    bn_tok_live_add(-1);
}

bn_bpe *bn_bpe_new(int64_t n_tok, int64_t n_merges, const uint8_t *blob, const int64_t *offs,
                   const int32_t *tok_ids, const int32_t *merge_ranks, int32_t byte_encode,
                   const int32_t *fallback, int32_t flags) {
    bn_bpe *h;
    int64_t i, maxlen = 0, n_str = n_tok + 2 * n_merges;
    uint8_t *buf = NULL;
    uint32_t *cps = NULL;
    if (n_tok < 0 || n_merges < 0) return NULL;
    bn_tok_bytemap_init();
    h = (bn_bpe *)calloc(1, sizeof(bn_bpe));
    if (!h) return NULL;
    bn_tok_live_add(1);
    h->byte_encode = byte_encode != 0;
    h->ignore_merges = (flags & 1) != 0;
    h->whole_newline_words = (flags & 2) != 0;
    memcpy(h->fallback, fallback, sizeof(h->fallback));
    if (bn_pairmap_init(&h->pairs, n_merges) || bn_strmap_init(&h->str, n_tok + n_merges)) goto fail;
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
        s = bn_strmap_intern(&h->str, buf, n);
        if (s < 0) goto fail;
        h->str.val[s] = tok_ids[i];
    }
    for (i = 0; i < n_merges; i++) {
        int64_t l = n_tok + 2 * i, r = l + 1, na, nb;
        int32_t a, b, m;
        bn_pair_slot *slot;
        if (merge_ranks[i] < 0) continue;
        na = vocab_raw(blob + offs[l], offs[l + 1] - offs[l], h->byte_encode, buf, cps);
        if (na < 0) continue;
        nb = vocab_raw(blob + offs[r], offs[r + 1] - offs[r], h->byte_encode, buf + na, cps);
        if (nb < 0) continue;
        a = bn_strmap_intern(&h->str, buf, na);
        b = a < 0 ? -1 : bn_strmap_intern(&h->str, buf + na, nb);
        m = b < 0 ? -1 : bn_strmap_intern(&h->str, buf, na + nb);
        if (m < 0) goto fail;
        slot = bn_pairmap_slot(&h->pairs, a, b);
        if (slot->key != UINT64_MAX) continue; /* the first rank stays (dict keys are unique) */
        slot->key = bn_pair_key(a, b);
        slot->rank = merge_ranks[i];
        slot->merged = m;
    }
    for (i = 0; i < 256; i++) {
        uint8_t c = (uint8_t)i;
        h->byte_sid[i] = bn_strmap_find(&h->str, &c, 1);
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
    const bn_pair_slot *p;
    bpe_item it;
    if (l < 0 || r < 0 || s->sid[l] < 0 || s->sid[r] < 0) return;
    p = bn_pairmap_find(&h->pairs, s->sid[l], s->sid[r]);
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
            int j, nu = bn_tok_encode_utf8(bn_tok_b2u[p[i]], u);
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
            int32_t sid = bn_strmap_find(&h->str, w, len);
            if (sid >= 0 && h->str.val[sid] >= 0) {
                out[0] = h->str.val[sid];
                return 1;
            }
        }
    }
    /* initial symbols: bytes (byte-level), else UTF-8 characters cut by their lead bytes */
    for (i = 0; i < len; n++) {
        int64_t m = (h->byte_encode || h->rank_mode) ? 1 : bn_tok_utf8_len(w[i]);
        if (m > len - i) m = len - i;
        s->start[n] = (int32_t)i;
        s->len[n] = (int32_t)m;
        s->sid[n] = m == 1 ? h->byte_sid[w[i]] : bn_strmap_find(&h->str, w + i, m);
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

int64_t bn_tok_encode_words(const bn_bpe *h, const uint8_t *raw, const int64_t *wstart,
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
            j = bn_tok_hash_bytes(p, n) & mask;
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
    bn_tok_split_result r;
    uint8_t *raw;
    int64_t w, pos = 0, k, nb = 0, *wstart;
    int rc;
    if (!h || h->rank_mode || len > 0x3FFFFFFF) return BN_TOK_EARG;
    rc = bn_tok_split_run(kinds, n_kinds, text, len, &r);
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
        for (; pos < end; pos++) nb += bn_tok_encode_utf8(r.cp[pos], raw + nb);
    }
    wstart[r.n_words] = nb;
    k = bn_tok_encode_words(h, raw, wstart, r.n_words, out);
done:
    free(wstart);
    free(raw);
    bn_tok_split_free(&r);
    return k;
}
