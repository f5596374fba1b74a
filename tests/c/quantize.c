/* llama_model_quantize from C, then load the result and decode with it.
 * usage: quantize IN.gguf OUT.gguf FTYPE QUANTIZED_IN.gguf  |  quantize defaults
 * Prints "key value last_error" lines. QUANTIZED_IN is an already quantized file (for the
 * requantize rule). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet_ffi.h"

#define REPORT(name, expr)                                             \
    do {                                                               \
        long long value_ = (long long)(expr);                          \
        printf("%s %lld %d\n", name, value_, bitnet_last_error());     \
    } while (0)

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "defaults") == 0) {
        llama_model_quantize_params d = llama_model_quantize_default_params();
        printf("defaults %d %d %d %d %d %d %d %d %d %d\n", d.nthread, (int)d.ftype,
               (int)d.output_tensor_type, (int)d.token_embedding_type, (int)d.allow_requantize,
               (int)d.quantize_output_tensor, (int)d.only_copy, (int)d.pure, (int)d.keep_split,
               (int)d.dry_run);
        return 0;
    }
    if (argc < 5) return 2;
    const char *in = argv[1], *out = argv[2], *quantized = argv[4];

    llama_model_quantize_params params = llama_model_quantize_default_params();
    params.ftype = (enum llama_ftype)atoi(argv[3]);
    REPORT("quantize", llama_model_quantize(in, out, &params));

    /* the output loads and runs */
    struct llama_model *model = llama_model_load_from_file(out, llama_model_default_params());
    REPORT("load_out", model != NULL);
    if (model == NULL) return 1;
    char ft[32] = "";
    llama_model_meta_val_str(model, "general.file_type", ft, sizeof ft);
    printf("file_type %s 0\n", ft);
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 16;
    struct llama_context *ctx = llama_init_from_model(model, cparams);
    llama_token toks[3] = {1, 2, 3};
    REPORT("decode_out", llama_decode(ctx, llama_batch_get_one(toks, 3)));
    llama_free(ctx);
    llama_model_free(model);

    /* failures: return 1 (llama.cpp's code) and a last error */
    char dry_out[4096];
    snprintf(dry_out, sizeof dry_out, "%s.dry", out);
    params.dry_run = true;
    REPORT("dry_run", llama_model_quantize(in, dry_out, &params));
    FILE *f = fopen(dry_out, "rb");
    REPORT("dry_run_wrote_nothing", f == NULL);
    if (f) fclose(f);
    params.dry_run = false;
    REPORT("missing_input", llama_model_quantize("/nonexistent/in.gguf", dry_out, &params));
    REPORT("null_params", llama_model_quantize(in, dry_out, NULL));
    REPORT("null_input", llama_model_quantize(NULL, dry_out, &params));
    REPORT("in_place", llama_model_quantize(in, in, &params));
    params.ftype = (enum llama_ftype)12345;
    REPORT("bad_ftype", llama_model_quantize(in, dry_out, &params));
    params.ftype = LLAMA_FTYPE_MOSTLY_Q4_K_S; /* a K-quant mixture: refused, not approximated */
    REPORT("mixture_ftype", llama_model_quantize(in, dry_out, &params));
    params.ftype = LLAMA_FTYPE_MOSTLY_Q8_0;
    params.pure = true;
    REPORT("pure_unsupported", llama_model_quantize(in, dry_out, &params));
    params.pure = false;
    params.output_tensor_type = (enum ggml_type)999;
    REPORT("bad_output_type", llama_model_quantize(in, dry_out, &params));
    params.output_tensor_type = GGML_TYPE_COUNT;
    REPORT("requantize_disabled", llama_model_quantize(quantized, dry_out, &params));
    params.allow_requantize = true;
    params.dry_run = true;
    REPORT("requantize_allowed_dry", llama_model_quantize(quantized, dry_out, &params));
    return 0;
}
