/* State save -> restore continues identically: the whole state (memory and file) and one
 * sequence's state (memory and file), restored into new contexts and into another sequence;
 * corrupt and truncated states restore nothing. Same source for both libraries.
 * usage: state MODEL.gguf PROMPT N_GEN STATE_FILE SEQ_FILE
 * prints "<case> ids..." greedy continuations and "<check> value" lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef USE_BITNET
#include "bitnet_ffi.h"
#else
#include "llama.h"
#endif

#define MAX_TOK 256

static struct llama_model *model;
static int32_t n_vocab;
static llama_token prompt[MAX_TOK];
static int32_t n_prompt;
static int n_gen;

static struct llama_context *new_ctx(uint32_t n_seq) {
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 256;
    cparams.n_batch = 256;
    cparams.n_seq_max = n_seq;
    cparams.n_threads = 1;
    cparams.n_threads_batch = 1;
    return llama_init_from_model(model, cparams);
}

/* decode tokens [0, n) of the prompt into seq at positions pos0.. (last token an output) */
static int decode(struct llama_context *ctx, const llama_token *toks, int32_t n, llama_pos pos0,
                  llama_seq_id seq) {
    struct llama_batch b = llama_batch_init(MAX_TOK, 0, 1);
    b.n_tokens = n;
    for (int32_t i = 0; i < n; i++) {
        b.token[i] = toks[i];
        b.pos[i] = pos0 + i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = seq;
        b.logits[i] = i == n - 1;
    }
    int rc = llama_decode(ctx, b);
    llama_batch_free(b);
    return rc;
}

/* replay the last prompt token, then print n_gen greedy tokens of seq */
static int continue_greedy(const char *name, struct llama_context *ctx, llama_seq_id seq) {
    if (decode(ctx, &prompt[n_prompt - 1], 1, n_prompt - 1, seq) != 0) return 1;
    printf("%s", name);
    for (int step = 0; step < n_gen; step++) {
        const float *row = llama_get_logits_ith(ctx, -1);
        llama_token best = 0;
        for (int32_t v = 1; v < n_vocab; v++) {
            if (row[v] > row[best]) best = v;
        }
        printf(" %d", best);
        if (decode(ctx, &best, 1, n_prompt + step, seq) != 0) return 1;
    }
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 6) return 2;
    n_gen = atoi(argv[3]);
    struct llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    model = llama_model_load_from_file(argv[1], mparams);
    if (model == NULL) return 1;
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    n_vocab = llama_vocab_n_tokens(vocab);
    n_prompt = llama_tokenize(vocab, argv[2], (int32_t)strlen(argv[2]), prompt, MAX_TOK, true, true);
    if (n_prompt < 2) return 1;

    /* the prompt but its last token, saved in every way */
    struct llama_context *a = new_ctx(2);
    if (a == NULL || decode(a, prompt, n_prompt - 1, 0, 0) != 0) return 1;
    size_t size = llama_state_get_size(a);
    uint8_t *blob = (uint8_t *)malloc(size);
    printf("state_size_matches %d\n", llama_state_get_data(a, blob, size) == size);
    printf("state_save_file %d\n", llama_state_save_file(a, argv[4], prompt, (size_t)n_prompt - 1));
    size_t seq_size = llama_state_seq_get_size(a, 0);
    uint8_t *seq_blob = (uint8_t *)malloc(seq_size);
    printf("seq_size_matches %d\n", llama_state_seq_get_data(a, seq_blob, seq_size, 0) == seq_size);
    printf("seq_save_file_ok %d\n",
           llama_state_seq_save_file(a, argv[5], 0, prompt, (size_t)n_prompt - 1) > 0);
    if (continue_greedy("baseline", a, 0) != 0) return 1;
    llama_free(a);

    struct llama_context *b = new_ctx(2); /* llama.cpp restores into the same stream count */
    printf("set_data_read_all %d\n", llama_state_set_data(b, blob, size) == size);
    printf("restored_pos_max %d\n", llama_memory_seq_pos_max(llama_get_memory(b), 0));
    if (continue_greedy("from_data", b, 0) != 0) return 1;
    llama_free(b);

    struct llama_context *c = new_ctx(2);
    llama_token toks[MAX_TOK];
    size_t n_tok = 0;
    printf("load_file %d\n", llama_state_load_file(c, argv[4], toks, MAX_TOK, &n_tok));
    printf("load_file_tokens %d %d\n", (int)n_tok, memcmp(toks, prompt, n_tok * sizeof(llama_token)) == 0);
    if (continue_greedy("from_file", c, 0) != 0) return 1;
    llama_free(c);

    /* one sequence's state into sequence 1 of a 2-sequence context */
    struct llama_context *d = new_ctx(2);
    printf("seq_set_read_all %d\n", llama_state_seq_set_data(d, seq_blob, seq_size, 1) == seq_size);
    printf("seq0_empty %d\n", llama_memory_seq_pos_max(llama_get_memory(d), 0) == -1);
    if (continue_greedy("seq_into_1", d, 1) != 0) return 1;
    llama_free(d);

    struct llama_context *e = new_ctx(2);
    n_tok = 0;
    printf("seq_load_file_ok %d\n",
           llama_state_seq_load_file(e, argv[5], 1, toks, MAX_TOK, &n_tok) > 0 && (int)n_tok == n_prompt - 1);
    if (continue_greedy("seq_file_into_1", e, 1) != 0) return 1;
    llama_free(e);

    /* llama_memory_seq_cp: sequence 0's cells to 1, then 0 removed */
    struct llama_context *f = new_ctx(2);
    if (decode(f, prompt, n_prompt - 1, 0, 0) != 0) return 1;
    llama_memory_seq_cp(llama_get_memory(f), 0, 1, -1, -1);
    llama_memory_seq_rm(llama_get_memory(f), 0, -1, -1);
    printf("cp_then_rm %d %d\n", llama_memory_seq_pos_max(llama_get_memory(f), 0),
           llama_memory_seq_pos_max(llama_get_memory(f), 1));
    if (continue_greedy("seq_cp", f, 1) != 0) return 1;
    llama_free(f);

    /* a corrupt (a flipped byte in the middle) or truncated sequence state restores nothing */
    struct llama_context *g = new_ctx(2);
    if (decode(g, prompt, n_prompt - 1, 0, 1) != 0) return 1;
    seq_blob[seq_size / 2] ^= 0x5a;
    printf("corrupt_seq_set %d\n", (int)llama_state_seq_set_data(g, seq_blob, seq_size, 0));
    printf("corrupt_seq_left_empty %d\n", llama_memory_seq_pos_max(llama_get_memory(g), 0) == -1);
    printf("other_seq_kept %d\n", llama_memory_seq_pos_max(llama_get_memory(g), 1) == n_prompt - 2);
    seq_blob[seq_size / 2] ^= 0x5a;
    printf("truncated_seq_set %d\n", (int)llama_state_seq_set_data(g, seq_blob, seq_size / 2, 0));
    printf("truncated_state_set %d\n", (int)llama_state_set_data(g, blob, size / 2));
    llama_free(g);

    free(blob);
    free(seq_blob);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
