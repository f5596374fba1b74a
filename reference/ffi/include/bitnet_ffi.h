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
 *   - a subset of the current API: llama_model_load_from_file, llama_init_from_model,
 *     llama_model_get_vocab, llama_vocab_*, llama_tokenize(vocab, ...), llama_batch_get_one,
 *     llama_decode, llama_get_logits_ith and a greedy sampler chain.
 * The functions that take a model in the legacy API and a vocab in the current one
 * (llama_tokenize, llama_token_to_piece, llama_n_vocab, llama_token_bos/eos/nl) accept
 * both: C11 `_Generic` macros dispatch on the first argument's type (a `struct llama_vocab *`
 * goes to the vocab form, anything else to the exported legacy function); C++ gets inline
 * overloads. Define BITNET_FFI_NO_GENERIC to see only the legacy functions.
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
 * process-wide, not per thread.
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
    llama_progress_callback progress_callback; /* accepted, ignored */
    void *progress_callback_user_data;    /* accepted, ignored */
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
/* 0 success; 1 no room in the context (last error -10); -1 invalid batch; -3 compute error. */
LLAMA_API int32_t llama_decode(struct llama_context *ctx, struct llama_batch batch);
/* Logits of batch index i of the last decode (negative i: from the last output);
 * NULL if i produced no output. */
LLAMA_API float *llama_get_logits_ith(struct llama_context *ctx, int32_t i);
/* Greedy sampler chain (other samplers are not exported yet). */
LLAMA_API struct llama_sampler *llama_sampler_chain_init(struct llama_sampler_chain_params params);
LLAMA_API void llama_sampler_chain_add(struct llama_sampler *chain, struct llama_sampler *smpl);
LLAMA_API struct llama_sampler *llama_sampler_init_greedy(void);
LLAMA_API llama_token llama_sampler_sample(struct llama_sampler *smpl, struct llama_context *ctx,
                                           int32_t idx);
LLAMA_API void llama_sampler_free(struct llama_sampler *smpl);

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
#define llama_n_vocab(h) BITNET_FFI_VOCAB_OR_((h), llama_vocab_n_tokens, llama_n_vocab)(h)
#define llama_token_bos(h) BITNET_FFI_VOCAB_OR_((h), llama_vocab_bos, llama_token_bos)(h)
#define llama_token_eos(h) BITNET_FFI_VOCAB_OR_((h), llama_vocab_eos, llama_token_eos)(h)
#define llama_token_nl(h) BITNET_FFI_VOCAB_OR_((h), llama_vocab_nl, llama_token_nl)(h)

#endif

#endif /* BITNET_FFI_H */
