/* The current llama.cpp API (vocab, batch, decode, greedy sampler): greedy generation.
 * Source-compatible with llama.cpp's own llama.h: only the #include differs.
 * usage: current_api MODEL.gguf PROMPT N_GEN */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet_ffi.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL PROMPT N_GEN\n", argv[0]);
        return 2;
    }
    const int n_gen = atoi(argv[3]);
    llama_backend_init();
    struct llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(argv[1], mparams);
    if (model == NULL) return 1;
    const struct llama_vocab *vocab = llama_model_get_vocab(model);

    const char *prompt = argv[2];
    const int32_t len = (int32_t)strlen(prompt);
    /* the usual two-pass idiom: ask for the size, then tokenize */
    const int32_t n_prompt = -llama_tokenize(vocab, prompt, len, NULL, 0, true, true);
    llama_token *tokens = (llama_token *)malloc(sizeof(llama_token) * (size_t)(n_prompt + n_gen));
    if (llama_tokenize(vocab, prompt, len, tokens, n_prompt, true, true) != n_prompt) return 1;
    printf("tokens %d", n_prompt);
    for (int32_t i = 0; i < n_prompt; i++) printf(" %d", tokens[i]);
    printf("\n");

    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 64;
    cparams.n_batch = 64;
    cparams.n_threads = 2;
    struct llama_context *ctx = llama_init_from_model(model, cparams);
    if (ctx == NULL) return 1;

    struct llama_sampler *smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

    printf("generated");
    struct llama_batch batch = llama_batch_get_one(tokens, n_prompt);
    for (int i = 0; i < n_gen; i++) {
        if (llama_decode(ctx, batch) != 0) return 1;
        llama_token next = llama_sampler_sample(smpl, ctx, -1);
        const float *row = llama_get_logits_ith(ctx, -1);
        int32_t best = 0;
        for (int32_t v = 1; v < llama_vocab_n_tokens(vocab); v++) {
            if (row[v] > row[best]) best = v;
        }
        if (best != next) return 3; /* the sampler and the raw logits disagree */
        printf(" %d", next);
        if (llama_vocab_is_eog(vocab, next)) break;
        char piece[64];
        int32_t np = llama_token_to_piece(vocab, next, piece, (int32_t)sizeof piece, 0, true);
        if (np < 0) return 1;
        tokens[n_prompt + i] = next;
        batch = llama_batch_get_one(&tokens[n_prompt + i], 1);
    }
    printf("\n");
    printf("eos %d\n", llama_vocab_eos(vocab));

    llama_sampler_free(smpl);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    free(tokens);
    return 0;
}
