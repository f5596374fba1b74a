/* llama_batch helpers and the extended batch (llama_batch_ext_*, llama_process), in C.
 * llama_process hands the batch to llama_decode / llama_encode as a llama_batch. */
#include <stdlib.h>
#include <string.h>

#include "bitnet_ffi_internal.h"

LLAMA_API struct llama_batch llama_batch_get_one(llama_token *tokens, int32_t n_tokens) {
    struct llama_batch b;
    memset(&b, 0, sizeof b);
    b.n_tokens = n_tokens;
    b.token = tokens;
    return b;
}

/* llama.cpp's llama_batch_init: arrays of n_tokens entries left uninitialized, but for the
 * seq_id pointers (NULL-terminated). Embedding input is not supported: embd != 0 gives an
 * empty batch (last error -1). */
LLAMA_API struct llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max) {
    struct llama_batch b;
    memset(&b, 0, sizeof b);
    if (n_tokens <= 0 || embd != 0 || n_seq_max <= 0) {
        bitnet__set_errorf(BITNET_ERR_GENERIC,
                           "llama_batch_init(n_tokens=%d, embd=%d, n_seq_max=%d): need n_tokens > 0, "
                           "n_seq_max > 0 and embd == 0 (token input only)",
                           n_tokens, embd, n_seq_max);
        return b;
    }
    size_t n = (size_t)n_tokens;
    b.token = (llama_token *)malloc(sizeof(llama_token) * n);
    b.pos = (llama_pos *)malloc(sizeof(llama_pos) * n);
    b.n_seq_id = (int32_t *)malloc(sizeof(int32_t) * n);
    b.seq_id = (llama_seq_id **)calloc(n + 1, sizeof(llama_seq_id *));
    b.logits = (int8_t *)malloc(n);
    if (b.seq_id != NULL) {
        for (size_t i = 0; i < n; i++) {
            b.seq_id[i] = (llama_seq_id *)malloc(sizeof(llama_seq_id) * (size_t)n_seq_max);
        }
    }
    bitnet__set_error(0, NULL);
    return b;
}

LLAMA_API void llama_batch_free(struct llama_batch batch) {
    free(batch.token);
    free(batch.embd);
    free(batch.pos);
    free(batch.n_seq_id);
    if (batch.seq_id != NULL) {
        for (size_t i = 0; batch.seq_id[i] != NULL; i++) free(batch.seq_id[i]);
        free(batch.seq_id);
    }
    free(batch.logits);
}

/* ---- llama_batch_ext ---- */

struct llama_batch_ext {
    int32_t n_tokens_max;  /* the context's n_batch */
    int32_t n_seq_max;     /* the context's n_seq_max */
    int32_t n_vocab;
    int32_t n_tokens;
    llama_token *token;    /* [n_tokens_max] */
    llama_pos *pos;        /* [n_tokens_max] */
    int8_t *output;        /* [n_tokens_max] */
    int32_t *n_seq;        /* [n_tokens_max] */
    llama_seq_id *seq;     /* [n_tokens_max][n_seq_max] */
    llama_seq_id **seq_ptr;/* [n_tokens_max]: rows of seq, for the llama_batch view */
};

#define BATCH_EXT_MAGIC_CHECK(b, fn, fail)                                    \
    do {                                                                      \
        if ((b) == NULL) {                                                    \
            bitnet__set_error(BITNET_ERR_INVALID_HANDLE, fn ": batch is NULL"); \
            return fail;                                                      \
        }                                                                     \
    } while (0)

LLAMA_API struct llama_batch_ext *llama_batch_ext_init(struct llama_context *ctx) {
    uint32_t n_batch = llama_n_batch(ctx);
    if (n_batch == 0) return NULL; /* bad context: llama_n_batch set the error */
    uint32_t n_seq_max = llama_n_seq_max(ctx);
    int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
    if (n_seq_max == 0 || n_vocab <= 0) return NULL;
    struct llama_batch_ext *b = (struct llama_batch_ext *)calloc(1, sizeof *b);
    if (b == NULL) {
        bitnet__set_error(BITNET_ERR_OUT_OF_MEMORY, "llama_batch_ext_init: out of memory");
        return NULL;
    }
    size_t n = n_batch;
    b->n_tokens_max = (int32_t)n_batch;
    b->n_seq_max = (int32_t)n_seq_max;
    b->n_vocab = n_vocab;
    b->token = (llama_token *)malloc(sizeof(llama_token) * n);
    b->pos = (llama_pos *)malloc(sizeof(llama_pos) * n);
    b->output = (int8_t *)malloc(n);
    b->n_seq = (int32_t *)malloc(sizeof(int32_t) * n);
    b->seq = (llama_seq_id *)malloc(sizeof(llama_seq_id) * n * n_seq_max);
    b->seq_ptr = (llama_seq_id **)malloc(sizeof(llama_seq_id *) * n);
    if (!b->token || !b->pos || !b->output || !b->n_seq || !b->seq || !b->seq_ptr) {
        llama_batch_ext_free(b);
        bitnet__set_error(BITNET_ERR_OUT_OF_MEMORY, "llama_batch_ext_init: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) b->seq_ptr[i] = b->seq + i * n_seq_max;
    bitnet__set_error(0, NULL);
    return b;
}

LLAMA_API void llama_batch_ext_free(struct llama_batch_ext *batch) {
    if (batch == NULL) return;
    free(batch->token);
    free(batch->pos);
    free(batch->output);
    free(batch->n_seq);
    free(batch->seq);
    free(batch->seq_ptr);
    free(batch);
}

LLAMA_API void llama_batch_ext_clear(struct llama_batch_ext *batch) {
    BATCH_EXT_MAGIC_CHECK(batch, "llama_batch_ext_clear", );
    batch->n_tokens = 0;
    bitnet__set_error(0, NULL);
}

static int valid_idx(const struct llama_batch_ext *b, int32_t idx) {
    return idx >= 0 && idx < b->n_tokens;
}

LLAMA_API int32_t llama_batch_ext_add(struct llama_batch_ext *batch, llama_seq_id seq_id) {
    BATCH_EXT_MAGIC_CHECK(batch, "llama_batch_ext_add", -1);
    if (batch->n_tokens >= batch->n_tokens_max) {
        bitnet__set_errorf(BITNET_ERR_GENERIC, "llama_batch_ext_add: the batch is full (%d tokens)",
                           batch->n_tokens_max);
        return -1;
    }
    if (seq_id < 0 || seq_id >= batch->n_seq_max) {
        bitnet__set_errorf(BITNET_ERR_GENERIC, "llama_batch_ext_add: seq_id %d outside [0, %d)", seq_id,
                           batch->n_seq_max);
        return -3;
    }
    int32_t i = batch->n_tokens++;
    batch->token[i] = LLAMA_TOKEN_NULL;
    batch->pos[i] = 0;
    batch->output[i] = 0;
    batch->n_seq[i] = 1;
    batch->seq_ptr[i][0] = seq_id;
    bitnet__set_error(0, NULL);
    return i;
}

LLAMA_API int32_t llama_batch_ext_add_token(struct llama_batch_ext *batch, llama_seq_id seq_id,
                                            llama_token id) {
    int32_t idx = llama_batch_ext_add(batch, seq_id);
    if (idx < 0) return idx;
    if (id < 0 || id >= batch->n_vocab) { /* as llama.cpp, the entry stays, without a token */
        bitnet__set_errorf(BITNET_ERR_GENERIC, "llama_batch_ext_add_token: token %d outside [0, %d)", id,
                           batch->n_vocab);
        return -2;
    }
    batch->token[idx] = id;
    return idx;
}

LLAMA_API bool llama_batch_ext_add_seq(struct llama_batch_ext *batch, int32_t idx,
                                       llama_seq_id seq_id) {
    BATCH_EXT_MAGIC_CHECK(batch, "llama_batch_ext_add_seq", false);
    if (!valid_idx(batch, idx) || seq_id < 0 || seq_id >= batch->n_seq_max) {
        bitnet__set_errorf(BITNET_ERR_GENERIC, "llama_batch_ext_add_seq: invalid index %d or seq_id %d",
                           idx, seq_id);
        return false;
    }
    for (int32_t s = 0; s < batch->n_seq[idx]; s++) { /* a set, as llama.cpp's */
        if (batch->seq_ptr[idx][s] == seq_id) {
            bitnet__set_error(0, NULL);
            return true;
        }
    }
    batch->seq_ptr[idx][batch->n_seq[idx]++] = seq_id;
    bitnet__set_error(0, NULL);
    return true;
}

LLAMA_API bool llama_batch_ext_set_pos(struct llama_batch_ext *batch, int32_t idx,
                                       const llama_pos *pos) {
    BATCH_EXT_MAGIC_CHECK(batch, "llama_batch_ext_set_pos", false);
    if (!valid_idx(batch, idx) || pos == NULL) {
        bitnet__set_errorf(BITNET_ERR_GENERIC, "llama_batch_ext_set_pos: invalid index %d or NULL pos", idx);
        return false;
    }
    batch->pos[idx] = pos[0];
    bitnet__set_error(0, NULL);
    return true;
}

static bool set_output(struct llama_batch_ext *batch, int32_t idx, bool value, const char *fn) {
    BATCH_EXT_MAGIC_CHECK(batch, "llama_batch_ext_set_output", false);
    if (!valid_idx(batch, idx)) {
        bitnet__set_errorf(BITNET_ERR_GENERIC, "%s: invalid index %d", fn, idx);
        return false;
    }
    batch->output[idx] = value ? 1 : 0;
    bitnet__set_error(0, NULL);
    return true;
}

LLAMA_API bool llama_batch_ext_set_output_embd(struct llama_batch_ext *batch, int32_t idx, bool value) {
    return set_output(batch, idx, value, "llama_batch_ext_set_output_embd");
}

LLAMA_API bool llama_batch_ext_set_output_logits(struct llama_batch_ext *batch, int32_t idx,
                                                 bool value) {
    return set_output(batch, idx, value, "llama_batch_ext_set_output_logits");
}

LLAMA_API bool llama_batch_ext_set_embd_state(struct llama_batch_ext *batch, int32_t idx,
                                              struct llama_embd embd) {
    (void)batch, (void)idx, (void)embd;
    bitnet__set_error(BITNET_ERR_GENERIC, "llama_batch_ext_set_embd_state: not implemented (as in llama.cpp)");
    return false;
}

LLAMA_API int32_t llama_process(struct llama_context *ctx, enum llama_process_type type,
                                struct llama_batch_ext *batch) {
    BATCH_EXT_MAGIC_CHECK(batch, "llama_process", -1);
    struct llama_batch b;
    b.n_tokens = batch->n_tokens;
    b.token = batch->token;
    b.embd = NULL;
    b.pos = batch->pos;
    b.n_seq_id = batch->n_seq;
    b.seq_id = batch->seq_ptr;
    b.logits = batch->output;
    switch (type) {
    case LLAMA_PROCESS_TYPE_ENCODE: return llama_encode(ctx, b);
    case LLAMA_PROCESS_TYPE_DECODE: return llama_decode(ctx, b);
    }
    bitnet__set_errorf(BITNET_ERR_GENERIC, "llama_process: unknown type %d", (int)type);
    return -1;
}
