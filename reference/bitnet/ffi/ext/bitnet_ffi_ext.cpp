// libbitnet_ffi_ext: llama.cpp's staging API (src/llama-ext.h, C++ linkage, not part of
// llama.h) as far as llama.cpp's common/ library calls it, on top of the C API. It describes
// a CPU-only engine without extra heads: no devices, an empty memory breakdown, no MTP /
// DFlash / per-layer embeddings. Programs that link common/ add -lbitnet_ffi_ext.
#include <cstdint>
#include <map>
#include <string>

#include "bitnet_ffi.h"

// the types of llama-ext.h (same names and layout: the functions' C++ names depend on them)
struct llama_memory_breakdown_data {
    size_t model = 0;
    size_t context = 0;
    size_t compute = 0;

    size_t total() const { return model + context + compute; }
};

using llama_memory_breakdown = std::map<ggml_backend_buffer_type_t, llama_memory_breakdown_data>;

#define BITNET_EXT_API __attribute__((visibility("default")))

BITNET_EXT_API int32_t llama_model_n_expert(const struct llama_model *model) {
    char arch[128];
    if (llama_model_meta_val_str(model, "general.architecture", arch, sizeof arch) < 0) return 0;
    char value[64];
    const std::string key = std::string(arch) + ".expert_count";
    if (llama_model_meta_val_str(model, key.c_str(), value, sizeof value) < 0) return 0;
    return (int32_t)std::stol(value);
}

BITNET_EXT_API int32_t llama_model_n_devices(const struct llama_model *) { return 0; }

BITNET_EXT_API ggml_backend_dev_t llama_model_get_device(const struct llama_model *, int) {
    return nullptr;
}

BITNET_EXT_API llama_memory_breakdown llama_get_memory_breakdown(const struct llama_context *) {
    return {};
}

BITNET_EXT_API void llama_set_embeddings_nextn(struct llama_context *, bool, bool) {}

BITNET_EXT_API void llama_set_nextn_layer_offset(struct llama_context *, int32_t) {}

BITNET_EXT_API float *llama_get_embeddings_nextn(struct llama_context *) { return nullptr; }

BITNET_EXT_API float *llama_get_embeddings_nextn_ith(struct llama_context *, int32_t) {
    return nullptr;
}

BITNET_EXT_API void llama_set_embeddings_layer_inp(struct llama_context *, uint32_t, bool) {}

BITNET_EXT_API float *llama_get_embeddings_layer_inp(struct llama_context *, uint32_t) {
    return nullptr;
}

BITNET_EXT_API llama_context *llama_get_ctx_other(struct llama_context *) { return nullptr; }

BITNET_EXT_API int32_t llama_model_dflash_selector_top_k(const struct llama_model *) { return 0; }

BITNET_EXT_API const int32_t *llama_model_target_layer_ids(const struct llama_model *) {
    return nullptr;
}

BITNET_EXT_API uint32_t llama_model_target_layer_ids_n(const struct llama_model *) { return 0; }

BITNET_EXT_API uint32_t llama_model_get_tok_embd(const struct llama_model *, float *) { return 0; }
