/* LoRA adapters and control vectors: not supported by this engine. The calls that ask for
 * nothing (no adapters, clear the control vector) succeed, as in llama.cpp. */
#include "bitnet_ffi_internal.h"

LLAMA_API int32_t llama_set_adapters_lora(struct llama_context *ctx, struct llama_adapter_lora **adapters,
                                          size_t n_adapters, float *scales) {
    (void)ctx, (void)adapters, (void)scales;
    if (n_adapters == 0) {
        bitnet__set_error(0, NULL);
        return 0;
    }
    bitnet__set_error(BITNET_ERR_GENERIC, "llama_set_adapters_lora: LoRA adapters are not supported");
    return -1;
}

LLAMA_API int32_t llama_set_adapter_cvec(struct llama_context *ctx, const float *data, size_t len,
                                         int32_t n_embd, int32_t il_start, int32_t il_end) {
    (void)ctx, (void)len, (void)n_embd, (void)il_start, (void)il_end;
    if (data == NULL) {
        bitnet__set_error(0, NULL);
        return 0;
    }
    bitnet__set_error(BITNET_ERR_GENERIC, "llama_set_adapter_cvec: control vectors are not supported");
    return -1;
}

LLAMA_API void llama_adapter_lora_free(struct llama_adapter_lora *adapter) {
    if (adapter == NULL) {
        bitnet__set_error(0, NULL);
        return;
    }
    bitnet__set_error(BITNET_ERR_INVALID_HANDLE, "llama_adapter_lora_free: not an adapter (none can exist)");
}
