/* A unified KV cache (n_seq_max = 3) through a sequence of memory calls that move llama.cpp's
 * cell placement away from "cell = position": a prompt shared by seq_cp, batches mixing the
 * three sequences, seq_rm in the middle of interleaved cells (the search restarts at the freed
 * cells), seq_keep, a sequence's state saved and restored into another sequence. Every output's
 * logits are printed as their argmax and a hash of their bits. Same source for libllama and
 * libbitnet_ffi (USE_BITNET picks the header); the two must print the same lines.
 * usage: kv_cells MODEL.gguf PROMPT */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef USE_BITNET
#include "bitnet_ffi.h"
#else
#include "llama.h"
#endif

static int32_t n_vocab;

static void add(struct llama_batch *b, llama_token tok, llama_pos pos, llama_seq_id seq, int8_t out) {
    const int32_t j = b->n_tokens++;
    b->token[j] = tok;
    b->pos[j] = pos;
    b->n_seq_id[j] = 1;
    b->seq_id[j][0] = seq;
    b->logits[j] = out;
}

/* decode, then print "step_<k> <i> argmax hash" for every output i; returns the argmaxes */
static int decode(struct llama_context *ctx, struct llama_batch *b, int step, llama_token *best) {
    const int rc = llama_decode(ctx, *b);
    if (rc != 0) {
        printf("step_%d decode %d\n", step, rc);
        return 1;
    }
    int k = 0;
    for (int32_t i = 0; i < b->n_tokens; i++) {
        if (!b->logits[i]) continue;
        const float *row = llama_get_logits_ith(ctx, i);
        uint64_t h = 1469598103934665603ULL;
        const unsigned char *bytes = (const unsigned char *)row;
        for (size_t c = 0; c < sizeof(float) * (size_t)n_vocab; c++) h = (h ^ bytes[c]) * 1099511628211ULL;
        llama_token arg = 0;
        for (int32_t v = 1; v < n_vocab; v++) if (row[v] > row[arg]) arg = v;
        printf("step_%d %d %d %016llx\n", step, i, arg, (unsigned long long)h);
        best[k++] = arg;
    }
    b->n_tokens = 0;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    struct llama_model_params mparams = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mparams);
    if (model == NULL) return 1;
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    n_vocab = llama_vocab_n_tokens(vocab);
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 256;
    cparams.n_batch = 64;
    cparams.n_seq_max = 3;
    cparams.kv_unified = true;
    cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cparams.n_threads = 1;
    cparams.n_threads_batch = 1;
    struct llama_context *ctx = llama_init_from_model(model, cparams);
    if (ctx == NULL) return 1;
    llama_memory_t mem = llama_get_memory(ctx);
    llama_token prompt[64], best[8];
    const int32_t n = llama_tokenize(vocab, argv[2], (int32_t)strlen(argv[2]), prompt, 64, true, true);
    if (n <= 0) return 1;
    struct llama_batch b = llama_batch_init(64, 0, 3);
    int step = 0;

    /* the prompt in sequence 0, copied to 1 and 2 (the cells are shared) */
    for (int32_t i = 0; i < n; i++) add(&b, prompt[i], i, 0, i == n - 1);
    if (decode(ctx, &b, step++, best)) return 1;
    llama_memory_seq_cp(mem, 0, 1, -1, -1);
    llama_memory_seq_cp(mem, 0, 2, -1, -1);
    /* three streams, one token each per batch, started from different tokens */
    llama_token cur[3] = {best[0], best[0] + 1, best[0] + 2};
    llama_pos pos[3] = {n, n, n};
    for (int k = 0; k < 5; k++) {
        for (int s = 0; s < 3; s++) add(&b, cur[s], pos[s]++, s, 1);
        if (decode(ctx, &b, step++, best)) return 1;
        for (int s = 0; s < 3; s++) cur[s] = best[s];
    }
    /* sequence 1 forgets its last three tokens: its cells in between the others' are free
     * and the next search starts at the first of them */
    pos[1] -= 3;
    llama_memory_seq_rm(mem, 1, pos[1], -1);
    for (int k = 0; k < 4; k++) add(&b, cur[1] + k, pos[1]++, 1, k == 3);
    add(&b, cur[2], pos[2]++, 2, 1);
    if (decode(ctx, &b, step++, best)) return 1;
    cur[1] = best[0];
    cur[2] = best[1];
    /* only sequence 2 is kept: the search restarts from cell 0 when the freed cells before
     * the head are enough */
    llama_memory_seq_keep(mem, 2);
    for (int k = 0; k < 3; k++) {
        add(&b, cur[2], pos[2]++, 2, 1);
        if (decode(ctx, &b, step++, best)) return 1;
        cur[2] = best[0];
    }
    /* sequence 2's state restored into sequence 0; both continue in one batch */
    const size_t size = llama_state_seq_get_size(ctx, 2);
    uint8_t *buf = (uint8_t *)malloc(size);
    if (buf == NULL || llama_state_seq_get_data(ctx, buf, size, 2) != size) return 1;
    llama_memory_seq_rm(mem, 2, pos[2] - 2, -1);
    if (llama_state_seq_set_data(ctx, buf, size, 0) != size) return 1;
    free(buf);
    pos[0] = pos[2];
    pos[2] -= 2;
    add(&b, cur[2], pos[0]++, 0, 1);
    add(&b, cur[2], pos[2]++, 2, 1);
    if (decode(ctx, &b, step++, best)) return 1;
    printf("pos_max %d %d %d\n", llama_memory_seq_pos_max(mem, 0), llama_memory_seq_pos_max(mem, 1),
           llama_memory_seq_pos_max(mem, 2));
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
