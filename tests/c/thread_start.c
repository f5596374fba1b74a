/* The interpreter started by a thread that has ended, used from main, finalized at exit (on
 * main): no crash, no leak report under ASan.
 * usage: thread_start MODEL.gguf ; prints "thread <n_tokens>", "main <n_tokens>" */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "bitnet_ffi.h"

static struct llama_model *model;
static int32_t n_thread = -1;

static void *first_calls(void *arg) {
    model = llama_model_load_from_file((const char *)arg, llama_model_default_params());
    llama_token tok[32];
    if (model != NULL) n_thread = llama_tokenize(llama_model_get_vocab(model), "Hello world", 11, tok, 32, true, false);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    pthread_t t;
    if (pthread_create(&t, NULL, first_calls, argv[1]) != 0) return 1;
    pthread_join(t, NULL);
    if (model == NULL) return 1;
    llama_token tok[32];
    int32_t n_main = llama_tokenize(llama_model_get_vocab(model), "Hello world", 11, tok, 32, true, false);
    printf("thread %d\nmain %d\n", n_thread, n_main);
    llama_model_free(model);
    return 0; /* the interpreter is finalized at exit, from this thread */
}
