/*
 * bitnet_ffi.h - the C API of bitnet-compat: a source-level drop-in for llama.cpp's llama.h.
 *
 * Build a program against it with
 *     cc app.c $(python -m bitnet.ffi --cflags --libs)
 * (the flags carry an rpath, so the program runs without LD_LIBRARY_PATH).
 *
 * Two API generations are declared:
 *   - the LOCKED legacy API (docs/COMPATIBILITY.md): llama_load_model_from_file,
 *     llama_new_context_with_model, llama_tokenize(model, ...), llama_eval, llama_get_logits,
 *     llama_n_vocab(model), llama_token_bos/eos/nl(model), llama_token_to_piece(model, ...);
 *     plus llama_detokenize(model, ...), llama_kv_cache_clear / seq_rm, the llama_sample_*
 *     functions over llama_token_data_array (also named llama_sampling_*);
 *   - a subset of the current API: llama_model_load_from_file, llama_init_from_model,
 *     llama_model_get_vocab, llama_vocab_*, llama_tokenize(vocab, ...), llama_batch_get_one,
 *     llama_batch_init/free, llama_decode, llama_get_logits_ith, llama_get_embeddings(_ith),
 *     llama_get_memory + llama_memory_*, the llama_sampler_* chain (greedy, dist, top_k,
 *     top_p, min_p, typical, temp, temp_ext, penalties) and llama_model_quantize.
 * The functions that take a model in the legacy API and a vocab in the current one
 * (llama_tokenize, llama_token_to_piece, llama_detokenize, llama_n_vocab,
 * llama_token_bos/eos/nl) accept
 * both: C11 `_Generic` macros dispatch on the first argument's type (a `struct llama_vocab *`
 * goes to the vocab form, anything else to the exported legacy function); C++ gets inline
 * overloads (so in C++ a literal NULL first argument is ambiguous: cast it). Define
 * BITNET_FFI_NO_GENERIC to see only the legacy functions.
 *
 * Structs are NOT ABI-compatible with llama.cpp's (recompile, don't relink). The params
 * structs carry the commonly set subset of llama.cpp's fields; fields marked "accepted,
 * ignored" exist so programs compile but have no effect on this CPU-only implementation.
 *
 * Handles are opaque; every entry point validates them: NULL or unknown handles return the
 * documented error value (NULL / 1 / INT32_MIN / 0 / LLAMA_TOKEN_NULL), never crash.
 *
 * Error codes (the compatibility contract's table), read with bitnet_last_error() after a
 * call that failed (every API call resets it to 0 on success):
 *    0 success, -1 generic, -2 invalid UTF-8, -3 tokenization failed, -4 model not found,
 *   -5 model load failed, -6 inference failed, -7 out of memory, -8 thread safety error,
 *   -9 invalid handle ("invalid model id"), -10 context length exceeded.
 * They are not returned by llama_tokenize itself: as in llama.cpp, a negative return there
 * means "the buffer is too small, -(return) tokens are needed"; errors return INT32_MIN.
 *
 * Calls are serialized by the library (the Python interpreter lock); the last error is
 * process-wide, not per thread. A call made from inside a callback the library is running
 * (llama_model_params.progress_callback) fails with -8 (thread safety error): not re-entrant.
 * progress_callback is called with 0.0 and 1.0; returning false cancels the load (NULL, -5).
 * llama_new_context_with_model fails with -7 (out of memory) when the KV cache cannot fit
 * in physical memory.
 */
#ifndef BITNET_FFI_H
#define BITNET_FFI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BITNET_FFI 1
#ifndef LLAMA_API
#define LLAMA_API
#endif

#define LLAMA_DEFAULT_SEED 0xFFFFFFFF
#define LLAMA_TOKEN_NULL -1

#define BITNET_OK 0
#define BITNET_ERR_GENERIC -1
#define BITNET_ERR_INVALID_UTF8 -2
#define BITNET_ERR_TOKENIZATION -3
#define BITNET_ERR_MODEL_NOT_FOUND -4
#define BITNET_ERR_MODEL_LOAD -5
#define BITNET_ERR_INFERENCE -6
#define BITNET_ERR_OUT_OF_MEMORY -7
#define BITNET_ERR_THREAD_SAFETY -8
#define BITNET_ERR_INVALID_HANDLE -9
#define BITNET_ERR_CONTEXT_LENGTH -10

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t llama_token;
typedef int32_t llama_pos;
typedef int32_t llama_seq_id;

struct llama_model;
struct llama_context;
struct llama_vocab;
struct llama_sampler;

typedef bool (*llama_progress_callback)(float progress, void *user_data);

/* Subset of llama.cpp's llama_model_params. */
struct llama_model_params {
    int32_t n_gpu_layers;                 /* accepted, ignored (CPU only) */
    int32_t main_gpu;                     /* accepted, ignored */
    const float *tensor_split;            /* accepted, ignored */
    llama_progress_callback progress_callback; /* called with 0.0, 1.0; false cancels */
    void *progress_callback_user_data;    /* passed to progress_callback */
    bool vocab_only;                      /* load the vocabulary only (no context possible) */
    bool use_mmap;                        /* accepted; the reader always maps the file */
    bool use_mlock;                       /* accepted, ignored */
    bool check_tensors;                   /* accepted, ignored */
};

/* Subset of llama.cpp's llama_context_params. */
struct llama_context_params {
    uint32_t seed;            /* legacy field, accepted, ignored (samplers carry seeds) */
    uint32_t n_ctx;           /* positions in the KV cache; 0 = the model's training context */
    uint32_t n_batch;         /* tokens per forward pass; 0 = 512 */
    uint32_t n_ubatch;        /* accepted, ignored */
    uint32_t n_seq_max;       /* accepted; one sequence per context */
    int32_t n_threads;        /* accepted, ignored (the kernels size their own pool) */
    int32_t n_threads_batch;  /* accepted, ignored */
    float rope_freq_base;     /* accepted, ignored (always from the model) */
    float rope_freq_scale;    /* accepted, ignored */
    bool logits_all;          /* legacy: llama_eval keeps the logits of every token */
    bool embeddings;          /* accepted, ignored */
    bool offload_kqv;         /* accepted, ignored */
    bool no_perf;             /* accepted, ignored */
};

typedef struct llama_batch {
    int32_t n_tokens;
    llama_token *token;
    float *embd;              /* must be NULL (embedding input unsupported) */
    llama_pos *pos;           /* NULL: continue after the cached positions */
    int32_t *n_seq_id;        /* ignored: one sequence */
    llama_seq_id **seq_id;    /* ignored: one sequence */
    int8_t *logits;           /* NULL: logits of the last token only */
} llama_batch;

struct llama_sampler_chain_params {
    bool no_perf;
};

/* Candidates of the samplers (llama.cpp's layout, `selected` included). */
typedef struct llama_token_data {
    llama_token id;  /* token id */
    float logit;     /* log-odds of the token */
    float p;         /* probability of the token */
} llama_token_data;

typedef struct llama_token_data_array {
    llama_token_data *data; /* the samplers shrink `size` and reorder the records in place */
    size_t size;
    int64_t selected;       /* index into data of the selected token, -1 = none */
    bool sorted;            /* data is in descending logit order */
} llama_token_data_array;

/* Handle of a context's KV cache (llama_get_memory). */
typedef struct llama_memory_i *llama_memory_t;

/* llama_ftype values (general.file_type) this implementation can quantize to. */
enum llama_ftype {
    LLAMA_FTYPE_ALL_F32 = 0,
    LLAMA_FTYPE_MOSTLY_F16 = 1,
    LLAMA_FTYPE_MOSTLY_Q4_0 = 2,
    LLAMA_FTYPE_MOSTLY_Q4_1 = 3,
    LLAMA_FTYPE_MOSTLY_Q8_0 = 7,
    LLAMA_FTYPE_MOSTLY_Q5_0 = 8,
    LLAMA_FTYPE_MOSTLY_Q5_1 = 9,
    LLAMA_FTYPE_MOSTLY_Q2_K = 10,   /* 10-15 and 17: llama.cpp's per-tensor K-quant mixtures, */
    LLAMA_FTYPE_MOSTLY_Q3_K_S = 11, /* refused by llama_model_quantize here (returns 1)       */
    LLAMA_FTYPE_MOSTLY_Q3_K_M = 12,
    LLAMA_FTYPE_MOSTLY_Q3_K_L = 13,
    LLAMA_FTYPE_MOSTLY_Q4_K_S = 14,
    LLAMA_FTYPE_MOSTLY_Q4_K_M = 15,
    LLAMA_FTYPE_MOSTLY_Q5_K_S = 16,
    LLAMA_FTYPE_MOSTLY_Q5_K_M = 17,
    LLAMA_FTYPE_MOSTLY_Q6_K = 18,
    LLAMA_FTYPE_MOSTLY_BF16 = 32,
    LLAMA_FTYPE_MOSTLY_TQ1_0 = 36,
    LLAMA_FTYPE_MOSTLY_TQ2_0 = 37,
    LLAMA_FTYPE_MOSTLY_I2_S = 40, /* bitnet.cpp's value (extension) */
    LLAMA_FTYPE_GUESSED = 1024
};

/* ggml tensor types (ggml.h values) usable as quantize output/embedding types. */
enum ggml_type {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_TQ1_0 = 34,
    GGML_TYPE_TQ2_0 = 35,
    GGML_TYPE_I2_S = 36, /* bitnet.cpp's id (extension) */
    GGML_TYPE_COUNT = 43 /* "default" in llama_model_quantize_params */
};

struct llama_model_imatrix_data;
struct llama_model_kv_override;
struct llama_model_tensor_override;

/* llama.cpp's llama_model_quantize_params, same fields in the same order. Supported: ftype,
 * output_tensor_type, token_embedding_type, allow_requantize, quantize_output_tensor,
 * dry_run; nthread, keep_split and max_buf_size are accepted and ignored (one thread, no
 * splits, memory bounded by the largest tensor); only_copy, pure and non-NULL imatrix /
 * kv_overrides / tt_overrides / prune_layers make the call fail (return 1). */
typedef struct llama_model_quantize_params {
    int32_t nthread;
    enum llama_ftype ftype;
    enum ggml_type output_tensor_type;
    enum ggml_type token_embedding_type;
    bool allow_requantize;
    bool quantize_output_tensor;
    bool only_copy;
    bool pure;
    bool keep_split;
    bool dry_run;
    const struct llama_model_imatrix_data *imatrix;
    const struct llama_model_kv_override *kv_overrides;
    const struct llama_model_tensor_override *tt_overrides;
    const int32_t *prune_layers;
    size_t max_buf_size;
} llama_model_quantize_params;

/* ---- errors (extension) ---- */
LLAMA_API int32_t bitnet_last_error(void);
/* The message of the last error ("" after a success); valid until the next call of it. */
LLAMA_API const char *bitnet_last_error_message(void);

/* ---- defaults, backend ---- */
LLAMA_API struct llama_model_params llama_model_default_params(void);
LLAMA_API struct llama_context_params llama_context_default_params(void);
LLAMA_API struct llama_sampler_chain_params llama_sampler_chain_default_params(void);
LLAMA_API void llama_backend_init(void);
LLAMA_API void llama_backend_free(void);

/* ---- LOCKED legacy API ---- */
/* NULL on failure: last error -4 (no such file) or -5 (not loadable). */
LLAMA_API struct llama_model *llama_load_model_from_file(const char *path_model,
                                                         struct llama_model_params params);
LLAMA_API void llama_free_model(struct llama_model *model);
/* NULL on failure: -9 (bad model handle), -5 (vocab_only model), -1 (bad params). */
LLAMA_API struct llama_context *llama_new_context_with_model(struct llama_model *model,
                                                             struct llama_context_params params);
LLAMA_API void llama_free(struct llama_context *ctx);
/* n >= 0 tokens written; -(needed) when n_max_tokens is too small; INT32_MIN on error. */
LLAMA_API int32_t llama_tokenize(const struct llama_model *model, const char *text,
                                 int32_t text_len, llama_token *tokens, int32_t n_max_tokens,
                                 bool add_bos, bool special);
/* 0 success; 1 error (last error -10 context exceeded, -6 inference, -9 bad handle, -1 args). */
LLAMA_API int llama_eval(struct llama_context *ctx, const llama_token *tokens, int32_t n_tokens,
                         int32_t n_past, int32_t n_threads);
/* Logits of the last eval/decode outputs (rows of n_vocab floats), valid until the next
 * eval/decode/free; NULL when there are none. */
LLAMA_API float *llama_get_logits(struct llama_context *ctx);
LLAMA_API int32_t llama_n_vocab(const struct llama_model *model);
LLAMA_API uint32_t llama_n_ctx(const struct llama_context *ctx);
LLAMA_API uint32_t llama_n_batch(const struct llama_context *ctx);
LLAMA_API llama_token llama_token_bos(const struct llama_model *model);
LLAMA_API llama_token llama_token_eos(const struct llama_model *model);
LLAMA_API llama_token llama_token_nl(const struct llama_model *model);
/* Bytes written (no NUL), -(needed) when length is too small, INT32_MIN on error. */
LLAMA_API int32_t llama_token_to_piece(const struct llama_model *model, llama_token token,
                                       char *buf, int32_t length, int32_t lstrip, bool special);
/* Tokens back to text: bytes written, -(needed) when text_len_max is too small. */
LLAMA_API int32_t llama_detokenize(const struct llama_model *model, const llama_token *tokens,
                                   int32_t n_tokens, char *text, int32_t text_len_max,
                                   bool remove_special, bool unparse_special);
LLAMA_API int32_t llama_n_embd(const struct llama_model *model);
LLAMA_API int32_t llama_n_ctx_train(const struct llama_model *model);
/* KV cache, legacy names: clear; forget [p0, p1) of seq_id (true on success). */
LLAMA_API void llama_kv_cache_clear(struct llama_context *ctx);
LLAMA_API bool llama_kv_cache_seq_rm(struct llama_context *ctx, llama_seq_id seq_id, llama_pos p0,
                                     llama_pos p1);
LLAMA_API llama_pos llama_kv_cache_seq_pos_max(struct llama_context *ctx, llama_seq_id seq_id);

/* ---- current API subset ---- */
LLAMA_API struct llama_model *llama_model_load_from_file(const char *path_model,
                                                         struct llama_model_params params);
LLAMA_API void llama_model_free(struct llama_model *model);
LLAMA_API struct llama_context *llama_init_from_model(struct llama_model *model,
                                                      struct llama_context_params params);
LLAMA_API const struct llama_vocab *llama_model_get_vocab(const struct llama_model *model);
LLAMA_API int32_t llama_vocab_n_tokens(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_bos(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_eos(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_nl(const struct llama_vocab *vocab);
LLAMA_API bool llama_vocab_is_eog(const struct llama_vocab *vocab, llama_token token);
/* llama_tokenize(vocab, ...) and llama_token_to_piece(vocab, ...) of the current API. */
LLAMA_API int32_t bitnet_vocab_tokenize(const struct llama_vocab *vocab, const char *text,
                                        int32_t text_len, llama_token *tokens,
                                        int32_t n_tokens_max, bool add_special,
                                        bool parse_special);
LLAMA_API int32_t bitnet_vocab_token_to_piece(const struct llama_vocab *vocab, llama_token token,
                                              char *buf, int32_t length, int32_t lstrip,
                                              bool special);
/* A view of the tokens (not copied); positions continue after the cache. */
LLAMA_API struct llama_batch llama_batch_get_one(llama_token *tokens, int32_t n_tokens);
/* 0 success; 1 no room in the context (last error -10); -1 invalid batch (NULL/empty,
 * n_tokens > n_batch, positions not consecutive, a seq_id other than 0, embd input);
 * -3 compute error. batch.logits NULL: the last token only; embeddings contexts: every token. */
LLAMA_API int32_t llama_decode(struct llama_context *ctx, struct llama_batch batch);
/* Logits of batch index i of the last decode (negative i: from the last output);
 * NULL if i produced no output. */
LLAMA_API float *llama_get_logits_ith(struct llama_context *ctx, int32_t i);
/* Embeddings (hidden state after the output norm; pooling NONE) of the outputs of the last
 * decode; NULL unless the context was created with embeddings = true, which (as in llama.cpp)
 * makes every token of a batch an output. Rows of llama_model_n_embd floats. */
LLAMA_API float *llama_get_embeddings(struct llama_context *ctx);
LLAMA_API float *llama_get_embeddings_ith(struct llama_context *ctx, int32_t i);
/* Heap batch of n_tokens entries (embd must be 0: token input only); free with
 * llama_batch_free. Fill token/pos/n_seq_id/seq_id/logits and set n_tokens. */
LLAMA_API struct llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max);
LLAMA_API void llama_batch_free(struct llama_batch batch);
/* llama_detokenize(vocab, ...) of the current API: bytes written, -(needed), INT32_MIN error. */
LLAMA_API int32_t bitnet_vocab_detokenize(const struct llama_vocab *vocab,
                                          const llama_token *tokens, int32_t n_tokens, char *text,
                                          int32_t text_len_max, bool remove_special,
                                          bool unparse_special);
LLAMA_API int32_t llama_model_n_ctx_train(const struct llama_model *model);
LLAMA_API int32_t llama_model_n_embd(const struct llama_model *model);
/* Metadata value as a string (snprintf semantics): its length, -1 if the key is missing. */
LLAMA_API int32_t llama_model_meta_val_str(const struct llama_model *model, const char *key,
                                           char *buf, size_t buf_size);

/* KV cache of a context: one sequence (seq_id 0; seq_id < 0 means any). */
LLAMA_API llama_memory_t llama_get_memory(const struct llama_context *ctx);
LLAMA_API void llama_memory_clear(llama_memory_t mem, bool data);
/* Forget positions [p0, p1) (p0 < 0: from 0, p1 < 0: to the end); false for seq_id > 0. */
LLAMA_API bool llama_memory_seq_rm(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0,
                                   llama_pos p1);
LLAMA_API llama_pos llama_memory_seq_pos_min(llama_memory_t mem, llama_seq_id seq_id);
LLAMA_API llama_pos llama_memory_seq_pos_max(llama_memory_t mem, llama_seq_id seq_id);

/* Samplers (bitnet.sampling: llama.cpp's CPU samplers, same candidates, same draws). */
LLAMA_API struct llama_sampler *llama_sampler_chain_init(struct llama_sampler_chain_params params);
/* The chain owns smpl afterwards (freed with the chain). */
LLAMA_API void llama_sampler_chain_add(struct llama_sampler *chain, struct llama_sampler *smpl);
LLAMA_API int32_t llama_sampler_chain_n(const struct llama_sampler *chain);
LLAMA_API struct llama_sampler *llama_sampler_chain_get(struct llama_sampler *chain, int32_t i);
LLAMA_API struct llama_sampler *llama_sampler_init_greedy(void);
LLAMA_API struct llama_sampler *llama_sampler_init_dist(uint32_t seed);
LLAMA_API struct llama_sampler *llama_sampler_init_top_k(int32_t k);
LLAMA_API struct llama_sampler *llama_sampler_init_top_p(float p, size_t min_keep);
LLAMA_API struct llama_sampler *llama_sampler_init_min_p(float p, size_t min_keep);
LLAMA_API struct llama_sampler *llama_sampler_init_typical(float p, size_t min_keep);
LLAMA_API struct llama_sampler *llama_sampler_init_temp(float t);
LLAMA_API struct llama_sampler *llama_sampler_init_temp_ext(float t, float delta, float exponent);
/* As llama.h 0.3.36 declares it (n_vocab first, unused). */
LLAMA_API struct llama_sampler *llama_sampler_init_penalties(int32_t n_vocab,
                                                             int32_t penalty_last_n,
                                                             float penalty_repeat,
                                                             float penalty_freq,
                                                             float penalty_present);
LLAMA_API void llama_sampler_apply(struct llama_sampler *smpl, llama_token_data_array *cur_p);
LLAMA_API void llama_sampler_accept(struct llama_sampler *smpl, llama_token token);
LLAMA_API void llama_sampler_reset(struct llama_sampler *smpl);
LLAMA_API uint32_t llama_sampler_get_seed(const struct llama_sampler *smpl);
/* Apply to the logits of output idx, accept and return the selected token. */
LLAMA_API llama_token llama_sampler_sample(struct llama_sampler *smpl, struct llama_context *ctx,
                                           int32_t idx);
LLAMA_API void llama_sampler_free(struct llama_sampler *smpl);

/* ---- quantization ---- */
LLAMA_API struct llama_model_quantize_params llama_model_quantize_default_params(void);
/* 0 on success, 1 on failure (bitnet_last_error says why), as llama.cpp. Output equals
 * `bitnet quantize IN OUT --type T` byte for byte. */
LLAMA_API uint32_t llama_model_quantize(const char *fname_inp, const char *fname_out,
                                        const llama_model_quantize_params *params);

/* ---- legacy (pre-llama_sampler) sampling over caller-owned candidates ---- */
/* ctx may be NULL except for llama_sample_token, which draws from the context's generator
 * (seeded from llama_context_params.seed, reseeded by llama_set_rng_seed). The spec's
 * `llama_sampling_*` names are the same functions. Semantics: top_k with k <= 0 keeps all
 * (sorted), k is raised to min_keep; top_p sorts and softmaxes first; temp <= 0 keeps only
 * the best logit (as the current sampler); llama_sample_token = softmax + discrete draw. */
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
}

/* The current API's vocab forms, as overloads of the legacy names. */
inline int32_t llama_tokenize(const struct llama_vocab *vocab, const char *text, int32_t text_len,
                              llama_token *tokens, int32_t n_tokens_max, bool add_special,
                              bool parse_special) {
    return bitnet_vocab_tokenize(vocab, text, text_len, tokens, n_tokens_max, add_special,
                                 parse_special);
}
inline int32_t llama_token_to_piece(const struct llama_vocab *vocab, llama_token token, char *buf,
                                    int32_t length, int32_t lstrip, bool special) {
    return bitnet_vocab_token_to_piece(vocab, token, buf, length, lstrip, special);
}
inline int32_t llama_detokenize(const struct llama_vocab *vocab, const llama_token *tokens,
                                int32_t n_tokens, char *text, int32_t text_len_max,
                                bool remove_special, bool unparse_special) {
    return bitnet_vocab_detokenize(vocab, tokens, n_tokens, text, text_len_max, remove_special,
                                   unparse_special);
}
inline int32_t llama_n_vocab(const struct llama_vocab *vocab) { return llama_vocab_n_tokens(vocab); }
inline llama_token llama_token_bos(const struct llama_vocab *vocab) { return llama_vocab_bos(vocab); }
inline llama_token llama_token_eos(const struct llama_vocab *vocab) { return llama_vocab_eos(vocab); }
inline llama_token llama_token_nl(const struct llama_vocab *vocab) { return llama_vocab_nl(vocab); }

#elif !defined(BITNET_FFI_BUILDING) && !defined(BITNET_FFI_NO_GENERIC) && \
    defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L

/* C11: dispatch on the first argument (vocab -> current API, anything else -> legacy). */
#define BITNET_FFI_VOCAB_OR_(h, vocab_fn, legacy_fn) \
    _Generic((h), const struct llama_vocab *: vocab_fn, struct llama_vocab *: vocab_fn, \
             default: legacy_fn)
#define llama_tokenize(h, ...) \
    BITNET_FFI_VOCAB_OR_((h), bitnet_vocab_tokenize, llama_tokenize)((h), __VA_ARGS__)
#define llama_token_to_piece(h, ...) \
    BITNET_FFI_VOCAB_OR_((h), bitnet_vocab_token_to_piece, llama_token_to_piece)((h), __VA_ARGS__)
#define llama_detokenize(h, ...) \
    BITNET_FFI_VOCAB_OR_((h), bitnet_vocab_detokenize, llama_detokenize)((h), __VA_ARGS__)
#define llama_n_vocab(h) BITNET_FFI_VOCAB_OR_((h), llama_vocab_n_tokens, llama_n_vocab)(h)
#define llama_token_bos(h) BITNET_FFI_VOCAB_OR_((h), llama_vocab_bos, llama_token_bos)(h)
#define llama_token_eos(h) BITNET_FFI_VOCAB_OR_((h), llama_vocab_eos, llama_token_eos)(h)
#define llama_token_nl(h) BITNET_FFI_VOCAB_OR_((h), llama_vocab_nl, llama_token_nl)(h)

#endif

#endif /* BITNET_FFI_H */
