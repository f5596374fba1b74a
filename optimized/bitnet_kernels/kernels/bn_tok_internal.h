/* bn_tok_internal.h: what the tokenizer files (bn_tok_*.c) share; not part of the API.
 *
 * The tokenizer hot path in portable C99 (no SIMD): llama.cpp's pre-tokenizer splitters
 * (bn_tok_split.c), the byte-level BPE merge loop (bn_tok_bpe.c), tiktoken's rank-driven BPE
 * with cl100k_base's pattern (bn_tok_tiktoken.c) and SentencePiece's score-driven bigram merge
 * (bn_tok_spm.c), over UTF-8 helpers (bn_tok_utf8.c) and two hash maps (bn_tok_hash.c).
 *
 * Every function mirrors the Python reference line for line (reference/bitnet/tokenizers/
 * pretokenizers.py, bpe.py, spm.py, tiktoken_file.py, themselves ports of llama.cpp's
 * unicode.cpp and llama-vocab.cpp), so results are identical; tests/test_tokenizer_fastpath.py
 * holds them to the reference and to llama.cpp. Strings are handled as raw bytes: a GPT-2
 * byte-level vocabulary is decoded back to bytes once, so a word's initial symbols are its
 * bytes. Handles are immutable after construction; every call allocates its own scratch, so
 * one handle may serve several threads at once.
 */
#ifndef BN_TOK_INTERNAL_H
#define BN_TOK_INTERNAL_H

#include "bn_api_tokenize.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- code points (bn_tok_utf8.c) -------------------------------------------------------- */

#define NCPT 0x110000
/* llama.cpp's unicode_cpt_flags bits */
#define F_UNDEF 0x0001
#define F_NUM 0x0002
#define F_LET 0x0004
#define F_MARK 0x0010
#define F_WS 0x0100
#define F_CATS 0x00FF
#define CPT_OUT 0xFFFFFFFFu /* "no code point": past either end of a piece */

extern uint16_t *bn_tok_flags; /* llama.cpp's flags per code point, set once from Python */
/* GPT-2's bytes_to_unicode: byte -> code point, and back (-1: not a byte-level character) */
extern uint16_t bn_tok_b2u[256];
extern int16_t bn_tok_u2b[324];

static inline uint16_t bn_tok_cpt_flags(uint32_t c) { return c < NCPT ? bn_tok_flags[c] : F_UNDEF; }

/* bytes of the UTF-8 sequence a lead byte starts (1 for a continuation byte) */
static inline int bn_tok_utf8_len(uint8_t lead) {
    static const int8_t t[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return t[lead >> 4];
}

/* unicode_cpts_from_utf8 with llama.cpp's loose rules (a bad byte is U+FFFD); returns the
 * count written to out (capacity n) */
int64_t bn_tok_decode_lenient(const uint8_t *s, int64_t n, uint32_t *out);
/* UTF-8 of a code point <= 0x10FFFF (surrogates included); returns the byte count */
int bn_tok_encode_utf8(uint32_t c, uint8_t *o);
/* fills bn_tok_b2u / bn_tok_u2b (idempotent) */
void bn_tok_bytemap_init(void);
/* handles alive: +1 on creation, -1 on free */
void bn_tok_live_add(int64_t d);

/* ---- the splitter chain (bn_tok_split.c) ------------------------------------------------ */

/* decoded text plus its pieces (lengths in code points) after the splitter chain */
typedef struct {
    uint32_t *cp;
    uint16_t *fl;
    int64_t *lens;
    int64_t n_cpt, n_words;
} bn_tok_split_result;

/* decode `text` leniently and run the splitters `kinds` (BN_SPLIT_*); 0 or BN_TOK_E* */
int bn_tok_split_run(const int32_t *kinds, int32_t n_kinds, const uint8_t *text, int64_t len,
                     bn_tok_split_result *r);
void bn_tok_split_free(bn_tok_split_result *r);

/* ---- hash maps (bn_tok_hash.c) ---------------------------------------------------------- */

uint64_t bn_tok_hash_bytes(const uint8_t *p, int64_t n);

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
} bn_strmap;

int bn_strmap_init(bn_strmap *m, int64_t expect);
void bn_strmap_free(bn_strmap *m);
/* sid of p[0..n), -1 if absent */
int32_t bn_strmap_find(const bn_strmap *m, const uint8_t *p, int64_t n);
/* sid of p[0..n), added if new (val -1); -1 when out of memory */
int32_t bn_strmap_intern(bn_strmap *m, const uint8_t *p, int64_t n);

/* (left sid, right sid) -> (rank, merged sid); open addressing, empty key UINT64_MAX */
typedef struct {
    uint64_t key;
    int32_t rank, merged;
} bn_pair_slot;

typedef struct {
    bn_pair_slot *slots;
    uint64_t mask;
} bn_pairmap;

/* a map with room for `n` pairs at load <= 1/2; -1 when out of memory */
int bn_pairmap_init(bn_pairmap *m, int64_t n);
const bn_pair_slot *bn_pairmap_find(const bn_pairmap *m, int32_t a, int32_t b);
/* the slot of (a, b): the existing one, or an empty one (key UINT64_MAX) to fill */
bn_pair_slot *bn_pairmap_slot(bn_pairmap *m, int32_t a, int32_t b);
uint64_t bn_pair_key(int32_t a, int32_t b);

/* ---- byte-level BPE, shared with tiktoken (bn_tok_bpe.c) -------------------------------- */

struct bn_bpe {
    bn_strmap str;
    bn_pairmap pairs;
    int32_t byte_sid[256]; /* sid of each single raw byte (-1: in no token or merge) */
    int32_t fallback[256];
    int byte_encode, ignore_merges, whole_newline_words;
    int rank_mode; /* tiktoken: byte symbols, raw tokens, a final symbol without a rank fails */
};

/* ids of n_words words lying end to end in raw (word w at raw[wstart[w]..wstart[w+1])) */
int64_t bn_tok_encode_words(const bn_bpe *h, const uint8_t *raw, const int64_t *wstart,
                            int64_t n_words, int32_t *out);

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

#endif
