/* Error paths of the C API: every case prints "name result last_error"; nothing may crash.
 * usage: error_paths MODEL.gguf NOT_A_GGUF_FILE MISSING_PATH [TRUNCATED.gguf] */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bitnet_ffi.h"

struct progress_probe {
    struct llama_model *inner_result;
    int inner_error;
    int calls;
};

/* A progress callback that calls back into the library: the inner call must fail with -8. */
static bool reentrant_progress(float progress, void *user_data) {
    struct progress_probe *probe = (struct progress_probe *)user_data;
    (void)progress;
    probe->calls++;
    probe->inner_result = llama_load_model_from_file("x.gguf", llama_model_default_params());
    probe->inner_error = bitnet_last_error();
    return true;
}

static bool cancel_progress(float progress, void *user_data) {
    (void)progress;
    (void)user_data;
    return false;
}

#define REPORT(name, expr)                                    \
    do {                                                      \
        long long value_ = (long long)(expr);                 \
        int error_ = bitnet_last_error();                     \
        printf("%s %lld %d\n", name, value_, error_);          \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    struct llama_model_params mparams = llama_model_default_params();
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 16; /* padded to 256, as llama.cpp does */
    cparams.n_batch = 16;

    REPORT("load_missing_is_null", llama_load_model_from_file(argv[3], mparams) == NULL);
    REPORT("load_garbage_is_null", llama_load_model_from_file(argv[2], mparams) == NULL);
    REPORT("load_null_path_is_null", llama_load_model_from_file(NULL, mparams) == NULL);
    if (argc > 4) {
        REPORT("load_truncated_is_null", llama_load_model_from_file(argv[4], mparams) == NULL);
    }

    /* NULL and bogus handles */
    struct llama_model *bogus_model = (struct llama_model *)(uintptr_t)0xdeadbee0;
    struct llama_context *bogus_ctx = (struct llama_context *)(uintptr_t)0xdeadbee0;
    llama_token tok[4] = {1, 2, 3, 4};
    llama_free(NULL);
    REPORT("free_null", 0);
    llama_free_model(NULL);
    REPORT("free_model_null", 0);
    REPORT("ctx_null_model_is_null", llama_new_context_with_model(NULL, cparams) == NULL);
    REPORT("ctx_bogus_model_is_null", llama_new_context_with_model(bogus_model, cparams) == NULL);
    REPORT("eval_null_ctx", llama_eval(NULL, tok, 4, 0, 1));
    REPORT("eval_bogus_ctx", llama_eval(bogus_ctx, tok, 4, 0, 1));
    REPORT("logits_null_ctx_is_null", llama_get_logits(NULL) == NULL);
    REPORT("n_vocab_null", llama_n_vocab(NULL));
    REPORT("n_ctx_null", llama_n_ctx(NULL));
    REPORT("bos_null", llama_token_bos(NULL));
    REPORT("tokenize_null_model", llama_tokenize(NULL, "hi", 2, tok, 4, false, false));
    REPORT("decode_null_ctx", llama_decode(NULL, llama_batch_get_one(tok, 1)));
    REPORT("vocab_null_is_null", llama_model_get_vocab(NULL) == NULL);

    /* a real model */
    struct llama_model *model = llama_load_model_from_file(argv[1], mparams);
    REPORT("load_model_ok", model != NULL);
    const char *text = "The quick brown fox jumps over the lazy dog";
    const int32_t len = (int32_t)strlen(text);
    llama_token big[64];
    const int32_t n = llama_tokenize(model, text, len, big, 64, false, false);
    REPORT("tokenize_ok", n);
    REPORT("tokenize_small_buffer", llama_tokenize(model, text, len, big, 3, false, false));
    REPORT("tokenize_count_only", llama_tokenize(model, text, len, NULL, 0, false, false));
    REPORT("tokenize_negative_len", llama_tokenize(model, text, -5, big, 64, false, false));
    char piece[1];
    REPORT("piece_small_buffer", llama_token_to_piece(model, big[1], piece, 1, 0, false));
    REPORT("piece_bad_token", llama_token_to_piece(model, -7, piece, 1, 0, false));

    struct llama_context *ctx = llama_new_context_with_model(model, cparams);
    REPORT("ctx_ok", ctx != NULL);
    REPORT("logits_before_eval_is_null", llama_get_logits(ctx) == NULL);
    REPORT("eval_ok", llama_eval(ctx, big, 8, 0, 1));
    REPORT("eval_past_n_ctx", llama_eval(ctx, big, 8, 252, 1));
    llama_token many[300];
    for (int i = 0; i < 300; i++) many[i] = big[i % n];
    REPORT("eval_too_many_tokens", llama_eval(ctx, many, 300, 0, 1));
    llama_token out_of_range = llama_n_vocab(model) + 5;
    REPORT("eval_bad_token", llama_eval(ctx, &out_of_range, 1, 0, 1));
    REPORT("eval_zero_tokens", llama_eval(ctx, big, 0, 0, 1));
    REPORT("eval_null_tokens", llama_eval(ctx, NULL, 3, 0, 1));
    REPORT("decode_more_than_n_batch", llama_decode(ctx, llama_batch_get_one(many, 17)));
    struct llama_batch b = llama_batch_init(8, 0, 1);
    b.n_tokens = 8;
    for (int i = 0; i < 8; i++) {
        b.token[i] = big[i];
        b.pos[i] = 256 + i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 0;
    }
    /* the cache then ends at the context's last position: the next 8 positions do not fit */
    REPORT("eval_to_the_end", llama_eval(ctx, big, 8, 248, 1));
    REPORT("decode_past_n_ctx", llama_decode(ctx, b));
    b.pos[0] = 0;
    REPORT("decode_positions_not_consecutive", llama_decode(ctx, b));
    for (int i = 0; i < 8; i++) b.pos[i] = i;
    b.seq_id[3][0] = 1;
    REPORT("decode_bad_seq_id", llama_decode(ctx, b));
    b.seq_id[3][0] = 0;
    b.n_tokens = 0;
    REPORT("decode_empty_batch", llama_decode(ctx, b));
    llama_batch_free(b);
    REPORT("detokenize_bad_token", llama_detokenize(model, &out_of_range, 1, piece, 1, false, false));
    REPORT("detokenize_null_tokens", llama_detokenize(model, NULL, 3, piece, 1, false, false));
    REPORT("tokenize_invalid_utf8", llama_tokenize(model, "a\xf7\xbf\xbf\xbf", 5, big, 64, false, false));
    REPORT("embeddings_off_is_null", llama_get_embeddings(ctx) == NULL);
    REPORT("seq_rm_other_seq", llama_memory_seq_rm(llama_get_memory(ctx), 1, 0, -1));
    REPORT("memory_null_seq_rm", llama_memory_seq_rm(NULL, 0, 0, -1));
    REPORT("kv_seq_rm_null_ctx", llama_kv_cache_seq_rm(NULL, 0, 0, -1));
    llama_token_data one = {7, 1.0f, 0.0f};
    llama_token_data_array empty = {&one, 0, -1, false};
    REPORT("legacy_greedy_empty", llama_sample_token_greedy(NULL, &empty));
    REPORT("legacy_token_null_ctx", llama_sample_token(NULL, &empty));
    REPORT("legacy_penalties_null_history",
           (llama_sample_repetition_penalties(NULL, &empty, NULL, 4, 1.1f, 0.0f, 0.0f), 0));
    struct llama_context_params huge = cparams;
    huge.n_ctx = 0xFFFFFFFFu;
    REPORT("ctx_huge_n_ctx_is_null", llama_new_context_with_model(model, huge) == NULL);
    REPORT("eval_again_ok", llama_eval(ctx, big, 8, 0, 1));
    REPORT("logits_after_eval_nonnull", llama_get_logits(ctx) != NULL);
    struct llama_sampler *topk = llama_sampler_init_top_k(5);
    REPORT("sample_without_selection", llama_sampler_sample(topk, ctx, -1));
    REPORT("sampler_apply_null_candidates", (llama_sampler_apply(topk, NULL), 0));
    llama_token_data_array nodata = {NULL, 5, -1, false};
    REPORT("sampler_apply_null_data", (llama_sampler_apply(topk, &nodata), 0));
    llama_sampler_free(topk);
    REPORT("sampler_free_twice", (llama_sampler_free(topk), 0));
    REPORT("sampler_sample_null", llama_sampler_sample(NULL, ctx, -1));
    REPORT("logits_ith_no_output_is_null", llama_get_logits_ith(ctx, 0) == NULL);

    llama_free(ctx);
    REPORT("eval_after_free", llama_eval(ctx, big, 1, 0, 1));
    REPORT("free_twice", (llama_free(ctx), 0));
    REPORT("n_ctx_after_free", llama_n_ctx(ctx));

    struct llama_model_params vparams = llama_model_default_params();
    vparams.vocab_only = true;
    struct llama_model *vmodel = llama_load_model_from_file(argv[1], vparams);
    REPORT("vocab_only_load_ok", vmodel != NULL);
    REPORT("vocab_only_tokenize", llama_tokenize(vmodel, text, len, big, 64, false, false));
    /* a context on a vocab-only model (llama.cpp: one for tokenizing; decoding aborts) */
    struct llama_context *vctx = llama_new_context_with_model(vmodel, cparams);
    REPORT("vocab_only_ctx_ok", vctx != NULL);
    REPORT("vocab_only_decode", llama_decode(vctx, llama_batch_get_one(big, 4)));
    printf("message %s\n", bitnet_last_error_message());
    llama_free(vctx);
    llama_free_model(vmodel);

    struct progress_probe probe = {NULL, 0, 0};
    struct llama_model_params pparams = llama_model_default_params();
    pparams.vocab_only = true;
    pparams.progress_callback = reentrant_progress;
    pparams.progress_callback_user_data = &probe;
    struct llama_model *pmodel = llama_load_model_from_file(argv[1], pparams);
    REPORT("progress_load_ok", pmodel != NULL);
    REPORT("progress_inner_call", probe.inner_result == NULL ? probe.inner_error : 1);
    REPORT("progress_calls", probe.calls);
    llama_free_model(pmodel);
    pparams.progress_callback = cancel_progress;
    REPORT("progress_cancel_is_null", llama_load_model_from_file(argv[1], pparams) == NULL);

    llama_free_model(model);
    REPORT("tokenize_after_free_model", llama_tokenize(model, text, len, big, 64, false, false));
    REPORT("free_model_twice", (llama_free_model(model), 0));
    return 0;
}
