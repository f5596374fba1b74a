/* A program that forgets to free a batch: LeakSanitizer must still report that leak (the
 * library hides only its interpreter's allocations, not the program's).
 * usage: leaky MODEL.gguf */
#include <stdio.h>

#include "bitnet_ffi.h"

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    struct llama_model *model = llama_model_load_from_file(argv[1], llama_model_default_params());
    struct llama_batch batch = llama_batch_init(512, 0, 1); /* never freed */
    struct llama_sampler *smpl = llama_sampler_init_greedy(); /* never freed */
    printf("loaded %d %d\n", model != NULL, batch.token != NULL && smpl != NULL);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
