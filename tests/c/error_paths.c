/* Error paths of the C API: every case prints "name result last_error"; nothing may crash.
 * usage: error_paths MODEL.gguf NOT_A_GGUF_FILE MISSING_PATH */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bitnet_ffi.h"

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
    cparams.n_ctx = 16;
    cparams.n_batch = 16;

    REPORT("load_missing_is_null", llama_load_model_from_file(argv[3], mparams) == NULL);
    REPORT("load_garbage_is_null", llama_load_model_from_file(argv[2], mparams) == NULL);
    REPORT("load_null_path_is_null", llama_load_model_from_file(NULL, mparams) == NULL);

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
    REPORT("eval_past_n_ctx", llama_eval(ctx, big, 8, 12, 1));
    llama_token many[17];
    for (int i = 0; i < 17; i++) many[i] = big[i % n];
    REPORT("eval_too_many_tokens", llama_eval(ctx, many, 17, 0, 1));
    llama_token out_of_range = llama_n_vocab(model) + 5;
    REPORT("eval_bad_token", llama_eval(ctx, &out_of_range, 1, 0, 1));
    REPORT("eval_zero_tokens", llama_eval(ctx, big, 0, 0, 1));
    REPORT("eval_null_tokens", llama_eval(ctx, NULL, 3, 0, 1));
    REPORT("decode_past_n_ctx", llama_decode(ctx, llama_batch_get_one(many, 17)));
    REPORT("eval_again_ok", llama_eval(ctx, big, 8, 0, 1));
    REPORT("logits_after_eval_nonnull", llama_get_logits(ctx) != NULL);
    REPORT("logits_ith_no_output_is_null", llama_get_logits_ith(ctx, 0) == NULL);

    llama_free(ctx);
    REPORT("eval_after_free", llama_eval(ctx, big, 1, 0, 1));
    REPORT("n_ctx_after_free", llama_n_ctx(ctx));

    struct llama_model_params vparams = llama_model_default_params();
    vparams.vocab_only = true;
    struct llama_model *vmodel = llama_load_model_from_file(argv[1], vparams);
    REPORT("vocab_only_load_ok", vmodel != NULL);
    REPORT("vocab_only_tokenize", llama_tokenize(vmodel, text, len, big, 64, false, false));
    REPORT("vocab_only_ctx_is_null", llama_new_context_with_model(vmodel, cparams) == NULL);
    printf("message %s\n", bitnet_last_error_message());
    llama_free_model(vmodel);

    llama_free_model(model);
    REPORT("tokenize_after_free_model", llama_tokenize(model, text, len, big, 64, false, false));
    return 0;
}
