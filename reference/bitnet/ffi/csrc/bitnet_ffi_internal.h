/* Internal interface between the C parts of libbitnet_ffi (csrc/ C files), the generated glue
 * (build_ffi.py) and the Python side (bitnet.ffi.capi, through cffi's `lib`). */
#ifndef BITNET_FFI_INTERNAL_H
#define BITNET_FFI_INTERNAL_H

#define BITNET_FFI_BUILDING 1
#define BITNET_FFI_NO_GGML_H 1
#ifndef LLAMA_API
#define LLAMA_API __attribute__((visibility("default")))
#endif
#include "bitnet_ffi.h"

/* 1 when the embedded interpreter runs (starting it on the first call); else 0, with the last
 * error set to -1 naming `fn` and the cause. */
int bitnet__enter(const char *fn);

/* Around Python code: its allocations are not the program's (LeakSanitizer, runtime.c). */
void bitnet__py_begin(void);
void bitnet__py_end(void);

/* Set this thread's last error (code 0 clears it; message may be NULL). */
void bitnet__set_error(int32_t code, const char *message);
/* printf-style variant for the C parts. */
void bitnet__set_errorf(int32_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One log line through llama_log_set's callback (stderr by default). */
void bitnet__log(int32_t level, const char *text);

/* Called by the embedding init code: where the `bitnet` package of this library lives, and a
 * failure to start (the cause, one line). */
const char *bitnet__import_root(void);
void bitnet__start_failed(const char *cause);

/* Run by the generated glue: cffi's own start of the embedded module. */
int bitnet__cffi_start(void);
/* Python's cleanup before finalization (frees every handle). */
void bitnet__py_shutdown(void);

/* Samplers: a C struct per sampler (llama.h defines struct llama_sampler), registered here so
 * that freed or foreign pointers are refused. Built-in samplers carry a Python handle in ctx. */
int bitnet__sampler_is_live(const struct llama_sampler *smpl);
struct llama_sampler *bitnet__sampler_new_builtin(intptr_t handle);
intptr_t bitnet__sampler_builtin_handle(const struct llama_sampler *smpl); /* 0 if not built-in */

/* Python implementations behind the built-in samplers' interface (generated glue). */
const char *bitnet__py_sampler_name(intptr_t handle);
void bitnet__py_sampler_accept(intptr_t handle, llama_token token);
void bitnet__py_sampler_apply(intptr_t handle, llama_token_data_array *cur_p);
void bitnet__py_sampler_reset(intptr_t handle);
intptr_t bitnet__py_sampler_clone(intptr_t handle);
void bitnet__py_sampler_free(intptr_t handle);
void bitnet__py_sampler_copy(intptr_t src, intptr_t dst);

#endif
