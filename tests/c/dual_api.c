/* One program, two builds: against llama.cpp (llama.h + libllama) and against bitnet-compat
 * (bitnet_ffi.h + libbitnet_ffi). Only the include line and the link flags differ.
 *
 * usage: dual_api generate MODEL PROMPT N_GEN [nofa]   greedy continuation (nofa: flash
 *        attention disabled), model info, batches,
 *                                               KV-cache edits, embeddings, detokenize
 *        dual_api samplers                      every sampler on fixed synthetic logits
 * Prints "key values..." lines; floats as %a (exact) where both builds must agree bit for bit. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef USE_BITNET
#include "bitnet_ffi.h"
#else
#include "llama.h"
#endif

#define N_CTX 256
#define FAIL(code) (fprintf(stderr, "failed at line %d\n", __LINE__), fflush(stdout), (code))

static int32_t argmax(const float *row, int32_t n) {
    int32_t best = 0;
    for (int32_t v = 1; v < n; v++) {
        if (row[v] > row[best]) best = v;
    }
    return best;
}

static void print_top2(const char *key, const float *row, int32_t n) {
    int32_t a = argmax(row, n), b = a == 0 ? 1 : 0;
    for (int32_t v = 0; v < n; v++) {
        if (v != a && row[v] > row[b]) b = v;
    }
    printf("%s %d %.9g %d %.9g\n", key, a, row[a], b, row[b]);
}

static int generate(const char *path, const char *prompt, int n_gen, bool flash_attn_off) {
    struct llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(path, mparams);
    if (model == NULL) return FAIL(1);
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);
    printf("n_vocab %d\n", n_vocab);
    printf("n_embd %d\n", llama_model_n_embd(model));
    printf("n_ctx_train %d\n", llama_model_n_ctx_train(model));
    printf("special %d %d %d\n", llama_vocab_bos(vocab), llama_vocab_eos(vocab),
           llama_vocab_nl(vocab));
    char meta[256];
    int32_t nm = llama_model_meta_val_str(model, "general.architecture", meta, sizeof meta);
    printf("meta_arch %d %s\n", nm, meta);
    nm = llama_model_meta_val_str(model, "llama.context_length", meta, sizeof meta);
    printf("meta_ctx %d %s\n", nm, meta);
    nm = llama_model_meta_val_str(model, "llama.rope.freq_base", meta, sizeof meta);
    printf("meta_rope %d %s\n", nm, meta);
    nm = llama_model_meta_val_str(model, "general.architecture", meta, 4);
    printf("meta_trunc %d %s\n", nm, meta);
    printf("meta_missing %d\n", llama_model_meta_val_str(model, "no.such.key", meta, sizeof meta));

    const int32_t len = (int32_t)strlen(prompt);
    const int32_t n_prompt = -llama_tokenize(vocab, prompt, len, NULL, 0, true, true);
    if (n_prompt < 2) return FAIL(1); /* the KV-cache part re-decodes the last two tokens */
    llama_token *tokens = (llama_token *)malloc(sizeof(llama_token) * (size_t)(n_prompt + n_gen));
    if (llama_tokenize(vocab, prompt, len, tokens, n_prompt, true, true) != n_prompt) return FAIL(1);
    printf("tokens %d", n_prompt);
    for (int32_t i = 0; i < n_prompt; i++) printf(" %d", tokens[i]);
    printf("\n");

    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = N_CTX;
    cparams.n_batch = N_CTX;
    cparams.n_threads = 1; /* the test machine is shared; one thread each */
    cparams.n_threads_batch = 1;
    if (flash_attn_off) cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    struct llama_context *ctx = llama_init_from_model(model, cparams);
    if (ctx == NULL) return FAIL(1);
    printf("n_ctx %u\n", llama_n_ctx(ctx));

    /* greedy continuation through the sampler chain */
    struct llama_sampler *smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
    struct llama_batch batch = llama_batch_get_one(tokens, n_prompt);
    int n_out = 0;
    for (int i = 0; i < n_gen; i++) {
        if (llama_decode(ctx, batch) != 0) return FAIL(1);
        const float *row = llama_get_logits_ith(ctx, -1);
        char key[32];
        snprintf(key, sizeof key, "top2_%d", i);
        print_top2(key, row, n_vocab);
        llama_token next = llama_sampler_sample(smpl, ctx, -1);
        if (next != argmax(row, n_vocab)) return FAIL(3);
        tokens[n_prompt + n_out++] = next;
        if (llama_vocab_is_eog(vocab, next)) break;
        batch = llama_batch_get_one(&tokens[n_prompt + n_out - 1], 1);
    }
    printf("generated");
    for (int i = 0; i < n_out; i++) printf(" %d", tokens[n_prompt + i]);
    printf("\n");
    char text[2048];
    int32_t nt = llama_detokenize(vocab, tokens + n_prompt, n_out, text, sizeof text - 1, false,
                                  false);
    if (nt < 0) return FAIL(1);
    printf("text");
    for (int32_t i = 0; i < nt; i++) printf(" %02x", (unsigned char)text[i]);
    printf("\n");
    printf("detok_small %d\n", llama_detokenize(vocab, tokens, n_prompt + n_out, text, 2, true,
                                                 true));
    char piece[64];
    int32_t np = llama_token_to_piece(vocab, tokens[n_prompt], piece, sizeof piece, 0, false);
    printf("piece");
    for (int32_t i = 0; i < np; i++) printf(" %02x", (unsigned char)piece[i]);
    printf("\n");

    /* a heap batch with explicit positions, sequence ids and per-token logits flags */
    llama_memory_t mem = llama_get_memory(ctx);
    llama_memory_clear(mem, true);
    printf("pos_max_cleared %d\n", llama_memory_seq_pos_max(mem, 0));
    struct llama_batch big = llama_batch_init(n_prompt, 0, 1);
    big.n_tokens = n_prompt;
    for (int32_t i = 0; i < n_prompt; i++) {
        big.token[i] = tokens[i];
        big.pos[i] = i;
        big.n_seq_id[i] = 1;
        big.seq_id[i][0] = 0;
        big.logits[i] = (int8_t)(i % 3 == 0 || i == n_prompt - 1);
    }
    if (llama_decode(ctx, big) != 0) return FAIL(1);
    printf("pos_range %d %d\n", llama_memory_seq_pos_min(mem, 0), llama_memory_seq_pos_max(mem, 0));
    printf("rows");
    for (int32_t i = 0; i < n_prompt; i++) {
        if (big.logits[i]) printf(" %d:%d", i, argmax(llama_get_logits_ith(ctx, i), n_vocab));
    }
    printf("\n");
    const int32_t last_full = argmax(llama_get_logits_ith(ctx, n_prompt - 1), n_vocab);

    /* forget the last two positions and decode them again */
    printf("seq_rm %d\n", (int)llama_memory_seq_rm(mem, 0, n_prompt - 2, -1));
    printf("pos_max_rm %d\n", llama_memory_seq_pos_max(mem, 0));
    big.n_tokens = 2;
    for (int32_t i = 0; i < 2; i++) {
        big.token[i] = tokens[n_prompt - 2 + i];
        big.pos[i] = n_prompt - 2 + i;
        big.n_seq_id[i] = 1;
        big.seq_id[i][0] = 0;
        big.logits[i] = (int8_t)(i == 1);
    }
    if (llama_decode(ctx, big) != 0) return FAIL(1);
    printf("redecode %d %d\n", argmax(llama_get_logits_ith(ctx, -1), n_vocab), last_full);
    llama_batch_free(big);

    /* embeddings: a context with embeddings on outputs every token */
    struct llama_context_params eparams = cparams;
    eparams.embeddings = true;
    struct llama_context *ectx = llama_init_from_model(model, eparams);
    if (ectx == NULL) return FAIL(1);
    if (llama_decode(ectx, llama_batch_get_one(tokens, n_prompt)) != 0) return FAIL(1);
    const int32_t n_embd = llama_model_n_embd(model);
    const float *e_last = llama_get_embeddings_ith(ectx, -1);
    const float *e_first = llama_get_embeddings_ith(ectx, 0);
    const float *e_all = llama_get_embeddings(ectx);
    if (e_last == NULL || e_first == NULL || e_all == NULL) return FAIL(4);
    printf("embd_first_is_row0 %d\n", e_first == e_all);
    printf("embd_last");
    for (int32_t i = 0; i < n_embd; i++) printf(" %.9g", e_last[i]);
    printf("\n");
    printf("embd_argmax_last %d\n", argmax(llama_get_logits_ith(ectx, -1), n_vocab));
    printf("embd_plain_ctx_null %d\n", llama_get_embeddings(ctx) == NULL);

    llama_sampler_free(smpl);
    llama_free(ectx);
    llama_free(ctx);
    llama_model_free(model);
    free(tokens);
    return 0;
}

/* ---- samplers on synthetic logits ---- */

#include "synthetic_candidates.h"

static void run_one(const char *name, struct llama_sampler *s) {
    llama_token_data buf[N_CAND];
    llama_token_data_array cur;
    fill(&cur, buf);
    llama_sampler_apply(s, &cur);
    dump(name, &cur);
    llama_sampler_free(s);
}

static int samplers(void) {
    make_logits();
    run_one("top_k_40", llama_sampler_init_top_k(40));
    run_one("top_k_200", llama_sampler_init_top_k(200));
    run_one("top_k_0", llama_sampler_init_top_k(0));
    run_one("top_p_0.9", llama_sampler_init_top_p(0.9f, 1));
    run_one("top_p_0.5_keep_30", llama_sampler_init_top_p(0.5f, 30));
    run_one("min_p_0.05", llama_sampler_init_min_p(0.05f, 1));
    run_one("min_p_0.3_keep_20", llama_sampler_init_min_p(0.3f, 20));
    run_one("typical_0.9", llama_sampler_init_typical(0.9f, 1));
    run_one("temp_0.7", llama_sampler_init_temp(0.7f));
    run_one("temp_0", llama_sampler_init_temp(0.0f));
    run_one("greedy", llama_sampler_init_greedy());
    run_one("dist_1234", llama_sampler_init_dist(1234));

    struct llama_sampler *pen = llama_sampler_init_penalties(N_CAND, 8, 1.3f, 0.1f, 0.2f);
    const llama_token hist[10] = {5, 17, 17, 250, 5, 17, 99, 3, 3, 3};
    for (int i = 0; i < 10; i++) llama_sampler_accept(pen, hist[i]);
    run_one("penalties", pen);

    /* llama-cpp-python's default chain, sampled 24 times (the dist sampler's RNG advances) */
    struct llama_sampler *chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(chain, llama_sampler_init_penalties(N_CAND, 64, 1.1f, 0.0f, 0.0f));
    llama_sampler_chain_add(chain, llama_sampler_init_top_k(40));
    llama_sampler_chain_add(chain, llama_sampler_init_typical(1.0f, 1));
    llama_sampler_chain_add(chain, llama_sampler_init_top_p(0.95f, 1));
    llama_sampler_chain_add(chain, llama_sampler_init_min_p(0.05f, 1));
    llama_sampler_chain_add(chain, llama_sampler_init_temp(0.8f));
    llama_sampler_chain_add(chain, llama_sampler_init_dist(42));
    printf("chain_n %d\n", llama_sampler_chain_n(chain));
    printf("chain_seed %u\n", llama_sampler_get_seed(chain));
    printf("chain_draws");
    for (int r = 0; r < 24; r++) {
        llama_token_data buf[N_CAND];
        llama_token_data_array cur;
        fill(&cur, buf);
        llama_sampler_apply(chain, &cur);
        llama_token tok = cur.data[cur.selected].id;
        llama_sampler_accept(chain, tok);
        printf(" %d", tok);
    }
    printf("\n");
    llama_sampler_reset(chain);
    llama_token_data buf[N_CAND];
    llama_token_data_array cur;
    fill(&cur, buf);
    llama_sampler_apply(chain, &cur);
    dump("chain_after_reset", &cur);
    llama_sampler_free(chain);
    return 0;
}

int main(int argc, char **argv) {
    llama_backend_init();
    int rc = 2;
    if (argc >= 5 && strcmp(argv[1], "generate") == 0) {
        rc = generate(argv[2], argv[3], atoi(argv[4]), argc > 5 && strcmp(argv[5], "nofa") == 0);
    } else if (argc >= 2 && strcmp(argv[1], "samplers") == 0) {
        rc = samplers();
    } else {
        fprintf(stderr, "usage: %s generate MODEL PROMPT N_GEN | samplers\n", argv[0]);
    }
    llama_backend_free();
    return rc;
}
