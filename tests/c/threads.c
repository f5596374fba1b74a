/* Calls from several threads at once: each thread tokenizes and evals on its own context
 * of one shared model. usage: threads MODEL.gguf PROMPT ; prints "thread_<i> argmax". */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "bitnet_ffi.h"

#define N_THREADS 3

struct job {
    struct llama_model *model;
    const char *prompt;
    int32_t result;
};

static void *work(void *arg) {
    struct job *job = (struct job *)arg;
    job->result = -1;
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 64;
    struct llama_context *ctx = llama_new_context_with_model(job->model, cparams);
    if (ctx == NULL) return NULL;
    llama_token tokens[64];
    int32_t n = llama_tokenize(job->model, job->prompt, (int32_t)strlen(job->prompt), tokens, 64,
                               true, false);
    if (n > 0 && llama_eval(ctx, tokens, n, 0, 1) == 0) {
        const float *logits = llama_get_logits(ctx);
        int32_t best = 0;
        for (int32_t v = 1; v < llama_n_vocab(job->model); v++) {
            if (logits[v] > logits[best]) best = v;
        }
        job->result = best;
    }
    llama_free(ctx);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    struct llama_model *model = llama_load_model_from_file(argv[1], llama_model_default_params());
    if (model == NULL) return 1;
    pthread_t threads[N_THREADS];
    struct job jobs[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        jobs[i].model = model;
        jobs[i].prompt = argv[2];
        if (pthread_create(&threads[i], NULL, work, &jobs[i]) != 0) return 1;
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(threads[i], NULL);
        printf("thread_%d %d\n", i, jobs[i].result);
    }
    llama_free_model(model);
    return 0;
}
