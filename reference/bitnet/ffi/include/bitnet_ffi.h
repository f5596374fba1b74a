/*
 * bitnet_ffi.h - the C API of bitnet-compat: llama.cpp 0.3.36's llama.h, implemented by
 * libbitnet_ffi on the bitnet reference engine.
 *
 *     cc app.c $(python -m bitnet.ffi --cflags --libs)        (or: pkg-config bitnet_ffi)
 *
 * Every function, struct, enum and constant of llama.h 0.3.36 is declared here with the same
 * types, field order and values (the structs are ABI-identical), so a program switches with
 * the include line alone - or with -I alone: `llama.h` and `llama-cpp.h` beside this file
 * include it. docs/COMPATIBILITY.md ("C API") is the full contract; the short version:
 *
 * ggml.  llama.h's signatures use ggml's types. When ggml's own headers are on the include
 * path (or ggml.h was included first) they are included, exactly as llama.h does, and nothing
 * of ggml is redeclared; otherwise the few ggml types llama.h needs are declared here, plus
 * ggml_time_init/ms/us, which libbitnet_ffi exports. Programs that call the rest of ggml's API
 * (llama.cpp's common/ does) link ggml's own libraries too (-lggml -lggml-base).
 *
 * API generations.  The current API takes a `const struct llama_vocab *` where the LOCKED
 * legacy API of the compatibility spec takes a model (llama_tokenize, llama_token_to_piece,
 * llama_detokenize, llama_n_vocab, llama_token_bos/eos/..., 24 names: BITNET_FFI_MODEL_FORMS
 * below). The exported functions accept either handle at run time, and:
 *   - C++: the llama.h declarations plus template overloads taking a model (a literal NULL
 *     goes to the llama.h form; no ambiguity);
 *   - C11 and later: `_Generic` macros send a model argument to the legacy form, anything
 *     else to the llama.h form;
 *   - C99: the llama.h declarations; the legacy forms are `bitnet_model_<name>`
 *     (bitnet_model_tokenize(model, ...), ...), or define BITNET_FFI_LEGACY_API before the
 *     include to declare the locked legacy signatures under the llama_* names instead.
 * Also declared: the spec's legacy llama_eval, llama_sample_* / llama_sampling_*,
 * llama_kv_cache_* and llama_set_rng_seed.
 *
 * Failures.  Functions this engine cannot honour (GPU offload, LoRA adapters, control
 * vectors, the grammar samplers, training, models from FILE* or user tensors) return
 * llama.cpp's documented failure value; every call sets bitnet_last_error() (0 on success,
 * else a code of the table below) and bitnet_last_error_message(). Handles are validated:
 * NULL, freed or foreign handles give the failure value and -9, never a crash.
 *
 * Error codes (the compatibility spec's table):
 *    0 success, -1 generic, -2 invalid UTF-8, -3 tokenization failed, -4 model not found,
 *   -5 model load failed, -6 inference failed, -7 out of memory, -8 thread safety error,
 *   -9 invalid handle ("invalid model id"), -10 context length exceeded.
 * llama_tokenize keeps llama.cpp's return convention (negative = -(tokens needed)); its errors
 * return INT32_MIN and are told by bitnet_last_error().
 *
 * Runtime.  The library runs an embedded Python interpreter pinned to the environment it was
 * installed into; it starts on the first call (if it cannot, that call prints one line naming
 * the cause on stderr and returns the failure value) and is finalized by llama_backend_free()
 * and at process exit; after that every call returns its failure value. Calls are serialized;
 * the last error is per thread. A call made from inside a callback the library is running
 * (progress_callback, abort_callback, a log callback) fails with -8: not re-entrant.
 */
#ifndef BITNET_FFI_H
#define BITNET_FFI_H
#ifndef LLAMA_H
#define LLAMA_H /* this header is llama.h: the real one, if also reached, adds nothing */
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BITNET_FFI 1
#define BITNET_FFI_VERSION "0.3.36"

#include "bitnet_ffi_ggml.h"

#ifndef LLAMA_API
#define LLAMA_API
#endif

#define LLAMA_DEFAULT_SEED 0xFFFFFFFF

#define LLAMA_TOKEN_NULL -1

#define LLAMA_FILE_MAGIC_GGLA 0x67676c61u /* 'ggla' */
#define LLAMA_FILE_MAGIC_GGSN 0x6767736eu /* 'ggsn' */
#define LLAMA_FILE_MAGIC_GGSQ 0x67677371u /* 'ggsq' */

#define LLAMA_SESSION_MAGIC LLAMA_FILE_MAGIC_GGSN
#define LLAMA_SESSION_VERSION 10

#define LLAMA_STATE_SEQ_MAGIC LLAMA_FILE_MAGIC_GGSQ
#define LLAMA_STATE_SEQ_VERSION 3

#define LLAMA_STATE_SEQ_FLAGS_NONE 0
#define LLAMA_STATE_SEQ_FLAGS_SWA_ONLY 1
#define LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY 1
#define LLAMA_STATE_SEQ_FLAGS_ON_DEVICE 2 /* accepted: the state lives in host memory anyway */

/* error codes of bitnet_last_error() (the compatibility spec's table) */
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

/* bitnet.cpp's I2_S ids, accepted where llama.cpp 0.3.36 leaves the value unused */
#define BITNET_GGML_TYPE_I2_S 36

#ifdef __cplusplus
extern "C" {
#endif

struct llama_vocab;
struct llama_model;
struct llama_context;
struct llama_sampler;

typedef struct llama_memory_i *llama_memory_t;

typedef int32_t llama_pos;
typedef int32_t llama_token;
typedef int32_t llama_seq_id;

enum llama_vocab_type {
    LLAMA_VOCAB_TYPE_NONE = 0,
    LLAMA_VOCAB_TYPE_SPM = 1,
    LLAMA_VOCAB_TYPE_BPE = 2,
    LLAMA_VOCAB_TYPE_WPM = 3,
    LLAMA_VOCAB_TYPE_UGM = 4,
    LLAMA_VOCAB_TYPE_RWKV = 5,
    LLAMA_VOCAB_TYPE_PLAMO2 = 6,
    LLAMA_VOCAB_TYPE_TEST = 7
};

enum llama_rope_type {
    LLAMA_ROPE_TYPE_NONE = -1,
    LLAMA_ROPE_TYPE_NORM = 0,
    LLAMA_ROPE_TYPE_NEOX = GGML_ROPE_TYPE_NEOX,
    LLAMA_ROPE_TYPE_MROPE = GGML_ROPE_TYPE_MROPE,
    LLAMA_ROPE_TYPE_IMROPE = GGML_ROPE_TYPE_IMROPE,
    LLAMA_ROPE_TYPE_VISION = GGML_ROPE_TYPE_VISION
};

enum llama_token_type {
    LLAMA_TOKEN_TYPE_UNDEFINED = 0,
    LLAMA_TOKEN_TYPE_NORMAL = 1,
    LLAMA_TOKEN_TYPE_UNKNOWN = 2,
    LLAMA_TOKEN_TYPE_CONTROL = 3,
    LLAMA_TOKEN_TYPE_USER_DEFINED = 4,
    LLAMA_TOKEN_TYPE_UNUSED = 5,
    LLAMA_TOKEN_TYPE_BYTE = 6
};

enum llama_token_attr {
    LLAMA_TOKEN_ATTR_UNDEFINED = 0,
    LLAMA_TOKEN_ATTR_UNKNOWN = 1 << 0,
    LLAMA_TOKEN_ATTR_UNUSED = 1 << 1,
    LLAMA_TOKEN_ATTR_NORMAL = 1 << 2,
    LLAMA_TOKEN_ATTR_CONTROL = 1 << 3,
    LLAMA_TOKEN_ATTR_USER_DEFINED = 1 << 4,
    LLAMA_TOKEN_ATTR_BYTE = 1 << 5,
    LLAMA_TOKEN_ATTR_NORMALIZED = 1 << 6,
    LLAMA_TOKEN_ATTR_LSTRIP = 1 << 7,
    LLAMA_TOKEN_ATTR_RSTRIP = 1 << 8,
    LLAMA_TOKEN_ATTR_SINGLE_WORD = 1 << 9
};

/* model file types (general.file_type); llama_model_quantize writes the single-type ones */
enum llama_ftype {
    LLAMA_FTYPE_ALL_F32 = 0,
    LLAMA_FTYPE_MOSTLY_F16 = 1,
    LLAMA_FTYPE_MOSTLY_Q4_0 = 2,
    LLAMA_FTYPE_MOSTLY_Q4_1 = 3,
    LLAMA_FTYPE_MOSTLY_Q8_0 = 7,
    LLAMA_FTYPE_MOSTLY_Q5_0 = 8,
    LLAMA_FTYPE_MOSTLY_Q5_1 = 9,
    LLAMA_FTYPE_MOSTLY_Q2_K = 10,
    LLAMA_FTYPE_MOSTLY_Q3_K_S = 11,
    LLAMA_FTYPE_MOSTLY_Q3_K_M = 12,
    LLAMA_FTYPE_MOSTLY_Q3_K_L = 13,
    LLAMA_FTYPE_MOSTLY_Q4_K_S = 14,
    LLAMA_FTYPE_MOSTLY_Q4_K_M = 15,
    LLAMA_FTYPE_MOSTLY_Q5_K_S = 16,
    LLAMA_FTYPE_MOSTLY_Q5_K_M = 17,
    LLAMA_FTYPE_MOSTLY_Q6_K = 18,
    LLAMA_FTYPE_MOSTLY_IQ2_XXS = 19,
    LLAMA_FTYPE_MOSTLY_IQ2_XS = 20,
    LLAMA_FTYPE_MOSTLY_Q2_K_S = 21,
    LLAMA_FTYPE_MOSTLY_IQ3_XS = 22,
    LLAMA_FTYPE_MOSTLY_IQ3_XXS = 23,
    LLAMA_FTYPE_MOSTLY_IQ1_S = 24,
    LLAMA_FTYPE_MOSTLY_IQ4_NL = 25,
    LLAMA_FTYPE_MOSTLY_IQ3_S = 26,
    LLAMA_FTYPE_MOSTLY_IQ3_M = 27,
    LLAMA_FTYPE_MOSTLY_IQ2_S = 28,
    LLAMA_FTYPE_MOSTLY_IQ2_M = 29,
    LLAMA_FTYPE_MOSTLY_IQ4_XS = 30,
    LLAMA_FTYPE_MOSTLY_IQ1_M = 31,
    LLAMA_FTYPE_MOSTLY_BF16 = 32,
    LLAMA_FTYPE_MOSTLY_TQ1_0 = 36,
    LLAMA_FTYPE_MOSTLY_TQ2_0 = 37,
    LLAMA_FTYPE_MOSTLY_MXFP4_MOE = 38,
    LLAMA_FTYPE_MOSTLY_NVFP4 = 39,
    LLAMA_FTYPE_MOSTLY_Q1_0 = 40,
    LLAMA_FTYPE_MOSTLY_Q2_0 = 41,
    LLAMA_FTYPE_GUESSED = 1024
};
/* bitnet.cpp's I2_S file type (its value 40 is llama.cpp's Q1_0): llama_model_quantize only */
#define BITNET_FTYPE_MOSTLY_I2_S 0x10028

LLAMA_API const char *llama_ftype_name(enum llama_ftype ftype);

enum llama_rope_scaling_type {
    LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED = -1,
    LLAMA_ROPE_SCALING_TYPE_NONE = 0,
    LLAMA_ROPE_SCALING_TYPE_LINEAR = 1,
    LLAMA_ROPE_SCALING_TYPE_YARN = 2,
    LLAMA_ROPE_SCALING_TYPE_LONGROPE = 3,
    LLAMA_ROPE_SCALING_TYPE_MAX_VALUE = LLAMA_ROPE_SCALING_TYPE_LONGROPE
};

enum llama_pooling_type {
    LLAMA_POOLING_TYPE_UNSPECIFIED = -1,
    LLAMA_POOLING_TYPE_NONE = 0,
    LLAMA_POOLING_TYPE_MEAN = 1,
    LLAMA_POOLING_TYPE_CLS = 2,
    LLAMA_POOLING_TYPE_LAST = 3,
    LLAMA_POOLING_TYPE_RANK = 4
};

enum llama_attention_type {
    LLAMA_ATTENTION_TYPE_UNSPECIFIED = -1,
    LLAMA_ATTENTION_TYPE_CAUSAL = 0,
    LLAMA_ATTENTION_TYPE_NON_CAUSAL = 1
};

enum llama_flash_attn_type {
    LLAMA_FLASH_ATTN_TYPE_AUTO = -1,
    LLAMA_FLASH_ATTN_TYPE_DISABLED = 0,
    LLAMA_FLASH_ATTN_TYPE_ENABLED = 1
};

LLAMA_API const char *llama_flash_attn_type_name(enum llama_flash_attn_type flash_attn_type);

enum llama_split_mode {
    LLAMA_SPLIT_MODE_NONE = 0,
    LLAMA_SPLIT_MODE_LAYER = 1,
    LLAMA_SPLIT_MODE_ROW = 2,
    LLAMA_SPLIT_MODE_TENSOR = 3
};

enum llama_load_mode {
    LLAMA_LOAD_MODE_AUTO = -1,
    LLAMA_LOAD_MODE_NONE = 0,
    LLAMA_LOAD_MODE_MMAP = 1,
    LLAMA_LOAD_MODE_MLOCK = 2,
    LLAMA_LOAD_MODE_MMAP_MLOCK = 3,
    LLAMA_LOAD_MODE_DIRECT_IO = 4
};

LLAMA_API const char *llama_load_mode_name(enum llama_load_mode load_mode);
LLAMA_API enum llama_load_mode llama_load_mode_from_str(const char *str);

enum llama_lazy_mode {
    LLAMA_LAZY_MODE_OFF = 0,
    LLAMA_LAZY_MODE_AUTO = 1,
    LLAMA_LAZY_MODE_ON = 2
};

enum llama_context_type {
    LLAMA_CONTEXT_TYPE_DEFAULT = 0,
    LLAMA_CONTEXT_TYPE_MTP = 1
};

typedef struct llama_token_data {
    llama_token id; /* token id */
    float logit;    /* log-odds of the token */
    float p;        /* probability of the token */
} llama_token_data;

typedef struct llama_token_data_array {
    llama_token_data *data; /* the samplers shrink `size` and reorder the records in place */
    size_t size;
    int64_t selected;       /* index into data of the selected token, -1 = none */
    bool sorted;            /* data is in descending logit order */
} llama_token_data_array;

typedef bool (*llama_progress_callback)(float progress, void *user_data);

/* Input of llama_encode / llama_decode: token (embd must be NULL: token input only), pos
 * (NULL: after each sequence's cached positions), n_seq_id/seq_id (NULL: sequence 0), logits
 * (NULL: the last token only, every token for embeddings contexts). */
typedef struct llama_batch {
    int32_t n_tokens;

    llama_token *token;
    float *embd;
    llama_pos *pos;
    int32_t *n_seq_id;
    llama_seq_id **seq_id;
    int8_t *logits;
} llama_batch;

enum llama_model_kv_override_type {
    LLAMA_KV_OVERRIDE_TYPE_INT,
    LLAMA_KV_OVERRIDE_TYPE_FLOAT,
    LLAMA_KV_OVERRIDE_TYPE_BOOL,
    LLAMA_KV_OVERRIDE_TYPE_STR
};

enum llama_model_meta_key {
    LLAMA_MODEL_META_KEY_SAMPLING_SEQUENCE,
    LLAMA_MODEL_META_KEY_SAMPLING_TOP_K,
    LLAMA_MODEL_META_KEY_SAMPLING_TOP_P,
    LLAMA_MODEL_META_KEY_SAMPLING_MIN_P,
    LLAMA_MODEL_META_KEY_SAMPLING_XTC_PROBABILITY,
    LLAMA_MODEL_META_KEY_SAMPLING_XTC_THRESHOLD,
    LLAMA_MODEL_META_KEY_SAMPLING_TEMP,
    LLAMA_MODEL_META_KEY_SAMPLING_PENALTY_LAST_N,
    LLAMA_MODEL_META_KEY_SAMPLING_PENALTY_REPEAT,
    LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT,
    LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT_TAU,
    LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT_ETA
};

enum llama_process_type {
    LLAMA_PROCESS_TYPE_ENCODE,
    LLAMA_PROCESS_TYPE_DECODE
};

struct llama_model_kv_override {
    enum llama_model_kv_override_type tag;

    char key[128];

#ifdef __GNUC__
    __extension__ /* an anonymous union, as llama.h: C11, and accepted by GCC/clang in C99 */
#endif
    union {
        int64_t val_i64;
        double val_f64;
        bool val_bool;
        char val_str[128];
    };
};

struct llama_model_tensor_buft_override {
    const char *pattern;
    ggml_backend_buffer_type_t buft;
};

/* Fields this CPU engine ignores are accepted (devices, split/offload settings, mmap/mlock
 * modes); kv_overrides replace metadata values before the model is built; vocab_only loads
 * the vocabulary only (a context on it has no KV cache: decoding fails with -5). */
struct llama_model_params {
    ggml_backend_dev_t *devices;
    const struct llama_model_tensor_buft_override *tensor_buft_overrides;

    int32_t n_gpu_layers;
    enum llama_split_mode split_mode;
    enum llama_load_mode load_mode;

    enum llama_lazy_mode lazy_mode;

    int32_t main_gpu;

    const float *tensor_split;

    llama_progress_callback progress_callback; /* called with 0.0 and 1.0; false cancels */

    void *progress_callback_user_data;

    const struct llama_model_kv_override *kv_overrides;

    bool vocab_only;
    bool check_tensors;
    bool use_extra_bufts;
    bool no_host;
    bool no_alloc;
    bool load_mtp;
};

struct llama_sampler_seq_config {
    llama_seq_id seq_id;
    struct llama_sampler *sampler;
};

/* n_ctx is padded to a multiple of 256 (0: the model's training context); with kv_unified
 * false each of the n_seq_max sequences has n_ctx / n_seq_max positions (padded to 256), with
 * true they share n_ctx. type_k/type_v pick the KV cache storage (F16 default, F32; others
 * fail). abort_callback is polled between layers: true aborts llama_decode (returns 2).
 * pooling_type MEAN/CLS/LAST/NONE pool embeddings per sequence (llama_get_embeddings_seq).
 * flash_attn_type AUTO (the default; ENABLED on CPU) and ENABLED compute attention in the
 * float order of llama.cpp's flash-attention kernel, DISABLED without it; n_threads then
 * fixes the split-KV order of one token over >= 512 cells, as in llama.cpp.
 * Ignored: n_ubatch, rope/yarn overrides (always the model's), cb_eval, offload and swa
 * settings; samplers (backend sampling) must be NULL. */
struct llama_context_params {
    uint32_t n_ctx;
    uint32_t n_batch;
    uint32_t n_ubatch;
    uint32_t n_seq_max;
    uint32_t n_rs_seq;
    uint32_t n_outputs_max;
    uint32_t n_outputs_max_per_seq;
    int32_t n_threads;
    int32_t n_threads_batch;

    enum llama_context_type ctx_type;
    enum llama_rope_scaling_type rope_scaling_type;
    enum llama_pooling_type pooling_type;
    enum llama_attention_type attention_type;
    enum llama_flash_attn_type flash_attn_type;

    float rope_freq_base;
    float rope_freq_scale;
    float yarn_ext_factor;
    float yarn_attn_factor;
    float yarn_beta_fast;
    float yarn_beta_slow;
    uint32_t yarn_orig_ctx;
    float defrag_thold;

    ggml_backend_sched_eval_callback cb_eval;
    void *cb_eval_user_data;

    enum ggml_type type_k;
    enum ggml_type type_v;

    ggml_abort_callback abort_callback;
    void *abort_callback_data;

    bool embeddings;
    bool offload_kqv;
    bool no_perf;
    bool op_offload;
    bool swa_full;
    bool kv_unified;

    struct llama_sampler_seq_config *samplers;
    size_t n_samplers;

    struct llama_context *ctx_other;
};

struct llama_model_tensor_override {
    const char *pattern;
    enum ggml_type type;
};

struct llama_model_imatrix_data {
    const char *name;
    const float *data;
    size_t size;
};

/* llama_model_quantize: ftype, output_tensor_type, token_embedding_type, allow_requantize,
 * quantize_output_tensor and dry_run are honoured; nthread, keep_split and max_buf_size are
 * accepted; only_copy, pure and non-NULL imatrix / kv_overrides / tt_overrides / prune_layers
 * make the call fail (returns 1). */
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

typedef struct llama_logit_bias {
    llama_token token;
    float bias;
} llama_logit_bias;

typedef struct llama_sampler_chain_params {
    bool no_perf;
} llama_sampler_chain_params;

typedef struct llama_chat_message {
    const char *role;
    const char *content;
} llama_chat_message;

struct llama_adapter_lora;

/* ---- errors and extensions of bitnet-compat ---- */
/* The code of the last call made by this thread (0 after a success). */
LLAMA_API int32_t bitnet_last_error(void);
/* Its message ("" after a success); valid until this thread's next call into the library. */
LLAMA_API const char *bitnet_last_error_message(void);
/* The legacy logits_all context flag (removed from llama_context_params): llama_eval keeps
 * the logits of every token of a call when true, of the last token when false (default). */
LLAMA_API void bitnet_set_logits_all(struct llama_context *ctx, bool logits_all);

LLAMA_API const char *llama_version(void);

LLAMA_API struct llama_model_params llama_model_default_params(void);
LLAMA_API struct llama_context_params llama_context_default_params(void);
LLAMA_API struct llama_sampler_chain_params llama_sampler_chain_default_params(void);
LLAMA_API struct llama_model_quantize_params llama_model_quantize_default_params(void);

/* Starts the embedded interpreter (optional: the first call of any function does). */
LLAMA_API void llama_backend_init(void);
/* Finalizes the embedded interpreter: call once, at the end. */
LLAMA_API void llama_backend_free(void);
LLAMA_API void llama_numa_init(enum ggml_numa_strategy numa); /* accepted, no effect */

/* accepted, no effect (the engine sizes its own thread pool) */
LLAMA_API void llama_attach_threadpool(struct llama_context *ctx, ggml_threadpool_t threadpool,
                                       ggml_threadpool_t threadpool_batch);
LLAMA_API void llama_detach_threadpool(struct llama_context *ctx);

typedef void (*llama_model_set_tensor_data_t)(struct ggml_tensor *tensor, void *userdata);

/* [not supported: NULL] */
LLAMA_API struct llama_model *llama_model_init_from_user(struct gguf_context *metadata,
                                                         llama_model_set_tensor_data_t set_tensor_data,
                                                         void *set_tensor_data_ud,
                                                         struct llama_model_params params);

/* NULL on failure: last error -4 (no such file) or -5 (not loadable). LOCKED (legacy). */
LLAMA_API struct llama_model *llama_load_model_from_file(const char *path_model,
                                                         struct llama_model_params params);
LLAMA_API struct llama_model *llama_model_load_from_file(const char *path_model,
                                                         struct llama_model_params params);
/* [not supported: NULL] */
LLAMA_API struct llama_model *llama_model_load_from_file_ptr(FILE *file,
                                                             struct llama_model_params params);
/* one path; several splits are not supported (NULL) */
LLAMA_API struct llama_model *llama_model_load_from_splits(const char **paths, size_t n_paths,
                                                           struct llama_model_params params);
/* writes the model's GGUF (metadata and tensors as loaded) */
LLAMA_API void llama_model_save_to_file(const struct llama_model *model, const char *path_model);

LLAMA_API void llama_free_model(struct llama_model *model); /* LOCKED (legacy) */
LLAMA_API void llama_model_free(struct llama_model *model);

/* NULL on failure: -9 (bad model handle), -1 (bad params), -7 (the KV cache does not fit in
 * physical memory). */
LLAMA_API struct llama_context *llama_init_from_model(struct llama_model *model,
                                                      struct llama_context_params params);
LLAMA_API struct llama_context *llama_new_context_with_model(struct llama_model *model,
                                                             struct llama_context_params params); /* LOCKED */

LLAMA_API void llama_free(struct llama_context *ctx); /* LOCKED */

LLAMA_API int64_t llama_time_us(void);

LLAMA_API size_t llama_max_devices(void);
LLAMA_API size_t llama_max_parallel_sequences(void);
LLAMA_API size_t llama_max_tensor_buft_overrides(void);

LLAMA_API bool llama_supports_mmap(void);
LLAMA_API bool llama_supports_mlock(void);
LLAMA_API bool llama_supports_gpu_offload(void);
LLAMA_API bool llama_supports_rpc(void);

LLAMA_API uint32_t llama_n_ctx(const struct llama_context *ctx);
LLAMA_API uint32_t llama_n_ctx_seq(const struct llama_context *ctx);
LLAMA_API uint32_t llama_n_batch(const struct llama_context *ctx);
LLAMA_API uint32_t llama_n_ubatch(const struct llama_context *ctx);
LLAMA_API uint32_t llama_n_seq_max(const struct llama_context *ctx);
LLAMA_API uint32_t llama_n_rs_seq(const struct llama_context *ctx);

LLAMA_API int32_t llama_n_ctx_train(const struct llama_model *model);
LLAMA_API int32_t llama_n_embd(const struct llama_model *model);
LLAMA_API int32_t llama_n_layer(const struct llama_model *model);
LLAMA_API int32_t llama_n_head(const struct llama_model *model);

/* BITNET_FFI_TOKENIZER_: `struct llama_vocab` (llama.h 0.3.36), or `struct llama_model` for
 * C programs that define BITNET_FFI_LEGACY_API (the locked legacy signatures). */
#if defined(BITNET_FFI_LEGACY_API) && !defined(__cplusplus)
#define BITNET_FFI_TOKENIZER_ struct llama_model
#else
#define BITNET_FFI_TOKENIZER_ struct llama_vocab
#endif

LLAMA_API int32_t llama_n_vocab(const BITNET_FFI_TOKENIZER_ *vocab);

LLAMA_API const struct llama_model *llama_get_model(const struct llama_context *ctx);
LLAMA_API llama_memory_t llama_get_memory(const struct llama_context *ctx);
LLAMA_API enum llama_pooling_type llama_pooling_type(const struct llama_context *ctx);

LLAMA_API const struct llama_vocab *llama_model_get_vocab(const struct llama_model *model);
LLAMA_API enum llama_rope_type llama_model_rope_type(const struct llama_model *model);

LLAMA_API int32_t llama_model_n_ctx_train(const struct llama_model *model);
LLAMA_API int32_t llama_model_n_embd(const struct llama_model *model);
LLAMA_API int32_t llama_model_n_embd_inp(const struct llama_model *model);
LLAMA_API int32_t llama_model_n_embd_out(const struct llama_model *model);
LLAMA_API int32_t llama_model_n_layer(const struct llama_model *model);
LLAMA_API int32_t llama_model_n_layer_nextn(const struct llama_model *model);
LLAMA_API int32_t llama_model_n_head(const struct llama_model *model);
LLAMA_API int32_t llama_model_n_head_kv(const struct llama_model *model);
LLAMA_API int32_t llama_model_n_swa(const struct llama_model *model);

LLAMA_API float llama_model_rope_freq_scale_train(const struct llama_model *model);

LLAMA_API uint32_t llama_model_n_cls_out(const struct llama_model *model);
LLAMA_API const char *llama_model_cls_label(const struct llama_model *model, uint32_t i);

LLAMA_API enum llama_vocab_type llama_vocab_type(const struct llama_vocab *vocab);

LLAMA_API int32_t llama_vocab_n_tokens(const struct llama_vocab *vocab);

/* Metadata as strings (snprintf semantics: length, -1 if missing; arrays not supported). */
LLAMA_API int32_t llama_model_meta_val_str(const struct llama_model *model, const char *key,
                                           char *buf, size_t buf_size);
LLAMA_API int32_t llama_model_meta_count(const struct llama_model *model);
LLAMA_API const char *llama_model_meta_key_str(enum llama_model_meta_key key);
LLAMA_API int32_t llama_model_meta_key_by_index(const struct llama_model *model, int32_t i,
                                                char *buf, size_t buf_size);
LLAMA_API int32_t llama_model_meta_val_str_by_index(const struct llama_model *model, int32_t i,
                                                    char *buf, size_t buf_size);
LLAMA_API int32_t llama_model_desc(const struct llama_model *model, char *buf, size_t buf_size);
LLAMA_API enum llama_ftype llama_model_ftype(const struct llama_model *model);
LLAMA_API uint64_t llama_model_size(const struct llama_model *model);
LLAMA_API const char *llama_model_chat_template(const struct llama_model *model, const char *name);
LLAMA_API uint64_t llama_model_n_params(const struct llama_model *model);
LLAMA_API bool llama_model_has_encoder(const struct llama_model *model);
LLAMA_API bool llama_model_has_decoder(const struct llama_model *model);
LLAMA_API llama_token llama_model_decoder_start_token(const struct llama_model *model);
LLAMA_API bool llama_model_is_recurrent(const struct llama_model *model);
LLAMA_API bool llama_model_is_hybrid(const struct llama_model *model);
LLAMA_API bool llama_model_is_diffusion(const struct llama_model *model);

/* 0 on success, 1 on failure (bitnet_last_error says why), as llama.cpp; the output equals
 * `bitnet quantize IN OUT --type T` byte for byte. */
LLAMA_API uint32_t llama_model_quantize(const char *fname_inp, const char *fname_out,
                                        const llama_model_quantize_params *params);

/* ---- adapters [not supported: LoRA adapters and control vectors] ---- */
LLAMA_API struct llama_adapter_lora *llama_adapter_lora_init(struct llama_model *model,
                                                             const char *path_lora); /* NULL */
LLAMA_API struct llama_adapter_lora *llama_adapter_lora_init_from_file_ptr(struct llama_model *model,
                                                                           FILE *file); /* NULL */
LLAMA_API int32_t llama_adapter_meta_val_str(const struct llama_adapter_lora *adapter,
                                             const char *key, char *buf, size_t buf_size); /* -1 */
LLAMA_API int32_t llama_adapter_meta_count(const struct llama_adapter_lora *adapter); /* -1 */
LLAMA_API int32_t llama_adapter_meta_key_by_index(const struct llama_adapter_lora *adapter,
                                                  int32_t i, char *buf, size_t buf_size); /* -1 */
LLAMA_API int32_t llama_adapter_meta_val_str_by_index(const struct llama_adapter_lora *adapter,
                                                      int32_t i, char *buf, size_t buf_size); /* -1 */
LLAMA_API void llama_adapter_lora_free(struct llama_adapter_lora *adapter);
LLAMA_API uint64_t llama_adapter_get_alora_n_invocation_tokens(const struct llama_adapter_lora *adapter); /* 0 */
LLAMA_API const llama_token *llama_adapter_get_alora_invocation_tokens(const struct llama_adapter_lora *adapter); /* NULL */
/* 0 for an empty set of adapters (nothing to do), -1 otherwise */
LLAMA_API int32_t llama_set_adapters_lora(struct llama_context *ctx,
                                          struct llama_adapter_lora **adapters, size_t n_adapters,
                                          float *scales);
/* 0 for data == NULL (clear: nothing loaded), -1 otherwise */
LLAMA_API int32_t llama_set_adapter_cvec(struct llama_context *ctx, const float *data, size_t len,
                                         int32_t n_embd, int32_t il_start, int32_t il_end);

/* ---- memory (the KV cache): llama.cpp's semantics per sequence ---- */
LLAMA_API void llama_memory_clear(llama_memory_t mem, bool data);
LLAMA_API bool llama_memory_seq_rm(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0,
                                   llama_pos p1);
LLAMA_API void llama_memory_seq_cp(llama_memory_t mem, llama_seq_id seq_id_src,
                                   llama_seq_id seq_id_dst, llama_pos p0, llama_pos p1);
LLAMA_API void llama_memory_seq_keep(llama_memory_t mem, llama_seq_id seq_id);
/* shifts positions; the cached keys are re-rotated (RoPE) by delta, as llama.cpp's K-shift */
LLAMA_API void llama_memory_seq_add(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0,
                                    llama_pos p1, llama_pos delta);
/* [not supported: no effect, last error -1] (merges positions) */
LLAMA_API void llama_memory_seq_div(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0,
                                    llama_pos p1, int d);
LLAMA_API llama_pos llama_memory_seq_pos_min(llama_memory_t mem, llama_seq_id seq_id);
LLAMA_API llama_pos llama_memory_seq_pos_max(llama_memory_t mem, llama_seq_id seq_id);
LLAMA_API bool llama_memory_can_shift(llama_memory_t mem);

/* ---- state: outputs (logits, embeddings) and KV cache; this library's own format ---- */
LLAMA_API size_t llama_state_get_size(struct llama_context *ctx);
LLAMA_API size_t llama_get_state_size(struct llama_context *ctx);
LLAMA_API size_t llama_state_get_data(struct llama_context *ctx, uint8_t *dst, size_t size);
LLAMA_API size_t llama_copy_state_data(struct llama_context *ctx, uint8_t *dst);
/* bytes read, 0 on failure (corrupt, truncated or another model's state: nothing changes) */
LLAMA_API size_t llama_state_set_data(struct llama_context *ctx, const uint8_t *src, size_t size);
LLAMA_API size_t llama_set_state_data(struct llama_context *ctx, const uint8_t *src);
LLAMA_API bool llama_state_load_file(struct llama_context *ctx, const char *path_session,
                                     llama_token *tokens_out, size_t n_token_capacity,
                                     size_t *n_token_count_out);
LLAMA_API bool llama_load_session_file(struct llama_context *ctx, const char *path_session,
                                       llama_token *tokens_out, size_t n_token_capacity,
                                       size_t *n_token_count_out);
LLAMA_API bool llama_state_save_file(struct llama_context *ctx, const char *path_session,
                                     const llama_token *tokens, size_t n_token_count);
LLAMA_API bool llama_save_session_file(struct llama_context *ctx, const char *path_session,
                                       const llama_token *tokens, size_t n_token_count);
LLAMA_API size_t llama_state_seq_get_size(struct llama_context *ctx, llama_seq_id seq_id);
LLAMA_API size_t llama_state_seq_get_data(struct llama_context *ctx, uint8_t *dst, size_t size,
                                          llama_seq_id seq_id);
/* bytes read, 0 on failure (the sequence is left empty) */
LLAMA_API size_t llama_state_seq_set_data(struct llama_context *ctx, const uint8_t *src,
                                          size_t size, llama_seq_id dest_seq_id);
LLAMA_API size_t llama_state_seq_save_file(struct llama_context *ctx, const char *filepath,
                                           llama_seq_id seq_id, const llama_token *tokens,
                                           size_t n_token_count);
LLAMA_API size_t llama_state_seq_load_file(struct llama_context *ctx, const char *filepath,
                                           llama_seq_id dest_seq_id, llama_token *tokens_out,
                                           size_t n_token_capacity, size_t *n_token_count_out);

typedef uint32_t llama_state_seq_flags;

LLAMA_API size_t llama_state_seq_get_size_ext(struct llama_context *ctx, llama_seq_id seq_id,
                                              llama_state_seq_flags flags);
LLAMA_API size_t llama_state_seq_get_data_ext(struct llama_context *ctx, uint8_t *dst, size_t size,
                                              llama_seq_id seq_id, llama_state_seq_flags flags);
LLAMA_API size_t llama_state_seq_set_data_ext(struct llama_context *ctx, const uint8_t *src,
                                              size_t size, llama_seq_id dest_seq_id,
                                              llama_state_seq_flags flags);

/* ---- decoding ---- */
LLAMA_API struct llama_batch llama_batch_get_one(llama_token *tokens, int32_t n_tokens);
/* embd must be 0 (token input only: a batch with embd != 0 is empty) */
LLAMA_API struct llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max);
LLAMA_API void llama_batch_free(struct llama_batch batch);

/* Runs the batch without touching the KV cache (outputs as llama_decode). 0 or -1. */
LLAMA_API int32_t llama_encode(struct llama_context *ctx, struct llama_batch batch);
/* 0 success; 1 no room in the KV cache (-10); 2 aborted by abort_callback; -1 invalid batch
 * (n_tokens > n_batch, positions not consecutive per sequence, seq_id outside n_seq_max,
 * embedding input, token ids out of range); -3 compute error (-6). On 1/-1 the memory is
 * unchanged. */
LLAMA_API int32_t llama_decode(struct llama_context *ctx, struct llama_batch batch);

struct llama_batch_ext;

struct llama_embd {
    const float *data;
    size_t n_rows;
    size_t n_embd;
};

LLAMA_API struct llama_batch_ext *llama_batch_ext_init(struct llama_context *ctx);
LLAMA_API void llama_batch_ext_free(struct llama_batch_ext *batch);
LLAMA_API void llama_batch_ext_clear(struct llama_batch_ext *batch);
/* batch index >= 0; -1 full (n_batch tokens), -2 invalid token, -3 invalid sequence id */
LLAMA_API int32_t llama_batch_ext_add(struct llama_batch_ext *batch, llama_seq_id seq_id);
LLAMA_API int32_t llama_batch_ext_add_token(struct llama_batch_ext *batch, llama_seq_id seq_id,
                                            llama_token id);
/* [not supported: -2] (embedding input) */
LLAMA_API int32_t llama_batch_ext_add_embd(struct llama_batch_ext *batch, llama_seq_id seq_id,
                                           struct llama_embd embd);
LLAMA_API bool llama_batch_ext_add_seq(struct llama_batch_ext *batch, int32_t idx,
                                       llama_seq_id seq_id);
/* [not supported: false] (embedding input) */
LLAMA_API bool llama_batch_ext_set_embd_token(struct llama_batch_ext *batch, int32_t idx,
                                              struct llama_embd embd);
LLAMA_API bool llama_batch_ext_set_embd_state(struct llama_batch_ext *batch, int32_t idx,
                                              struct llama_embd embd); /* false, as llama.cpp */
LLAMA_API bool llama_batch_ext_set_output_embd(struct llama_batch_ext *batch, int32_t idx,
                                               bool value);
LLAMA_API bool llama_batch_ext_set_output_logits(struct llama_batch_ext *batch, int32_t idx,
                                                 bool value);
LLAMA_API bool llama_batch_ext_set_pos(struct llama_batch_ext *batch, int32_t idx,
                                       const llama_pos *pos);
/* llama_encode / llama_decode of the batch: same return values */
LLAMA_API int32_t llama_process(struct llama_context *ctx, enum llama_process_type type,
                                struct llama_batch_ext *batch);

/* recorded and reported (the engine sizes its own thread pool) */
LLAMA_API void llama_set_n_threads(struct llama_context *ctx, int32_t n_threads,
                                   int32_t n_threads_batch);
LLAMA_API int32_t llama_n_threads(struct llama_context *ctx);
LLAMA_API int32_t llama_n_threads_batch(struct llama_context *ctx);

LLAMA_API void llama_set_embeddings(struct llama_context *ctx, bool embeddings);
/* [not supported: causal_attn false has no effect, last error -1] */
LLAMA_API void llama_set_causal_attn(struct llama_context *ctx, bool causal_attn);
LLAMA_API bool llama_get_causal_attn(const struct llama_context *ctx);
LLAMA_API void llama_set_warmup(struct llama_context *ctx, bool warmup); /* no effect */
LLAMA_API void llama_set_abort_callback(struct llama_context *ctx,
                                        ggml_abort_callback abort_callback,
                                        void *abort_callback_data);
LLAMA_API void llama_synchronize(struct llama_context *ctx);

/* Outputs of the last decode (rows of n_vocab floats in batch order), valid until the next
 * decode/free; NULL when there are none. LOCKED. */
LLAMA_API float *llama_get_logits(struct llama_context *ctx);
LLAMA_API float *llama_get_logits_ith(struct llama_context *ctx, int32_t i);
/* Hidden state after the output norm (pooling NONE); needs embeddings = true. */
LLAMA_API float *llama_get_embeddings(struct llama_context *ctx);
LLAMA_API float *llama_get_embeddings_ith(struct llama_context *ctx, int32_t i);
/* The pooled embedding of a sequence (pooling MEAN, CLS, LAST); NULL for pooling NONE. */
LLAMA_API float *llama_get_embeddings_seq(struct llama_context *ctx, llama_seq_id seq_id);

/* backend sampling: never configured here, so (as llama.cpp then) nothing was sampled */
LLAMA_API llama_token llama_get_sampled_token_ith(struct llama_context *ctx, int32_t i);
LLAMA_API float *llama_get_sampled_probs_ith(struct llama_context *ctx, int32_t i);
LLAMA_API uint32_t llama_get_sampled_probs_count_ith(struct llama_context *ctx, int32_t i);
LLAMA_API float *llama_get_sampled_logits_ith(struct llama_context *ctx, int32_t i);
LLAMA_API uint32_t llama_get_sampled_logits_count_ith(struct llama_context *ctx, int32_t i);
LLAMA_API llama_token *llama_get_sampled_candidates_ith(struct llama_context *ctx, int32_t i);
LLAMA_API uint32_t llama_get_sampled_candidates_count_ith(struct llama_context *ctx, int32_t i);

/* ---- vocabulary ---- */
LLAMA_API const char *llama_vocab_get_text(const struct llama_vocab *vocab, llama_token token);
LLAMA_API float llama_vocab_get_score(const struct llama_vocab *vocab, llama_token token);
LLAMA_API enum llama_token_attr llama_vocab_get_attr(const struct llama_vocab *vocab,
                                                     llama_token token);
LLAMA_API bool llama_vocab_is_eog(const struct llama_vocab *vocab, llama_token token);
LLAMA_API bool llama_vocab_is_control(const struct llama_vocab *vocab, llama_token token);
LLAMA_API llama_token llama_vocab_bos(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_eos(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_eot(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_sep(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_nl(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_pad(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_mask(const struct llama_vocab *vocab);
LLAMA_API bool llama_vocab_get_add_bos(const struct llama_vocab *vocab);
LLAMA_API bool llama_vocab_get_add_eos(const struct llama_vocab *vocab);
LLAMA_API bool llama_vocab_get_add_sep(const struct llama_vocab *vocab);
LLAMA_API const llama_token *llama_vocab_get_suppress_tokens(const struct llama_vocab *vocab,
                                                             int32_t *n_suppress_tokens);
LLAMA_API llama_token llama_vocab_fim_pre(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_fim_suf(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_fim_mid(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_fim_pad(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_fim_rep(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_fim_sep(const struct llama_vocab *vocab);
LLAMA_API llama_token llama_vocab_cls(const struct llama_vocab *vocab);

/* The deprecated llama_token_* / llama_add_*_token names and the tokenizer functions: the
 * vocab forms of llama.h 0.3.36 (model forms: see the top of this file). */
LLAMA_API const char *llama_token_get_text(const BITNET_FFI_TOKENIZER_ *vocab, llama_token token);
LLAMA_API float llama_token_get_score(const BITNET_FFI_TOKENIZER_ *vocab, llama_token token);
LLAMA_API enum llama_token_attr llama_token_get_attr(const BITNET_FFI_TOKENIZER_ *vocab,
                                                     llama_token token);
LLAMA_API bool llama_token_is_eog(const BITNET_FFI_TOKENIZER_ *vocab, llama_token token);
LLAMA_API bool llama_token_is_control(const BITNET_FFI_TOKENIZER_ *vocab, llama_token token);
LLAMA_API llama_token llama_token_bos(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API llama_token llama_token_eos(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API llama_token llama_token_eot(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API llama_token llama_token_cls(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API llama_token llama_token_sep(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API llama_token llama_token_nl(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API llama_token llama_token_pad(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API bool llama_add_bos_token(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API bool llama_add_eos_token(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API llama_token llama_token_fim_pre(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API llama_token llama_token_fim_suf(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API llama_token llama_token_fim_mid(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API llama_token llama_token_fim_pad(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API llama_token llama_token_fim_rep(const BITNET_FFI_TOKENIZER_ *vocab);
LLAMA_API llama_token llama_token_fim_sep(const BITNET_FFI_TOKENIZER_ *vocab);

/* n >= 0 tokens written; -(needed) when n_tokens_max is too small; INT32_MIN on error (then
 * bitnet_last_error(): -2 invalid UTF-8 where llama.cpp aborts, -3, -9, -1). LOCKED. */
LLAMA_API int32_t llama_tokenize(const BITNET_FFI_TOKENIZER_ *vocab, const char *text,
                                 int32_t text_len, llama_token *tokens, int32_t n_tokens_max,
                                 bool add_special, bool parse_special);
/* bytes written (no NUL), -(needed) when length is too small, INT32_MIN on error */
LLAMA_API int32_t llama_token_to_piece(const BITNET_FFI_TOKENIZER_ *vocab, llama_token token,
                                       char *buf, int32_t length, int32_t lstrip, bool special);
/* bytes written, -(needed) when text_len_max is too small, INT32_MIN on error */
LLAMA_API int32_t llama_detokenize(const BITNET_FFI_TOKENIZER_ *vocab, const llama_token *tokens,
                                   int32_t n_tokens, char *text, int32_t text_len_max,
                                   bool remove_special, bool unparse_special);

/* ---- chat templates: llama.cpp's built-in formats, chosen from the template text ---- */
/* bytes of the whole prompt (may exceed length: call again with a bigger buffer); -1 for a
 * template it does not know (llama.cpp's value). tmpl NULL: the ChatML format. */
LLAMA_API int32_t llama_chat_apply_template(const char *tmpl, const struct llama_chat_message *chat,
                                            size_t n_msg, bool add_ass, char *buf, int32_t length);
LLAMA_API int32_t llama_chat_builtin_templates(const char **output, size_t len);

#include "bitnet_ffi_sampling.h"

/* ---- model split paths, system info, logging, performance ---- */
LLAMA_API int32_t llama_split_path(char *split_path, size_t maxlen, const char *path_prefix,
                                   int32_t split_no, int32_t split_count);
LLAMA_API int32_t llama_split_prefix(char *split_prefix, size_t maxlen, const char *split_path,
                                     int32_t split_no, int32_t split_count);
LLAMA_API const char *llama_print_system_info(void);

/* The library's log lines (model loading, warnings, errors) go to this callback; NULL (the
 * default) writes them to stderr. */
LLAMA_API void llama_log_get(ggml_log_callback *log_callback, void **user_data);
LLAMA_API void llama_log_set(ggml_log_callback log_callback, void *user_data);

struct llama_perf_context_data {
    double t_start_ms;
    double t_load_ms;
    double t_p_eval_ms;
    double t_eval_ms;

    int32_t n_p_eval;
    int32_t n_eval;
    int32_t n_reused;
};

struct llama_perf_sampler_data {
    double t_sample_ms;

    int32_t n_sample;
};

LLAMA_API struct llama_perf_context_data llama_perf_context(const struct llama_context *ctx);
LLAMA_API void llama_perf_context_print(const struct llama_context *ctx);
LLAMA_API void llama_perf_context_reset(struct llama_context *ctx);
LLAMA_API struct llama_perf_sampler_data llama_perf_sampler(const struct llama_sampler *chain);
LLAMA_API void llama_perf_sampler_print(const struct llama_sampler *chain);
LLAMA_API void llama_perf_sampler_reset(struct llama_sampler *chain);

/* ---- training [not supported] ---- */
typedef bool (*llama_opt_param_filter)(const struct ggml_tensor *tensor, void *userdata);

LLAMA_API bool llama_opt_param_filter_all(const struct ggml_tensor *tensor, void *userdata);

struct llama_opt_params {
    uint32_t n_ctx_train;

    llama_opt_param_filter param_filter;
    void *param_filter_ud;

    ggml_opt_get_optimizer_params get_opt_pars;
    void *get_opt_pars_ud;

    enum ggml_opt_optimizer_type optimizer_type;
};

LLAMA_API void llama_opt_init(struct llama_context *lctx, struct llama_model *model,
                              struct llama_opt_params lopt_params);
LLAMA_API void llama_opt_epoch(struct llama_context *lctx, ggml_opt_dataset_t dataset,
                               ggml_opt_result_t result_train, ggml_opt_result_t result_eval,
                               int64_t idata_split, ggml_opt_epoch_callback callback_train,
                               ggml_opt_epoch_callback callback_eval);

#ifdef __cplusplus
}
#endif

#include "bitnet_ffi_legacy.h"

#endif /* BITNET_FFI_H */
