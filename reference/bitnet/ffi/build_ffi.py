"""The cffi embedding builder of libbitnet_ffi.so (the C API; see include/bitnet_ffi.h).

The library embeds a Python interpreter; its exported functions run `bitnet.ffi.capi`. The
interpreter starts from the base Python's `sys.path`, so the build records this
environment's site directories (which also hold the editable-install finder) and the init
code adds them before importing bitnet.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import site
import sys
import sysconfig
from pathlib import Path
from typing import List

HERE = Path(__file__).resolve().parent
HEADER = HERE / "include" / "bitnet_ffi.h"
LIB_NAME = "libbitnet_ffi.so"
MODULE_NAME = "_bitnet_ffi"

# Opaque handle and struct types the embedded functions use (cdef syntax).
CDEF_TYPES = """
typedef int32_t llama_token;
typedef int32_t llama_pos;
typedef int32_t llama_seq_id;
struct llama_model;
struct llama_context;
struct llama_vocab;
struct llama_sampler;
typedef bool (*llama_progress_callback)(float progress, void *user_data);
struct llama_model_params {
    int32_t n_gpu_layers; int32_t main_gpu; const float *tensor_split;
    llama_progress_callback progress_callback; void *progress_callback_user_data;
    bool vocab_only; bool use_mmap; bool use_mlock; bool check_tensors;
};
struct llama_context_params {
    uint32_t seed; uint32_t n_ctx; uint32_t n_batch; uint32_t n_ubatch; uint32_t n_seq_max;
    int32_t n_threads; int32_t n_threads_batch; float rope_freq_base; float rope_freq_scale;
    bool logits_all; bool embeddings; bool offload_kqv; bool no_perf;
};
typedef struct llama_batch {
    int32_t n_tokens; llama_token *token; float *embd; llama_pos *pos; int32_t *n_seq_id;
    llama_seq_id **seq_id; int8_t *logits;
} llama_batch;
typedef struct llama_token_data { llama_token id; float logit; float p; } llama_token_data;
typedef struct llama_token_data_array {
    llama_token_data *data; size_t size; int64_t selected; bool sorted;
} llama_token_data_array;
typedef struct llama_memory_i *llama_memory_t;
enum llama_ftype { LLAMA_FTYPE_ALL_F32, ... };
enum ggml_type { GGML_TYPE_F32, GGML_TYPE_COUNT, ... };
struct llama_model_imatrix_data;
struct llama_model_kv_override;
struct llama_model_tensor_override;
typedef struct llama_model_quantize_params {
    int32_t nthread; enum llama_ftype ftype; enum ggml_type output_tensor_type;
    enum ggml_type token_embedding_type; bool allow_requantize; bool quantize_output_tensor;
    bool only_copy; bool pure; bool keep_split; bool dry_run;
    const struct llama_model_imatrix_data *imatrix;
    const struct llama_model_kv_override *kv_overrides;
    const struct llama_model_tensor_override *tt_overrides;
    const int32_t *prune_layers; size_t max_buf_size;
} llama_model_quantize_params;
"""

# Functions implemented in Python (bitnet.ffi.capi); names starting with bitnet__ are internal
# entry points of the C wrappers below (structs by value are unpacked in C).
EMBEDDING_API = """
int32_t bitnet_last_error(void);
const char *bitnet_last_error_message(void);
void llama_backend_init(void);
void llama_backend_free(void);
struct llama_model *bitnet__load_model(const char *path, const struct llama_model_params *p);
void llama_free_model(struct llama_model *model);
void llama_model_free(struct llama_model *model);
struct llama_context *bitnet__new_context(struct llama_model *model,
                                          const struct llama_context_params *p);
void llama_free(struct llama_context *ctx);
int32_t llama_tokenize(const struct llama_model *model, const char *text, int32_t text_len,
                       llama_token *tokens, int32_t n_max_tokens, bool add_bos, bool special);
int llama_eval(struct llama_context *ctx, const llama_token *tokens, int32_t n_tokens,
               int32_t n_past, int32_t n_threads);
float *llama_get_logits(struct llama_context *ctx);
int32_t llama_n_vocab(const struct llama_model *model);
uint32_t llama_n_ctx(const struct llama_context *ctx);
uint32_t llama_n_batch(const struct llama_context *ctx);
llama_token llama_token_bos(const struct llama_model *model);
llama_token llama_token_eos(const struct llama_model *model);
llama_token llama_token_nl(const struct llama_model *model);
int32_t llama_token_to_piece(const struct llama_model *model, llama_token token, char *buf,
                             int32_t length, int32_t lstrip, bool special);
const struct llama_vocab *llama_model_get_vocab(const struct llama_model *model);
int32_t llama_vocab_n_tokens(const struct llama_vocab *vocab);
llama_token llama_vocab_bos(const struct llama_vocab *vocab);
llama_token llama_vocab_eos(const struct llama_vocab *vocab);
llama_token llama_vocab_nl(const struct llama_vocab *vocab);
bool llama_vocab_is_eog(const struct llama_vocab *vocab, llama_token token);
int32_t bitnet_vocab_tokenize(const struct llama_vocab *vocab, const char *text, int32_t text_len,
                              llama_token *tokens, int32_t n_tokens_max, bool add_special,
                              bool parse_special);
int32_t bitnet_vocab_token_to_piece(const struct llama_vocab *vocab, llama_token token, char *buf,
                                    int32_t length, int32_t lstrip, bool special);
int32_t bitnet__decode(struct llama_context *ctx, const llama_batch *batch);
float *llama_get_logits_ith(struct llama_context *ctx, int32_t i);
float *llama_get_embeddings(struct llama_context *ctx);
float *llama_get_embeddings_ith(struct llama_context *ctx, int32_t i);
int32_t llama_detokenize(const struct llama_model *model, const llama_token *tokens,
                         int32_t n_tokens, char *text, int32_t text_len_max, bool remove_special,
                         bool unparse_special);
int32_t bitnet_vocab_detokenize(const struct llama_vocab *vocab, const llama_token *tokens,
                                int32_t n_tokens, char *text, int32_t text_len_max,
                                bool remove_special, bool unparse_special);
int32_t llama_model_n_ctx_train(const struct llama_model *model);
int32_t llama_model_n_embd(const struct llama_model *model);
int32_t llama_model_meta_val_str(const struct llama_model *model, const char *key, char *buf,
                                 size_t buf_size);
llama_memory_t llama_get_memory(const struct llama_context *ctx);
void llama_memory_clear(llama_memory_t mem, bool data);
bool llama_memory_seq_rm(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1);
llama_pos llama_memory_seq_pos_min(llama_memory_t mem, llama_seq_id seq_id);
llama_pos llama_memory_seq_pos_max(llama_memory_t mem, llama_seq_id seq_id);
void llama_kv_cache_clear(struct llama_context *ctx);
bool llama_kv_cache_seq_rm(struct llama_context *ctx, llama_seq_id seq_id, llama_pos p0,
                           llama_pos p1);
llama_pos llama_kv_cache_seq_pos_max(struct llama_context *ctx, llama_seq_id seq_id);
struct llama_sampler *bitnet__sampler_chain_init(void);
void llama_sampler_chain_add(struct llama_sampler *chain, struct llama_sampler *smpl);
int32_t llama_sampler_chain_n(const struct llama_sampler *chain);
struct llama_sampler *llama_sampler_chain_get(struct llama_sampler *chain, int32_t i);
struct llama_sampler *llama_sampler_init_greedy(void);
struct llama_sampler *llama_sampler_init_dist(uint32_t seed);
struct llama_sampler *llama_sampler_init_top_k(int32_t k);
struct llama_sampler *llama_sampler_init_top_p(float p, size_t min_keep);
struct llama_sampler *llama_sampler_init_min_p(float p, size_t min_keep);
struct llama_sampler *llama_sampler_init_typical(float p, size_t min_keep);
struct llama_sampler *llama_sampler_init_temp(float t);
struct llama_sampler *llama_sampler_init_temp_ext(float t, float delta, float exponent);
struct llama_sampler *llama_sampler_init_penalties(int32_t n_vocab, int32_t penalty_last_n,
                                                   float penalty_repeat, float penalty_freq,
                                                   float penalty_present);
void llama_sampler_apply(struct llama_sampler *smpl, llama_token_data_array *cur_p);
void llama_sampler_accept(struct llama_sampler *smpl, llama_token token);
void llama_sampler_reset(struct llama_sampler *smpl);
uint32_t llama_sampler_get_seed(const struct llama_sampler *smpl);
llama_token llama_sampler_sample(struct llama_sampler *smpl, struct llama_context *ctx,
                                 int32_t idx);
void llama_sampler_free(struct llama_sampler *smpl);
void llama_set_rng_seed(struct llama_context *ctx, uint32_t seed);
void llama_sample_softmax(struct llama_context *ctx, llama_token_data_array *candidates);
void llama_sample_top_k(struct llama_context *ctx, llama_token_data_array *candidates, int32_t k,
                        size_t min_keep);
void llama_sample_top_p(struct llama_context *ctx, llama_token_data_array *candidates, float p,
                        size_t min_keep);
void llama_sample_min_p(struct llama_context *ctx, llama_token_data_array *candidates, float p,
                        size_t min_keep);
void llama_sample_typical(struct llama_context *ctx, llama_token_data_array *candidates, float p,
                          size_t min_keep);
void llama_sample_temp(struct llama_context *ctx, llama_token_data_array *candidates, float temp);
void llama_sample_repetition_penalties(struct llama_context *ctx,
                                       llama_token_data_array *candidates,
                                       const llama_token *last_tokens, size_t penalty_last_n,
                                       float penalty_repeat, float penalty_freq,
                                       float penalty_present);
llama_token llama_sample_token_greedy(struct llama_context *ctx,
                                      llama_token_data_array *candidates);
llama_token llama_sample_token(struct llama_context *ctx, llama_token_data_array *candidates);
uint32_t llama_model_quantize(const char *fname_inp, const char *fname_out,
                              const llama_model_quantize_params *params);
"""

# Plain C part: the header's types, defaults, and wrappers for the by-value struct calls.
C_SOURCE = """
#define BITNET_FFI_BUILDING 1
#define LLAMA_API __attribute__((visibility("default")))
#include <stdlib.h>
#include <string.h>

#include "bitnet_ffi.h"

struct llama_model *bitnet__load_model(const char *path, const struct llama_model_params *p);
struct llama_context *bitnet__new_context(struct llama_model *model,
                                          const struct llama_context_params *p);
int32_t bitnet__decode(struct llama_context *ctx, const llama_batch *batch);
struct llama_sampler *bitnet__sampler_chain_init(void);

LLAMA_API struct llama_model_params llama_model_default_params(void) {
    struct llama_model_params p = {0};
    p.n_gpu_layers = 999;  /* llama.cpp's default; ignored here */
    p.use_mmap = true;
    return p;
}

LLAMA_API struct llama_context_params llama_context_default_params(void) {
    struct llama_context_params p = {0};
    p.seed = LLAMA_DEFAULT_SEED;
    p.n_ctx = 512;
    p.n_batch = 2048;
    p.n_ubatch = 512;
    p.n_seq_max = 1;
    p.n_threads = 4;
    p.n_threads_batch = 4;
    p.offload_kqv = true;
    p.no_perf = true;
    return p;
}

LLAMA_API struct llama_sampler_chain_params llama_sampler_chain_default_params(void) {
    struct llama_sampler_chain_params p = {0};
    p.no_perf = true;
    return p;
}

LLAMA_API struct llama_model *llama_load_model_from_file(const char *path,
                                                         struct llama_model_params params) {
    return bitnet__load_model(path, &params);
}

LLAMA_API struct llama_model *llama_model_load_from_file(const char *path,
                                                         struct llama_model_params params) {
    return bitnet__load_model(path, &params);
}

LLAMA_API struct llama_context *llama_new_context_with_model(struct llama_model *model,
                                                             struct llama_context_params params) {
    return bitnet__new_context(model, &params);
}

LLAMA_API struct llama_context *llama_init_from_model(struct llama_model *model,
                                                      struct llama_context_params params) {
    return bitnet__new_context(model, &params);
}

LLAMA_API struct llama_batch llama_batch_get_one(llama_token *tokens, int32_t n_tokens) {
    struct llama_batch b = {0};
    b.n_tokens = n_tokens;
    b.token = tokens;
    return b;
}

LLAMA_API int32_t llama_decode(struct llama_context *ctx, struct llama_batch batch) {
    return bitnet__decode(ctx, &batch);
}

LLAMA_API struct llama_sampler *llama_sampler_chain_init(struct llama_sampler_chain_params params) {
    (void)params;
    return bitnet__sampler_chain_init();
}

/* llama.cpp's llama_batch_init: token (or embd), pos, n_seq_id, seq_id (NULL-terminated) and
 * logits arrays of n_tokens entries, left uninitialized but for the seq_id pointers. */
LLAMA_API struct llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max) {
    struct llama_batch b = {0};
    if (n_tokens <= 0 || embd < 0 || n_seq_max <= 0) return b;
    size_t n = (size_t)n_tokens;
    if (embd) {
        b.embd = (float *)malloc(sizeof(float) * n * (size_t)embd);
    } else {
        b.token = (llama_token *)malloc(sizeof(llama_token) * n);
    }
    b.pos = (llama_pos *)malloc(sizeof(llama_pos) * n);
    b.n_seq_id = (int32_t *)malloc(sizeof(int32_t) * n);
    b.seq_id = (llama_seq_id **)calloc(n + 1, sizeof(llama_seq_id *));
    b.logits = (int8_t *)malloc(n);
    if (b.seq_id != NULL) {
        for (size_t i = 0; i < n; i++) {
            b.seq_id[i] = (llama_seq_id *)malloc(sizeof(llama_seq_id) * (size_t)n_seq_max);
        }
    }
    return b;
}

LLAMA_API void llama_batch_free(struct llama_batch batch) {
    free(batch.token);
    free(batch.embd);
    free(batch.pos);
    free(batch.n_seq_id);
    if (batch.seq_id != NULL) {
        for (size_t i = 0; batch.seq_id[i] != NULL; i++) free(batch.seq_id[i]);
        free(batch.seq_id);
    }
    free(batch.logits);
}

LLAMA_API struct llama_model_quantize_params llama_model_quantize_default_params(void) {
    struct llama_model_quantize_params p;
    memset(&p, 0, sizeof p);
    p.nthread = 0;
    p.ftype = LLAMA_FTYPE_MOSTLY_Q8_0;
    p.output_tensor_type = GGML_TYPE_COUNT;
    p.token_embedding_type = GGML_TYPE_COUNT;
    p.quantize_output_tensor = true;
    p.max_buf_size = (size_t)8 << 30;
    return p;
}

/* The spec's `llama_sampling_*` names: the legacy llama_sample_* functions under those names. */
LLAMA_API void llama_sampling_softmax(struct llama_context *ctx, llama_token_data_array *c) {
    llama_sample_softmax(ctx, c);
}
LLAMA_API void llama_sampling_top_k(struct llama_context *ctx, llama_token_data_array *c,
                                    int32_t k, size_t min_keep) {
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
LLAMA_API void llama_sampling_typical(struct llama_context *ctx, llama_token_data_array *c,
                                      float p, size_t min_keep) {
    llama_sample_typical(ctx, c, p, min_keep);
}
LLAMA_API void llama_sampling_temp(struct llama_context *ctx, llama_token_data_array *c,
                                   float temp) {
    llama_sample_temp(ctx, c, temp);
}
LLAMA_API void llama_sampling_repetition_penalties(struct llama_context *ctx,
                                                   llama_token_data_array *c,
                                                   const llama_token *last_tokens,
                                                   size_t penalty_last_n, float penalty_repeat,
                                                   float penalty_freq, float penalty_present) {
    llama_sample_repetition_penalties(ctx, c, last_tokens, penalty_last_n, penalty_repeat,
                                      penalty_freq, penalty_present);
}
LLAMA_API llama_token llama_sampling_token_greedy(struct llama_context *ctx,
                                                  llama_token_data_array *c) {
    return llama_sample_token_greedy(ctx, c);
}
LLAMA_API llama_token llama_sampling_token(struct llama_context *ctx, llama_token_data_array *c) {
    return llama_sample_token(ctx, c);
}
LLAMA_API void llama_sampling_set_rng_seed(struct llama_context *ctx, uint32_t seed) {
    llama_set_rng_seed(ctx, seed);
}

/* Deprecated llama.h names still common in programs. */
LLAMA_API int32_t llama_n_embd(const struct llama_model *model) { return llama_model_n_embd(model); }
LLAMA_API int32_t llama_n_ctx_train(const struct llama_model *model) {
    return llama_model_n_ctx_train(model);
}
"""


def embedded_names() -> List[str]:
    """Names of the functions EMBEDDING_API declares (implemented in bitnet.ffi.capi)."""
    import re

    return re.findall(r"\b(\w+)\s*\(", re.sub(r"\([^()]*\)\s*;", "();", EMBEDDING_API))


def site_dirs() -> List[str]:
    """Site directories of the building environment (venv first), for the embedded sys.path."""
    dirs: List[str] = []
    for d in [*site.getsitepackages(), sysconfig.get_paths()["purelib"],
              sysconfig.get_paths()["platlib"]]:
        if d not in dirs and os.path.isdir(d):
            dirs.append(d)
    return dirs


def init_code(dirs: List[str]) -> str:
    """Python run once when a C program first calls the library."""
    return (
        "import site, sys\n"
        f"for _d in {dirs!r}:\n"
        "    if _d not in sys.path:\n"
        "        site.addsitedir(_d)\n"
        f"from {MODULE_NAME} import ffi, lib\n"
        "from bitnet.ffi import capi\n"
        "capi.install(ffi, lib)\n"
    )


def build_hash() -> str:
    """Key of the cache dir: the builder, the header, the interpreter and its site dirs."""
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(HEADER.read_bytes())
    h.update(sys.executable.encode())
    h.update(sys.version.encode())
    h.update(repr(site_dirs()).encode())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """~/.cache/bitnet-compat/ffi/<hash>/ (XDG_CACHE_HOME respected)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "bitnet-compat" / "ffi" / build_hash()


def build(out_dir: Path, verbose: bool = False) -> Path:
    """Compile libbitnet_ffi.so into `out_dir` and return its path."""
    import cffi

    out_dir.mkdir(parents=True, exist_ok=True)
    ffi = cffi.FFI()
    ffi.cdef(CDEF_TYPES)
    ffi.embedding_api(EMBEDDING_API)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ffi.set_source(
        MODULE_NAME,
        C_SOURCE,
        include_dirs=[str(HEADER.parent)],
        extra_compile_args=["-O2"],
        extra_link_args=[f"-Wl,-rpath,{libdir}"] if libdir else [],
    )
    ffi.embedding_init_code(init_code(site_dirs()))
    tmp = out_dir / f"build-{os.getpid()}"
    try:
        built = Path(ffi.compile(tmpdir=str(tmp), target=LIB_NAME, verbose=verbose))
        final = out_dir / LIB_NAME
        os.replace(built, final)  # atomic: concurrent builders never expose a partial file
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def library_path(build_if_missing: bool = True) -> Path:
    """Path of the cached libbitnet_ffi.so, building it first when missing."""
    path = cache_dir() / LIB_NAME
    if not path.exists() and build_if_missing:
        build(path.parent)
    return path
