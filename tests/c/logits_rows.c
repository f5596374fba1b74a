/* Which logits rows the library keeps: llama_eval with logits_all (bitnet_set_logits_all), and llama_decode with
 * per-token batch.logits flags (every other token, plus the last).
 * usage: logits_rows MODEL.gguf PROMPT
 * prints "all_<i> argmax" for every token, "flag_<i> argmax" for flagged tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet_ffi.h"

static int32_t argmax(const float *row, int32_t n) {
    int32_t best = 0;
    for (int32_t v = 1; v < n; v++) {
        if (row[v] > row[best]) best = v;
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    struct llama_model *model = llama_load_model_from_file(argv[1], llama_model_default_params());
    if (model == NULL) return 1;
    const int32_t n_vocab = llama_n_vocab(model);
    llama_token tokens[64];
    int32_t n = llama_tokenize(model, argv[2], (int32_t)strlen(argv[2]), tokens, 64, true, false);
    if (n < 2) return 1;

    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 64;
    cparams.n_batch = 64;
    struct llama_context *ctx = llama_new_context_with_model(model, cparams);
    if (ctx == NULL) return 1;
    bitnet_set_logits_all(ctx, true); /* the legacy logits_all context flag */
    if (llama_eval(ctx, tokens, n, 0, 1) != 0) return 1;
    const float *all = llama_get_logits(ctx);
    for (int32_t i = 0; i < n; i++) printf("all_%d %d\n", i, argmax(all + (size_t)i * n_vocab, n_vocab));
    llama_free(ctx);

    ctx = llama_init_from_model(model, cparams);
    if (ctx == NULL) return 1;
    llama_pos pos[64];
    int8_t flags[64];
    for (int32_t i = 0; i < n; i++) {
        pos[i] = i;
        flags[i] = (int8_t)(i % 2 == 0 || i == n - 1);
    }
    struct llama_batch batch = llama_batch_get_one(tokens, n);
    batch.pos = pos;
    batch.logits = flags;
    if (llama_decode(ctx, batch) != 0) return 1;
    for (int32_t i = 0; i < n; i++) {
        const float *row = llama_get_logits_ith(ctx, i);
        if ((row != NULL) != (flags[i] != 0)) return 4;
        if (row != NULL) printf("flag_%d %d\n", i, argmax(row, n_vocab));
    }
    /* llama_get_logits: the flagged rows, contiguous, in batch order */
    const float *first = llama_get_logits(ctx);
    printf("first %d\n", argmax(first, n_vocab));
    llama_free(ctx);
    llama_free_model(model);
    return 0;
}
