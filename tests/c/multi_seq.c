/* Several sequences in one batch (n_seq_max = 2): each sequence's greedy continuation must be
 * what it is alone. Same source for libllama and libbitnet_ffi (USE_BITNET picks the header).
 * usage: multi_seq MODEL.gguf N_GEN UNIFIED(0|1) PROMPT_A PROMPT_B [coupled]
 * prints "batched_<s> ids..." (both sequences in every batch) and "single_<s> ids..." (each
 * sequence alone in its own context), "n_ctx_seq n"; with "coupled" also "coupled_<s> ids...":
 * PROMPT_A's tokens each in sequences 0 and 1 of a context with per-sequence streams (libllama
 * refuses that batch), then both sequences continued greedily in one batch per step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef USE_BITNET
#include "bitnet_ffi.h"
#else
#include "llama.h"
#endif

#define MAX_TOK 256

static llama_token greedy(struct llama_context *ctx, int32_t i, int32_t n_vocab) {
    const float *row = llama_get_logits_ith(ctx, i);
    llama_token best = 0;
    for (int32_t v = 1; v < n_vocab; v++) {
        if (row[v] > row[best]) best = v;
    }
    return best;
}

static struct llama_context *new_ctx(struct llama_model *model, uint32_t n_seq, bool unified) {
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 512;
    cparams.n_batch = 512;
    cparams.n_seq_max = n_seq;
    cparams.kv_unified = unified;
    cparams.n_threads = 1;
    cparams.n_threads_batch = 1;
    return llama_init_from_model(model, cparams);
}

int main(int argc, char **argv) {
    if (argc < 6) return 2;
    const int n_gen = atoi(argv[2]);
    const bool unified = atoi(argv[3]) != 0;
    struct llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(argv[1], mparams);
    if (model == NULL) return 1;
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);
    llama_token prompt[2][MAX_TOK];
    int32_t n_prompt[2];
    for (int s = 0; s < 2; s++) {
        const char *text = argv[4 + s];
        n_prompt[s] = llama_tokenize(vocab, text, (int32_t)strlen(text), prompt[s], MAX_TOK, true, true);
        if (n_prompt[s] <= 0) return 1;
    }

    /* both sequences in every batch */
    struct llama_context *ctx = new_ctx(model, 2, unified);
    if (ctx == NULL) return 1;
    printf("n_ctx_seq %u\n", llama_n_ctx_seq(ctx));
    struct llama_batch batch = llama_batch_init(512, 0, 2);
    int32_t out_idx[2];
    batch.n_tokens = 0;
    for (int s = 0; s < 2; s++) {
        for (int32_t i = 0; i < n_prompt[s]; i++) {
            int32_t j = batch.n_tokens++;
            batch.token[j] = prompt[s][i];
            batch.pos[j] = i;
            batch.n_seq_id[j] = 1;
            batch.seq_id[j][0] = s;
            batch.logits[j] = i == n_prompt[s] - 1;
        }
        out_idx[s] = batch.n_tokens - 1;
    }
    llama_token gen[2][MAX_TOK];
    for (int step = 0; step < n_gen; step++) {
        int rc = llama_decode(ctx, batch);
        if (rc != 0) {
            fprintf(stderr, "decode failed: %d\n", rc);
            return 1;
        }
        batch.n_tokens = 0;
        for (int s = 0; s < 2; s++) {
            gen[s][step] = greedy(ctx, out_idx[s], n_vocab);
            int32_t j = batch.n_tokens++;
            batch.token[j] = gen[s][step];
            batch.pos[j] = n_prompt[s] + step;
            batch.n_seq_id[j] = 1;
            batch.seq_id[j][0] = s;
            batch.logits[j] = 1;
            out_idx[s] = j;
        }
    }
    for (int s = 0; s < 2; s++) {
        printf("batched_%d", s);
        for (int step = 0; step < n_gen; step++) printf(" %d", gen[s][step]);
        printf("\n");
    }
    llama_batch_free(batch);
    llama_free(ctx);

    /* each sequence alone */
    for (int s = 0; s < 2; s++) {
        struct llama_context *one = new_ctx(model, 1, false);
        if (one == NULL) return 1;
        llama_token toks[MAX_TOK];
        memcpy(toks, prompt[s], sizeof(llama_token) * (size_t)n_prompt[s]);
        struct llama_batch b = llama_batch_get_one(toks, n_prompt[s]);
        printf("single_%d", s);
        for (int step = 0; step < n_gen; step++) {
            if (llama_decode(one, b) != 0) return 1;
            toks[n_prompt[s] + step] = greedy(one, -1, n_vocab);
            printf(" %d", toks[n_prompt[s] + step]);
            b = llama_batch_get_one(&toks[n_prompt[s] + step], 1);
        }
        printf("\n");
        llama_free(one);
    }
    if (argc > 6 && strcmp(argv[6], "coupled") == 0) {
        struct llama_context *two = new_ctx(model, 2, false);
        struct llama_batch cb = llama_batch_init(512, 0, 2);
        if (two == NULL) return 1;
        for (int32_t i = 0; i < n_prompt[0]; i++) {
            cb.token[i] = prompt[0][i];
            cb.pos[i] = i;
            cb.n_seq_id[i] = 2;
            cb.seq_id[i][0] = 0;
            cb.seq_id[i][1] = 1;
            cb.logits[i] = i == n_prompt[0] - 1;
        }
        cb.n_tokens = n_prompt[0];
        int32_t idx[2] = {n_prompt[0] - 1, n_prompt[0] - 1};
        for (int step = 0; step < n_gen; step++) {
            if (llama_decode(two, cb) != 0) return 1;
            cb.n_tokens = 0;
            for (int s = 0; s < 2; s++) {
                gen[s][step] = greedy(two, idx[s], n_vocab);
                int32_t j = cb.n_tokens++;
                cb.token[j] = gen[s][step];
                cb.pos[j] = n_prompt[0] + step;
                cb.n_seq_id[j] = 1;
                cb.seq_id[j][0] = s;
                cb.logits[j] = 1;
                idx[s] = j;
            }
        }
        for (int s = 0; s < 2; s++) {
            printf("coupled_%d", s);
            for (int step = 0; step < n_gen; step++) printf(" %d", gen[s][step]);
            printf("\n");
        }
        llama_batch_free(cb);
        llama_free(two);
    }
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
