/* bn_tok_spm.c: SentencePiece BPE (llm_tokenizer_spm_session; reference/bitnet/tokenizers/
 * spm.py): a vocabulary handle and the score-driven bigram merge, run separately between
 * isolated bytes. (Overview: bn_tok_internal.h.)
 */
#include "bn_tok_internal.h"

struct bn_spm {
    bn_strmap str; /* token bytes -> sid, val = token id */
    double *scores;
    int64_t n_scores;
    int32_t byte_tok[256];
    uint8_t isolated[256]; /* ASCII bytes in no token longer than one byte: never merged */
};

void bn_spm_free(bn_spm *h) {
    if (!h) return;
    bn_strmap_free(&h->str);
    free(h->scores);
    free(h);
    bn_tok_live_add(-1);
}

bn_spm *bn_spm_new(int64_t n_tok, const uint8_t *blob, const int64_t *offs, const int32_t *ids,
                   const double *scores, int64_t n_scores, const int32_t *byte_tok) {
    bn_spm *h;
    int64_t i;
    if (n_tok < 0 || n_scores < 0) return NULL;
    h = (bn_spm *)calloc(1, sizeof(bn_spm));
    if (!h) return NULL;
    bn_tok_live_add(1);
    memcpy(h->byte_tok, byte_tok, sizeof(h->byte_tok));
    h->n_scores = n_scores;
    h->scores = (double *)malloc(sizeof(double) * (size_t)(n_scores + 1));
    if (!h->scores || bn_strmap_init(&h->str, n_tok)) goto fail;
    if (n_scores) memcpy(h->scores, scores, sizeof(double) * (size_t)n_scores);
    for (i = 0; i < 128; i++) h->isolated[i] = 1;
    for (i = 0; i < n_tok; i++) {
        int32_t s;
        if (ids[i] < 0 || ids[i] >= n_scores) continue;
        if (offs[i + 1] - offs[i] > 1) {
            int64_t j;
            for (j = offs[i]; j < offs[i + 1]; j++) h->isolated[blob[j]] = 0;
        }
        s = bn_strmap_intern(&h->str, blob + offs[i], offs[i + 1] - offs[i]);
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
    sid = bn_strmap_find(&st->h->str, st->text + st->start[l], size);
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
        int64_t m = bn_tok_utf8_len(text[i]);
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
            int32_t sid = bn_strmap_find(&h->str, text + st.start[i], st.size[i]);
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
