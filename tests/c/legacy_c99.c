/* The spec's LOCKED legacy API in C99: BITNET_FFI_LEGACY_API declares llama_tokenize(model, ...)
 * and the other model forms under the llama_* names; bitnet_model_* are the same functions
 * under names that never change. Greedy generation with llama_eval + llama_get_logits.
 * usage: legacy_c99 MODEL.gguf PROMPT N_GEN
 * prints "tokens n ids...", "generated ids...", "pieces hex..." */
#define BITNET_FFI_LEGACY_API
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet_ffi.h"

static llama_token argmax(const float *row, int32_t n) {
    llama_token best = 0;
    int32_t v;
    for (v = 1; v < n; v++) {
        if (row[v] > row[best]) best = v;
    }
    return best;
}

int main(int argc, char **argv) {
    struct llama_model *model;
    struct llama_context *ctx;
    struct llama_context_params cparams;
    llama_token tokens[256];
    int32_t n, i, n_vocab, n_gen;
    if (argc < 4) return 2;
    n_gen = atoi(argv[3]);
    model = llama_load_model_from_file(argv[1], llama_model_default_params());
    if (model == NULL) return 1;
    cparams = llama_context_default_params();
    cparams.n_ctx = 128;
    cparams.n_batch = 128;
    ctx = llama_new_context_with_model(model, cparams);
    if (ctx == NULL) return 1;
    n = llama_tokenize(model, argv[2], (int32_t)strlen(argv[2]), tokens, 128, true, true);
    if (n <= 0) return 1;
    n_vocab = llama_n_vocab(model);
    printf("tokens %d", n);
    for (i = 0; i < n; i++) printf(" %d", tokens[i]);
    printf("\ngenerated");
    if (llama_eval(ctx, tokens, n, 0, 1) != 0) return 1;
    for (i = 0; i < n_gen; i++) {
        llama_token next = argmax(llama_get_logits(ctx), n_vocab);
        tokens[n + i] = next;
        printf(" %d", next);
        if (next == llama_token_eos(model)) break;
        if (llama_eval(ctx, &tokens[n + i], 1, n + i, 1) != 0) return 1;
    }
    printf("\npieces");
    for (i = 0; i < n_gen && n + i < 256; i++) {
        char piece[64];
        int32_t k, np = bitnet_model_token_to_piece(model, tokens[n + i], piece, 64, 0, true);
        printf(" ");
        for (k = 0; k < np; k++) printf("%02x", (unsigned char)piece[k]);
        if (tokens[n + i] == llama_token_eos(model)) break;
    }
    printf("\n");
    llama_free(ctx);
    llama_free_model(model);
    llama_backend_free();
    return 0;
}
