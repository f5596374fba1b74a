/* The LOCKED legacy API generating text, and the legacy llama_sample_* family.
 * usage: legacy_generate MODEL PROMPT N_GEN
 * 1. tokenizes PROMPT, evals it with llama_eval and greedy-decodes N_GEN tokens one llama_eval
 *    at a time (n_past advancing), choosing each with llama_sample_token_greedy over a
 *    llama_token_data_array built from llama_get_logits;
 * 2. applies each legacy sampler to fixed synthetic logits (the same as dual_api.c's) and
 *    prints the candidates as dual_api does, for comparison with llama.cpp's samplers;
 * 3. seeded sampling: llama_sample_token with the context's generator.
 * Uses the llama_sample_* names for some calls and the spec's llama_sampling_* for others. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet_ffi.h"

#include "synthetic_candidates.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL PROMPT N_GEN\n", argv[0]);
        return 2;
    }
    const int n_gen = atoi(argv[3]);
    llama_backend_init();
    struct llama_model_params mparams = llama_model_default_params();
    struct llama_model *model = llama_load_model_from_file(argv[1], mparams);
    if (model == NULL) return 1;
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 128;
    cparams.n_batch = 128;
    struct llama_context *ctx = llama_new_context_with_model(model, cparams);
    /* llama_context_params lost its legacy seed field: the legacy generator's seed */
    llama_set_rng_seed(ctx, 1234);
    if (ctx == NULL) return 1;
    const int32_t n_vocab = llama_n_vocab(model);

    llama_token tokens[128];
    const char *prompt = argv[2];
    int32_t n = llama_tokenize(model, prompt, (int32_t)strlen(prompt), tokens, 128, true, false);
    if (n <= 0 || n + n_gen > 128) return 1;
    printf("tokens %d", n);
    for (int32_t i = 0; i < n; i++) printf(" %d", tokens[i]);
    printf("\n");

    /* 1. greedy generation, llama_eval with n_past */
    llama_token_data *cand = (llama_token_data *)malloc(sizeof(llama_token_data) * (size_t)n_vocab);
    if (llama_eval(ctx, tokens, n, 0, 2) != 0) return 1;
    int32_t n_past = n;
    printf("generated");
    for (int i = 0; i < n_gen; i++) {
        const float *logits = llama_get_logits(ctx);
        for (int32_t v = 0; v < n_vocab; v++) {
            cand[v].id = v;
            cand[v].logit = logits[v];
            cand[v].p = 0.0f;
        }
        llama_token_data_array arr = {cand, (size_t)n_vocab, -1, false};
        llama_token next = (i % 2) ? llama_sample_token_greedy(ctx, &arr)
                                   : llama_sampling_token_greedy(NULL, &arr);
        printf(" %d", next);
        if (next == llama_token_eos(model)) break;
        if (llama_eval(ctx, &next, 1, n_past, 2) != 0) return 1;
        n_past++;
    }
    printf("\n");
    free(cand);

    /* 2. the legacy samplers on synthetic logits (names as dual_api.c's samplers mode) */
    make_logits();
    llama_token_data buf[N_CAND];
    llama_token_data_array cur;
    fill(&cur, buf);
    llama_sample_top_k(NULL, &cur, 40, 1);
    dump("top_k_40", &cur);
    fill(&cur, buf);
    llama_sampling_top_k(ctx, &cur, 200, 1);
    dump("top_k_200", &cur);
    fill(&cur, buf);
    llama_sample_top_k(NULL, &cur, 10, 25); /* k raised to min_keep */
    dump("legacy_top_k_10_keep_25", &cur);
    fill(&cur, buf);
    llama_sample_top_p(NULL, &cur, 0.9f, 1);
    dump("top_p_0.9", &cur);
    fill(&cur, buf);
    llama_sampling_top_p(NULL, &cur, 0.5f, 30);
    dump("top_p_0.5_keep_30", &cur);
    fill(&cur, buf);
    llama_sample_min_p(NULL, &cur, 0.05f, 1);
    dump("min_p_0.05", &cur);
    fill(&cur, buf);
    llama_sampling_min_p(NULL, &cur, 0.3f, 20);
    dump("min_p_0.3_keep_20", &cur);
    fill(&cur, buf);
    llama_sample_typical(NULL, &cur, 0.9f, 1);
    dump("typical_0.9", &cur);
    fill(&cur, buf);
    llama_sampling_temp(NULL, &cur, 0.7f);
    dump("temp_0.7", &cur);
    fill(&cur, buf);
    /* the penalties window: the last 8 of the history dual_api.c accepts */
    const llama_token hist[10] = {5, 17, 17, 250, 5, 17, 99, 3, 3, 3};
    llama_sample_repetition_penalties(NULL, &cur, hist + 2, 8, 1.3f, 0.1f, 0.2f);
    dump("penalties", &cur);
    fill(&cur, buf);
    printf("greedy_token %d\n", llama_sample_token_greedy(NULL, &cur));
    fill(&cur, buf);
    llama_sample_softmax(NULL, &cur);
    dump("softmax", &cur);

    /* 3. seeded sampling: the context's mt19937, seeded by llama_set_rng_seed, then reseeded */
    printf("draws_seed_1234");
    for (int r = 0; r < 8; r++) {
        fill(&cur, buf);
        llama_sample_top_k(NULL, &cur, 40, 1);
        llama_sample_temp(NULL, &cur, 0.8f);
        printf(" %d", llama_sample_token(ctx, &cur));
    }
    printf("\n");
    dump("last_draw_candidates", &cur);
    llama_set_rng_seed(ctx, 1234);
    printf("draws_reseeded");
    for (int r = 0; r < 8; r++) {
        fill(&cur, buf);
        llama_sample_top_k(NULL, &cur, 40, 1);
        llama_sample_temp(NULL, &cur, 0.8f);
        printf(" %d", llama_sampling_token(ctx, &cur));
    }
    printf("\n");

    llama_free(ctx);
    llama_free_model(model);
    llama_backend_free();
    return 0;
}
