/* Fixed synthetic logits as a llama_token_data_array, and a dump of one: shared by the
 * sampler checks of dual_api.c (current API, also built against llama.h) and
 * legacy_generate.c (legacy llama_sample_*), whose outputs the tests compare with libllama's.
 * Include after llama.h / bitnet_ffi.h (it uses their llama_token_data types). */
#ifndef BITNET_TEST_SYNTHETIC_CANDIDATES_H
#define BITNET_TEST_SYNTHETIC_CANDIDATES_H

#include <stdint.h>
#include <stdio.h>

#define N_CAND 300
static float g_logits[N_CAND];

static void make_logits(void) {
    uint32_t x = 12345u;
    for (int i = 0; i < N_CAND; i++) {
        x = x * 1664525u + 1013904223u;
        /* 64 distinct values in [-8, 8): many ties, as real quantized logits have */
        g_logits[i] = (float)((x >> 10) % 64u) * 0.25f - 8.0f;
    }
}

static void fill(llama_token_data_array *cur, llama_token_data *buf) {
    for (int i = 0; i < N_CAND; i++) {
        buf[i].id = i;
        buf[i].logit = g_logits[i];
        buf[i].p = 0.0f;
    }
    cur->data = buf;
    cur->size = N_CAND;
    cur->selected = -1;
    cur->sorted = false;
}

static void dump(const char *name, const llama_token_data_array *cur) {
    printf("%s %zu %lld %d", name, cur->size, (long long)cur->selected, (int)cur->sorted);
    for (size_t i = 0; i < cur->size; i++) {
        printf(" %d:%a:%a", cur->data[i].id, cur->data[i].logit, cur->data[i].p);
    }
    printf("\n");
}

#endif
