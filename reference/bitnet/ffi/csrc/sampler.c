/* struct llama_sampler objects: llama.h makes them public ({iface, ctx}), so every sampler -
 * a program's own (llama_sampler_init) and the built-in ones, whose ctx is a handle of the
 * Python side - is a C struct dispatched through its iface, as in llama.cpp. A registry of the
 * live ones makes freed or foreign pointers fail with -9 instead of crashing. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet_ffi_internal.h"

/* ---- registry (a growable array; programs hold a handful of samplers) ----
 * The pointers are stored masked, so that LeakSanitizer does not see the registry as a
 * reference: a sampler the program never frees is reported as its leak. */

#define MASK ((uintptr_t)0x5a5a5a5a5a5a5a5aULL)
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t *reg;
static size_t reg_n, reg_cap;

static int reg_add(const struct llama_sampler *s) {
    pthread_mutex_lock(&reg_lock);
    if (reg_n == reg_cap) {
        size_t cap = reg_cap ? reg_cap * 2 : 64;
        uintptr_t *grown = (uintptr_t *)realloc(reg, cap * sizeof *reg);
        if (grown == NULL) {
            pthread_mutex_unlock(&reg_lock);
            return 0;
        }
        reg = grown;
        reg_cap = cap;
    }
    reg[reg_n++] = (uintptr_t)s ^ MASK;
    pthread_mutex_unlock(&reg_lock);
    return 1;
}

static int reg_remove(const struct llama_sampler *s) {
    int found = 0;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = reg_n; i-- > 0;) {
        if (reg[i] == ((uintptr_t)s ^ MASK)) {
            reg[i] = reg[--reg_n];
            found = 1;
            break;
        }
    }
    if (reg_n == 0) { /* nothing live: give the array back */
        free(reg);
        reg = NULL;
        reg_cap = 0;
    }
    pthread_mutex_unlock(&reg_lock);
    return found;
}

int bitnet__sampler_is_live(const struct llama_sampler *s) {
    int found = 0;
    if (s == NULL) return 0;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++) {
        if (reg[i] == ((uintptr_t)s ^ MASK)) {
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return found;
}

static int check(const struct llama_sampler *s, const char *fn) {
    if (bitnet__sampler_is_live(s)) return 1;
    bitnet__set_errorf(BITNET_ERR_INVALID_HANDLE, "%s: invalid sampler %p (NULL, freed or not a sampler)",
                       fn, (const void *)s);
    return 0;
}

/* ---- the built-in samplers' interface: the Python side, by handle ---- */

static intptr_t handle_of(const struct llama_sampler *s) { return (intptr_t)s->ctx; }

/* Calls into the Python side (after llama_backend_free it is gone: then they do nothing). */
#define PY_CALL(fn, call)                   \
    do {                                    \
        if (bitnet__enter(fn)) {            \
            bitnet__py_begin();             \
            call;                           \
            bitnet__py_end();               \
        }                                   \
    } while (0)

static const char *py_name(const struct llama_sampler *s) {
    const char *name = NULL;
    PY_CALL("llama_sampler_name", name = bitnet__py_sampler_name(handle_of(s)));
    return name;
}
static void py_accept(struct llama_sampler *s, llama_token t) {
    PY_CALL("llama_sampler_accept", bitnet__py_sampler_accept(handle_of(s), t));
}
static void py_apply(struct llama_sampler *s, llama_token_data_array *c) {
    PY_CALL("llama_sampler_apply", bitnet__py_sampler_apply(handle_of(s), c));
}
static void py_reset(struct llama_sampler *s) {
    PY_CALL("llama_sampler_reset", bitnet__py_sampler_reset(handle_of(s)));
}
static void py_free(struct llama_sampler *s) {
    PY_CALL("llama_sampler_free", bitnet__py_sampler_free(handle_of(s)));
}
static struct llama_sampler *py_clone(const struct llama_sampler *s) {
    intptr_t h = 0;
    PY_CALL("llama_sampler_clone", h = bitnet__py_sampler_clone(handle_of(s)));
    return h ? bitnet__sampler_new_builtin(h) : NULL;
}
static void py_copy(const struct llama_sampler *src, struct llama_sampler *dst) {
    PY_CALL("llama_sampler_copy", bitnet__py_sampler_copy(handle_of(src), handle_of(dst)));
}

static struct llama_sampler_i builtin_iface = {
    py_name, py_accept, py_apply, py_reset, py_clone, py_free, NULL, NULL, NULL, NULL, NULL, py_copy,
};

/* Called from Python code: the struct is the program's (it frees it), so it is allocated with
 * LeakSanitizer watching. */
struct llama_sampler *bitnet__sampler_new_builtin(intptr_t handle) {
    bitnet__py_end();
    struct llama_sampler *s = llama_sampler_init(&builtin_iface, (llama_sampler_context_t)handle);
    bitnet__py_begin();
    return s;
}

intptr_t bitnet__sampler_builtin_handle(const struct llama_sampler *s) {
    return bitnet__sampler_is_live(s) && s->iface == &builtin_iface ? handle_of(s) : 0;
}

/* ---- llama.h's sampler interface ---- */

LLAMA_API struct llama_sampler *llama_sampler_init(struct llama_sampler_i *iface,
                                                   llama_sampler_context_t ctx) {
    if (iface == NULL || iface->apply == NULL) {
        bitnet__set_error(BITNET_ERR_GENERIC, "llama_sampler_init: iface and iface->apply are required");
        return NULL;
    }
    struct llama_sampler *s = (struct llama_sampler *)malloc(sizeof *s);
    if (s == NULL || !reg_add(s)) {
        free(s);
        bitnet__set_error(BITNET_ERR_OUT_OF_MEMORY, "llama_sampler_init: out of memory");
        return NULL;
    }
    s->iface = iface;
    s->ctx = ctx;
    bitnet__set_error(0, NULL);
    return s;
}

LLAMA_API const char *llama_sampler_name(const struct llama_sampler *s) {
    if (!check(s, "llama_sampler_name")) return NULL;
    bitnet__set_error(0, NULL);
    return s->iface->name ? s->iface->name(s) : "(null)";
}

LLAMA_API void llama_sampler_accept(struct llama_sampler *s, llama_token token) {
    if (!check(s, "llama_sampler_accept")) return;
    bitnet__set_error(0, NULL);
    if (s->iface->accept) s->iface->accept(s, token);
}

LLAMA_API void llama_sampler_apply(struct llama_sampler *s, llama_token_data_array *cur_p) {
    if (!check(s, "llama_sampler_apply")) return;
    if (cur_p == NULL || (cur_p->size > 0 && cur_p->data == NULL)) {
        bitnet__set_error(BITNET_ERR_GENERIC, "llama_sampler_apply: candidates (or their data) are NULL");
        return;
    }
    bitnet__set_error(0, NULL);
    s->iface->apply(s, cur_p);
}

LLAMA_API void llama_sampler_reset(struct llama_sampler *s) {
    if (!check(s, "llama_sampler_reset")) return;
    bitnet__set_error(0, NULL);
    if (s->iface->reset) s->iface->reset(s);
}

/* llama.cpp: a sampler without clone but with a NULL ctx is copied as is; else it aborts
 * ("the sampler does not support cloning"): here NULL, last error -1. */
LLAMA_API struct llama_sampler *llama_sampler_clone(const struct llama_sampler *s) {
    if (!check(s, "llama_sampler_clone")) return NULL;
    bitnet__set_error(0, NULL);
    if (s->iface->clone) return s->iface->clone(s);
    if (s->ctx == NULL) return llama_sampler_init(s->iface, NULL);
    bitnet__set_error(BITNET_ERR_GENERIC, "llama_sampler_clone: the sampler does not support cloning");
    return NULL;
}

LLAMA_API void llama_sampler_copy(const struct llama_sampler *src, struct llama_sampler *dst) {
    if (!check(src, "llama_sampler_copy") || !check(dst, "llama_sampler_copy")) return;
    if (src->iface != dst->iface || src->iface->copy_state == NULL) {
        bitnet__set_error(BITNET_ERR_GENERIC,
                          "llama_sampler_copy: samplers of different types, or without copy_state");
        return;
    }
    bitnet__set_error(0, NULL);
    src->iface->copy_state(src, dst);
}

/* NULL is a no-op; a pointer that is not a live sampler fails with -9 (llama.cpp would crash). */
LLAMA_API void llama_sampler_free(struct llama_sampler *s) {
    if (s == NULL) {
        bitnet__set_error(0, NULL);
        return;
    }
    if (!check(s, "llama_sampler_free")) return;
    bitnet__set_error(0, NULL);
    if (s->iface->free) s->iface->free(s);
    reg_remove(s);
    free(s);
}
