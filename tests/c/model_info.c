/* What llama.h tells about a model, a vocabulary and a context, the same source for libllama
 * and libbitnet_ffi: every getter's value, one per line.
 * usage: model_info MODEL.gguf */
#include <stdio.h>
#include <string.h>

#ifdef USE_BITNET
#include "bitnet_ffi.h"
#else
#include "llama.h"
#endif

static int log_lines;

static void count_log(enum ggml_log_level level, const char *text, void *user_data) {
    (void)level, (void)text;
    (*(int *)user_data)++;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    llama_log_set(count_log, &log_lines);
    struct llama_model_params mparams = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mparams);
    if (model == NULL) return 1;
    printf("log_lines_during_load %d\n", log_lines > 0);
    llama_log_set(NULL, NULL);
    char buf[4096];
    llama_model_desc(model, buf, sizeof buf);
    printf("desc %s\n", buf);
    printf("size %llu\n", (unsigned long long)llama_model_size(model));
    printf("n_params %llu\n", (unsigned long long)llama_model_n_params(model));
    printf("ftype %d %s\n", (int)llama_model_ftype(model), llama_ftype_name(llama_model_ftype(model)));
    printf("hparams %d %d %d %d %d %d %d %d\n", llama_model_n_ctx_train(model), llama_model_n_embd(model),
           llama_model_n_embd_inp(model), llama_model_n_embd_out(model), llama_model_n_layer(model),
           llama_model_n_head(model), llama_model_n_head_kv(model), llama_model_n_swa(model));
    printf("rope %d %.6f\n", (int)llama_model_rope_type(model), llama_model_rope_freq_scale_train(model));
    printf("kinds %d %d %d %d %d %d %u\n", llama_model_has_encoder(model), llama_model_has_decoder(model),
           llama_model_decoder_start_token(model), llama_model_is_recurrent(model),
           llama_model_is_hybrid(model), llama_model_is_diffusion(model), llama_model_n_cls_out(model));
    const char *tmpl = llama_model_chat_template(model, NULL);
    printf("chat_template %zu\n", tmpl ? strlen(tmpl) : 0);
    printf("chat_template_named %d\n", llama_model_chat_template(model, "tool_use") != NULL);
    int32_t n_meta = llama_model_meta_count(model);
    printf("meta_count %d\n", n_meta);
    for (int32_t i = 0; i < n_meta; i++) {
        char key[256];
        llama_model_meta_key_by_index(model, i, key, sizeof key);
        int32_t n = llama_model_meta_val_str_by_index(model, i, buf, 64);
        printf("meta %s %d %s\n", key, n, buf);
    }
    printf("meta_general.name %d\n", llama_model_meta_val_str(model, "general.name", buf, sizeof buf));
    printf("meta_key_str %s\n", llama_model_meta_key_str(LLAMA_MODEL_META_KEY_SAMPLING_TOP_K));

    const struct llama_vocab *v = llama_model_get_vocab(model);
    printf("vocab %d %d\n", (int)llama_vocab_type(v), llama_vocab_n_tokens(v));
    printf("specials %d %d %d %d %d %d %d\n", llama_vocab_bos(v), llama_vocab_eos(v), llama_vocab_eot(v),
           llama_vocab_sep(v), llama_vocab_nl(v), llama_vocab_pad(v), llama_vocab_mask(v));
    printf("fim %d %d %d %d %d %d\n", llama_vocab_fim_pre(v), llama_vocab_fim_suf(v), llama_vocab_fim_mid(v),
           llama_vocab_fim_pad(v), llama_vocab_fim_rep(v), llama_vocab_fim_sep(v));
    printf("add %d %d %d\n", llama_vocab_get_add_bos(v), llama_vocab_get_add_eos(v), llama_vocab_get_add_sep(v));
    int32_t n_suppress = -1;
    llama_vocab_get_suppress_tokens(v, &n_suppress);
    printf("suppress %d\n", n_suppress);
    for (llama_token t = 0; t < llama_vocab_n_tokens(v); t += 997) {
        printf("token %d %s %.4f %d %d %d\n", t, llama_vocab_get_text(v, t), llama_vocab_get_score(v, t),
               (int)llama_vocab_get_attr(v, t), llama_vocab_is_eog(v, t), llama_vocab_is_control(v, t));
    }
    for (llama_token t = 0; t < 20; t++) {
        printf("special_token %d %d %d %d\n", t, (int)llama_vocab_get_attr(v, t), llama_vocab_is_eog(v, t),
               llama_vocab_is_control(v, t));
    }

    const uint32_t n_ctxs[] = {0, 100, 300, 512};
    for (int i = 0; i < 4; i++) {
        for (uint32_t n_seq = 1; n_seq <= 3; n_seq++) {
            for (int unified = 0; unified < 2; unified++) {
                struct llama_context_params cp = llama_context_default_params();
                cp.n_ctx = n_ctxs[i];
                cp.n_batch = 1000;
                cp.n_ubatch = 128;
                cp.n_seq_max = n_seq;
                cp.kv_unified = unified;
                /* not with 3 sequences: libllama 0.3.36 aborts reserving the pooling graph
                 * (ggml_can_mul_mat fails with n_tokens padded to a multiple of n_seqs) */
                cp.embeddings = unified && n_seq != 3;
                cp.pooling_type = cp.embeddings ? LLAMA_POOLING_TYPE_MEAN : LLAMA_POOLING_TYPE_UNSPECIFIED;
                struct llama_context *ctx = llama_init_from_model(model, cp);
                if (ctx == NULL) return 1;
                printf("ctx %u %u %d n_ctx %u n_ctx_seq %u n_batch %u n_ubatch %u n_seq_max %u pooling %d model %d\n",
                       n_ctxs[i], n_seq, unified, llama_n_ctx(ctx), llama_n_ctx_seq(ctx), llama_n_batch(ctx),
                       llama_n_ubatch(ctx), llama_n_seq_max(ctx), (int)llama_pooling_type(ctx),
                       llama_get_model(ctx) == model);
                llama_free(ctx);
            }
        }
    }
    printf("limits %zu %zu %zu %d %d\n", llama_max_devices(), llama_max_parallel_sequences(),
           llama_max_tensor_buft_overrides(), llama_supports_mmap(), llama_supports_gpu_offload());
    char path[256];
    printf("split_path %d %s\n", llama_split_path(path, sizeof path, "/m/x", 1, 4), path);
    printf("split_prefix %d %s\n", llama_split_prefix(path, sizeof path, "/m/x-00002-of-00004.gguf", 1, 4), path);
    printf("fa_name %s load_mode %s %d\n", llama_flash_attn_type_name(LLAMA_FLASH_ATTN_TYPE_AUTO),
           llama_load_mode_name(LLAMA_LOAD_MODE_MMAP), (int)llama_load_mode_from_str("mlock"));
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
