/* llama_backend_free finalizes the embedded interpreter: later calls fail cleanly (-1 and a
 * message), frees are no-ops, the built-in samplers do nothing; no crash at exit.
 * usage: shutdown MODEL.gguf
 * prints "<case> value last_error" lines. */
#include <stdio.h>
#include <string.h>

#include "bitnet_ffi.h"

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    llama_backend_init();
    struct llama_model *model = llama_model_load_from_file(argv[1], llama_model_default_params());
    struct llama_context *ctx = llama_init_from_model(model, llama_context_default_params());
    struct llama_sampler *chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    struct llama_batch batch = llama_batch_init(8, 0, 1);
    printf("before %d %d\n", model != NULL && ctx != NULL && chain != NULL, bitnet_last_error());

    llama_backend_free();
    printf("backend_free 0 %d\n", bitnet_last_error());
    struct llama_model *again = llama_model_load_from_file(argv[1], llama_model_default_params());
    printf("load_after_free %d %d\n", again == NULL, bitnet_last_error());
    printf("message %s\n", strstr(bitnet_last_error_message(), "shut down") != NULL ? "shut_down" : "?");
    printf("n_ctx_after_free %u %d\n", llama_n_ctx(ctx), bitnet_last_error());
    llama_token_data cand[2] = {{0, 1.0f, 0.0f}, {1, 2.0f, 0.0f}};
    llama_token_data_array cur = {cand, 2, -1, false};
    llama_sampler_apply(chain, &cur);
    printf("apply_after_free %d %d\n", (int)cur.selected, bitnet_last_error());
    llama_sampler_free(chain);
    llama_free(ctx);
    llama_model_free(model);
    llama_batch_free(batch); /* C only: still works */
    printf("frees_after_free 0 0\n");
    llama_backend_free(); /* twice: nothing left to do */
    return 0;
}
