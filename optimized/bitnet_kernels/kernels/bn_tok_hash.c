/* bn_tok_hash.c: the tokenizers' two hash maps: byte strings -> dense ids (bn_strmap, the
 * strings copied into one blob) and (left id, right id) -> (rank, merged id) (bn_pairmap).
 * Open addressing, linear probing, load <= 1/2. (Overview: bn_tok_internal.h.)
 */
#include "bn_tok_internal.h"

uint64_t bn_tok_hash_bytes(const uint8_t *p, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    int64_t i;
    for (i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

int bn_strmap_init(bn_strmap *m, int64_t expect) {
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

void bn_strmap_free(bn_strmap *m) {
    free(m->slots);
    free(m->blob);
    free(m->off);
    free(m->len);
    free(m->hash);
    free(m->val);
}

static int32_t strmap_find_h(const bn_strmap *m, const uint8_t *p, int64_t n, uint64_t h) {
    uint64_t i = h & m->mask;
    for (;;) {
        int32_t s = m->slots[i];
        if (s < 0) return -1;
        if (m->hash[s] == h && m->len[s] == n && memcmp(m->blob + m->off[s], p, (size_t)n) == 0) return s;
        i = (i + 1) & m->mask;
    }
}

int32_t bn_strmap_find(const bn_strmap *m, const uint8_t *p, int64_t n) {
    return strmap_find_h(m, p, n, bn_tok_hash_bytes(p, n));
}

static int strmap_grow_slots(bn_strmap *m) {
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

int32_t bn_strmap_intern(bn_strmap *m, const uint8_t *p, int64_t n) {
    uint64_t h = bn_tok_hash_bytes(p, n), i;
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

uint64_t bn_pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
static uint64_t pair_hash(uint64_t key) { return (key * 0x9E3779B97F4A7C15ull) >> 17; }

int bn_pairmap_init(bn_pairmap *m, int64_t n) {
    uint64_t size = 16, i;
    while (size < (uint64_t)n * 2) size <<= 1;
    m->slots = (bn_pair_slot *)malloc(sizeof(bn_pair_slot) * size);
    m->mask = size - 1;
    if (!m->slots) return -1;
    for (i = 0; i < size; i++) m->slots[i].key = UINT64_MAX;
    return 0;
}

const bn_pair_slot *bn_pairmap_find(const bn_pairmap *m, int32_t a, int32_t b) {
    uint64_t key = bn_pair_key(a, b), i = pair_hash(key) & m->mask;
    for (;;) {
        const bn_pair_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
        i = (i + 1) & m->mask;
    }
}

bn_pair_slot *bn_pairmap_slot(bn_pairmap *m, int32_t a, int32_t b) {
    uint64_t key = bn_pair_key(a, b), i = pair_hash(key) & m->mask;
    while (m->slots[i].key != UINT64_MAX && m->slots[i].key != key) i = (i + 1) & m->mask;
    return &m->slots[i];
}
