/* bn_grammar.c: GBNF candidate rejection in C (llama-grammar.cpp's llama_grammar_reject_candidates).
 *
 * Mirrors reference/bitnet/constraints/grammar.py: decode_utf8 (llama.cpp's lenient decoder),
 * match_char / match_partial_char / match_token, advance_stack, and the rejection over sets of
 * stacks (`reject_set`: the reference's token_allowed for all candidates at once, sharing the
 * work of common prefixes). Memory: one arena per call (stacks and candidate lists are
 * bump-allocated and freed together).
 *
 * Element types (llama_gretype): 0 END, 1 ALT, 2 RULE_REF, 3 CHAR, 4 CHAR_NOT,
 * 5 CHAR_RNG_UPPER, 6 CHAR_ALT, 7 CHAR_ANY, 8 TOKEN, 9 TOKEN_NOT.
 */
#include <stdlib.h>
#include <string.h>

#include "bn_api_grammar.h"

enum { G_END = 0, G_ALT, G_RULE_REF, G_CHAR, G_CHAR_NOT, G_CHAR_RNG_UPPER, G_CHAR_ALT, G_CHAR_ANY,
       G_TOKEN, G_TOKEN_NOT };

struct bn_grammar {
    int32_t n_elems, n_rules;
    int32_t *types;       /* [n_elems] */
    uint32_t *values;     /* [n_elems] */
    int32_t *rule_start;  /* [n_rules] */
};

struct bn_grammar_vocab {
    int32_t n_tokens;
    uint8_t *blob;        /* pieces end to end */
    int64_t *offs;        /* [n_tokens + 1] */
    uint32_t *cps;        /* code points decoded with no pending partial sequence */
    int64_t *cp_offs;     /* [n_tokens + 1] */
    uint32_t *end_value;  /* [n_tokens] partial sequence left at the end */
    int32_t *end_remain;  /* [n_tokens] */
};

/* ------------------------------------------------------------------------------------------ */
/* arena */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    /* data follows */
} chunk;

typedef struct {
    chunk *head;
    int failed;
} arena;

static void *arena_alloc(arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (a->head == NULL || a->head->used + n > a->head->cap) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        chunk *c = (chunk *)malloc(sizeof(chunk) + cap);
        if (c == NULL) {
            a->failed = 1;
            return NULL;
        }
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = (char *)(a->head + 1) + a->head->used;
    a->head->used += n;
    return p;
}

static void arena_free(arena *a) {
    chunk *c = a->head;
    while (c != NULL) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* UTF-8, as llama.cpp's decode_utf8(std::string, llama_partial_utf8) */

static const int LEAD_LEN[16] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 3, 4};

/* out: capacity len + 1 code points; returns how many; *value / *remain: partial in and out */
static int64_t decode_utf8(const uint8_t *s, int64_t len, uint32_t *value, int32_t *remain, uint32_t *out) {
    int64_t pos = 0, n = 0;
    uint32_t v = *value;
    int32_t r = *remain;
    for (int64_t i = 0; i < len; i++) {
        if (s[i] == 0) {  /* a NUL ends the piece (a C string in llama.cpp) */
            len = i;
            break;
        }
    }
    int32_t start_remain = r;
    while (pos < len && r > 0) {
        uint8_t b = s[pos];
        if ((b >> 6) != 2) {
            *value = 0;
            *remain = -1;
            return 0;
        }
        v = (v << 6) + (b & 0x3F);
        pos++;
        r--;
    }
    if (start_remain > 0 && r == 0) out[n++] = v;
    while (pos < len) {
        uint8_t first = s[pos];
        r = LEAD_LEN[first >> 4] - 1;
        if (r < 0) {
            *value = 0;
            *remain = r;
            return 0;
        }
        v = first & ((1u << (7 - r)) - 1);
        pos++;
        while (pos < len && r > 0) {
            v = (v << 6) + (s[pos] & 0x3F);
            pos++;
            r--;
        }
        if (r == 0) out[n++] = v;
    }
    *value = r != 0 ? v : 0;
    *remain = r;
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* elements */

static int is_end_of_sequence(const bn_grammar *g, int64_t pos) {
    return g->types[pos] == G_END || g->types[pos] == G_ALT;
}

static int is_token(const bn_grammar *g, uint32_t pos) {
    return g->types[pos] == G_TOKEN || g->types[pos] == G_TOKEN_NOT;
}

/* llama_grammar_match_char: does c satisfy the class at pos; *after: the position past it */
static int match_char(const bn_grammar *g, uint32_t pos, uint32_t c, uint32_t *after) {
    const int32_t *t = g->types;
    const uint32_t *v = g->values;
    int positive = t[pos] == G_CHAR || t[pos] == G_CHAR_ANY;
    int found = 0;
    do {
        if (t[pos + 1] == G_CHAR_RNG_UPPER) {
            found = found || (v[pos] <= c && c <= v[pos + 1]);
            pos += 2;
        } else if (t[pos] == G_CHAR_ANY) {
            found = 1;
            pos += 1;
        } else {
            found = found || v[pos] == c;
            pos += 1;
        }
    } while (t[pos] == G_CHAR_ALT);
    *after = pos;
    return found == positive;
}

/* llama_grammar_match_partial_char */
static int match_partial_char(const bn_grammar *g, uint32_t pos, uint32_t value, int32_t n_remain) {
    const int32_t *t = g->types;
    const uint32_t *v = g->values;
    int positive = t[pos] == G_CHAR || t[pos] == G_CHAR_ANY;
    if (n_remain < 0 || (n_remain == 1 && value < 2)) return 0;
    uint32_t low = value << (n_remain * 6);
    uint32_t high = low | ((1u << (n_remain * 6)) - 1);
    if (low == 0) {
        if (n_remain == 2) low = 1u << 11;
        else if (n_remain == 3) low = 1u << 16;
    }
    do {
        if (t[pos + 1] == G_CHAR_RNG_UPPER) {
            if (v[pos] <= high && low <= v[pos + 1]) return positive;
            pos += 2;
        } else if (t[pos] == G_CHAR_ANY) {
            return 1;
        } else {
            if (low <= v[pos] && v[pos] <= high) return positive;
            pos += 1;
        }
    } while (t[pos] == G_CHAR_ALT);
    return !positive;
}

static int match_token(const bn_grammar *g, uint32_t pos, int32_t token) {
    if (g->types[pos] == G_TOKEN) return g->values[pos] == (uint32_t)token;
    return g->values[pos] != (uint32_t)token;
}

/* ------------------------------------------------------------------------------------------ */
/* stacks */

typedef struct {
    const uint32_t *data;  /* bottom first */
    int32_t len;
} stack;

/* a list of stacks; with `slots` (built once it holds 8), a hash index for the duplicate checks */
typedef struct {
    stack *items;
    int32_t n, cap;
    int32_t *slots;  /* open addressing: index + 1, 0 = free */
    int32_t n_slots; /* a power of two, > 2 n */
} stacks;

static int stack_eq(stack a, stack b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, (size_t)a.len * sizeof(uint32_t)) == 0);
}

static uint32_t stack_hash(stack s) {
    uint32_t h = 2166136261u ^ (uint32_t)s.len;
    for (int32_t i = 0; i < s.len; i++) h = (h ^ s.data[i]) * 16777619u;
    return h;
}

static int stacks_push(arena *a, stacks *s, stack x) {
    if (s->n == s->cap) {
        int32_t cap = s->cap ? 2 * s->cap : 8;
        stack *items = (stack *)arena_alloc(a, (size_t)cap * sizeof(stack));
        if (items == NULL) return BN_GRAMMAR_ENOMEM;
        if (s->n) memcpy(items, s->items, (size_t)s->n * sizeof(stack));
        s->items = items;
        s->cap = cap;
    }
    s->items[s->n++] = x;
    return 0;
}

static int32_t *slot_of(const stacks *s, stack x) {
    uint32_t mask = (uint32_t)s->n_slots - 1;
    for (uint32_t h = stack_hash(x) & mask;; h = (h + 1) & mask) {
        int32_t *slot = &s->slots[h];
        if (*slot == 0 || stack_eq(s->items[*slot - 1], x)) return slot;
    }
}

static int rehash(arena *a, stacks *s) {
    int32_t n_slots = 16;
    while (n_slots <= 2 * (s->n + 1)) n_slots *= 2;
    s->slots = (int32_t *)arena_alloc(a, (size_t)n_slots * sizeof(int32_t));
    if (s->slots == NULL) return BN_GRAMMAR_ENOMEM;
    memset(s->slots, 0, (size_t)n_slots * sizeof(int32_t));
    s->n_slots = n_slots;
    for (int32_t i = 0; i < s->n; i++) *slot_of(s, s->items[i]) = i + 1;
    return 0;
}

/* append x unless an equal stack is there; *added says which */
static int stacks_insert(arena *a, stacks *s, stack x, int *added) {
    *added = 0;
    if (s->slots == NULL && s->n < 8) {
        for (int32_t i = 0; i < s->n; i++)
            if (stack_eq(s->items[i], x)) return 0;
    } else {
        if (s->slots == NULL || 2 * (s->n + 1) >= s->n_slots) {
            int rc = rehash(a, s);
            if (rc != 0) return rc;
        }
        int32_t *slot = slot_of(s, x);
        if (*slot != 0) return 0;
        *slot = s->n + 1;
    }
    *added = 1;
    return stacks_push(a, s, x);
}

static int stacks_add_unique(arena *a, stacks *s, stack x) {
    int added;
    return stacks_insert(a, s, x, &added);
}

/* base[:keep] + up to two positions (pass UINT32_MAX to skip one) */
static int make_stack(arena *a, stack base, int32_t keep, uint32_t p1, uint32_t p2, stack *out) {
    int32_t len = keep + (p1 != UINT32_MAX) + (p2 != UINT32_MAX);
    uint32_t *d = (uint32_t *)arena_alloc(a, (size_t)(len > 0 ? len : 1) * sizeof(uint32_t));
    if (d == NULL) return BN_GRAMMAR_ENOMEM;
    if (keep) memcpy(d, base.data, (size_t)keep * sizeof(uint32_t));
    int32_t n = keep;
    if (p1 != UINT32_MAX) d[n++] = p1;
    if (p2 != UINT32_MAX) d[n++] = p2;
    out->data = d;
    out->len = len;
    return 0;
}

/* llama_grammar_advance_stack: expand rule references at the top into stacks topped by a
 * terminal (or empty), appended to `out` without duplicates */
static int advance_stack(arena *a, const bn_grammar *g, stack start, stacks *out) {
    stacks todo = {0}, seen = {0};
    int rc = stacks_push(a, &todo, start);
    while (rc == 0 && todo.n > 0) {
        stack cur = todo.items[--todo.n];
        int added;
        if ((rc = stacks_insert(a, &seen, cur, &added)) != 0) break;
        if (!added) continue;
        if (cur.len == 0) {
            rc = stacks_add_unique(a, out, cur);
            continue;
        }
        uint32_t pos = cur.data[cur.len - 1];
        int32_t kind = g->types[pos];
        if (kind == G_RULE_REF) {
            if (g->values[pos] >= (uint32_t)g->n_rules) return BN_GRAMMAR_EARG;
            int64_t sub = g->rule_start[g->values[pos]];
            for (;;) {
                stack next;
                uint32_t p1 = is_end_of_sequence(g, pos + 1) ? UINT32_MAX : pos + 1;
                uint32_t p2 = is_end_of_sequence(g, sub) ? UINT32_MAX : (uint32_t)sub;
                if ((rc = make_stack(a, cur, cur.len - 1, p1, p2, &next)) != 0) break;
                if ((rc = stacks_push(a, &todo, next)) != 0) break;
                while (!is_end_of_sequence(g, sub)) sub++;
                if (g->types[sub] != G_ALT) break;
                sub++;
            }
        } else if (kind == G_CHAR || kind == G_CHAR_NOT || kind == G_CHAR_ANY || kind == G_TOKEN ||
                   kind == G_TOKEN_NOT) {
            rc = stacks_add_unique(a, out, cur);
        } else {
            return BN_GRAMMAR_EARG;  /* a stack never rests on END/ALT/CHAR_ALT/CHAR_RNG_UPPER */
        }
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* candidates */

typedef struct {
    int32_t index;  /* into the caller's ids */
    int32_t off;    /* next code point: cps[off] of this candidate */
} cand;

typedef struct {
    const uint32_t *cps;  /* all candidates' code points */
    const int64_t *start; /* [n_ids] first code point of candidate i */
    const int64_t *end;   /* [n_ids] one past its last */
    const uint32_t *pval; /* [n_ids] partial sequence left at its end */
    const int32_t *prem;
    const int32_t *ids;
} cands_info;

typedef struct {
    cand *items;
    int32_t n;
} cands;

static uint32_t cand_cp(const cands_info *ci, cand c) { return ci->cps[ci->start[c.index] + c.off]; }

typedef struct {
    const uint64_t *sig;  /* which char-topped stacks match the next code point: the sort key */
    int32_t n_words;
    cand c;
} keyed;

static int by_signature(const void *x, const void *y) {
    const keyed *a = (const keyed *)x, *b = (const keyed *)y;
    return memcmp(a->sig, b->sig, (size_t)a->n_words * sizeof(uint64_t));
}

/* order `live` so that equal signatures are adjacent: a counting sort over the few distinct
 * signatures of the usual case (one word, up to 32 values), qsort otherwise; 0 when out of memory */
static int group_by_signature(arena *a, keyed *live, int32_t n) {
    enum { MAX_DISTINCT = 32 };
    uint64_t vals[MAX_DISTINCT];
    int32_t counts[MAX_DISTINCT], n_vals = 0;
    int few = n > 0 && live[0].n_words == 1;
    int32_t *which = few ? (int32_t *)arena_alloc(a, (size_t)n * sizeof(int32_t)) : NULL;
    if (few && which == NULL) return 0;
    for (int32_t i = 0; few && i < n; i++) {
        uint64_t v = live[i].sig[0];
        int32_t k = 0;
        while (k < n_vals && vals[k] != v) k++;
        if (k == n_vals) {
            if (n_vals == MAX_DISTINCT) {
                few = 0;
                break;
            }
            vals[n_vals] = v;
            counts[n_vals++] = 0;
        }
        counts[k]++;
        which[i] = k;
    }
    if (!few) {
        qsort(live, (size_t)n, sizeof(keyed), by_signature);
        return 1;
    }
    if (n_vals <= 1) return 1;
    keyed *out = (keyed *)arena_alloc(a, (size_t)n * sizeof(keyed));
    if (out == NULL) return 0;
    int32_t start[MAX_DISTINCT];
    for (int32_t k = 0, at = 0; k < n_vals; k++) {
        start[k] = at;
        at += counts[k];
    }
    for (int32_t i = 0; i < n; i++) out[start[which[i]]++] = live[i];
    memcpy(live, out, (size_t)n * sizeof(keyed));
    return 1;
}

/* the stacks after stack s consumed one character of its top class: its after-position,
 * advanced (the same whichever character it was) */
static int stack_after_char(arena *a, const bn_grammar *g, stack s, stacks *out) {
    uint32_t after;
    match_char(g, s.data[s.len - 1], 0, &after);
    stack base;
    int rc = make_stack(a, s, s.len - 1, is_end_of_sequence(g, after) ? UINT32_MAX : after, UINT32_MAX, &base);
    return rc != 0 ? rc : advance_stack(a, g, base, out);
}

/* Candidates (from their code point `off` on) that no stack of `st` accepts get rejected[] = 1:
 * llama_grammar_reject_candidates' answer, computed over the set of stacks at once. Per level
 * each candidate's next code point is matched against each char-topped stack; candidates
 * matched by the same stacks move on together to the union of those stacks' successors
 * (which do not depend on the character). llama.cpp recurses stack by stack instead, which
 * can grow with the product of the stack counts on ambiguous grammars. */
static int reject_set(arena *a, const bn_grammar *g, const cands_info *ci, const stacks *st, cands in,
                      uint8_t *rejected) {
    int32_t *chars = (int32_t *)arena_alloc(a, (size_t)(st->n > 0 ? st->n : 1) * sizeof(int32_t));
    keyed *live = (keyed *)arena_alloc(a, (size_t)(in.n > 0 ? in.n : 1) * sizeof(keyed));
    if (chars == NULL || live == NULL) return BN_GRAMMAR_ENOMEM;
    int32_t n_chars = 0, n_live = 0, any_token = 0;
    for (int32_t k = 0; k < st->n; k++) {
        stack s = st->items[k];
        if (s.len > 0 && is_token(g, s.data[s.len - 1])) any_token = 1;
        else if (s.len > 0) chars[n_chars++] = k;
    }
    int32_t n_words = n_chars / 64 + 1;
    uint64_t *sigs = (uint64_t *)arena_alloc(a, (size_t)(in.n > 0 ? in.n : 1) * (size_t)n_words * sizeof(uint64_t));
    if (sigs == NULL) return BN_GRAMMAR_ENOMEM;
    for (int32_t i = 0; i < in.n; i++) {
        cand c = in.items[i];
        if (ci->start[c.index] + c.off >= ci->end[c.index]) {  /* no code point left */
            int ok = st->n > 0 && ci->prem[c.index] == 0;
            for (int32_t j = 0; !ok && j < n_chars; j++) {
                stack s = st->items[chars[j]];
                ok = match_partial_char(g, s.data[s.len - 1], ci->pval[c.index], ci->prem[c.index]);
            }
            if (!ok) rejected[c.index] = 1;
            continue;
        }
        int by_token = 0;  /* a token element reached with code points left decides by id */
        for (int32_t k = 0; any_token && !by_token && k < st->n; k++) {
            stack s = st->items[k];
            by_token = s.len > 0 && is_token(g, s.data[s.len - 1]) && match_token(g, s.data[s.len - 1], ci->ids[c.index]);
        }
        if (by_token) continue;
        uint64_t *sig = sigs + (size_t)n_live * (size_t)n_words;
        memset(sig, 0, (size_t)n_words * sizeof(uint64_t));
        uint32_t cp = cand_cp(ci, c), after;
        int matched = 0;
        for (int32_t j = 0; j < n_chars; j++) {
            stack s = st->items[chars[j]];
            if (match_char(g, s.data[s.len - 1], cp, &after)) {
                sig[j / 64] |= (uint64_t)1 << (j % 64);
                matched = 1;
            }
        }
        if (!matched) {
            rejected[c.index] = 1;
            continue;
        }
        live[n_live].sig = sig;
        live[n_live].n_words = n_words;
        live[n_live].c = c;
        live[n_live].c.off += 1;
        n_live++;
    }
    if (!group_by_signature(a, live, n_live)) return BN_GRAMMAR_ENOMEM;
    stacks *succ = (stacks *)arena_alloc(a, (size_t)(n_chars > 0 ? n_chars : 1) * sizeof(stacks));
    uint8_t *have = (uint8_t *)arena_alloc(a, (size_t)(n_chars > 0 ? n_chars : 1));
    cand *group = (cand *)arena_alloc(a, (size_t)(n_live > 0 ? n_live : 1) * sizeof(cand));
    if (succ == NULL || have == NULL || group == NULL) return BN_GRAMMAR_ENOMEM;
    memset(have, 0, (size_t)(n_chars > 0 ? n_chars : 1));
    for (int32_t i = 0; i < n_live;) {
        int32_t end = i;
        while (end < n_live && by_signature(&live[i], &live[end]) == 0) {
            group[end] = live[end].c;
            end++;
        }
        stacks next = {0};
        int rc = 0;
        for (int32_t j = 0; rc == 0 && j < n_chars; j++) {
            if (!(live[i].sig[j / 64] >> (j % 64) & 1)) continue;
            if (!have[j]) {
                memset(&succ[j], 0, sizeof(stacks));
                if ((rc = stack_after_char(a, g, st->items[chars[j]], &succ[j])) != 0) break;
                have[j] = 1;
            }
            for (int32_t k = 0; rc == 0 && k < succ[j].n; k++) rc = stacks_add_unique(a, &next, succ[j].items[k]);
        }
        cands sub = {group + i, end - i};
        if (rc == 0) rc = reject_set(a, g, ci, &next, sub, rejected);
        if (rc != 0) return rc;
        i = end;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* handles */

bn_grammar *bn_grammar_new(const int32_t *types, const uint32_t *values, int32_t n_elems,
                           const int32_t *rule_start, int32_t n_rules) {
    if (n_elems <= 0 || n_rules <= 0 || types[n_elems - 1] != G_END) return NULL;
    for (int32_t r = 0; r < n_rules; r++)
        if (rule_start[r] < 0 || rule_start[r] >= n_elems) return NULL;
    bn_grammar *g = (bn_grammar *)calloc(1, sizeof(bn_grammar));
    if (g == NULL) return NULL;
    g->n_elems = n_elems;
    g->n_rules = n_rules;
    /* one spare END after the last element: match_char reads pos + 1 */
    g->types = (int32_t *)malloc((size_t)(n_elems + 1) * sizeof(int32_t));
    g->values = (uint32_t *)malloc((size_t)(n_elems + 1) * sizeof(uint32_t));
    g->rule_start = (int32_t *)malloc((size_t)n_rules * sizeof(int32_t));
    if (g->types == NULL || g->values == NULL || g->rule_start == NULL) {
        bn_grammar_free(g);
        return NULL;
    }
    memcpy(g->types, types, (size_t)n_elems * sizeof(int32_t));
    memcpy(g->values, values, (size_t)n_elems * sizeof(uint32_t));
    g->types[n_elems] = G_END;
    g->values[n_elems] = 0;
    memcpy(g->rule_start, rule_start, (size_t)n_rules * sizeof(int32_t));
    return g;
}

void bn_grammar_free(bn_grammar *g) {
    if (g == NULL) return;
    free(g->types);
    free(g->values);
    free(g->rule_start);
    free(g);
}

bn_grammar_vocab *bn_grammar_vocab_new(const uint8_t *blob, const int64_t *offs, int32_t n_tokens) {
    if (n_tokens < 0 || offs[0] != 0) return NULL;
    for (int32_t t = 0; t < n_tokens; t++)
        if (offs[t + 1] < offs[t]) return NULL;
    int64_t n_bytes = offs[n_tokens];
    bn_grammar_vocab *v = (bn_grammar_vocab *)calloc(1, sizeof(bn_grammar_vocab));
    if (v == NULL) return NULL;
    v->n_tokens = n_tokens;
    v->blob = (uint8_t *)malloc((size_t)(n_bytes > 0 ? n_bytes : 1));
    v->offs = (int64_t *)malloc((size_t)(n_tokens + 1) * sizeof(int64_t));
    v->cps = (uint32_t *)malloc((size_t)(n_bytes + 1) * sizeof(uint32_t));
    v->cp_offs = (int64_t *)malloc((size_t)(n_tokens + 1) * sizeof(int64_t));
    v->end_value = (uint32_t *)malloc((size_t)(n_tokens > 0 ? n_tokens : 1) * sizeof(uint32_t));
    v->end_remain = (int32_t *)malloc((size_t)(n_tokens > 0 ? n_tokens : 1) * sizeof(int32_t));
    if (!v->blob || !v->offs || !v->cps || !v->cp_offs || !v->end_value || !v->end_remain) {
        bn_grammar_vocab_free(v);
        return NULL;
    }
    if (n_bytes > 0) memcpy(v->blob, blob, (size_t)n_bytes);
    memcpy(v->offs, offs, (size_t)(n_tokens + 1) * sizeof(int64_t));
    int64_t n = 0;
    for (int32_t t = 0; t < n_tokens; t++) {
        uint32_t value = 0;
        int32_t remain = 0;
        v->cp_offs[t] = n;
        n += decode_utf8(v->blob + offs[t], offs[t + 1] - offs[t], &value, &remain, v->cps + n);
        v->end_value[t] = value;
        v->end_remain[t] = remain;
    }
    v->cp_offs[n_tokens] = n;
    return v;
}

void bn_grammar_vocab_free(bn_grammar_vocab *v) {
    if (v == NULL) return;
    free(v->blob);
    free(v->offs);
    free(v->cps);
    free(v->cp_offs);
    free(v->end_value);
    free(v->end_remain);
    free(v);
}

static int prepare_candidates(arena *a, const bn_grammar_vocab *v, uint32_t partial_value,
                              int32_t partial_n_remain, const int32_t *ids, int32_t n_ids, cands_info *ci) {
    int64_t *start = (int64_t *)arena_alloc(a, (size_t)n_ids * sizeof(int64_t));
    int64_t *end = (int64_t *)arena_alloc(a, (size_t)n_ids * sizeof(int64_t));
    uint32_t *pval = (uint32_t *)arena_alloc(a, (size_t)n_ids * sizeof(uint32_t));
    int32_t *prem = (int32_t *)arena_alloc(a, (size_t)n_ids * sizeof(int32_t));
    if (!start || !end || !pval || !prem) return BN_GRAMMAR_ENOMEM;
    for (int32_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= v->n_tokens) return BN_GRAMMAR_EARG;
    ci->ids = ids;
    ci->start = start;
    ci->end = end;
    ci->pval = pval;
    ci->prem = prem;
    if (partial_n_remain == 0) {  /* the common case: the vocabulary's own decoding */
        ci->cps = v->cps;
        for (int32_t i = 0; i < n_ids; i++) {
            start[i] = v->cp_offs[ids[i]];
            end[i] = v->cp_offs[ids[i] + 1];
            pval[i] = v->end_value[ids[i]];
            prem[i] = v->end_remain[ids[i]];
        }
        return 0;
    }
    int64_t total = 0;
    for (int32_t i = 0; i < n_ids; i++) total += v->offs[ids[i] + 1] - v->offs[ids[i]] + 1;
    uint32_t *cps = (uint32_t *)arena_alloc(a, (size_t)(total > 0 ? total : 1) * sizeof(uint32_t));
    if (cps == NULL) return BN_GRAMMAR_ENOMEM;
    int64_t n = 0;
    for (int32_t i = 0; i < n_ids; i++) {
        uint32_t value = partial_value;
        int32_t remain = partial_n_remain;
        start[i] = n;
        n += decode_utf8(v->blob + v->offs[ids[i]], v->offs[ids[i] + 1] - v->offs[ids[i]], &value, &remain,
                         cps + n);
        end[i] = n;
        pval[i] = value;
        prem[i] = remain;
    }
    ci->cps = cps;
    return 0;
}

int32_t bn_grammar_reject(const bn_grammar *g, const bn_grammar_vocab *v, const uint32_t *stack_data,
                          const int32_t *stack_lens, int32_t n_stacks, uint32_t partial_value,
                          int32_t partial_n_remain, const int32_t *ids, int32_t n_ids,
                          uint8_t *rejected) {
    if (g == NULL || v == NULL || n_stacks <= 0 || n_ids < 0) return BN_GRAMMAR_EARG;
    arena a = {NULL, 0};
    stacks st = {0};
    int rc = 0;
    int64_t at = 0;
    for (int32_t s = 0; rc == 0 && s < n_stacks; s++) {
        if (stack_lens[s] < 0) {
            rc = BN_GRAMMAR_EARG;
            break;
        }
        for (int32_t k = 0; k < stack_lens[s]; k++)
            if (stack_data[at + k] >= (uint32_t)g->n_elems) rc = BN_GRAMMAR_EARG;
        stack x = {stack_data + at, stack_lens[s]};
        if (rc == 0) rc = stacks_push(&a, &st, x);
        at += stack_lens[s];
    }
    cands_info ci;
    if (rc == 0) rc = prepare_candidates(&a, v, partial_value, partial_n_remain, ids, n_ids, &ci);
    cands in = {NULL, 0};
    if (rc == 0) {
        in.items = (cand *)arena_alloc(&a, (size_t)(n_ids > 0 ? n_ids : 1) * sizeof(cand));
        if (in.items == NULL) rc = BN_GRAMMAR_ENOMEM;
    }
    if (rc == 0) {
        for (int32_t i = 0; i < n_ids; i++) {
            in.items[i].index = i;
            in.items[i].off = 0;
        }
        in.n = n_ids;
        memset(rejected, 0, (size_t)n_ids);
        rc = reject_set(&a, g, &ci, &st, in, rejected);
    }
    if (rc == 0 && a.failed) rc = BN_GRAMMAR_ENOMEM;
    arena_free(&a);
    return rc;
}
