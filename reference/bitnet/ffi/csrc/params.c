/* Default parameter structs, name tables and split paths: llama.cpp 0.3.36's values, in C. */
#include <stdio.h>
#include <string.h>

#include "bitnet_ffi_internal.h"

LLAMA_API struct llama_model_params llama_model_default_params(void) {
    struct llama_model_params p;
    memset(&p, 0, sizeof p);
    p.n_gpu_layers = -1;
    p.split_mode = LLAMA_SPLIT_MODE_LAYER;
    p.load_mode = LLAMA_LOAD_MODE_AUTO;
    p.lazy_mode = LLAMA_LAZY_MODE_AUTO;
    p.use_extra_bufts = true;
    return p;
}

LLAMA_API struct llama_context_params llama_context_default_params(void) {
    struct llama_context_params p;
    memset(&p, 0, sizeof p);
    p.n_ctx = 512;
    p.n_batch = 2048;
    p.n_ubatch = 512;
    p.n_seq_max = 1;
    p.n_outputs_max_per_seq = 1;
    p.n_threads = 4; /* GGML_DEFAULT_N_THREADS */
    p.n_threads_batch = 4;
    p.ctx_type = LLAMA_CONTEXT_TYPE_DEFAULT;
    p.rope_scaling_type = LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED;
    p.pooling_type = LLAMA_POOLING_TYPE_UNSPECIFIED;
    p.attention_type = LLAMA_ATTENTION_TYPE_UNSPECIFIED;
    p.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
    p.yarn_ext_factor = -1.0f;
    p.yarn_attn_factor = -1.0f;
    p.yarn_beta_fast = -1.0f;
    p.yarn_beta_slow = -1.0f;
    p.defrag_thold = -1.0f;
    p.type_k = GGML_TYPE_F16;
    p.type_v = GGML_TYPE_F16;
    p.offload_kqv = true;
    p.no_perf = true;
    p.op_offload = true;
    p.swa_full = true;
    return p;
}

LLAMA_API struct llama_sampler_chain_params llama_sampler_chain_default_params(void) {
    struct llama_sampler_chain_params p;
    p.no_perf = true;
    return p;
}

LLAMA_API struct llama_model_quantize_params llama_model_quantize_default_params(void) {
    struct llama_model_quantize_params p;
    memset(&p, 0, sizeof p);
    p.ftype = LLAMA_FTYPE_MOSTLY_Q8_0;
    p.output_tensor_type = GGML_TYPE_COUNT;
    p.token_embedding_type = GGML_TYPE_COUNT;
    p.quantize_output_tensor = true;
    p.max_buf_size = (size_t)8 << 30;
    return p;
}

#define GUESSED "(guessed) "

LLAMA_API const char *llama_ftype_name(enum llama_ftype ftype) {
    const char *name;
    switch ((int)ftype & ~LLAMA_FTYPE_GUESSED) {
    case LLAMA_FTYPE_ALL_F32: name = GUESSED "all F32"; break;
    case LLAMA_FTYPE_MOSTLY_F16: name = GUESSED "F16"; break;
    case LLAMA_FTYPE_MOSTLY_BF16: name = GUESSED "BF16"; break;
    case LLAMA_FTYPE_MOSTLY_Q1_0: name = GUESSED "Q1_0"; break;
    case LLAMA_FTYPE_MOSTLY_Q2_0: name = GUESSED "Q2_0"; break;
    case LLAMA_FTYPE_MOSTLY_Q4_0: name = GUESSED "Q4_0"; break;
    case LLAMA_FTYPE_MOSTLY_Q4_1: name = GUESSED "Q4_1"; break;
    case LLAMA_FTYPE_MOSTLY_Q5_0: name = GUESSED "Q5_0"; break;
    case LLAMA_FTYPE_MOSTLY_Q5_1: name = GUESSED "Q5_1"; break;
    case LLAMA_FTYPE_MOSTLY_Q8_0: name = GUESSED "Q8_0"; break;
    case LLAMA_FTYPE_MOSTLY_MXFP4_MOE: name = GUESSED "MXFP4 MoE"; break;
    case LLAMA_FTYPE_MOSTLY_NVFP4: name = GUESSED "NVFP4"; break;
    case LLAMA_FTYPE_MOSTLY_Q2_K: name = GUESSED "Q2_K - Medium"; break;
    case LLAMA_FTYPE_MOSTLY_Q2_K_S: name = GUESSED "Q2_K - Small"; break;
    case LLAMA_FTYPE_MOSTLY_Q3_K_S: name = GUESSED "Q3_K - Small"; break;
    case LLAMA_FTYPE_MOSTLY_Q3_K_M: name = GUESSED "Q3_K - Medium"; break;
    case LLAMA_FTYPE_MOSTLY_Q3_K_L: name = GUESSED "Q3_K - Large"; break;
    case LLAMA_FTYPE_MOSTLY_Q4_K_S: name = GUESSED "Q4_K - Small"; break;
    case LLAMA_FTYPE_MOSTLY_Q4_K_M: name = GUESSED "Q4_K - Medium"; break;
    case LLAMA_FTYPE_MOSTLY_Q5_K_S: name = GUESSED "Q5_K - Small"; break;
    case LLAMA_FTYPE_MOSTLY_Q5_K_M: name = GUESSED "Q5_K - Medium"; break;
    case LLAMA_FTYPE_MOSTLY_Q6_K: name = GUESSED "Q6_K"; break;
    case LLAMA_FTYPE_MOSTLY_TQ1_0: name = GUESSED "TQ1_0 - 1.69 bpw ternary"; break;
    case LLAMA_FTYPE_MOSTLY_TQ2_0: name = GUESSED "TQ2_0 - 2.06 bpw ternary"; break;
    case LLAMA_FTYPE_MOSTLY_IQ2_XXS: name = GUESSED "IQ2_XXS - 2.0625 bpw"; break;
    case LLAMA_FTYPE_MOSTLY_IQ2_XS: name = GUESSED "IQ2_XS - 2.3125 bpw"; break;
    case LLAMA_FTYPE_MOSTLY_IQ2_S: name = GUESSED "IQ2_S - 2.5 bpw"; break;
    case LLAMA_FTYPE_MOSTLY_IQ2_M: name = GUESSED "IQ2_M - 2.7 bpw"; break;
    case LLAMA_FTYPE_MOSTLY_IQ3_XS: name = GUESSED "IQ3_XS - 3.3 bpw"; break;
    case LLAMA_FTYPE_MOSTLY_IQ3_XXS: name = GUESSED "IQ3_XXS - 3.0625 bpw"; break;
    case LLAMA_FTYPE_MOSTLY_IQ1_S: name = GUESSED "IQ1_S - 1.5625 bpw"; break;
    case LLAMA_FTYPE_MOSTLY_IQ1_M: name = GUESSED "IQ1_M - 1.75 bpw"; break;
    case LLAMA_FTYPE_MOSTLY_IQ4_NL: name = GUESSED "IQ4_NL - 4.5 bpw"; break;
    case LLAMA_FTYPE_MOSTLY_IQ4_XS: name = GUESSED "IQ4_XS - 4.25 bpw"; break;
    case LLAMA_FTYPE_MOSTLY_IQ3_S: name = GUESSED "IQ3_S - 3.4375 bpw"; break;
    case LLAMA_FTYPE_MOSTLY_IQ3_M: name = GUESSED "IQ3_S mix - 3.66 bpw"; break;
    default: name = GUESSED "unknown, may not work"; break;
    }
    return ((int)ftype & LLAMA_FTYPE_GUESSED) ? name : name + sizeof(GUESSED) - 1;
}

/* llama.cpp aborts on a value outside the enum: here NULL, with last error -1. */
LLAMA_API const char *llama_flash_attn_type_name(enum llama_flash_attn_type type) {
    switch (type) {
    case LLAMA_FLASH_ATTN_TYPE_AUTO: return "auto";
    case LLAMA_FLASH_ATTN_TYPE_DISABLED: return "disabled";
    case LLAMA_FLASH_ATTN_TYPE_ENABLED: return "enabled";
    }
    bitnet__set_errorf(BITNET_ERR_GENERIC, "llama_flash_attn_type_name: unknown type %d", (int)type);
    return NULL;
}

LLAMA_API const char *llama_load_mode_name(enum llama_load_mode mode) {
    switch (mode) {
    case LLAMA_LOAD_MODE_AUTO: return "auto";
    case LLAMA_LOAD_MODE_NONE: return "none";
    case LLAMA_LOAD_MODE_MMAP: return "mmap";
    case LLAMA_LOAD_MODE_MLOCK: return "mlock";
    case LLAMA_LOAD_MODE_MMAP_MLOCK: return "mmap+mlock";
    case LLAMA_LOAD_MODE_DIRECT_IO: return "dio";
    }
    bitnet__set_errorf(BITNET_ERR_GENERIC, "llama_load_mode_name: unknown mode %d", (int)mode);
    return NULL;
}

/* llama.cpp throws on an unknown name: here LLAMA_LOAD_MODE_AUTO, with last error -1. */
LLAMA_API enum llama_load_mode llama_load_mode_from_str(const char *str) {
    static const char *names[] = {"auto", "none", "mmap", "mlock", "mmap+mlock", "dio"};
    static const enum llama_load_mode modes[] = {
        LLAMA_LOAD_MODE_AUTO, LLAMA_LOAD_MODE_NONE, LLAMA_LOAD_MODE_MMAP,
        LLAMA_LOAD_MODE_MLOCK, LLAMA_LOAD_MODE_MMAP_MLOCK, LLAMA_LOAD_MODE_DIRECT_IO};
    bitnet__set_error(0, NULL);
    for (size_t i = 0; str != NULL && i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(str, names[i]) == 0) return modes[i];
    }
    bitnet__set_errorf(BITNET_ERR_GENERIC, "unknown load mode: %s", str ? str : "(null)");
    return LLAMA_LOAD_MODE_AUTO;
}

LLAMA_API const char *llama_model_meta_key_str(enum llama_model_meta_key key) {
    switch (key) {
    case LLAMA_MODEL_META_KEY_SAMPLING_SEQUENCE: return "general.sampling.sequence";
    case LLAMA_MODEL_META_KEY_SAMPLING_TOP_K: return "general.sampling.top_k";
    case LLAMA_MODEL_META_KEY_SAMPLING_TOP_P: return "general.sampling.top_p";
    case LLAMA_MODEL_META_KEY_SAMPLING_MIN_P: return "general.sampling.min_p";
    case LLAMA_MODEL_META_KEY_SAMPLING_XTC_PROBABILITY: return "general.sampling.xtc_probability";
    case LLAMA_MODEL_META_KEY_SAMPLING_XTC_THRESHOLD: return "general.sampling.xtc_threshold";
    case LLAMA_MODEL_META_KEY_SAMPLING_TEMP: return "general.sampling.temp";
    case LLAMA_MODEL_META_KEY_SAMPLING_PENALTY_LAST_N: return "general.sampling.penalty_last_n";
    case LLAMA_MODEL_META_KEY_SAMPLING_PENALTY_REPEAT: return "general.sampling.penalty_repeat";
    case LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT: return "general.sampling.mirostat";
    case LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT_TAU: return "general.sampling.mirostat_tau";
    case LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT_ETA: return "general.sampling.mirostat_eta";
    }
    return NULL;
}

LLAMA_API int32_t llama_split_path(char *split_path, size_t maxlen, const char *path_prefix,
                                   int32_t split_no, int32_t split_count) {
    if (split_path == NULL || path_prefix == NULL) {
        bitnet__set_error(BITNET_ERR_GENERIC, "llama_split_path: NULL argument");
        return 0;
    }
    int written = snprintf(split_path, maxlen, "%s-%05d-of-%05d.gguf", path_prefix, split_no + 1,
                           split_count);
    bitnet__set_error(0, NULL);
    if (written < 0 || (size_t)written >= maxlen) return 0;
    return (int32_t)written;
}

LLAMA_API int32_t llama_split_prefix(char *split_prefix, size_t maxlen, const char *split_path,
                                     int32_t split_no, int32_t split_count) {
    if (split_prefix == NULL || split_path == NULL) {
        bitnet__set_error(BITNET_ERR_GENERIC, "llama_split_prefix: NULL argument");
        return 0;
    }
    char postfix[32];
    snprintf(postfix, sizeof postfix, "-%05d-of-%05d.gguf", split_no + 1, split_count);
    size_t n = strlen(split_path), m = strlen(postfix);
    bitnet__set_error(0, NULL);
    if (n <= m) return 0;
    size_t size_prefix = n - m;
    if (strcmp(split_path + size_prefix, postfix) != 0) return 0;
    size_t copy_len = size_prefix + 1 < maxlen ? size_prefix + 1 : maxlen;
    snprintf(split_prefix, copy_len, "%s", split_path);
    return (int32_t)size_prefix;
}
