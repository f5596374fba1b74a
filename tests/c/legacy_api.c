/* The LOCKED legacy C API end to end: load, tokenize, eval, logits, token pieces.
 * usage: legacy_api MODEL.gguf PROMPT
 * prints "key value..." lines that tests/test_api_contract.py compares with the Python engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet_ffi.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL PROMPT\n", argv[0]);
        return 2;
    }
    llama_backend_init();
    struct llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    struct llama_model *model = llama_load_model_from_file(argv[1], mparams);
    if (model == NULL) {
        fprintf(stderr, "load failed\n");
        return 1;
    }
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 64;
    cparams.n_batch = 64;
    cparams.n_threads = 2;
    struct llama_context *ctx = llama_new_context_with_model(model, cparams);
    if (ctx == NULL) {
        fprintf(stderr, "context failed\n");
        return 1;
    }
    printf("n_vocab %d\n", llama_n_vocab(model));
    printf("n_ctx %u\n", llama_n_ctx(ctx));
    printf("special %d %d %d\n", llama_token_bos(model), llama_token_eos(model), llama_token_nl(model));

    const char *prompt = argv[2];
    llama_token tokens[64];
    int32_t n = llama_tokenize(model, prompt, (int32_t)strlen(prompt), tokens, 64, true, false);
    if (n < 0) {
        fprintf(stderr, "tokenize failed: %d\n", n);
        return 1;
    }
    printf("tokens %d", n);
    for (int32_t i = 0; i < n; i++) printf(" %d", tokens[i]);
    printf("\n");

    if (llama_eval(ctx, tokens, n, 0, cparams.n_threads) != 0) {
        fprintf(stderr, "eval failed\n");
        return 1;
    }
    const float *logits = llama_get_logits(ctx);
    const int32_t n_vocab = llama_n_vocab(model);
    int32_t best = 0;
    for (int32_t v = 1; v < n_vocab; v++) {
        if (logits[v] > logits[best]) best = v;
    }
    printf("argmax %d\n", best);
    printf("logits %.9g %.9g %.9g\n", logits[0], logits[1], logits[best]);

    char piece[64];
    int32_t np = llama_token_to_piece(model, best, piece, (int32_t)sizeof piece, 0, false);
    printf("piece");
    for (int32_t i = 0; i < np; i++) printf(" %02x", (unsigned char)piece[i]);
    printf("\n");

    /* one more step: the next token's argmax after feeding `best` at n_past = n */
    if (llama_eval(ctx, &best, 1, n, cparams.n_threads) != 0) {
        fprintf(stderr, "eval 2 failed\n");
        return 1;
    }
    logits = llama_get_logits(ctx);
    int32_t best2 = 0;
    for (int32_t v = 1; v < n_vocab; v++) {
        if (logits[v] > logits[best2]) best2 = v;
    }
    printf("argmax2 %d\n", best2);

    llama_free(ctx);
    llama_free_model(model);
    llama_backend_free();
    return 0;
}
