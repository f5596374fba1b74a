/* Functions that are other functions under another name or signature: llama.h 0.3.36's
 * deprecated names, the model forms of the legacy API (bitnet_model_*: the vocab functions
 * accept a model handle too), the spec's llama_sampling_* names and the legacy
 * llama_kv_cache_* names. */
#include <stdint.h>

#include "bitnet_ffi_internal.h"

#define AS_VOCAB(m) ((const struct llama_vocab *)(const void *)(m))

/* ---- deprecated names of llama.h 0.3.36 ---- */

LLAMA_API struct llama_model *llama_load_model_from_file(const char *path_model,
                                                         struct llama_model_params params) {
    return llama_model_load_from_file(path_model, params);
}
LLAMA_API void llama_free_model(struct llama_model *model) { llama_model_free(model); }
LLAMA_API struct llama_context *llama_new_context_with_model(struct llama_model *model,
                                                             struct llama_context_params params) {
    return llama_init_from_model(model, params);
}
LLAMA_API int32_t llama_n_ctx_train(const struct llama_model *m) { return llama_model_n_ctx_train(m); }
LLAMA_API int32_t llama_n_embd(const struct llama_model *m) { return llama_model_n_embd(m); }
LLAMA_API int32_t llama_n_layer(const struct llama_model *m) { return llama_model_n_layer(m); }
LLAMA_API int32_t llama_n_head(const struct llama_model *m) { return llama_model_n_head(m); }
LLAMA_API int32_t llama_n_vocab(const struct llama_vocab *v) { return llama_vocab_n_tokens(v); }

LLAMA_API size_t llama_get_state_size(struct llama_context *ctx) { return llama_state_get_size(ctx); }
LLAMA_API size_t llama_copy_state_data(struct llama_context *ctx, uint8_t *dst) {
    return llama_state_get_data(ctx, dst, SIZE_MAX);
}
LLAMA_API size_t llama_set_state_data(struct llama_context *ctx, const uint8_t *src) {
    return llama_state_set_data(ctx, src, SIZE_MAX);
}
LLAMA_API bool llama_load_session_file(struct llama_context *ctx, const char *path,
                                       llama_token *tokens_out, size_t cap, size_t *n_out) {
    return llama_state_load_file(ctx, path, tokens_out, cap, n_out);
}
LLAMA_API bool llama_save_session_file(struct llama_context *ctx, const char *path,
                                       const llama_token *tokens, size_t n) {
    return llama_state_save_file(ctx, path, tokens, n);
}
LLAMA_API size_t llama_state_seq_get_size(struct llama_context *ctx, llama_seq_id seq_id) {
    return llama_state_seq_get_size_ext(ctx, seq_id, 0);
}
LLAMA_API size_t llama_state_seq_get_data(struct llama_context *ctx, uint8_t *dst, size_t size,
                                          llama_seq_id seq_id) {
    return llama_state_seq_get_data_ext(ctx, dst, size, seq_id, 0);
}
LLAMA_API size_t llama_state_seq_set_data(struct llama_context *ctx, const uint8_t *src, size_t size,
                                          llama_seq_id dest_seq_id) {
    return llama_state_seq_set_data_ext(ctx, src, size, dest_seq_id, 0);
}

/* the deprecated llama_token_* names (vocab forms) */
#define TOKEN_ALIAS(ret, old, cur) \
    LLAMA_API ret old(const struct llama_vocab *v) { return cur(v); }
#define TOKEN_ALIAS2(ret, old, cur) \
    LLAMA_API ret old(const struct llama_vocab *v, llama_token t) { return cur(v, t); }
TOKEN_ALIAS2(const char *, llama_token_get_text, llama_vocab_get_text)
TOKEN_ALIAS2(float, llama_token_get_score, llama_vocab_get_score)
TOKEN_ALIAS2(enum llama_token_attr, llama_token_get_attr, llama_vocab_get_attr)
TOKEN_ALIAS2(bool, llama_token_is_eog, llama_vocab_is_eog)
TOKEN_ALIAS2(bool, llama_token_is_control, llama_vocab_is_control)
TOKEN_ALIAS(llama_token, llama_token_bos, llama_vocab_bos)
TOKEN_ALIAS(llama_token, llama_token_eos, llama_vocab_eos)
TOKEN_ALIAS(llama_token, llama_token_eot, llama_vocab_eot)
TOKEN_ALIAS(llama_token, llama_token_cls, llama_vocab_bos) /* CLS is BOS (llama.h) */
TOKEN_ALIAS(llama_token, llama_vocab_cls, llama_vocab_bos)
TOKEN_ALIAS(llama_token, llama_token_sep, llama_vocab_sep)
TOKEN_ALIAS(llama_token, llama_token_nl, llama_vocab_nl)
TOKEN_ALIAS(llama_token, llama_token_pad, llama_vocab_pad)
TOKEN_ALIAS(bool, llama_add_bos_token, llama_vocab_get_add_bos)
TOKEN_ALIAS(bool, llama_add_eos_token, llama_vocab_get_add_eos)
TOKEN_ALIAS(llama_token, llama_token_fim_pre, llama_vocab_fim_pre)
TOKEN_ALIAS(llama_token, llama_token_fim_suf, llama_vocab_fim_suf)
TOKEN_ALIAS(llama_token, llama_token_fim_mid, llama_vocab_fim_mid)
TOKEN_ALIAS(llama_token, llama_token_fim_pad, llama_vocab_fim_pad)
TOKEN_ALIAS(llama_token, llama_token_fim_rep, llama_vocab_fim_rep)
TOKEN_ALIAS(llama_token, llama_token_fim_sep, llama_vocab_fim_sep)

/* ---- model forms (the spec's legacy signatures) and fixed vocab forms ---- */

#define MODEL_FORM(ret, name, cur) \
    LLAMA_API ret bitnet_model_##name(const struct llama_model *m) { return cur(AS_VOCAB(m)); }
#define MODEL_FORM2(ret, name, cur) \
    LLAMA_API ret bitnet_model_##name(const struct llama_model *m, llama_token t) { return cur(AS_VOCAB(m), t); }
MODEL_FORM(int32_t, n_vocab, llama_vocab_n_tokens)
MODEL_FORM2(const char *, token_get_text, llama_vocab_get_text)
MODEL_FORM2(float, token_get_score, llama_vocab_get_score)
MODEL_FORM2(enum llama_token_attr, token_get_attr, llama_vocab_get_attr)
MODEL_FORM2(bool, token_is_eog, llama_vocab_is_eog)
MODEL_FORM2(bool, token_is_control, llama_vocab_is_control)
MODEL_FORM(llama_token, token_bos, llama_vocab_bos)
MODEL_FORM(llama_token, token_eos, llama_vocab_eos)
MODEL_FORM(llama_token, token_eot, llama_vocab_eot)
MODEL_FORM(llama_token, token_cls, llama_vocab_bos)
MODEL_FORM(llama_token, token_sep, llama_vocab_sep)
MODEL_FORM(llama_token, token_nl, llama_vocab_nl)
MODEL_FORM(llama_token, token_pad, llama_vocab_pad)
MODEL_FORM(bool, add_bos_token, llama_vocab_get_add_bos)
MODEL_FORM(bool, add_eos_token, llama_vocab_get_add_eos)
MODEL_FORM(llama_token, token_fim_pre, llama_vocab_fim_pre)
MODEL_FORM(llama_token, token_fim_suf, llama_vocab_fim_suf)
MODEL_FORM(llama_token, token_fim_mid, llama_vocab_fim_mid)
MODEL_FORM(llama_token, token_fim_pad, llama_vocab_fim_pad)
MODEL_FORM(llama_token, token_fim_rep, llama_vocab_fim_rep)
MODEL_FORM(llama_token, token_fim_sep, llama_vocab_fim_sep)

LLAMA_API int32_t bitnet_model_tokenize(const struct llama_model *m, const char *text, int32_t text_len,
                                        llama_token *tokens, int32_t n_max, bool add_bos, bool special) {
    return llama_tokenize(AS_VOCAB(m), text, text_len, tokens, n_max, add_bos, special);
}
LLAMA_API int32_t bitnet_model_token_to_piece(const struct llama_model *m, llama_token token, char *buf,
                                              int32_t length, int32_t lstrip, bool special) {
    return llama_token_to_piece(AS_VOCAB(m), token, buf, length, lstrip, special);
}
LLAMA_API int32_t bitnet_model_detokenize(const struct llama_model *m, const llama_token *tokens,
                                          int32_t n_tokens, char *text, int32_t text_len_max,
                                          bool remove_special, bool unparse_special) {
    return llama_detokenize(AS_VOCAB(m), tokens, n_tokens, text, text_len_max, remove_special,
                            unparse_special);
}
LLAMA_API int32_t bitnet_vocab_tokenize(const struct llama_vocab *v, const char *text, int32_t text_len,
                                        llama_token *tokens, int32_t n_max, bool add_special,
                                        bool parse_special) {
    return llama_tokenize(v, text, text_len, tokens, n_max, add_special, parse_special);
}
LLAMA_API int32_t bitnet_vocab_token_to_piece(const struct llama_vocab *v, llama_token token, char *buf,
                                              int32_t length, int32_t lstrip, bool special) {
    return llama_token_to_piece(v, token, buf, length, lstrip, special);
}
LLAMA_API int32_t bitnet_vocab_detokenize(const struct llama_vocab *v, const llama_token *tokens,
                                          int32_t n_tokens, char *text, int32_t text_len_max,
                                          bool remove_special, bool unparse_special) {
    return llama_detokenize(v, tokens, n_tokens, text, text_len_max, remove_special, unparse_special);
}

/* ---- the spec's llama_sampling_* names: the legacy llama_sample_* functions ---- */

LLAMA_API void llama_sampling_set_rng_seed(struct llama_context *ctx, uint32_t seed) {
    llama_set_rng_seed(ctx, seed);
}
LLAMA_API void llama_sampling_softmax(struct llama_context *ctx, llama_token_data_array *c) {
    llama_sample_softmax(ctx, c);
}
LLAMA_API void llama_sampling_top_k(struct llama_context *ctx, llama_token_data_array *c, int32_t k,
                                    size_t min_keep) {
    llama_sample_top_k(ctx, c, k, min_keep);
}
LLAMA_API void llama_sampling_top_p(struct llama_context *ctx, llama_token_data_array *c, float p,
                                    size_t min_keep) {
    llama_sample_top_p(ctx, c, p, min_keep);
}
LLAMA_API void llama_sampling_min_p(struct llama_context *ctx, llama_token_data_array *c, float p,
                                    size_t min_keep) {
    llama_sample_min_p(ctx, c, p, min_keep);
}
LLAMA_API void llama_sampling_typical(struct llama_context *ctx, llama_token_data_array *c, float p,
                                      size_t min_keep) {
    llama_sample_typical(ctx, c, p, min_keep);
}
LLAMA_API void llama_sampling_temp(struct llama_context *ctx, llama_token_data_array *c, float temp) {
    llama_sample_temp(ctx, c, temp);
}
LLAMA_API void llama_sampling_repetition_penalties(struct llama_context *ctx, llama_token_data_array *c,
                                                   const llama_token *last_tokens, size_t last_n,
                                                   float repeat, float freq, float present) {
    llama_sample_repetition_penalties(ctx, c, last_tokens, last_n, repeat, freq, present);
}
LLAMA_API llama_token llama_sampling_token_greedy(struct llama_context *ctx, llama_token_data_array *c) {
    return llama_sample_token_greedy(ctx, c);
}
LLAMA_API llama_token llama_sampling_token(struct llama_context *ctx, llama_token_data_array *c) {
    return llama_sample_token(ctx, c);
}

/* ---- legacy KV cache names: the context's memory ---- */

LLAMA_API void llama_kv_cache_clear(struct llama_context *ctx) {
    llama_memory_t mem = llama_get_memory(ctx);
    if (mem != NULL) llama_memory_clear(mem, true);
}
LLAMA_API bool llama_kv_cache_seq_rm(struct llama_context *ctx, llama_seq_id seq_id, llama_pos p0,
                                     llama_pos p1) {
    llama_memory_t mem = llama_get_memory(ctx);
    return mem != NULL && llama_memory_seq_rm(mem, seq_id, p0, p1);
}
LLAMA_API void llama_kv_cache_seq_cp(struct llama_context *ctx, llama_seq_id src, llama_seq_id dst,
                                     llama_pos p0, llama_pos p1) {
    llama_memory_t mem = llama_get_memory(ctx);
    if (mem != NULL) llama_memory_seq_cp(mem, src, dst, p0, p1);
}
LLAMA_API void llama_kv_cache_seq_keep(struct llama_context *ctx, llama_seq_id seq_id) {
    llama_memory_t mem = llama_get_memory(ctx);
    if (mem != NULL) llama_memory_seq_keep(mem, seq_id);
}
LLAMA_API void llama_kv_cache_seq_add(struct llama_context *ctx, llama_seq_id seq_id, llama_pos p0,
                                      llama_pos p1, llama_pos delta) {
    llama_memory_t mem = llama_get_memory(ctx);
    if (mem != NULL) llama_memory_seq_add(mem, seq_id, p0, p1, delta);
}
LLAMA_API llama_pos llama_kv_cache_seq_pos_min(struct llama_context *ctx, llama_seq_id seq_id) {
    llama_memory_t mem = llama_get_memory(ctx);
    return mem != NULL ? llama_memory_seq_pos_min(mem, seq_id) : -1;
}
LLAMA_API llama_pos llama_kv_cache_seq_pos_max(struct llama_context *ctx, llama_seq_id seq_id) {
    llama_memory_t mem = llama_get_memory(ctx);
    return mem != NULL ? llama_memory_seq_pos_max(mem, seq_id) : -1;
}
