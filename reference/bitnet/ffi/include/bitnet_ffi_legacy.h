/* bitnet_ffi_legacy.h - part of bitnet_ffi.h: the compatibility spec's legacy API (not in
 * llama.h 0.3.36) and how the model forms are reached from C++, C11 and C99 (see
 * bitnet_ffi.h). Include bitnet_ffi.h, not this. */
#ifndef BITNET_FFI_LEGACY_H
#define BITNET_FFI_LEGACY_H

#ifdef __cplusplus
extern "C" {
#endif

/* ======================= the spec's legacy API (not in llama.h 0.3.36) ======================= */

/* 0 success; 1 error (last error -10 context exceeded, -6 inference, -9 bad handle, -1 args).
 * Sequence 0; logits of the last token (all tokens after bitnet_set_logits_all). LOCKED. */
LLAMA_API int llama_eval(struct llama_context *ctx, const llama_token *tokens, int32_t n_tokens,
                         int32_t n_past, int32_t n_threads);

/* The model forms of the names whose llama.h 0.3.36 form takes a vocab. */
#define BITNET_FFI_MODEL_FORMS                                                                   \
    "tokenize token_to_piece detokenize n_vocab token_get_text token_get_score token_get_attr " \
    "token_is_eog token_is_control token_bos token_eos token_eot token_cls token_sep token_nl " \
    "token_pad add_bos_token add_eos_token token_fim_pre token_fim_suf token_fim_mid "          \
    "token_fim_pad token_fim_rep token_fim_sep"
LLAMA_API int32_t bitnet_model_tokenize(const struct llama_model *model, const char *text,
                                        int32_t text_len, llama_token *tokens,
                                        int32_t n_max_tokens, bool add_bos, bool special);
LLAMA_API int32_t bitnet_model_token_to_piece(const struct llama_model *model, llama_token token,
                                              char *buf, int32_t length, int32_t lstrip,
                                              bool special);
LLAMA_API int32_t bitnet_model_detokenize(const struct llama_model *model,
                                          const llama_token *tokens, int32_t n_tokens, char *text,
                                          int32_t text_len_max, bool remove_special,
                                          bool unparse_special);
LLAMA_API int32_t bitnet_model_n_vocab(const struct llama_model *model);
LLAMA_API const char *bitnet_model_token_get_text(const struct llama_model *model, llama_token token);
LLAMA_API float bitnet_model_token_get_score(const struct llama_model *model, llama_token token);
LLAMA_API enum llama_token_attr bitnet_model_token_get_attr(const struct llama_model *model,
                                                            llama_token token);
LLAMA_API bool bitnet_model_token_is_eog(const struct llama_model *model, llama_token token);
LLAMA_API bool bitnet_model_token_is_control(const struct llama_model *model, llama_token token);
LLAMA_API llama_token bitnet_model_token_bos(const struct llama_model *model);
LLAMA_API llama_token bitnet_model_token_eos(const struct llama_model *model);
LLAMA_API llama_token bitnet_model_token_eot(const struct llama_model *model);
LLAMA_API llama_token bitnet_model_token_cls(const struct llama_model *model);
LLAMA_API llama_token bitnet_model_token_sep(const struct llama_model *model);
LLAMA_API llama_token bitnet_model_token_nl(const struct llama_model *model);
LLAMA_API llama_token bitnet_model_token_pad(const struct llama_model *model);
LLAMA_API bool bitnet_model_add_bos_token(const struct llama_model *model);
LLAMA_API bool bitnet_model_add_eos_token(const struct llama_model *model);
LLAMA_API llama_token bitnet_model_token_fim_pre(const struct llama_model *model);
LLAMA_API llama_token bitnet_model_token_fim_suf(const struct llama_model *model);
LLAMA_API llama_token bitnet_model_token_fim_mid(const struct llama_model *model);
LLAMA_API llama_token bitnet_model_token_fim_pad(const struct llama_model *model);
LLAMA_API llama_token bitnet_model_token_fim_rep(const struct llama_model *model);
LLAMA_API llama_token bitnet_model_token_fim_sep(const struct llama_model *model);
/* the vocab forms under names that never change (for BITNET_FFI_LEGACY_API programs) */
LLAMA_API int32_t bitnet_vocab_tokenize(const struct llama_vocab *vocab, const char *text,
                                        int32_t text_len, llama_token *tokens,
                                        int32_t n_tokens_max, bool add_special,
                                        bool parse_special);
LLAMA_API int32_t bitnet_vocab_token_to_piece(const struct llama_vocab *vocab, llama_token token,
                                              char *buf, int32_t length, int32_t lstrip,
                                              bool special);
LLAMA_API int32_t bitnet_vocab_detokenize(const struct llama_vocab *vocab,
                                          const llama_token *tokens, int32_t n_tokens, char *text,
                                          int32_t text_len_max, bool remove_special,
                                          bool unparse_special);

/* KV cache, legacy names (llama_memory_* on the context's memory) */
LLAMA_API void llama_kv_cache_clear(struct llama_context *ctx);
LLAMA_API bool llama_kv_cache_seq_rm(struct llama_context *ctx, llama_seq_id seq_id, llama_pos p0,
                                     llama_pos p1);
LLAMA_API void llama_kv_cache_seq_cp(struct llama_context *ctx, llama_seq_id seq_id_src,
                                     llama_seq_id seq_id_dst, llama_pos p0, llama_pos p1);
LLAMA_API void llama_kv_cache_seq_keep(struct llama_context *ctx, llama_seq_id seq_id);
LLAMA_API void llama_kv_cache_seq_add(struct llama_context *ctx, llama_seq_id seq_id, llama_pos p0,
                                      llama_pos p1, llama_pos delta);
LLAMA_API llama_pos llama_kv_cache_seq_pos_min(struct llama_context *ctx, llama_seq_id seq_id);
LLAMA_API llama_pos llama_kv_cache_seq_pos_max(struct llama_context *ctx, llama_seq_id seq_id);

/* Sampling over caller-owned candidates (before llama_sampler); the spec's llama_sampling_*
 * names are the same functions. ctx may be NULL except for llama_sample_token, which draws
 * from the context's generator (llama_set_rng_seed; default seed: LLAMA_DEFAULT_SEED, i.e.
 * random). top_k with k <= 0 keeps all (sorted), k is raised to min_keep; top_p sorts and
 * softmaxes first; temp <= 0 keeps only the best logit; llama_sample_token = softmax +
 * discrete draw. */
LLAMA_API void llama_set_rng_seed(struct llama_context *ctx, uint32_t seed);
LLAMA_API void llama_sample_softmax(struct llama_context *ctx, llama_token_data_array *candidates);
LLAMA_API void llama_sample_top_k(struct llama_context *ctx, llama_token_data_array *candidates,
                                  int32_t k, size_t min_keep);
LLAMA_API void llama_sample_top_p(struct llama_context *ctx, llama_token_data_array *candidates,
                                  float p, size_t min_keep);
LLAMA_API void llama_sample_min_p(struct llama_context *ctx, llama_token_data_array *candidates,
                                  float p, size_t min_keep);
LLAMA_API void llama_sample_typical(struct llama_context *ctx, llama_token_data_array *candidates,
                                    float p, size_t min_keep);
LLAMA_API void llama_sample_temp(struct llama_context *ctx, llama_token_data_array *candidates,
                                 float temp);
LLAMA_API void llama_sample_repetition_penalties(struct llama_context *ctx,
                                                 llama_token_data_array *candidates,
                                                 const llama_token *last_tokens,
                                                 size_t penalty_last_n, float penalty_repeat,
                                                 float penalty_freq, float penalty_present);
LLAMA_API llama_token llama_sample_token_greedy(struct llama_context *ctx,
                                                llama_token_data_array *candidates);
LLAMA_API llama_token llama_sample_token(struct llama_context *ctx,
                                         llama_token_data_array *candidates);
LLAMA_API void llama_sampling_set_rng_seed(struct llama_context *ctx, uint32_t seed);
LLAMA_API void llama_sampling_softmax(struct llama_context *ctx, llama_token_data_array *candidates);
LLAMA_API void llama_sampling_top_k(struct llama_context *ctx, llama_token_data_array *candidates,
                                    int32_t k, size_t min_keep);
LLAMA_API void llama_sampling_top_p(struct llama_context *ctx, llama_token_data_array *candidates,
                                    float p, size_t min_keep);
LLAMA_API void llama_sampling_min_p(struct llama_context *ctx, llama_token_data_array *candidates,
                                    float p, size_t min_keep);
LLAMA_API void llama_sampling_typical(struct llama_context *ctx,
                                      llama_token_data_array *candidates, float p,
                                      size_t min_keep);
LLAMA_API void llama_sampling_temp(struct llama_context *ctx, llama_token_data_array *candidates,
                                   float temp);
LLAMA_API void llama_sampling_repetition_penalties(struct llama_context *ctx,
                                                   llama_token_data_array *candidates,
                                                   const llama_token *last_tokens,
                                                   size_t penalty_last_n, float penalty_repeat,
                                                   float penalty_freq, float penalty_present);
LLAMA_API llama_token llama_sampling_token_greedy(struct llama_context *ctx,
                                                  llama_token_data_array *candidates);
LLAMA_API llama_token llama_sampling_token(struct llama_context *ctx,
                                           llama_token_data_array *candidates);

#ifdef __cplusplus
} /* extern "C" */

/* C++: the legacy model forms as overloads; a template, so that a literal NULL (which cannot
 * deduce `const M *`) still picks the llama.h form, and anything but a model fails to compile. */
#define BITNET_FFI_CXX_MODEL_FORM_(ret, name)                                   \
    template <typename M> inline ret llama_##name(const M *model) {             \
        return bitnet_model_##name(model);                                      \
    }
#define BITNET_FFI_CXX_MODEL_FORM_TOKEN_(ret, name)                             \
    template <typename M> inline ret llama_##name(const M *model, llama_token t) { \
        return bitnet_model_##name(model, t);                                   \
    }
BITNET_FFI_CXX_MODEL_FORM_(int32_t, n_vocab)
BITNET_FFI_CXX_MODEL_FORM_TOKEN_(const char *, token_get_text)
BITNET_FFI_CXX_MODEL_FORM_TOKEN_(float, token_get_score)
BITNET_FFI_CXX_MODEL_FORM_TOKEN_(enum llama_token_attr, token_get_attr)
BITNET_FFI_CXX_MODEL_FORM_TOKEN_(bool, token_is_eog)
BITNET_FFI_CXX_MODEL_FORM_TOKEN_(bool, token_is_control)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_bos)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_eos)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_eot)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_cls)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_sep)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_nl)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_pad)
BITNET_FFI_CXX_MODEL_FORM_(bool, add_bos_token)
BITNET_FFI_CXX_MODEL_FORM_(bool, add_eos_token)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_fim_pre)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_fim_suf)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_fim_mid)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_fim_pad)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_fim_rep)
BITNET_FFI_CXX_MODEL_FORM_(llama_token, token_fim_sep)
#undef BITNET_FFI_CXX_MODEL_FORM_
#undef BITNET_FFI_CXX_MODEL_FORM_TOKEN_
template <typename M>
inline int32_t llama_tokenize(const M *model, const char *text, int32_t text_len,
                              llama_token *tokens, int32_t n_max_tokens, bool add_bos, bool special) {
    return bitnet_model_tokenize(model, text, text_len, tokens, n_max_tokens, add_bos, special);
}
template <typename M>
inline int32_t llama_token_to_piece(const M *model, llama_token token, char *buf, int32_t length,
                                    int32_t lstrip, bool special) {
    return bitnet_model_token_to_piece(model, token, buf, length, lstrip, special);
}
template <typename M>
inline int32_t llama_detokenize(const M *model, const llama_token *tokens, int32_t n_tokens,
                                char *text, int32_t text_len_max, bool remove_special,
                                bool unparse_special) {
    return bitnet_model_detokenize(model, tokens, n_tokens, text, text_len_max, remove_special,
                                   unparse_special);
}

#elif !defined(BITNET_FFI_BUILDING) && !defined(BITNET_FFI_NO_GENERIC) && \
    !defined(BITNET_FFI_LEGACY_API) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L

/* C11: a model argument goes to the legacy form, anything else to the llama.h form. */
#define BITNET_FFI_MODEL_OR_(h, model_fn, vocab_fn)                                      \
    _Generic((h), const struct llama_model *: model_fn, struct llama_model *: model_fn, \
             default: vocab_fn)
#define llama_tokenize(h, ...) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_tokenize, bitnet_vocab_tokenize)((h), __VA_ARGS__)
#define llama_token_to_piece(h, ...)                                                   \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_token_to_piece, bitnet_vocab_token_to_piece)( \
        (h), __VA_ARGS__)
#define llama_detokenize(h, ...) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_detokenize, bitnet_vocab_detokenize)((h), __VA_ARGS__)
#define llama_n_vocab(h) BITNET_FFI_MODEL_OR_((h), bitnet_model_n_vocab, llama_vocab_n_tokens)(h)
#define llama_token_get_text(h, t) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_token_get_text, llama_vocab_get_text)((h), (t))
#define llama_token_get_score(h, t) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_token_get_score, llama_vocab_get_score)((h), (t))
#define llama_token_get_attr(h, t) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_token_get_attr, llama_vocab_get_attr)((h), (t))
#define llama_token_is_eog(h, t) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_token_is_eog, llama_vocab_is_eog)((h), (t))
#define llama_token_is_control(h, t) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_token_is_control, llama_vocab_is_control)((h), (t))
#define llama_token_bos(h) BITNET_FFI_MODEL_OR_((h), bitnet_model_token_bos, llama_vocab_bos)(h)
#define llama_token_eos(h) BITNET_FFI_MODEL_OR_((h), bitnet_model_token_eos, llama_vocab_eos)(h)
#define llama_token_eot(h) BITNET_FFI_MODEL_OR_((h), bitnet_model_token_eot, llama_vocab_eot)(h)
#define llama_token_cls(h) BITNET_FFI_MODEL_OR_((h), bitnet_model_token_cls, llama_vocab_cls)(h)
#define llama_token_sep(h) BITNET_FFI_MODEL_OR_((h), bitnet_model_token_sep, llama_vocab_sep)(h)
#define llama_token_nl(h) BITNET_FFI_MODEL_OR_((h), bitnet_model_token_nl, llama_vocab_nl)(h)
#define llama_token_pad(h) BITNET_FFI_MODEL_OR_((h), bitnet_model_token_pad, llama_vocab_pad)(h)
#define llama_add_bos_token(h) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_add_bos_token, llama_vocab_get_add_bos)(h)
#define llama_add_eos_token(h) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_add_eos_token, llama_vocab_get_add_eos)(h)
#define llama_token_fim_pre(h) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_token_fim_pre, llama_vocab_fim_pre)(h)
#define llama_token_fim_suf(h) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_token_fim_suf, llama_vocab_fim_suf)(h)
#define llama_token_fim_mid(h) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_token_fim_mid, llama_vocab_fim_mid)(h)
#define llama_token_fim_pad(h) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_token_fim_pad, llama_vocab_fim_pad)(h)
#define llama_token_fim_rep(h) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_token_fim_rep, llama_vocab_fim_rep)(h)
#define llama_token_fim_sep(h) \
    BITNET_FFI_MODEL_OR_((h), bitnet_model_token_fim_sep, llama_vocab_fim_sep)(h)

#endif


#endif /* BITNET_FFI_LEGACY_H */
