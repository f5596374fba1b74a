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
struct llama_sampler *bitnet__sampler_chain_init(void);
void llama_sampler_chain_add(struct llama_sampler *chain, struct llama_sampler *smpl);
struct llama_sampler *llama_sampler_init_greedy(void);
llama_token llama_sampler_sample(struct llama_sampler *smpl, struct llama_context *ctx,
                                 int32_t idx);
void llama_sampler_free(struct llama_sampler *smpl);
"""

# Plain C part: the header's types, defaults, and wrappers for the by-value struct calls.
C_SOURCE = """
#define BITNET_FFI_BUILDING 1
#define LLAMA_API __attribute__((visibility("default")))
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
"""


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
